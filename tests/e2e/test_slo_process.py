"""End to end: the daemon watches a loopback service that is cut for a measured time; a real Prometheus
evaluates the generated SLO rules and fires the burn-rate page; the daemon's downtime agrees with the
ground truth and with what Prometheus computes from monitor_service_up."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pytest

from monitor.availability.periods import JST
from monitor.availability.rules import render
from monitor.config.loader import load_config
from tests.e2e.peers import daemon_process, free_port, http_get, prom_query, prometheus, prometheus_available, wait_for
from tests.e2e.test_daemon_process import TCPGate

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not prometheus_available(), reason="prometheus (Debian package) not installed"),
]


def metric(base: str, prefix: str) -> float | None:
    for line in http_get(f"{base}/metrics")[1].decode().splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_cut_fires_burn_alert_and_downtime_agrees(tmp_path: Path) -> None:
    """A 15 s cut: the ServiceErrorBudgetBurn page fires in Prometheus; the daemon's downtime matches the cut within
    one probe interval and matches Prometheus' count of down samples."""
    gate = TCPGate()
    config = tmp_path / "monitor.yml"
    config.write_text(
        f"""
defaults: {{interval: 1s, timeout: 300ms, retry_interval: 200ms, failures_to_down: 1, successes_to_up: 1}}
modules: {{tcp: {{kind: tcp}}}}
targets:
  - {{name: gate, address: 127.0.0.1, checks: [{{module: tcp, port: {gate.port}}}]}}
services:
  - {{name: portal, targets: [gate], labels: {{tier: national, system: portal}}}}
""",
        encoding="utf-8",
    )
    rules = tmp_path / "slo-rules.yml"
    rules.write_text(render(load_config(config).inventory, interval="2s"), encoding="utf-8")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["run", "--config", str(config), "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")]
    try:
        with (
            daemon_process(args, tmp_path),
            prometheus(tmp_path, [f"127.0.0.1:{port}"], rule_files=[str(rules)]) as prom,
        ):
            wait_for(
                lambda: prom_query(prom, 'monitor_service_up{service="portal"} == 1'),
                30,
                what="portal up in Prometheus",
            )
            time.sleep(15)
            cut_at = time.time()
            gate.close()
            time.sleep(15)
            gate.open()
            cut_seconds = time.time() - cut_at
            firing = wait_for(lambda: prom_query(prom, 'ALERTS{alertname="ServiceErrorBudgetBurn",alertstate="firing",severity="page"}'),
                              30, what="burn-rate page firing")  # fmt: skip
            assert {r["metric"]["service"] for r in firing} == {"portal"}
            wait_for(lambda: prom_query(prom, 'monitor_service_up{service="portal"} == 1'), 15, what="portal back up")
            time.sleep(11)  # SLO figures are refreshed at most every 10 s after a change
            downtime = metric(base, 'monitor_service_downtime_seconds{service="portal"')
            assert downtime is not None and abs(downtime - cut_seconds) <= 1.5, (downtime, cut_seconds)
            samples = prom_query(prom, 'count_over_time((monitor_service_up{service="portal"} == 0)[5m:1s])')
            prom_down = float(samples[0]["value"][1])
            assert abs(prom_down - downtime) <= 2.5, (prom_down, downtime)
            availability = metric(base, 'monitor_service_availability_ratio{service="portal"')
            assert availability is not None and 0.3 < availability < 0.9
            month = datetime.now(JST).strftime("%Y-%m")  # the report's months are JST months
            report = json.loads(http_get(f"{base}/api/v1/reports/{month}?format=json")[1])
            portal = next(s for s in report["services"] if s["service"] == "portal")
            assert abs(portal["downtime_minutes"] * 60 - downtime) <= 1.5
    finally:
        gate.close()
