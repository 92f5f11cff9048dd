"""A failure of this host is never the target's failure: real EMFILE and a real local firewall.

Each scenario starts real loopback peers (TCP, HTTP, DNS over UDP, the demo's SNMP agent, ICMP echo
from the kernel), probes them through the daemon's ProbeRunner into the Engine until every check is
UP, then makes *this host* fail and probes again:

- EMFILE: the process's descriptors are exhausted for real (the soft RLIMIT_NOFILE lowered to the
  descriptors already open, the holes filled): socket() fails in every probe kind.
- EPERM: an nftables drop in the OUTPUT hook (as root, in a network namespace of the test's own, in a
  table of its own name), the way a local firewall refuses: UDP and ICMP sends fail at once.

With failures_to_down 1, a single local failure judged as the target's would make the check DOWN.
The checks must keep their state and counters, emit no transition (so no incident can open), say
"monitoring gap: ..." as their reason, and be judged normally again once the host recovers. A last
test runs the daemon as a process with a small descriptor limit and exhausts it the way issue 24's
attacker did (idle connections to its listener).

Run: flock /tmp/lab.lock .venv/bin/pytest -q -p no:cacheprovider tests/probes/test_local_failures.py
(the EPERM and daemon tests need root; the lock keeps nftables work of parallel runs apart).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import http.client
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.rrset
import pytest
from aiohttp import web

from monitor.clock import SystemClock
from monitor.config.loader import load_config
from monitor.core.engine import Engine
from monitor.demo.pki import DemoPKI
from monitor.demo.snmp_agent import SimDevice, SnmpAgents, demo_interfaces
from monitor.scheduling.runner import ProbeRunner
from probes import base, icmp
from probes.registry import close_probes, create_probes

REPO = Path(__file__).resolve().parents[2]
EMFILE_REASON = "monitoring gap: too many open files in this daemon"
EPERM_REASON = "monitoring gap: send refused: operation not permitted"
TABLE = "local_failure_test"  # not the lab's monitor_lab: this test must never touch the lab's drops

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="nftables and network namespaces need root")


# ----------------------------------------------------------------------------------------- peers


class _DNS(asyncio.DatagramProtocol):
    """Answers every A query with one record."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        query = dns.message.from_wire(data)
        answer = dns.message.make_response(query)
        answer.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", "192.0.2.1"))
        self.transport.sendto(answer.to_wire(), addr)  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def loopback_peers(address: str, folder: Path) -> AsyncIterator[dict[str, int]]:
    """TCP, HTTP, HTTPS, DNS/UDP and SNMP peers on `address`; yields their ports."""
    loop = asyncio.get_running_loop()

    async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    tcp = await asyncio.start_server(hang_up, address, 0)

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, address, 0)
    await site.start()
    http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    pki = DemoPKI.create(folder / "certs")  # https goes through aiohttp, plain http through probes.http1
    tls_site = web.TCPSite(runner, address, 0, ssl_context=pki.server_context("host.test", address))
    await tls_site.start()
    https_port = tls_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    udp, _ = await loop.create_datagram_endpoint(_DNS, local_addr=(address, 0))
    agents = SnmpAgents(0)
    await agents.add(SimDevice("host", address, b"public", demo_interfaces("host", "edge-router")))
    try:
        yield {
            "tcp": tcp.sockets[0].getsockname()[1],
            "http": http_port,
            "https": https_port,
            "dns": udp.get_extra_info("sockname")[1],
            "snmp": agents.port,
        }
    finally:
        agents.close()
        udp.close()
        tcp.close()
        await runner.cleanup()


V3_AUTH, V3_PRIV = "local-failure-auth-1", "local-failure-priv-1"


