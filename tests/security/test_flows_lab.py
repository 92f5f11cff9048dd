"""Issue 19's acceptance on the lab, as root: softflowd exports the real traffic on the router's organisation
interface (cn-n, inside the lab namespace) as NetFlow v9 to the daemon's collector; a real TCP port scan from the
organisation's address opens a security incident naming the rule and the flows; the approved cut is verified by
interface, targets and flows (softflowd sees no packet on a down interface), and so is the reconnect (the
organisation's gateway answers pings again: flows again).

softflowd's timeouts (expiry checked every second) are scaled down to active 10 s / inactive 3 s in every run,
and are a router's own 60 s / 15 s in a slow run; the latency bound is the issue's "one active timeout plus 5 s"
(15 s, 65 s). A scan's single-packet flows are exported at the inactive timeout, well inside it. The gateway's
answers to the pings after the reconnect never idle, so they are exported only at the active timeout: the
reconnect is verified within `verify.flows.reconnect` (75 s by default), not within `quiet` (it once failed here at
60 s / 15 s, "none from the organisation within 32s of the reconnect", whenever the ping flow's 60 s fell late).

softflowd 1.1.0 does not set libpcap's immediate mode: on a quiet interface the captured frames wait in the
kernel's TPACKET_V3 ring block until it fills, and are never processed (`softflowctl statistics`: "Packets
received by libpcap: 24 ... Packets processed: 0"; upstream irino/softflowd pull request 71). The test keeps the
link busy as a real LGWAN link is: a steady stream of small datagrams from the LGWAN side to the organisation's
gateway (not the organisation's traffic: not judged), so blocks fill within a fraction of a second."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.peers import Receiver, free_port, http_get, wait_for
from tests.security.lab import (
    ADMIN,
    ALICE,
    CONN_EDGE,
    CONN_HOST,
    LAB_ENV,
    MGMT_EDGE,
    MGMT_HOST,
    ROOT,
    Daemon,
    Lab,
    need_lab,
    pages,
    start_lab,
    stop_lab,
    write_config,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("monitor.flows.collector") is None,
        reason="the flow collector (issue 19, the other half) is not in this build",
    ),
]
# softflowd's maxlife (active) and inactive timeouts, seconds: scaled down for every run, and a router's own
# 60 s / 15 s as a slow run (~3 minutes), which is the setting the latency bound is stated for
TIMEOUTS = [pytest.param((10, 3), id="10s-3s"), pytest.param((60, 15), id="60s-15s", marks=pytest.mark.slow)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    need_lab()
    if shutil.which("softflowd") is None:
        pytest.skip("softflowd is not installed")
    made = start_lab(tmp_path_factory.mktemp("lab"))
    yield made
    stop_lab(made)


def flow_config(path: Path, flow_port: int, inactive: int) -> None:
    """The lab's disconnect config plus the collector and city-a's flow policy and verification by flows."""
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["flows"] = {"listen": f"{MGMT_HOST}:{flow_port}", "exporters": [{"address": MGMT_EDGE}]}
    city = config["security"]["connections"][0]
    city["addresses"] = [f"{CONN_EDGE}/32"]  # the organisation's end of the link (the host plays the LGWAN side)
    city["anomaly"] = None
    city["flows"] = {
        "allow": [
            {"name": "lgwan-https", "to": [CONN_HOST], "protocol": "tcp", "ports": [443]},
            {"name": "icmp", "to": [CONN_HOST], "protocol": "icmp"},
        ],
        "detectors": {"disallowed": {"count": 3}, "scan": {"hosts_per_minute": 16, "ports_per_minute": 16}},
    }
    config["security"]["playbooks"]["lgwan"]["verify"] = {"timeout": "20s", "flows": {"quiet": f"{inactive * 2 + 2}s"}}
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")


def flow_metrics(daemon: Daemon) -> str:
    _, body = http_get(f"{daemon.base}/metrics")
    return "\n".join(line for line in body.decode().splitlines() if line.startswith("monitor_flow_"))


class Background:
    """Datagrams from the LGWAN side (the host) to the organisation's gateway at `rate` per second."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Background:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sent, start = 0, time.monotonic()
            while not self._stop.is_set():
                if sent < self.rate * (time.monotonic() - start):
                    with contextlib.suppress(OSError):  # unreachable while cut, ICMP errors: it goes on
                        sock.sendto(b"k", (CONN_EDGE, 9 + sent % 64))
                    sent += 1
                else:
                    time.sleep(0.001)


def if_index(lab: Lab) -> int:
    out = lab.in_ns("ip", "-o", "link", "show", "cn-n").stdout
    match = re.match(r"(\d+):", out)
    assert match, out
    return int(match.group(1))


