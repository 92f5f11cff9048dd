"""Lab scenarios: `monitor lab run` (the simulated network, its own process) and a daemon watching it.

Faults go through the lab's CLI and API; what the daemon reports is compared with the lab's ground truth.
As root the lab's cuts are real drops in the kernel (nftables), so probes time out as on a real network.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.demo import kernel_faults
from tests.e2e.peers import ROOT, Process, free_port, http_get, wait_for

pytestmark = pytest.mark.slow


@dataclass
class Lab:
    api: str  # HOST:PORT of the fault API
    base: str  # the daemon's http://HOST:PORT
    config_dir: Path
    daemon: Process

    def fault(self, *args: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "monitor", "lab", "fault", *args, "--lab", self.api],
            capture_output=True, text=True, timeout=30, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    def truth(self) -> list[dict[str, Any]]:
        return list(json.loads(http_get(f"http://{self.api}/lab/faults")[1])["log"])

    def targets(self) -> dict[str, dict[str, Any]]:
        return {t["name"]: t for t in json.loads(http_get(f"{self.base}/api/v1/targets")[1])["targets"]}

    def services(self) -> dict[str, str]:
        return {s["name"]: s["state"] for s in json.loads(http_get(f"{self.base}/api/v1/services")[1])["services"]}

    def incidents(self) -> list[dict[str, Any]]:
        return list(json.loads(http_get(f"{self.base}/api/v1/incidents?limit=100")[1])["incidents"])

    def metric(self, pattern: str) -> list[float]:
        text = http_get(f"{self.base}/metrics")[1].decode()
        return [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if re.match(pattern, line)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("lab")
    api, port = f"127.0.0.1:{free_port()}", free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    lab_args = ["lab", "run", "--prefectures", "3", "--listen", api, "--config-dir", str(tmp / "config"),
                "--daemon-listen", f"127.0.0.1:{port}"]  # fmt: skip
    lab_proc = Process([sys.executable, "-m", "monitor", *lab_args], tmp / "lab.log", env)
    daemon: Process | None = None
    try:
        wait_for(lambda: "lab_ready" in lab_proc.output(), 60, what="lab ready")
        for line in (tmp / "config" / "lab.env").read_text().splitlines():
            key, _, value = line.partition("=")
            env[key] = value
        daemon = Process([sys.executable, "-m", "monitor", "run", "--config", str(tmp / "config" / "monitor.yml")],
                         tmp / "daemon.log", env)  # fmt: skip
        lab = Lab(api, f"http://127.0.0.1:{port}", tmp / "config", daemon)
        wait_for(lambda: http_get(f"{lab.base}/readyz")[0] == 200, 60, what="daemon ready")
        wait_for(lambda: all(t["state"] == "up" for t in lab.targets().values()), 60, what="everything up")
        yield lab
    finally:
        if daemon is not None:
            daemon.stop()
        lab_proc.stop()
        assert "Traceback" not in lab_proc.output(), lab_proc.output()


def test_a_cut_prefecture_router_is_one_incident_with_its_children_unreachable(lab: Lab) -> None:
    cut = lab.fault("pref02-edge", "cut", "--note", "fibre cut to the prefecture")
    assert cut["kernel"] == kernel_faults.available()
    children = [name for name in lab.targets() if name.startswith(("pref02-", "lgwan-02-")) and name != "pref02-edge"]
    assert len(children) == 7
    states = wait_for(
        lambda: (t := lab.targets())["pref02-edge"]["state"] == "down"
        and all(t[c]["state"] == "unreachable" for c in children) and t,
        40, what="edge down, children unreachable",
    )  # fmt: skip
    assert all(states[c]["root_cause"] == "pref02-edge" for c in children)
    assert states["pref01-edge"]["state"] == "up" and states["pref03-fw"]["state"] == "up"
    if kernel_faults.available():  # a cut link drops packets: the probe times out, it is not refused
        reason = next(c["reason"] for c in states["pref02-edge"]["checks"] if c["name"] == "mgmt_ssh")
        assert "timed out" in reason or "timeout" in reason, reason
    opened = wait_for(lambda: [i for i in lab.incidents() if i["status"] != "resolved"], 40, what="incident")
    assert len(opened) == 1, opened  # one incident for the root cause, none for the 7 children
    assert "pref02-edge" in opened[0]["title_en"]
    detected = opened[0]["opened_at"]
    lab.fault("pref02-edge", "up")
    wait_for(lambda: all(t["state"] == "up" for t in lab.targets().values()), 60, what="all back up")
    wait_for(lambda: all(i["status"] == "resolved" for i in lab.incidents()), 60, what="incident resolved")
    truth = [r for r in lab.truth() if r["target"] == "pref02-edge"]
    assert [r["mode"] for r in truth] == ["cut", "up"]
    assert truth[0]["note"] == "fibre cut to the prefecture"
    assert 0 < datetime.fromisoformat(detected).timestamp() - truth[0]["at"] < 40  # group_wait 10 s included


def test_a_degraded_primary_circuit_leaves_the_lgwan_link_degraded_not_down(lab: Lab) -> None:
    lab.fault("lgwan-01-01-primary", "degrade", "--loss", "10", "--for", "40")
    wait_for(lambda: lab.services().get("lgwan-link-01-01") == "degraded", 40, what="link degraded")
    link, circuit = set(), set()
    for _ in range(15):  # while it lasts, the link is never called down: the backup carries it
        link.add(lab.services()["lgwan-link-01-01"])
        circuit.add(lab.targets()["lgwan-01-01-primary"]["state"])
        time.sleep(1)
    assert link == {"degraded"}, link
    assert "degraded" in circuit, circuit  # late answers over the 1 s threshold (and lost SYNs, as root)
    wait_for(lambda: lab.services()["lgwan-link-01-01"] == "up", 60, what="link back up after --for")
    assert [r["mode"] for r in lab.truth() if r["target"] == "lgwan-01-01-primary"] == ["degrade", "up"]


def test_a_reboot_is_detected_and_its_counter_reset_is_not_read_as_traffic(lab: Lab) -> None:
    reboots = r'monitor_device_reboots_total\{[^}]*target="pref03-core"'
    util = r'monitor_if_utilization_ratio\{[^}]*target="pref03-core"'
    wait_for(lambda: lab.metric(util), 40, what="utilisation of pref03-core")
    before = lab.metric(reboots)[0]
    lab.fault("pref03-core", "reboot", "--note", "power cycle")
    wait_for(lambda: lab.metric(reboots)[0] == before + 1, 40, what="reboot counted")
    # the poll that saw the reboot gives no utilisation (counters went back to zero: no rate), the next ones
    # are ordinary again: no spike
    for _ in range(3):
        values = wait_for(lambda: lab.metric(util), 25, what="utilisation again")
        assert max(values) < 0.5, values
        time.sleep(10)
    assert lab.targets()["pref03-core"]["state"] == "up"
