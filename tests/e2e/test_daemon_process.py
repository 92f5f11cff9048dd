"""End to end: the daemon as a process probing loopback servers, scraped by a real Prometheus;
failure and recovery, reload (good, broken, SIGHUP) and graceful shutdown."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e.peers import (
    daemon_process,
    free_port,
    http_get,
    http_post,
    prom_query,
    prometheus,
    prometheus_available,
    wait_for,
)

pytestmark = pytest.mark.slow


class _OK(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args: object) -> None:
        pass


class TCPGate:
    """A TCP listener the test can close (connection refused) and reopen on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.sock: socket.socket | None = None
        self.open()

    def open(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        self.sock = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.close()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


@pytest.fixture
def servers() -> Iterator[tuple[int, TCPGate, int]]:
    http = ThreadingHTTPServer(("127.0.0.1", 0), _OK)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    gate = TCPGate()
    closed = free_port()  # nothing listens here: connection refused
    yield http.server_address[1], gate, closed
    http.shutdown()
    gate.close()


def config_text(http_port: int, gate_port: int, closed_port: int, extra_target: str = "") -> str:
    return f"""
defaults: {{interval: 1s, timeout: 500ms, retry_interval: 200ms, failures_to_down: 2, successes_to_up: 2}}
modules:
  http: {{kind: http, http: {{port: {http_port}}}}}
  tcp: {{kind: tcp}}
targets:
  - {{name: web, address: 127.0.0.1, modules: [http], labels: {{prefecture: 13, tier: national}}}}
  - name: gate
    address: 127.0.0.1
    checks: [{{module: tcp, port: {gate_port}}}]
  - name: dead
    address: 127.0.0.1
    checks: [{{module: tcp, port: {closed_port}}}]
{extra_target}
services:
  - {{name: portal, display_name: 窓口システム, rule: all, targets: [web, gate]}}
auth:
  tokens:
    - {{name: e2e-operator, role: operator, token: "${{E2E_OPERATOR_TOKEN}}"}}
"""


TOKEN = "e2e-operator-token-5f0c"


def services(base: str) -> dict[str, str]:
    return {s["name"]: s["state"] for s in json.loads(http_get(f"{base}/api/v1/services")[1])["services"]}


def metric_value(base: str, line_start: str) -> float | None:
    for line in http_get(f"{base}/metrics")[1].decode().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.skipif(not prometheus_available(), reason="prometheus (Debian package) not installed")
def test_daemon_probes_and_prometheus_scrapes(
    tmp_path: Path, servers: tuple[int, TCPGate, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real Prometheus scraping the daemon sees monitor_probe_success 1 for a live target and 0 for a dead one."""
    monkeypatch.setenv("E2E_OPERATOR_TOKEN", TOKEN)
    http_port, gate, closed = servers
    config = tmp_path / "monitor.yml"
    config.write_text(config_text(http_port, gate.port, closed), encoding="utf-8")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["run", "--config", str(config), "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")]
    with daemon_process(args, tmp_path) as daemon:
        wait_for(lambda: http_get(f"{base}/readyz")[0] == 200, 20, what="daemon ready")
        assert http_get(f"{base}/healthz")[0] == 200
        with prometheus(tmp_path, [f"127.0.0.1:{port}"]) as prom:

            def scraped() -> dict[str, float]:
                rows = prom_query(prom, "monitor_probe_success")
                return {r["metric"]["check"]: float(r["value"][1]) for r in rows} if len(rows) == 3 else {}

            values = wait_for(scraped, 30, what="monitor_probe_success in Prometheus")
            assert values == {"web/http": 1.0, "gate/tcp": 1.0, "dead/tcp": 0.0}
            wait_for(lambda: prom_query(prom, 'monitor_check_state{check="dead/tcp", state="down"} == 1'), 15)
            up = prom_query(prom, 'monitor_service_up{service="portal"}')
            assert [float(r["value"][1]) for r in up] == [1.0]
            labels = prom_query(prom, 'monitor_probe_success{check="web/http"}')[0]["metric"]
            assert "prefecture" not in labels and labels["kind"] == "http"  # descriptive labels: on the info series
            info = prom_query(prom, 'monitor_check_info{check="web/http"}')[0]["metric"]
            assert info["prefecture"] == "13" and info["tier"] == "national"
        assert daemon.proc.poll() is None, daemon.output()


def test_failure_recovery_reload_and_shutdown(
    tmp_path: Path, servers: tuple[int, TCPGate, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cut target turns its service DOWN and back UP; a broken reload keeps the old config; SIGHUP applies a good
    one; SIGTERM stops cleanly and the store records the stop."""
    monkeypatch.setenv("E2E_OPERATOR_TOKEN", TOKEN)
    http_port, gate, closed = servers
    config = tmp_path / "monitor.yml"
    good = config_text(http_port, gate.port, closed)
    config.write_text(good, encoding="utf-8")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["run", "--config", str(config), "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")]
    with daemon_process(args, tmp_path) as daemon:
        wait_for(lambda: services(base).get("portal") == "up", 20, what="portal up")
        gate.close()
        wait_for(lambda: services(base).get("portal") == "down", 10, what="portal down after the cut")
        targets = json.loads(http_get(f"{base}/api/v1/targets?state=down")[1])["targets"]
        reasons = {t["name"]: t["checks"][0]["last"]["error"] for t in targets}
        assert reasons == {"gate": "connection refused", "dead": "connection refused"}
        gate.open()
        wait_for(lambda: services(base).get("portal") == "up", 10, what="portal back up")

        config.write_text(good.replace("interval: 1s", "interval: 1x"), encoding="utf-8")
        assert http_post(f"{base}/-/reload")[0] == 403  # anonymous callers may only read
        status, body = http_post(f"{base}/-/reload", token=TOKEN)
        assert status == 400
        assert any("invalid duration" in e for e in json.loads(body)["errors"])
        assert metric_value(base, "monitor_config_last_reload_successful ") == 0.0
        assert services(base) == {"portal": "up"}  # still running the last good config

        extra = f"  - {{name: extra, address: 127.0.0.1, checks: [{{module: tcp, port: {gate.port}}}]}}"
        config.write_text(config_text(http_port, gate.port, closed, extra), encoding="utf-8")
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: metric_value(base, "monitor_config_last_reload_successful ") == 1.0, 10, what="reload ok")
        wait_for(lambda: "extra" in json.loads(http_get(f"{base}/api/v1/targets")[1])["targets"][-1]["name"], 10)
        assert daemon.stop(signal.SIGTERM) == 0, daemon.output()
    assert '"event": "daemon_stopped"' in daemon.output()
    runs = sqlite3.connect(tmp_path / "data" / "monitor.db").execute("SELECT stopped FROM daemon_runs").fetchall()
    assert runs and runs[-1][0] is not None
