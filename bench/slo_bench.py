"""SLO and report benchmarks (issue 6).

1. Live SLO gauges for N services (availability so far, budget, burn rates over 7 windows) as computed
   on every scrape: seconds per computation, and the share of one core at a 15 s scrape interval.
2. The monthly report for N services over a month whose state changed every few minutes to every 10 s
   (the probe interval) for the flapping ones: build time and peak RSS.

Run: .venv/bin/python -m bench.slo_bench [--services 5000] [--transitions 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from monitor.availability.live import MIN_REFRESH, REFRESH, SLOTracker
from monitor.availability.periods import month_span
from monitor.config.loader import load_config
from monitor.core.engine import Engine, Transition
from monitor.core.state import State
from monitor.logs import setup_logging
from monitor.store.sqlite import SQLiteStore


def config_text(services: int) -> str:
    rows = []
    for i in range(services):
        address = f"127.1.{i // 250}.{i % 250 + 1}"
        labels = f"{{prefecture: {i % 47 + 1}, system: s{i % 20}}}"
        rows.append(
            f"  - {{name: t{i}, address: {address}, labels: {labels}, modules: [ping], "
            f"service: svc-{i}, service_rule: any}}"
        )
    head = "modules: {ping: {kind: icmp}}\nslo: {rules: [{match: {system: s7}, degraded: down}]}\ntargets:\n"
    return head + "\n".join(rows) + "\n"


def history(services: int, transitions: int, start: float, end: float, seed: int = 7) -> list[Transition]:
    """Each service up/down `transitions` times in [start, end); one in 50 flaps every 10 s for an hour."""
    rng = random.Random(seed)
    out: list[Transition] = []
    for i in range(services):
        name = f"svc-{i}"
        times = sorted(rng.uniform(start, end) for _ in range(transitions))
        if i % 50 == 0:
            flap = rng.uniform(start, end - 3600)
            times = sorted(times + [flap + 10 * k for k in range(360)])
        state = State.UP
        out.append(Transition("service", name, State.UNKNOWN, State.UP, start - 60))
        for t in times:
            new = State.DOWN if state == State.UP else State.UP
            out.append(Transition("service", name, state, new, t))
            state = new
    out.sort(key=lambda x: x.at)
    return out


async def seed(directory: Path, services: int, transitions: int) -> tuple[Path, int]:
    path = directory / "monitor.yml"
    path.write_text(config_text(services), encoding="utf-8")
    start, end = month_span(2026, 10)
    store = SQLiteStore(directory / "data" / "monitor.db")
    store.open(now=start - 3600)
    events = history(services, transitions, start, end)
    for i in range(0, len(events), 50_000):
        store.record(events[i : i + 50_000])
    await store.close(now=end + 1800)
    return path, len(events)


async def live_cost(config: Path, data: Path) -> tuple[float, float]:
    """Seconds for the first computation (at start-up) and for a refresh, an hour before the month ends."""
    inventory = load_config(config).inventory
    store = SQLiteStore(data / "monitor.db")
    store.open_readonly()
    engine = Engine(inventory)
    now = month_span(2026, 10)[1] - 3600
    tracker = SLOTracker(store, engine, lambda: now)
    await tracker.load()
    t0 = time.perf_counter()
    assert len(tracker.compute_status(now)) == len(inventory.services)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    tracker.compute_status(now + REFRESH)
    warm = time.perf_counter() - t0
    await store.close(now)
    return cold, warm


def report_in_a_fresh_process(config: Path, data: Path, fmt: str) -> tuple[float, float, int]:
    """`monitor report` as operators run it: wall seconds, peak RSS (MB) of that process, output size.

    The peak is the child's own VmHWM, polled until it exits. (getrusage(RUSAGE_CHILDREN) would not do:
    the kernel keeps the high-water mark of the memory the child shared with this big process before exec.)"""
    out = data / f"report.{fmt}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "report", "--config", str(config), "--data-dir",
                             str(data), "--month", "2026-10", "--format", fmt, "--output", str(out)])  # fmt: skip
    peak_kb = 0
    while proc.poll() is None:
        peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
        time.sleep(0.02)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"monitor report failed ({proc.returncode})")
    return elapsed, peak_kb / 1024, out.stat().st_size


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass  # it just exited
    return 0


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        config, changes = await seed(Path(tmp), args.services, args.transitions)
        data = Path(tmp) / "data"
        cold, warm = await live_cost(config, data)
        reports = {fmt: report_in_a_fresh_process(config, data, fmt) for fmt in ("json", "html", "csv")}
    return {
        "services": args.services,
        "state_changes_in_month": changes,
        "live_slo_first_computation_seconds": round(cold, 3),
        "live_slo_refresh_seconds": round(warm, 3),
        "live_slo_core_share": round(warm / REFRESH, 4),  # refreshed every REFRESH seconds
        "live_slo_core_share_constant_changes": round(warm / MIN_REFRESH, 4),  # some service changes all the time
        "report": {
            fmt: {"seconds": round(s, 2), "peak_rss_mb": round(rss, 1), "bytes": size}
            for fmt, (s, rss, size) in reports.items()
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--services", type=int, default=5000)
    parser.add_argument("--transitions", type=int, default=200, help="state changes per service in the month")
    setup_logging("warning")
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
