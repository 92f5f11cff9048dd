"""When the first page of an incident goes out (issue 18 point 6), with the incident manager's own task on
the real clock, the real engine and a SQLite store (no receiver needed: the page is counted when queued).

1. lag: 20 incidents opened at random moments, group_wait 500 ms; how long after its due time each first
   page was queued. A timer on a 1 s tick gives 0-1 s, and so a blip recovering just after its page was
   due paged or not by chance; a timer at the due time gives a few ms.
2. blip: 40 confirmed blips, group_wait 1 s, each recovering `delta` after its first page was due
   (-30, -6, +6, +30 ms). Deterministic means: never paged when the recovery came first, always after.
3. defaults: the issue's schedule (interval 10 s, retry 2 s, 2 failures to DOWN, 2 successes to UP) with
   the model's default group_wait: 20 confirmed blips UP again one interval after confirmation plus
   0-950 ms (the recovering probes' own time). None may page.

Run: .venv/bin/python -m bench.page_timing_bench [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.config.loader import load_config
from monitor.core.engine import Engine
from monitor.incidents.manager import IncidentManager
from monitor.store.sqlite import SQLiteStore
from probes.base import ProbeResult

DELTAS = (-0.030, -0.006, 0.006, 0.030)


class WallClock:
    def now(self) -> float:
        return time.time()


def config(targets: int, group_wait: str | None, defaults: str) -> str:
    rows = "".join(f"  - {{name: t{i}, address: 127.0.3.{i + 1}, modules: [ping]}}\n" for i in range(targets))
    wait = f"incidents: {{group_wait: {group_wait}}}\n" if group_wait else ""
    return (
        f"defaults: {defaults}\nmodules: {{ping: {{kind: icmp}}}}\ntargets:\n{rows}{wait}"
        'notifiers: {am: {kind: alertmanager, urls: ["http://127.0.0.1:1"]}}\n'
        "playbooks: {default: {levels: [{notify: [{via: [am]}]}]}}\n"
    )


async def started(
    targets: int, group_wait: str | None, defaults: str = "{failures_to_down: 2, successes_to_up: 1}"
) -> tuple[IncidentManager, SQLiteStore, Callable[[str, bool], None]]:
    folder = Path(tempfile.mkdtemp())
    (folder / "monitor.yml").write_text(config(targets, group_wait, defaults), encoding="utf-8")
    engine = Engine(load_config(folder / "monitor.yml").inventory)
    store = SQLiteStore(folder / "m.db")
    store.open(now=0.0)
    manager = IncidentManager(store, WallClock(), engine, lambda: None)
    await manager.start()

    def feed(target: str, ok: bool) -> None:
        result = ProbeResult(ok=ok, error=None if ok else "timeout")
        manager.on_outcome(engine.observe(f"{target}/ping", result, time.time()))

    for i in range(targets):
        feed(f"t{i}", True)
    return manager, store, feed


async def lag(seed: int) -> dict[str, Any]:
    manager, store, feed = await started(20, "500ms")
    rnd = random.Random(seed)
    due: dict[int, float] = {}
    for i in range(20):
        await asyncio.sleep(rnd.uniform(0.05, 0.2))
        feed(f"t{i}", False)
        feed(f"t{i}", False)
        await manager.drain()
        incident = manager.open[f"target:t{i}"]
        assert incident.next_escalation_at is not None
        due[incident.id] = incident.next_escalation_at
    await asyncio.sleep(1.5)
    lags = []
    for incident_id, at in due.items():
        items = await store.notifications(incident_id)
        lags.append(min(p.created_at for p in items) - at)
    await manager.stop()
    await store.close(now=time.time())
    return {"n": len(lags), "median_ms": round(statistics.median(lags) * 1000, 1), "max_ms": round(max(lags) * 1000, 1)}


async def blips() -> dict[str, str]:
    count = 40
    manager, store, feed = await started(count, "1s")
    ids: dict[int, int] = {}

    async def blip(i: int) -> None:
        await asyncio.sleep(i * 0.137)
        feed(f"t{i}", False)
        feed(f"t{i}", False)
        await manager.drain()
        incident = manager.open[f"target:t{i}"]
        assert incident.next_escalation_at is not None
        ids[i] = incident.id
        await asyncio.sleep(max(0.0, incident.next_escalation_at + DELTAS[i % 4] - time.time()))
        feed(f"t{i}", True)

    await asyncio.gather(*(blip(i) for i in range(count)))
    await asyncio.sleep(1.5)
    paged: collections.Counter[float] = collections.Counter()
    for i, incident_id in ids.items():
        paged[DELTAS[i % 4]] += any(p.kind == "firing" for p in await store.notifications(incident_id))
    await manager.stop()
    await store.close(now=time.time())
    return {f"{int(d * 1000):+d}ms": f"{paged[d]}/{count // 4}" for d in DELTAS}


async def defaults() -> dict[str, Any]:
    count = 20
    schedule = "{interval: 10s, retry_interval: 2s, failures_to_down: 2, successes_to_up: 2}"
    manager, store, feed = await started(count, None, schedule)
    feed_all = [f"t{i}" for i in range(count)]
    for target in feed_all:  # a second good result: UP needs two
        feed(target, True)
    ids: dict[int, int] = {}

    async def blip(i: int) -> None:
        feed(f"t{i}", False)
        await asyncio.sleep(2.0)  # the retry confirms it
        feed(f"t{i}", False)
        await manager.drain()
        ids[i] = manager.open[f"target:t{i}"].id
        await asyncio.sleep(8.0)  # the next regular probe, 10 s after the first failure
        feed(f"t{i}", True)
        await asyncio.sleep(2.0 + i * 0.05)  # its retry: UP one interval after confirmation (+ probe time)
        feed(f"t{i}", True)

    await asyncio.gather(*(blip(i) for i in range(count)))
    await asyncio.sleep(4.0)
    paged = 0
    for incident_id in ids.values():
        paged += any(p.kind == "firing" for p in await store.notifications(incident_id))
    await manager.stop()
    await store.close(now=time.time())
    return {"blips": count, "paged": paged}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    figures = {"first_page_lag": await lag(args.seed), "blip_paged_by_recovery_delta": await blips()}
    figures["default_group_wait_blips"] = await defaults()
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
