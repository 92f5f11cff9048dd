"""Circuit capacity: what a month of 5-minute samples costs the daemon (`python -m bench.capacity_bench`).

A month (November 2026, JST) of samples for N circuits x 2 directions is written to a fresh SQLite store, then
the month-to-date figures are computed as the live metrics do every 15 minutes (capacity_report.circuit_months:
per circuit, read in the store's reader thread, reduced in a worker thread), timing it and the worst lateness
of a 10 ms timer on the event loop meanwhile (what probes would feel)."""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

from monitor.availability.capacity import SLOT, Sample
from monitor.availability.capacity_report import circuit_months
from monitor.availability.periods import month_span
from monitor.store.sqlite import SQLiteStore


async def run(circuits: int) -> None:
    start, end = month_span(2026, 11)
    names = [f"circuit-{i:03d}" for i in range(circuits)]
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "bench.db")
        store.open(now=start)
        rng = random.Random(22)
        began = time.perf_counter()
        for name in names:
            slots = range(int((end - start) // SLOT))
            batch = [
                Sample(name, d, start + k * SLOT, rng.uniform(1e6, 8e8), 1e9) for k in slots for d in ("in", "out")
            ]
            await store.save_capacity_samples(batch)
        written = time.perf_counter() - began
        lag = [0.0]
        done = asyncio.Event()

        async def watch() -> None:
            while not done.is_set():
                t = time.perf_counter()
                await asyncio.sleep(0.01)
                lag[0] = max(lag[0], time.perf_counter() - t - 0.01)

        watcher = asyncio.ensure_future(watch())
        await asyncio.sleep(5)  # the lateness of an idle loop on this machine, for comparison
        idle, lag[0] = lag[0], 0.0
        began = time.perf_counter()
        figures = await circuit_months(store, names, [(2026, 11)], end - 60)
        took = time.perf_counter() - began
        done.set()
        await watcher
        await store.close(end)
    samples = circuits * 2 * int((end - start) // SLOT)
    print(f"{circuits} circuits, {samples:,} samples: written in {written:.1f} s; month figures of all "
          f"({len(figures)} series) in {took:.2f} s, worst event-loop lateness {lag[0] * 1000:.0f} ms "
          f"(idle loop: {idle * 1000:.0f} ms)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--circuits", type=int, default=141, help="47 uplinks + 94 LGWAN circuits by default")
    asyncio.run(run(parser.parse_args().circuits))


if __name__ == "__main__":
    main()