@contextlib.contextmanager
def net_snmpd(folder: Path, address: str) -> Iterator[int]:
    """net-snmp's snmpd on address:<free port> with an SHA-256/AES user (for the SNMPv3 path); yields the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe_port:
        probe_port.bind((address, 0))
        port = int(probe_port.getsockname()[1])
    conf = folder / "snmpd.conf"
    conf.write_text(
        f"agentAddress udp:{address}:{port}\nrocommunity public 127.0.0.0/8\n"
        f'createUser mon SHA-256 "{V3_AUTH}" AES "{V3_PRIV}"\nrouser mon priv\n',
        encoding="utf-8",
    )
    (folder / "v3auth.txt").write_text(V3_AUTH, encoding="utf-8")
    (folder / "v3priv.txt").write_text(V3_PRIV, encoding="utf-8")
    env = {**os.environ, "SNMP_PERSISTENT_DIR": str(folder / "snmpd-persist"), "MIBS": ""}
    proc = subprocess.Popen(
        ["snmpd", "-f", "-Lo", "-C", "-c", str(conf), "-I", "-smux,mteTrigger,mteTriggerConf", "-p",
         str(folder / "snmpd.pid")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        for _ in range(50):  # up to ~10 s
            done = subprocess.run(
                ["snmpget", "-v2c", "-c", "public", "-t", "0.2", "-r", "0", f"{address}:{port}", "1.3.6.1.2.1.1.3.0"],
                capture_output=True, timeout=5, env=env,
            )  # fmt: skip
            if done.returncode == 0:
                break
        else:
            raise AssertionError("snmpd did not start")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


MODULES = {
    "tcp": "{{kind: tcp, tcp: {{port: {tcp}}}}}",
    "http": "{{kind: http, http: {{port: {http}, path: /health}}}}",
    "https": "{{kind: http, http: {{scheme: https, port: {https}, path: /health, tls_config: {{ca_file: certs/demo-ca.pem, "
    "server_name: host.test}}}}}}",
    "dns": "{{kind: dns, dns: {{port: {dns}, query_name: ok.test}}}}",
    "snmp": "{{kind: snmp, snmp: {{version: 2c, community: {{file: community.txt}}, port: {snmp}, timeout: 500ms, "
    "retries: 0}}}}",
    "icmp": "{{kind: icmp, icmp: {{count: 2, packet_interval: 0.05}}}}",
    "snmpv3": "{{kind: snmp, snmp: {{version: '3', port: {snmpv3}, timeout: 500ms, retries: 0, v3: {{username: mon, "
    "auth_protocol: SHA-256, auth_key: {{file: v3auth.txt}}, priv_key: {{file: v3priv.txt}}}}}}}}",
}


def write_config(folder: Path, address: str, ports: dict[str, int], kinds: list[str]) -> Path:
    """One target with one check per kind; one failure is enough for DOWN (so a wrong verdict shows)."""
    (folder / "community.txt").write_text("public\n", encoding="utf-8")
    modules = "\n".join(f"  {kind}: {MODULES[kind].format(**ports)}" for kind in kinds)
    text = (
        "defaults: {interval: 10s, timeout: 2s, retry_interval: 2s, failures_to_down: 1, successes_to_up: 1}\n"
        f"modules:\n{modules}\n"
        f"targets:\n  - {{name: host, address: {address}, modules: [{', '.join(kinds)}]}}\n"
    )
    path = folder / "monitor.yml"
    path.write_text(text, encoding="utf-8")
    return path


def kinds_here() -> list[str]:
    kinds = ["tcp", "http", "https", "dns", "snmp"]
    if icmp.socket_mode("auto") is not None:  # root, or datagram ICMP allowed
        kinds.append("icmp")
    return kinds  # not SNMPv3: pysnmp's engine, made at the first v3 poll, loads MIB modules (files) then


# ----------------------------------------------------------------------------------------- faults


@contextlib.contextmanager
def no_descriptors_left() -> Iterator[None]:
    """Exhaust this process's file descriptors for real, then give them back."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    fillers: list[int] = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1, hard))
    try:
        for _ in range(highest + 1):  # fill the holes below the limit: bounded by the limit itself
            try:
                fillers.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as exc:
                assert exc.errno == errno.EMFILE
                break
        with pytest.raises(OSError) as raised:
            socket.socket().close()
        assert raised.value.errno == errno.EMFILE
        yield
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _nft(script: str) -> None:
    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True, capture_output=True, timeout=10)


@contextlib.contextmanager
def local_firewall_drop(address: str) -> Iterator[None]:
    """This host's firewall drops what it sends to `address` (OUTPUT hook): the kernel refuses the send."""
    _nft(
        f"add table ip {TABLE}\n"
        f"add chain ip {TABLE} out {{ type filter hook output priority 0; policy accept; }}\n"
        f"add rule ip {TABLE} out ip daddr {address} drop\n"
    )
    try:
        yield
    finally:
        subprocess.run(["nft", "delete", "table", "ip", TABLE], capture_output=True, timeout=10)


