"""Issue 24 again, against the daemon as a process (RLIMIT_NOFILE lowered to 2,048 so the caps are small and
the attacks cheap; the client's raised): idle-connection floods up to the listener's caps and beyond,
connections that never send their headers, a keep-alive flood of the console's board, malformed request
lines and hostile bodies and headers, every write endpoint without the right to it. Throughout: no check
changes state, no incident or notice opens, no probe is skipped or fails, /healthz answers in time, every
bad input is a 4xx problem+json with one log line, every refused write is audited. Loopback only, every
attack bounded in count and time (the whole module: about a minute)."""

from __future__ import annotations

import asyncio
import json
import re
import resource
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from socket import SO_REUSEADDR, SOL_SOCKET, socket

import pytest

from monitor.access.auth import token_digest
from tests.e2e.peers import ROOT, free_port, http_get, wait_for
from tests.hostile.http_flood import (
    daemon_fds,
    flood_process,
    healthz_latencies,
    loopback_sources,
    metric,
    open_idle,
    percentile,
    raise_nofile,
    raw_request,
)

pytestmark = pytest.mark.slow
NOFILE = 2048  # the daemon's: caps of 512 connections, 128 per source address
MAX_CONNECTIONS, PER_SOURCE = 512, 128
HEADER_TIMEOUT, IDLE_TIMEOUT = 3.0, 5.0
TARGETS = 20
TOKENS = {"admin": "hostile-admin-token", "operator": "hostile-operator-token", "viewer": "hostile-viewer-token"}


class Sink:
    """What the daemon probes: a TCP listener that accepts and closes (its checks stay UP)."""

    def __init__(self) -> None:
        self.sock = socket()
        self.sock.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metrics(self) -> str:
        return http_get(self.base + "/metrics")[1].decode()

    def get(self, path: str, role: str | None = None) -> tuple[int, dict[str, object]]:
        status, body = http_get(self.base + path, token=TOKENS[role] if role else None)
        return status, json.loads(body)

    def audited(self) -> int:
        return int(self.get("/api/v1/audit?limit=1", "admin")[1]["count"])  # type: ignore[call-overload]

    def log_lines(self) -> list[str]:
        return self.log.read_text(encoding="utf-8", errors="replace").splitlines()


def write_config(path: Path, sink: int) -> None:
    targets = "\n".join(
        f"  - {{name: t{i:02d}, address: 127.0.0.1, checks: [{{module: tcp, port: {sink}}}], "
        f"labels: {{tier: prefecture, prefecture: {i % 47 + 1:02d}}}}}"
        for i in range(TARGETS)
    )
    tokens = "\n".join(
        f"    - {{name: {r}-user, role: {r}, token_sha256: {token_digest(t)}}}" for r, t in TOKENS.items()
    )
    path.write_text(
        f"""
daemon:
  http: {{header_timeout: {HEADER_TIMEOUT}s, idle_timeout: {IDLE_TIMEOUT}s}}
defaults: {{interval: 1s, timeout: 500ms, failures_to_down: 1, successes_to_up: 1}}
modules: {{tcp: {{kind: tcp}}}}
targets:
{targets}
services:
  - {{name: juki, targets: [t00, t01]}}
incidents: {{group_wait: 0s}}
status_page: {{services: [{{id: juki, name: 住基ネット, services: [juki]}}]}}
auth:
  tokens:
{tokens}
""",
        encoding="utf-8",
    )