@pytest.mark.parametrize("timeouts", TIMEOUTS)
def test_a_real_scan_exported_by_softflowd_is_cut_and_verified_by_flows(
    tmp_path: Path, lab: Lab, monkeypatch: pytest.MonkeyPatch, timeouts: tuple[int, int]
) -> None:
    ACTIVE, INACTIVE = timeouts
    for name, value in LAB_ENV.items():
        monkeypatch.setenv(name, value)
    lab.set_link(True)
    hook = Receiver()
    daemon = Daemon(tmp_path, hook)
    write_config(daemon.config, hook.url, daemon.trap_port)
    flow_port = free_port()
    flow_config(daemon.config, flow_port, INACTIVE)
    index = if_index(lab)
    softflowd = subprocess.Popen(
        ["ip", "netns", "exec", lab.ns, "softflowd", "-d", "-i", f"{index}:cn-n", "-n", f"{MGMT_HOST}:{flow_port}",
         "-v", "9", "-p", str(tmp_path / "softflowd.pid"), "-c", str(tmp_path / "softflowd.ctl"),
         "-t", f"maxlife={ACTIVE}", "-t", "expint=1", *(x for t in ("tcp", "tcp.rst", "tcp.fin", "udp", "icmp",
         "general") for x in ("-t", f"{t}={INACTIVE}"))],
        stdout=(tmp_path / "softflowd.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with Background(4000), daemon.start() as proc:
            daemon.wait_ready(proc)
            # the gateway's pings (the daemon's ICMP check) are allowed flows: no incident from them
            time.sleep(INACTIVE + 3)
            assert daemon.security() == [], daemon.security()
            first_packet = time.time()
            scan = lab.in_ns("python3", "-c", SCAN.format(host=CONN_HOST, ports="range(1, 41)"))
            assert scan.returncode == 0, scan.stderr
            try:
                incident = daemon.wait_phase("proposed", ACTIVE + 10)
            except AssertionError as exc:  # what the collector and the policy saw says where it stopped
                raise AssertionError(f"{exc}\n{flow_metrics(daemon)}") from None
            latency = incident["evidence"][0]["at"] - first_packet
            assert incident["source"] == "flows" and incident["connection"] == "city-a"
            assert "rule " in incident["summary"] and CONN_EDGE in incident["summary"]
            assert latency <= ACTIVE + 5, latency
            flows = incident["evidence"][0]["detail"]["flows"]
            assert all(f["src"] == CONN_EDGE and f["exporter"] == MGMT_EDGE for f in flows), flows
            assert {f["protocol"] for f in flows} == {"tcp"} and len({f["dst_port"] for f in flows}) >= 3
            wait_for(lambda: pages(hook, "firing"), 10, what="the security page")

            status, body = daemon.post(f"/api/v1/security-incidents/{incident['id']}/approve", token=ALICE)
            assert status == 200, body
            cut = wait_for(lambda: next((s for s in daemon.security() if s["phase"] in ("cut", "cut_failed")), None),
                           40, what="the cut")  # fmt: skip
            findings = cut["executions"][-1]["findings"]
            assert cut["phase"] == "cut", findings
            assert lab.link_state() == "DOWN"
            assert any(f.startswith("interface: down") for f in findings), findings
            assert any("unreachable" in f for f in findings), findings
            assert any(f.startswith("flows: none from the organisation") for f in findings), findings

            status, body = daemon.post(f"/api/v1/security-incidents/{incident['id']}/reconnect",
                                       {"reason": "terminal re-imaged"}, token=ALICE)  # fmt: skip
            assert status == 200, body
            done = wait_for(lambda: next((s for s in daemon.security()
                                          if s["phase"] in ("reconnected", "reconnect_failed")), None), 100,
                            what="the reconnect")  # fmt: skip
            assert done["phase"] == "reconnected", done["executions"][-1]
            assert any(f.startswith("flows: from the organisation again") for f in done["executions"][-1]["findings"])
            audit = daemon.get("/api/v1/audit?limit=1000", token=ADMIN)
        assert audit["chain_valid"] is True
        assert any(e["action"] == "security.flows.violation" for e in audit["entries"])
    finally:
        softflowd.terminate()
        softflowd.wait(10)
        hook.server.shutdown()
        lab.set_link(True)
    timings = ROOT / "artifacts" / "flow-timings.json"
    timings.parent.mkdir(exist_ok=True)
    old: dict[str, Any] = json.loads(timings.read_text()) if timings.exists() else {}
    timings.write_text(
        json.dumps({**old, f"softflowd_{ACTIVE}s_{INACTIVE}s_first_packet_to_proposed_s": round(latency, 3)})
    )
    print(f"softflowd: first packet -> proposed cut {latency:.2f} s (active {ACTIVE} s, inactive {INACTIVE} s)")


# A TCP connect scan of the organisation's side of the link from inside the router's namespace, source CONN_EDGE:
# each SYN is answered by a RST (nothing listens), as a real scan of closed ports is
SCAN = """
import socket
for port in {ports}:
    s = socket.socket()
    s.settimeout(0.2)
    try:
        s.connect(("{host}", port))
    except OSError:
        pass
    finally:
        s.close()
"""