# --------------------------------------------------------------------------------------- scenario


async def scenario(folder: Path, address: str, kinds: list[str], fault: str) -> dict[str, Any]:
    """Probe every check UP, then under `fault` ("emfile" or "eperm") three times, then after it.
    Returns what the runner and the engine said at each step, as JSON-able data."""
    async with loopback_peers(address, folder) as ports, contextlib.AsyncExitStack() as stack:
        if "snmpv3" in kinds:
            ports["snmpv3"] = stack.enter_context(net_snmpd(folder, address))
        inventory = load_config(write_config(folder, address, ports, kinds)).inventory
        engine = Engine(inventory)
        steady, fresh = create_probes(), create_probes()  # fresh: no socket opened yet (SNMP's is shared)
        clock = SystemClock()
        out: dict[str, Any] = {"before": {}, "during": {}, "after": {}}
        try:
            runner = ProbeRunner(steady, clock)
            for cid, check in inventory.checks.items():
                for _ in range(3):  # a peer that has just started (snmpd's first SNMPv3 exchange) may need a retry
                    result = await runner.run(check)
                    if result.ok:
                        break
                engine.observe(cid, result, clock.now())
                out["before"][cid] = {"ok": result.ok, "error": result.error, "state": engine.checks[cid].state.value}
            counters = {cid: (rt.probes_total, rt.failures_total, len(rt.recent)) for cid, rt in engine.checks.items()}
            during_runner = ProbeRunner(fresh if fault == "emfile" else steady, clock)
            fault_cm = no_descriptors_left() if fault == "emfile" else local_firewall_drop(address)
            with fault_cm:
                for cid, check in inventory.checks.items():
                    rows = []
                    for _ in range(3):
                        result = await during_runner.run(check)
                        outcome = engine.observe(cid, result, clock.now())
                        rows.append({"ok": result.ok, "error": result.error, "local": result.local,
                                     "values": result.values, "transitions": len(outcome.transitions)})  # fmt: skip
                    rt = engine.checks[cid]
                    out["during"][cid] = {
                        "results": rows,
                        "state": rt.state.value,
                        "machine": rt.machine.state.value,
                        "reason": rt.reason,
                        "counters_kept": counters[cid] == (rt.probes_total, rt.failures_total, len(rt.recent)),
                    }
                out["gaps"] = engine.gap_summary()
            for cid, check in inventory.checks.items():
                result = await runner.run(check)
                outcome = engine.observe(cid, result, clock.now())
                rt = engine.checks[cid]
                out["after"][cid] = {"ok": result.ok, "state": rt.state.value, "reason": rt.reason,
                                     "transitions": len(outcome.transitions)}  # fmt: skip
            out["gaps_after"] = engine.gap_summary()
            out["services"] = {name: srt.state.value for name, srt in engine.services.items()}
        finally:
            await close_probes(steady)
            await close_probes(fresh)
        return out


def assert_gap_kept_state(out: dict[str, Any], checks: list[str], reason: str, errno_name: str) -> None:
    for cid in checks:
        assert out["before"][cid] == {"ok": True, "error": None, "state": "up"}, (cid, out["before"][cid])
        during = out["during"][cid]
        for row in during["results"]:
            assert (row["ok"], row["error"], row["local"]) == (False, reason, errno_name), (cid, row)
            assert row["transitions"] == 0, (cid, row)  # nothing for incidents, the store or availability
            assert "loss_ratio" not in row["values"], (cid, row)  # no packet went out: no loss measured
        assert (during["state"], during["machine"]) == ("up", "up"), (cid, during)
        assert during["reason"] == reason, (cid, during)
        assert during["counters_kept"], cid
        assert out["after"][cid] == {"ok": True, "state": "up", "reason": None, "transitions": 0}, cid
    assert out["gaps"] == {errno_name: len(checks)}, out["gaps"]
    assert out["gaps_after"] == {}


