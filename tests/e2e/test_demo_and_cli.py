"""`monitor demo` shows real failures and recoveries; `monitor probe` explains one check."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.peers import ROOT, daemon_process, free_port, http_get, http_post, wait_for

pytestmark = pytest.mark.slow


def test_demo_shows_failing_and_recovering_targets(tmp_path: Path) -> None:
    """In the demo, cutting a prefecture edge router makes it DOWN and its subtree UNREACHABLE in the API and
    /metrics, and restoring it brings everything back UP."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [
        "demo",
        "--listen",
        f"127.0.0.1:{port}",
        "--prefectures",
        "3",
        "--no-faults",
        "--data-dir",
        str(tmp_path / "d"),
    ]
    with daemon_process(args, tmp_path, "demo") as demo:
        wait_for(lambda: http_get(f"{base}/readyz")[0] == 200, 60, what="demo ready")

        def target_states() -> dict[str, str]:
            return {t["name"]: t["state"] for t in json.loads(http_get(f"{base}/api/v1/targets")[1])["targets"]}

        wait_for(lambda: target_states().get("pref02-edge") == "up", 30, what="edge router up")
        status, _ = http_post(f"{base}/demo/faults", json.dumps({"target": "pref02-edge", "mode": "down"}).encode())
        assert status == 200
        subtree = ["pref02-core", "pref02-fw", "pref02-lgwan-ap"]
        subtree += [f"lgwan-02-0{m}-{r}" for m in (1, 2) for r in ("primary", "backup")]
        states = wait_for(
            lambda: {(s := target_states())[n] for n in subtree} == {"unreachable"} and s,
            40,
            what="subtree unreachable",
        )
        assert states["pref02-edge"] == "down"
        assert states["pref01-edge"] == "up"
        metrics = http_get(f"{base}/metrics")[1].decode()
        assert 'monitor_check_state{check="pref02-edge/mgmt_ssh"' in metrics
        line = next(m for m in metrics.splitlines() if m.startswith('monitor_service_up{service="pref-net-02"'))
        assert line.endswith(" 0.0")
        http_post(f"{base}/demo/faults", json.dumps({"target": "pref02-edge", "mode": "up"}).encode())
        wait_for(lambda: target_states()["pref02-fw"] == "up", 40, what="subtree back up")
        assert demo.proc.poll() is None, demo.output()


def test_probe_command_prints_phases_and_verdict(tmp_path: Path) -> None:
    """`monitor probe` runs one check once, prints its settings, phases and verdict, exits 1 when it fails."""
    port = free_port()
    config = tmp_path / "monitor.yml"
    config.write_text(
        "modules:\n  tcp: {kind: tcp}\ntargets:\n"
        f"  - {{name: closed, address: 127.0.0.1, checks: [{{module: tcp, port: {port}}}]}}\n",
        encoding="utf-8",
    )
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "probe", "--config", str(config), "closed/tcp"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "verdict   DOWN: connection refused" in proc.stdout
    assert "phase     resolve" in proc.stdout
    assert time.monotonic() - started < 30
    missing = subprocess.run(
        [sys.executable, "-m", "monitor", "probe", "--config", str(config), "nope/tcp"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 2 and 'no check or target named "nope/tcp"' in missing.stdout


def test_demo_snmp_link_down_trap_and_metrics(tmp_path: Path) -> None:
    """In the demo, cutting an LGWAN access point's primary uplink sends a linkDown trap: the uplink check
    is DOWN within seconds (not at the next poll), the uplink pair DEGRADED, the trap counted; the
    scrape with SNMP series passes promtool."""
    port, traps = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["demo", "--listen", f"127.0.0.1:{port}", "--prefectures", "2", "--no-faults",
            "--trap-listen", f"127.0.0.1:{traps}", "--data-dir", str(tmp_path / "d")]  # fmt: skip
    with daemon_process(args, tmp_path, "demo") as demo:
        wait_for(lambda: http_get(f"{base}/readyz")[0] == 200, 30, what="demo ready")

        def check(check_id: str) -> dict[str, Any]:
            return dict(json.loads(http_get(f"{base}/api/v1/checks/{check_id}")[1]))

        uplink = "pref02-lgwan-ap/uplink-primary"
        wait_for(lambda: check(uplink)["state"] == "up", 40, what="uplink up")
        wait_for(lambda: check("pref02-lgwan-ap/snmp_device")["state"] == "up", 40, what="device check up")
        body = {"target": "pref02-lgwan-ap", "mode": "link-down", "interface": "LGWAN uplink primary"}
        started = time.monotonic()
        status, _ = http_post(f"{base}/demo/faults", json.dumps(body).encode())
        assert status == 200
        wait_for(lambda: check(uplink)["state"] == "down", 15, what="uplink down")
        assert time.monotonic() - started < 8  # the trap re-polls at once, then retry_interval 2 s to confirm
        assert "link down: admin up, oper down" in check(uplink)["reason"]
        services = json.loads(http_get(f"{base}/api/v1/services?q=")[1])["services"]
        assert {s["name"]: s["state"] for s in services}["lgwan-uplink-02"] == "degraded"
        metrics = http_get(f"{base}/metrics")[1]
        text = metrics.decode()
        assert 'monitor_snmp_traps_total{agent="127.20.2.4",outcome="accepted",trap="linkDown"} 1.0' in text
        assert "monitor_if_utilization_ratio{" in text and "monitor_if_in_octets_total{" in text
        if shutil.which("promtool"):
            proc = subprocess.run(["promtool", "check", "metrics"], input=metrics, capture_output=True, check=False)
            assert proc.returncode == 0, proc.stderr.decode()[:2000]
        assert demo.proc.poll() is None, demo.output()
