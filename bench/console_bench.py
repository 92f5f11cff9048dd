"""The console at scale: 10,000 checks with 500 targets down (and their incidents).

Measured, against the daemon's own HTTP server on loopback and headless Chromium (DevTools protocol):
- GET /api/v1/incidents (the list the console shows), median and p95 of 50 calls (target < 100 ms);
- GET /api/v1/board, the console's main request;
- first paint of the board: navigation to the board rendered with its 47 prefectures (target < 1 s);
- live update: from a state change in the daemon to the target shown in the browser (target < 1 s).

The daemon is real but its scheduler is not started: results are fed to the engine and dispatched the
way probes deliver them, so the figures are the console's and not the probes'. Run: `make bench-console`.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from monitor.config.loader import load_config
from monitor.daemon import Daemon
from monitor.http.app import build_app
from monitor.logs import setup_logging
from probes.base import ProbeResult
from tests.console.cdp import Browser
from tests.e2e.peers import free_port

RESULTS = Path(__file__).parent / "results"
TARGETS, DOWN = 10_000, 500


def write_config(path: Path) -> None:
    lines = ["defaults: {failures_to_down: 1, successes_to_up: 1}", "modules: {tcp: {kind: tcp}}",
             "incidents: {group_wait: 0s}", "targets:"]  # fmt: skip
    for i in range(TARGETS):
        pref = i % 47 + 1
        lines.append(f"  - {{name: t{i:05d}, address: 127.0.0.1, checks: [{{module: tcp, port: 9}}], "
                     f"labels: {{prefecture: {pref}, tier: prefecture, system: pref-net}}}}")  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def feed(daemon: Daemon, names: list[str], ok: bool) -> None:
    now = time.time()
    for name in names:
        result = ProbeResult(ok=ok, error=None if ok else "connection refused", duration=0.001, finished_at=now)
        daemon.pipeline.dispatch(daemon.engine.observe(f"{name}/tcp", result, now))


async def timed_get(session: aiohttp.ClientSession, url: str, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        async with session.get(url) as response:
            await response.read()
            assert response.status == 200
        out.append((time.perf_counter() - start) * 1000)
    return out


async def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="console-bench-") as tmp_name:
        tmp = Path(tmp_name)
        write_config(tmp / "monitor.yml")
        daemon = Daemon(load_config(tmp / "monitor.yml"), data_dir=tmp / "data")
        await asyncio.to_thread(daemon.store.open, time.time())
        await daemon.slo.load()
        await daemon.response.start()
        names = sorted(daemon.inventory.targets)
        feed(daemon, names, True)
        feed(daemon, names[:DOWN], False)
        await daemon.incidents.drain()
        await asyncio.sleep(1.0)  # group_wait 0: the first pages are queued by the timer
        runner = web.AppRunner(build_app(daemon.http_services()), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                incidents = await timed_get(session, f"{base}/api/v1/incidents?status=open&limit=100", 50)
                board = await timed_get(session, f"{base}/api/v1/board", 20)
                async with session.get(f"{base}/api/v1/board") as response:
                    board_bytes = len(await response.read())
            async with Browser() as browser:
                paints = []
                for _ in range(5):
                    await browser.goto("about:blank")  # a real load each time, not a same-page hash change
                    start = time.perf_counter()
                    await browser.send("Page.navigate", url=f"{base}/#/")
                    await browser.wait("document.querySelectorAll('#prefectures .cell').length === 47", 20)
                    paints.append((time.perf_counter() - start) * 1000)
                await browser.wait("document.body.dataset.live === 'open'", 10)
                lives = []
                for k in range(5):
                    name = names[DOWN + k]
                    changed_at = time.time()
                    feed(daemon, [name], False)
                    seen = await browser.wait(
                        f"document.querySelector('#problems')?.textContent.includes('{name}') && Date.now()", 10
                    )
                    lives.append(seen - changed_at * 1000)
        finally:
            await runner.cleanup()
            await daemon.response.stop()
            await daemon.store.close(time.time())

    def stats(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
        return {
            "median_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(p95, 1),
            "max_ms": round(ordered[-1], 1),
        }

    return {
        "checks": TARGETS,
        "down": DOWN,
        "incidents_list": stats(incidents),
        "board_json": {**stats(board), "bytes": board_bytes},
        "first_paint": stats(paints),
        "live_update": stats(lives),
        "targets": {"incidents_list_ms": 100, "first_paint_ms": 1000, "live_update_ms": 1000},
    }


if __name__ == "__main__":
    setup_logging("error")
    figures = asyncio.run(main())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "console.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