# ------------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize(
    ("code", "local"),
    [(errno.EMFILE, True), (errno.ENFILE, True), (errno.ENOBUFS, True), (errno.ENOMEM, True),
     (errno.EADDRNOTAVAIL, True), (errno.EPERM, True), (errno.EACCES, True),
     (errno.ECONNREFUSED, False), (errno.ECONNRESET, False), (errno.ENETUNREACH, False),
     (errno.EHOSTUNREACH, False), (errno.ETIMEDOUT, False)],
)  # fmt: skip
def test_which_errors_are_this_hosts(code: int, local: bool) -> None:
    """The one classification: by errno, also through a library's wrapper (the OSError as its context),
    but not through a context the raiser suppressed; describe_os_error refuses to describe a local one."""
    error = OSError(code, os.strerror(code))
    assert (base.local_failure(error) is not None) is local
    try:
        try:
            raise error
        except OSError as exc:
            raise RuntimeError(str(exc))  # noqa: B904 - as icmplib and pysnmp do
    except RuntimeError as wrapped:
        assert (base.local_failure(wrapped) is not None) is local
    try:
        try:
            raise error
        except OSError:
            raise RuntimeError("unrelated") from None
    except RuntimeError as suppressed:
        assert base.local_failure(suppressed) is None
    if local:
        with pytest.raises(base.LocalFailure) as raised:
            base.describe_os_error(error)
        assert raised.value.result().error == f"monitoring gap: {base.LOCAL_ERRNOS[code]}"
        assert raised.value.result().local == errno.errorcode[code]
    else:
        assert base.describe_os_error(error)  # the target's or the path's: described, as before


async def test_exhausted_descriptors_are_a_monitoring_gap_for_every_probe_kind(tmp_path: Path) -> None:
    """EMFILE in socket() (TCP, HTTP over http1 and over aiohttp (https), DNS, SNMP's first socket, ICMP):
    a gap, never DOWN."""
    kinds = kinds_here()
    async with asyncio.timeout(60):
        out = await scenario(tmp_path, "127.0.0.1", kinds, "emfile")
    assert_gap_kept_state(out, [f"host/{kind}" for kind in kinds], EMFILE_REASON, "EMFILE")


CHILD = """
import asyncio, json, subprocess, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.probes.test_local_failures import scenario
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
address, kinds, fault, folder = sys.argv[2], sys.argv[3].split(","), sys.argv[4], Path(sys.argv[5])
print(json.dumps(asyncio.run(asyncio.wait_for(scenario(folder, address, kinds, fault), 60))))
"""