def _lower_nofile() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    raise_nofile(8192)
    tmp = tmp_path_factory.mktemp("hostile-http")
    sink = Sink()
    write_config(tmp / "monitor.yml", sink.port)
    port = free_port()
    log = tmp / "daemon.log"
    args = [sys.executable, "-m", "monitor", "run", "--config", str(tmp / "monitor.yml"),
            "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp / "data")]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, preexec_fn=_lower_nofile)
    running = Daemon(proc, port, log)
    try:
        wait_for(lambda: http_get(running.base + "/readyz")[0] == 200, 30, what="daemon ready")
        wait_for(lambda: metric(running.metrics(), "monitor_check_state", state="up") == TARGETS, 20, what="all up")
        yield running
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        sink.sock.close()


@pytest.fixture(scope="module")
def baseline(daemon: Daemon) -> dict[str, float]:
    text = daemon.metrics()
    return {
        "skipped": metric(text, "monitor_probes_skipped_total"),
        "failures": metric(text, "monitor_probes_total", result="failure"),
        "fds": float(daemon_fds(daemon.proc.pid)),
    }


def test_connection_floods_up_to_the_caps_and_beyond(daemon: Daemon, baseline: dict[str, float]) -> None:
    pid, base_fds = daemon.proc.pid, int(baseline["fds"])

    async def attack() -> dict[str, object]:
        # 300 idle connections from one address: 128 kept, the rest refused; /healthz from another is quick
        one = await open_idle("127.0.0.1", daemon.port, 300, ["127.0.0.2"])
        kept_one, fds_one = one.alive(), daemon_fds(pid)
        latencies = await healthz_latencies("127.0.0.1", daemon.port, 100, 0.005)
        await one.close()
        # 560 from eight addresses (70 each): the global cap of 512 holds
        many = await open_idle("127.0.0.1", daemon.port, 560, loopback_sources(8, first=10))
        kept_many, fds_many = many.alive(), daemon_fds(pid)
        await many.close()
        after = await healthz_latencies("127.0.0.1", daemon.port, 20, 0.005)
        return {"one": (kept_one, fds_one), "many": (kept_many, fds_many), "healthz": latencies, "after": after}

    got = asyncio.run(attack())
    kept_one, fds_one = got["one"]  # type: ignore[misc]
    kept_many, fds_many = got["many"]  # type: ignore[misc]
    assert kept_one == PER_SOURCE and fds_one <= base_fds + PER_SOURCE + 8, got["one"]
    assert MAX_CONNECTIONS - 8 <= kept_many <= MAX_CONNECTIONS and fds_many <= base_fds + MAX_CONNECTIONS + 8
    healthz: list[float] = got["healthz"]  # type: ignore[assignment]
    assert percentile(healthz, 0.99) < 0.100, sorted(healthz)[-5:]
    assert all(t < 1.0 for t in got["after"]), got["after"]  # type: ignore[attr-defined]
    text = daemon.metrics()
    assert metric(text, "monitor_http_connections_rejected_total", reason="source_cap") >= 300 - PER_SOURCE
    assert metric(text, "monitor_http_connections_rejected_total", reason="global_cap") >= 560 - MAX_CONNECTIONS
    assert daemon_fds(pid) <= base_fds + 8  # all given back


def test_connections_without_headers_are_closed_and_idle_ones_later(daemon: Daemon) -> None:
    async def attack() -> tuple[int, int, int, int]:
        silent = await open_idle("127.0.0.1", daemon.port, 50, ["127.0.0.20"])
        request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\n\r\n".encode()
        served = await open_idle("127.0.0.1", daemon.port, 20, ["127.0.0.21"], request)  # then idle, keep-alive
        await asyncio.sleep(HEADER_TIMEOUT + 0.7)
        silent_left, served_left = silent.alive(), served.alive()
        await asyncio.sleep(IDLE_TIMEOUT - HEADER_TIMEOUT + 0.7)
        served_later = served.alive()
        await silent.close()
        await served.close()
        return silent_left, served_left, served_later, len(served.readers)

    silent_left, served_left, served_later, served = asyncio.run(attack())
    assert silent_left == 0  # no headers within header_timeout: aborted
    assert served_left == served == 20  # a request was made: kept alive until idle_timeout ...
    assert served_later == 0  # ... and not after it
    assert metric(daemon.metrics(), "monitor_http_connections_rejected_total", reason="header_timeout") >= 50


def test_a_board_flood_leaves_healthz_fast_and_probing_on_time(daemon: Daemon, baseline: dict[str, float]) -> None:
    async def attack() -> tuple[dict[str, int], list[float]]:
        flooder = await flood_process(f"{daemon.base}/api/v1/board", 64, 5.0, "127.0.0.30")
        await asyncio.sleep(0.7)
        latencies = await healthz_latencies("127.0.0.1", daemon.port, 80, 0.04)
        return await flooder, latencies

    statuses, latencies = asyncio.run(attack())
    assert statuses.get("200", 0) > 0 and statuses.get("429", 0) > 0, statuses
    assert percentile(latencies, 0.5) < 0.050 and percentile(latencies, 0.99) < 0.100, sorted(latencies)[-5:]
    text = daemon.metrics()
    assert metric(text, "monitor_probes_skipped_total") == baseline["skipped"]
    assert metric(text, "monitor_http_requests_limited_total") >= statuses["429"]


MALFORMED_LINES = [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
    b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
]


def _http(method: str, path: str, headers: dict[str, bytes] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    lines += [k.encode() + b": " + v for k, v in (headers or {}).items()]
    if body:
        lines += [b"Content-Type: application/json", f"Content-Length: {len(body)}".encode()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _bearer(role: str) -> dict[str, bytes]:
    return {"Authorization": f"Bearer {TOKENS[role]}".encode()}


# (request, audited?) the inputs of issue 24 point 5 on the wire: every refused write is audited, and so is
# a credential that cannot be one
BAD_REQUESTS: list[tuple[bytes, bool]] = [
    (_http("POST", "/api/v1/incidents/1/ack", {"Authorization": b"Bearer \xff\xfe\xfd"}, b"{}"), True),
    (_http("GET", "/api/v1/targets", {"Authorization": b"Bearer \xc3\x28"}), True),  # a forged credential
    (_http("POST", "/login", body=b"[" * 50_000 + b"]" * 50_000), True),
    (_http("POST", "/login", body=b'{"name": "\\ud800", "password": "x"}'), True),
    (_http("POST", "/login", body=b'{"name": "yamada", "password": ' + b"7" * 5000 + b"}"), True),
    (_http("POST", "/api/v1/alertmanager/webhook", body=b'{"alerts": ' + b"[" * 50_000 + b"}"), True),
    (_http("POST", "/api/v1/incidents/1/notes", _bearer("operator"), b'{"text": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"), True),
    (_http("POST", "/api/v1/maintenance", _bearer("operator"), b'{"name": "w", "reason": "r", "targets": ["t00"], '
           b'"start": "2030-01-01T00:00:00", "duration": "' + b"9" * 50 + b'd"}'), True),
    (_http("GET", "/api/v1/incidents/" + "9" * 26), False),
    (_http("POST", "/api/v1/incidents/" + "9" * 26 + "/resolve", _bearer("operator"), b"{}"), True),
    (_http("GET", "/api/v1/reports/2026-11?lang=%ff"), False),
    (_http("POST", "/demo/faults", body=b'{"fault": "down", "target": "t00"}'), True),
    (_http("GET", "/demo/faults"), False),
]  # fmt: skip


def test_every_bad_input_is_a_4xx_problem_with_one_log_line_and_audited(daemon: Daemon) -> None:
    async def send(data: bytes) -> bytes:
        return await raw_request("127.0.0.1", daemon.port, data, "127.0.0.40")

    for data in MALFORMED_LINES:
        lines_before = len(daemon.log_lines())
        answer = asyncio.run(send(data))
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head[9:10] == b"4" and b"content-type: application/problem+json" in head.lower(), (data[:60], head)
        assert json.loads(body)["status"] == int(head[9:12])
        time.sleep(0.05)
        new = daemon.log_lines()[lines_before:]
        assert len(new) <= 1 and not any('"error"' in line or "Traceback" in line for line in new), new
    for data, write in BAD_REQUESTS:  # write: audited
        audited, lines_before = daemon.audited(), len(daemon.log_lines())
        answer = asyncio.run(send(data))
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head[9:10] == b"4", (data[:80], head)
        assert b"content-type: application/problem+json" in head.lower(), (data[:80], head)
        assert json.loads(body)["status"] == int(head[9:12])
        time.sleep(0.05)
        new = [line for line in daemon.log_lines()[lines_before:] if "GET /api/v1/audit" not in line]
        assert len([line for line in new if "request_refused" in line]) == 1, (data[:80], new)
        assert not any("Traceback" in line or '"level": "error"' in line for line in new), new
        assert daemon.audited() == audited + int(write), (data[:80], "a refused write is audited")
    entries = daemon.get("/api/v1/audit?limit=200", "admin")[1]
    assert entries["chain_valid"] is True
    actions = [e["action"] for e in entries["entries"]]  # type: ignore[union-attr]
    assert "auth.malformed_header" in actions and actions.count("session.login") >= 3


def test_every_refused_write_is_audited(daemon: Daemon) -> None:
    doc = daemon.get("/api/v1/openapi.json")[1]
    # every path parameter filled in (a literal "{name}" matches no route: a 404 that says nothing of auth)
    values = {"id": "1", "check_id": "t00/tcp", "month": "2026-11", "version": "1", "schedule": "noc"}
    writes = [
        (method.upper(), re.sub(r"\{(\w+)[^}]*\}", lambda m: values.get(m.group(1), "x"), path))
        for path, ops in doc["paths"].items()  # type: ignore[attr-defined]
        for method in ops
        if method in ("post", "patch", "put", "delete") and path not in ("/login", "/logout")  # no role needed
    ]
    assert len(writes) >= 15
    before = daemon.audited()
    refused = 0
    for method, path in writes:
        for headers in ({}, _bearer("viewer"), {"Authorization": b"Bearer forged-token"}):
            answer = asyncio.run(raw_request("127.0.0.1", daemon.port, _http(method, path, headers, b"{}")))
            assert answer[9:12] in (b"401", b"403"), (method, path, answer[:200])
            refused += 1
    assert daemon.audited() == before + refused
    assert daemon.get("/api/v1/audit?limit=1", "admin")[1]["chain_valid"] is True


def test_the_attacks_changed_nothing(daemon: Daemon, baseline: dict[str, float]) -> None:
    """Last: every check still UP and never left it, no incident or notice, no probe skipped or failed."""
    text = daemon.metrics()
    assert metric(text, "monitor_check_state", state="up") == TARGETS
    assert metric(text, "monitor_probes_skipped_total") == baseline["skipped"]
    assert metric(text, "monitor_probes_total", result="failure") == baseline["failures"]
    assert metric(text, "monitor_probes_total", result="success") > TARGETS * 10  # probing went on all along
    assert daemon.get("/api/v1/incidents")[1]["count"] == 0
    assert daemon.get("/api/v1/notices", "admin")[1]["count"] == 0
    changed = [line for line in daemon.log_lines() if '"state_changed"' in line and '"old": "up"' in line]
    assert changed == []
    assert not any("Traceback" in line or '"level": "error"' in line for line in daemon.log_lines())
    assert urllib.request.urlopen(daemon.base + "/healthz", timeout=2).status == 200
