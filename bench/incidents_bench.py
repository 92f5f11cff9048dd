"""Incident engine and store benchmarks (issue 4).

1. Mass outage: a parent with 2,000 children goes down. Measured from the engine outcome that confirms
   it to (a) the incidents being committed and (b) the page arriving at a real webhook receiver on
   loopback, through the real outbox; then level 2 after an escalation. Two orders: the parent
   confirmed first (children attach), and the worst case, 2,000 children confirmed first (2,000
   incidents opened, then merged into the parent's).
2. Store write path: state-interval writes as if 10,000 checks changed state every 10 s (1,000
   transitions/s, far more than real), measured as CPU of the store's writer thread.

Run: .venv/bin/python -m bench.incidents_bench [--children 2000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.config.loader import load_config
from monitor.core.engine import Engine, Transition
from monitor.core.state import State
from monitor.incidents.manager import IncidentManager
from monitor.incidents.outbox import OutboxMetrics, OutboxWorker
from monitor.logs import setup_logging
from monitor.notifiers.registry import create_notifiers
from monitor.store.sqlite import SQLiteStore
from probes.base import ProbeResult

FAIL = ProbeResult(ok=False, error="100% packet loss")


class WallClock:
    def now(self) -> float:
        return time.time()


def config_text(children: int, hook_url: str) -> str:
    rows = "\n".join(
        f"  - {{name: c{i}, address: 127.0.{i // 250}.{i % 250 + 1}, parent: edge, modules: [ping]}}"
        for i in range(children)
    )
    return (
        textwrap.dedent(
            f"""
        defaults: {{failures_to_down: 1, successes_to_up: 1}}
        modules: {{ping: {{kind: icmp}}}}
        incidents: {{group_wait: 0s}}
        notifiers: {{hook: {{kind: webhook, url: "{hook_url}", secret: "${{BENCH_HOOK_SECRET}}"}}}}
        contacts: {{noc: {{name: noc, webhook: hook}}, boss: {{name: boss, webhook: hook}}}}
        playbooks:
          default:
            levels:
              - {{notify: [{{contacts: [noc], via: [hook]}}], ack_timeout: 1s}}
              - {{notify: [{{contacts: [boss], via: [hook]}}]}}
        targets:
          - {{name: edge, address: 127.0.0.1, modules: [ping]}}
        """
        )
        + rows
        + "\n"
    )


class Pages:
    """What the webhook receiver got, and a way to wait for the n-th page."""

    def __init__(self) -> None:
        self.got: list[tuple[float, dict[str, Any]]] = []
        self._arrived = asyncio.Condition()

    async def add(self, body: dict[str, Any]) -> None:
        self.got.append((time.perf_counter(), body))
        async with self._arrived:
            self._arrived.notify_all()

    async def wait(self, count: int) -> float:
        async with self._arrived:
            await self._arrived.wait_for(lambda: len(self.got) >= count)
        return self.got[count - 1][0]


async def receiver() -> tuple[web.AppRunner, str, Pages]:
    pages = Pages()

    async def hook(request: web.Request) -> web.Response:
        await pages.add(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/hook", pages


async def mass_outage(children: int, children_first: bool) -> dict[str, Any]:
    os.environ["BENCH_HOOK_SECRET"] = "bench-secret"
    runner, url, pages = await receiver()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "monitor.yml"
        path.write_text(config_text(children, url), encoding="utf-8")
        inventory = load_config(path).inventory
        engine = Engine(inventory)
        store = SQLiteStore(Path(tmp) / "m.db")
        store.open(now=time.time())
        notifiers = create_notifiers(inventory.response.notifiers)
        outbox = OutboxWorker(store, WallClock(), lambda: notifiers, OutboxMetrics(CollectorRegistry()))
        manager = IncidentManager(store, WallClock(), engine, outbox.wake)
        await manager.load()
        await outbox.start()
        for cid in engine.checks:
            await manager.handle(engine.observe(cid, ProbeResult(ok=True), time.time()))
        if children_first:  # each child handled as it is confirmed: 2,000 incidents of their own, then the parent
            for i in range(children):
                await manager.handle(engine.observe(f"c{i}/ping", FAIL, time.time()))
        order = ["edge/ping"] if children_first else ["edge/ping"] + [f"c{i}/ping" for i in range(children)]
        start = time.perf_counter()
        for cid in order:
            manager.on_outcome(engine.observe(cid, FAIL, time.time()))
        confirmed = time.perf_counter()
        manager_task = asyncio.create_task(manager._process())  # the daemon's incident task
        await manager.drain()
        committed = time.perf_counter()
        await manager.tick()  # group_wait 0: level 1 is due now
        level1 = await pages.wait(1)
        await asyncio.sleep(1.0)  # ack_timeout 1 s
        escalate_due = time.perf_counter()
        await manager.tick()
        level2 = await pages.wait(2)
        await asyncio.sleep(0.5)
        open_incidents = len(manager.open)
        merged = (await store.list_incidents("resolved"))[1]
        manager_task.cancel()
        await outbox.stop()
        for notifier in notifiers.values():
            await notifier.close()
        await store.close(now=time.time())
    await runner.cleanup()
    return {
        "children": children,
        "order": "children first (worst case)" if children_first else "parent first",
        "feed_s": round(confirmed - start, 3),
        "confirmed_to_committed_s": round(committed - start, 3),
        "confirmed_to_level1_page_s": round(level1 - start, 3),
        "level2_due_to_page_s": round(level2 - escalate_due, 3),
        "pages": [(p["event"], p["level"], p["recipient"]) for _, p in pages.got],
        "open_incidents": open_incidents,
        "merged_incidents": merged,
    }


def thread_cpu(native_id: int) -> float:
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def store_write_path(checks: int, interval: float, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "m.db")
        store.open(now=time.time())
        assert store._thread is not None and store._thread.native_id is not None
        writer = store._thread.native_id
        per_tick = int(checks / interval / 10)  # ten batches a second, like results trickling in
        states = [State.UP, State.DOWN]
        cpu0, t0, sent = thread_cpu(writer), time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            now = time.time()
            batch = [
                Transition(
                    "check", f"t{(sent + i) % checks}/ping", states[(sent + i) % 2], states[(sent + i + 1) % 2], now
                )
                for i in range(per_tick)
            ]
            store.record(batch)
            sent += per_tick
            await asyncio.sleep(0.1)
        await store.flush()
        elapsed = time.perf_counter() - t0
        cpu = thread_cpu(writer) - cpu0
        await store.close(now=time.time())
    return {
        "checks": checks,
        "interval_s": interval,
        "transitions_per_s": round(sent / elapsed),
        "writer_cpu_share_of_one_core": round(cpu / elapsed, 4),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "mass_outage": [await mass_outage(args.children, False), await mass_outage(args.children, True)],
        "store_write_path": await store_write_path(10_000, 10.0, args.seconds),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--children", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=30.0)
    setup_logging("warning")
    print(json.dumps(asyncio.run(main(parser.parse_args())), ensure_ascii=False, indent=2))