def in_netns(tmp_path: Path, address: str, kinds: list[str], fault: str) -> dict[str, Any]:
    """The scenario in a network namespace of its own: its nftables and its loopback are the test's alone."""
    done = subprocess.run(
        ["unshare", "--net", "--", sys.executable, "-c", CHILD, str(REPO), address, ",".join(kinds), fault,
         str(tmp_path)],
        capture_output=True, text=True, timeout=90, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


@needs_root
def test_sends_refused_by_the_local_firewall_are_a_monitoring_gap(tmp_path: Path) -> None:
    """EPERM from an OUTPUT drop: DNS (send), SNMP v2c (sendto, reported to error_received), SNMPv3 (pysnmp's
    transport, which drops such errors: ours records them) and ICMP (sendto)
    become a monitoring gap reading "send refused: operation not permitted"; ICMP exports no loss ratio."""
    if shutil.which("nft") is None or shutil.which("unshare") is None:
        pytest.skip("needs nft and unshare")
    kinds = ["dns", "snmp", "icmp"] + (["snmpv3"] if shutil.which("snmpd") else [])
    out = in_netns(tmp_path, "127.0.0.2", kinds, "eperm")
    assert_gap_kept_state(out, [f"host/{kind}" for kind in kinds], EPERM_REASON, "EPERM")


@needs_root
def test_a_local_tcp_drop_is_still_a_timeout(tmp_path: Path) -> None:
    """What the kernel does not tell us, we cannot classify: an OUTPUT drop of a TCP SYN is retransmitted
    silently (connect() does not fail), so a TCP check reads as a real cut would: a timeout. Recorded here
    so that a change in this behaviour is noticed."""
    if shutil.which("nft") is None or shutil.which("unshare") is None:
        pytest.skip("needs nft and unshare")
    out = in_netns(tmp_path, "127.0.0.2", ["tcp"], "eperm")
    rows = out["during"]["host/tcp"]["results"]
    assert all(r["local"] is None and "timeout" in (r["error"] or "") for r in rows), rows


# ------------------------------------------------------------------------------- the daemon itself


def _get(conn: http.client.HTTPConnection, path: str) -> Any:
    conn.request("GET", path)
    response = conn.getresponse()
    return json.loads(response.read())


def _metric(text: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


@pytest.mark.slow
def test_daemon_out_of_descriptors_opens_no_incident(tmp_path: Path) -> None:
    """Issue 24's attack, scaled down: idle connections exhaust a daemon limited to 160 descriptors.
    Its checks stay UP, no incident opens, /healthz says degraded and names the gap, the gap is counted,
    and when the connections go the checks are watched again."""
    from tests.e2e.peers import free_port, http_get, wait_for  # a process test's helpers

    folder = tmp_path
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(512)
    tcp_port = server.getsockname()[1]
    (folder / "monitor.yml").write_text(
        "defaults: {interval: 500ms, timeout: 400ms, retry_interval: 200ms, failures_to_down: 1, successes_to_up: 1}\n"
        # the listener's caps are what keeps a client from doing this (tests/hostile); lifted here, the test is
        # about descriptors running out anyway (another consumer, a leak): a gap, never the targets' failure
        "daemon: {http: {max_connections: 10000, max_connections_per_source: 10000}}\n"
        "modules:\n  tcp: {kind: tcp}\n"
        "targets:\n"
        + "".join(
            f"  - {{name: t{i}, address: 127.0.0.1, checks: [{{module: tcp, port: {tcp_port}}}]}}\n" for i in range(8)
        ),
        encoding="utf-8",
    )
    port = free_port()
    base_args = ["run", "--config", str(folder / "monitor.yml"), "--listen", f"127.0.0.1:{port}"]
    limit = 160

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    log = (folder / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", *base_args, "--data-dir", str(folder / "data")],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO, preexec_fn=limited,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    flood: list[socket.socket] = []
    accepted: list[socket.socket] = []
    try:
        wait_for(lambda: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 30, what="daemon ready")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)  # opened before the flood: kept alive
        wait_for(lambda: all(t["state"] == "up" for t in _get(conn, "/api/v1/targets")["targets"]), 20, what="up")
        server.setblocking(False)
        for _ in range(limit + 40):  # more than the daemon can hold: it accepts until EMFILE
            client = socket.create_connection(("127.0.0.1", port), timeout=2)
            flood.append(client)
        states_during: set[str] = set()
        health_during: list[Any] = []
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            with contextlib.suppress(BlockingIOError):
                while True:
                    accepted.append(server.accept()[0])  # the probes' connections, so they stay cheap
            states_during |= {t["state"] for t in _get(conn, "/api/v1/targets")["targets"]}
            health_during.append(_get(conn, "/healthz"))
            time.sleep(0.3)
        incidents = _get(conn, "/api/v1/incidents?limit=100")["incidents"]
        conn.request("GET", "/metrics")
        metrics = conn.getresponse().read().decode()
        assert states_during == {"up"}, states_during
        assert incidents == [], incidents
        degraded = [h for h in health_during if h["status"] == "degraded"]
        assert degraded, health_during
        assert degraded[-1]["monitoring_gap"]["by_errno"] == {"EMFILE": 8}, degraded[-1]
        assert _metric(metrics, 'monitor_probe_local_failures_total{kind="tcp",reason="EMFILE"}') > 0
        assert _metric(metrics, "monitor_checks_in_monitoring_gap") == 8
        assert _metric(metrics, 'monitor_open_files_limit{limit="hard"}') == limit
        assert _metric(metrics, 'monitor_open_files_limit{limit="soft"}') == limit  # raised to the hard one at start
        assert limit - 10 <= _metric(metrics, "monitor_open_files ") <= limit  # read although none is left
        for client in flood:
            client.close()
        flood.clear()
        wait_for(lambda: _get(conn, "/healthz")["status"] == "ok", 20, what="gap over")
        assert {t["state"] for t in _get(conn, "/api/v1/targets")["targets"]} == {"up"}
        assert _get(conn, "/api/v1/incidents?limit=100")["incidents"] == []
        conn.close()
    finally:
        for client in flood:
            client.close()
        for sock in accepted:
            sock.close()
        server.close()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    output = (folder / "daemon.log").read_text(errors="replace")
    assert "monitoring_gap_started" in output and "Traceback" not in output, output[-3000:]
