"""Real peers for end-to-end tests: the daemon as a process and a real Prometheus, on free loopback ports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 5.0, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http_post(url: str, body: bytes = b"", timeout: float = 10.0, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(predicate: Any, timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (OSError, ValueError, KeyError):
            last = None
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Process:
    """A child process whose output goes to a log file (shown when a test fails)."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._fh = log.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def daemon_process(args: list[str], tmp: Path, name: str = "daemon") -> Iterator[Process]:
    """`python -m monitor ARGS`; stopped (SIGTERM) at the end."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = Process([sys.executable, "-m", "monitor", *args], tmp / f"{name}.log", env)
    try:
        yield proc
    finally:
        proc.stop()


def prometheus_available() -> bool:
    return shutil.which("prometheus") is not None


@contextmanager
def prometheus(
    tmp: Path,
    scrape_targets: list[str],
    interval: str = "1s",
    rule_files: list[str] | None = None,
    remote_write: str | None = None,
    features: tuple[str, ...] = (),
) -> Iterator[str]:
    """A real Prometheus scraping `scrape_targets` (host:port), optionally remote-writing everything to
    `remote_write`, with `--enable-feature` flags (native-histograms: it asks for protobuf first); yields
    its base URL."""
    port = free_port()
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [{"job_name": "monitor", "static_configs": [{"targets": scrape_targets}]}],
    }
    if rule_files:
        config["rule_files"] = rule_files
    if remote_write:
        config["remote_write"] = [{"url": remote_write, "queue_config": {"batch_send_deadline": "1s"}}]
    (tmp / "prometheus.yml").write_text(json.dumps(config), encoding="utf-8")
    proc = Process(
        [
            "prometheus",
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            *(f"--enable-feature={feature}" for feature in features),
        ],
        tmp / "prometheus.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(f"{base}/-/ready")[0] == 200, 30, what="prometheus ready")
        yield base
    finally:
        proc.stop()


@contextmanager
def victoriametrics(tmp: Path) -> Iterator[str]:
    """A real VictoriaMetrics (Debian victoria-metrics) on a free port; yields its base URL."""
    port = free_port()
    proc = Process(
        ["victoria-metrics", f"-storageDataPath={tmp / 'vm-data'}", f"-httpListenAddr=127.0.0.1:{port}",
         "-retentionPeriod=1", "-search.latencyOffset=0s", "-search.disableCache"],
        tmp / "victoriametrics.log",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(f"{base}/health")[0] == 200, 30, what="victoriametrics ready")
        yield base
    finally:
        proc.stop()


def alertmanager_available() -> bool:
    return shutil.which("prometheus-alertmanager") is not None


@contextmanager
def alertmanager(tmp: Path, webhook_url: str | None = None, port: int | None = None) -> Iterator[str]:
    """A real Alertmanager (clustering off); routes everything to `webhook_url` when given. Yields its URL."""
    port = port or free_port()
    receiver: dict[str, Any] = {"name": "default"}
    if webhook_url:
        receiver["webhook_configs"] = [{"url": webhook_url, "send_resolved": True}]
    config = {
        "route": {"receiver": "default", "group_by": ["alertname", "incident"], "group_wait": "1s",
                  "group_interval": "2s", "repeat_interval": "1h"},
        "receivers": [receiver],
    }  # fmt: skip
    (tmp / "alertmanager.yml").write_text(json.dumps(config), encoding="utf-8")
    proc = Process(
        [
            "prometheus-alertmanager",
            f"--config.file={tmp / 'alertmanager.yml'}",
            f"--storage.path={tmp / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        tmp / f"alertmanager-{port}.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(f"{base}/-/ready")[0] == 200, 30, what="alertmanager ready")
        yield base
    finally:
        proc.stop()


def am_alerts(base: str, active_only: bool = False) -> list[dict[str, Any]]:
    query = "?active=true&silenced=false&inhibited=false&unprocessed=true" if active_only else ""
    status, body = http_get(f"{base}/api/v2/alerts{query}")
    if status != 200:
        raise ValueError(f"alertmanager answered {status}")
    return list(json.loads(body))


def prom_query(base: str, expr: str) -> list[dict[str, Any]]:
    status, body = http_get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    data = json.loads(body)
    if status != 200 or data.get("status") != "success":
        raise ValueError(f"query failed: {body[:300]!r}")
    return list(data["data"]["result"])


class Receiver:
    """A webhook receiver on loopback recording every delivery (JSON body and idempotency key)."""

    def __init__(self) -> None:
        self.deliveries: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.deliveries.append(
                    {"key": self.headers["Idempotency-Key"], "json": json.loads(body), "at": time.time()}
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def events(self) -> list[tuple[str, int, str]]:
        return [(d["json"]["event"], d["json"]["level"], d["json"]["recipient"]) for d in self.deliveries]
