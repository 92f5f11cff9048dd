"""The disconnect playbook's speed on the lab router (a network namespace with net-snmp snmpd):

- detection to page: from the moment the daemon has the detection (the confirming counter sample, or
  the IDS event) to the security team's page arriving at a webhook receiver (target: under 2 s);
- approval to verified cut: from the approving API call to the cut being verified (SNMP SET, ifOperStatus
  down, traffic stopped, the organisation's target unreachable; target: under 5 s);
- reconnect request to verified reconnect (no target; for reference).

One anomaly cycle (a bounded UDP flood through the router) and N IDS cycles. Needs root. Writes
bench/results/security.json and prints a table for BENCHMARKS.md. Run: `make bench-security`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.e2e.peers import Receiver, wait_for
from tests.security.lab import (
    ALICE,
    CONN_EDGE,
    IDS,
    LAB_ENV,
    Daemon,
    flood,
    pages,
    start_lab,
    stop_lab,
    write_config,
)

RESULTS = Path(__file__).parent / "results"


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def cycle(daemon: Daemon, hook: Receiver, source: str) -> dict[str, float]:
    seen = len(pages(hook, "firing"))
    if source == "anomaly":
        flood(8.0, 2_000_000)
    else:
        status, _ = daemon.post("/api/v1/security-events", {"signature": "bench", "source": CONN_EDGE}, token=IDS)
        assert status == 201
    incident = daemon.wait_phase("proposed", 20)
    page = wait_for(lambda: pages(hook, "firing")[seen:], 10, what="the page")[0]
    detected = incident["evidence"][0]["at"]
    approved_at = time.time()
    status, body = daemon.post(f"/api/v1/security-incidents/{incident['id']}/approve", token=ALICE)
    assert status == 200, body
    cut = daemon.wait_phase("cut", 30)
    asked_at = time.time()
    status, body = daemon.post(f"/api/v1/security-incidents/{incident['id']}/reconnect", token=ALICE)
    assert status == 200, body
    done = wait_for(
        lambda: next((s for s in daemon.security() if s["id"] == incident["id"] and s["closed_at"]), None),
        30,
        what="the reconnect",
    )
    return {
        "detection_to_page_seconds": page["at"] - detected,
        "approval_to_verified_cut_seconds": epoch(cut["cut_at"]) - approved_at,
        "reconnect_to_verified_seconds": epoch(done["reconnected_at"]) - asked_at,
    }


def summary(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for key in rows[0]:
        values = sorted(r[key] for r in rows)
        out[key] = {"median": round(statistics.median(values), 3), "max": round(values[-1], 3), "n": len(values)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10, help="IDS-triggered cycles (plus one anomaly cycle)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the lab router needs root (network namespaces)")
    os.environ.update(LAB_ENV)
    with tempfile.TemporaryDirectory(prefix="security-bench-") as tmp_name:
        tmp = Path(tmp_name)
        lab = start_lab(tmp / "lab")
        hook = Receiver()
        daemon = Daemon(tmp, hook)
        write_config(daemon.config, hook.url, daemon.trap_port)
        rows: list[dict[str, Any]] = []
        try:
            with daemon.start() as proc:
                daemon.wait_ready(proc)
                rows.append({"source": "anomaly", **cycle(daemon, hook, "anomaly")})
                for _ in range(args.cycles):
                    rows.append({"source": "ids", **cycle(daemon, hook, "ids")})
        finally:
            hook.server.shutdown()
            stop_lab(lab)
    figures = summary([{k: v for k, v in r.items() if k != "source"} for r in rows])
    result = {
        "cycles": rows,
        "summary": figures,
        "targets": {"detection_to_page_seconds": 2.0, "approval_to_verified_cut_seconds": 5.0},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "security.json").write_text(json.dumps(result, indent=2))
    print(f"{'measure':40} {'median':>8} {'max':>8}  target")
    for key, value in figures.items():
        target = result["targets"].get(key)
        print(f"{key:40} {value['median']:8.3f} {value['max']:8.3f}  {'< ' + str(target) if target else '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
