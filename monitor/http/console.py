"""What the operator console needs beyond the plain API: the board (what is down now, grouped by root
cause, for the 47 prefectures, national systems and LGWAN) in one cheap request, a live event stream
(Server-Sent Events) that tells browsers when to refresh it, and the console's own static files at `/`.

The board is computed from the engine's memory on each request (10,000 checks: a few ms); the stream
carries only small "something changed" events, coalesced, so a mass outage does not flood browsers.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web

from monitor.config.prefectures import all_prefectures
from monitor.core.engine import Engine
from monitor.core.state import State
from monitor.http.services import SERVICES, SHIELD
from monitor.http.targets import SEVERITY, target_state
from monitor.store.records import IncidentRecord
from monitor.timefmt import iso

STATIC = Path(__file__).parent / "static"
PROBLEM_STATES = (State.DOWN, State.DEGRADED)
MAX_INCIDENTS = 100  # the newest open ones; the incidents page lists them all
MAX_PROBLEMS = 200  # the rest are counted (problems_total) and listed on the targets page
HEARTBEAT = 15.0


def board(engine: Engine, incidents: list[IncidentRecord], now: float) -> dict[str, Any]:
    inventory = engine.inventory
    states = {name: target_state(engine, name) for name in inventory.targets if name not in inventory.context}
    counts: dict[str, int] = {}
    for state in states.values():
        counts[state.value] = counts.get(state.value, 0) + 1
    by_pref: dict[str, list[State]] = {}
    for name, target in inventory.targets.items():
        code = target.labels.get("prefecture")
        if code and name in states:
            by_pref.setdefault(code, []).append(states[name])
    prefectures = []
    for pref in all_prefectures():
        seen = by_pref.get(pref.code, [])
        worst = next((s for s in SEVERITY if s in seen), State.UNKNOWN)
        prefectures.append(
            {
                "code": pref.code,
                "name": pref.name_ja,
                "name_en": pref.name_en,
                "region": pref.region_ja,
                "region_en": pref.region_en,
                "state": worst.value if seen else "none",
                "targets": len(seen),
                "down": sum(s == State.DOWN for s in seen),
                "unreachable": sum(s == State.UNREACHABLE for s in seen),
            }
        )
    problems: list[dict[str, Any]] = []
    folded = Counter(engine.root_cause(n) for n, s in states.items() if s == State.UNREACHABLE)  # root -> children
    for name, state in states.items():
        if state not in PROBLEM_STATES:
            continue
        checks = [engine.checks[c] for c in inventory.checks_by_target.get(name, ())]
        failing = [c for c in checks if c.state in PROBLEM_STATES]
        since = min((c.since for c in failing if c.since is not None), default=None)
        children = folded.get(name, 0)
        target = inventory.targets[name]
        problems.append(
            {
                "target": name,
                "state": state.value,
                "since": iso(since),
                "prefecture": target.labels.get("prefecture"),
                "reasons": [f"{c.check.name}: {c.reason}" for c in failing][:5],
                "children": children,
            }
        )
    problems.sort(key=lambda p: str(p["since"] or ""), reverse=True)  # the newest first: what just broke
    problems.sort(key=lambda p: p["state"] != "down")  # (stable) outages before degradations
    services = list(engine.services.values())
    national = [
        {"name": s.service.name, "display_name": s.service.display_name, "state": s.state.value}
        for s in services
        if s.service.labels.get("tier") == "national"
    ]
    lgwan = [s for s in services if s.service.labels.get("system") == "lgwan"]
    lgwan_counts: dict[str, int] = {}
    for s in lgwan:
        lgwan_counts[s.state.value] = lgwan_counts.get(s.state.value, 0) + 1
    return {
        "generated_at": iso(now),
        "targets": counts,
        "national": national,
        "prefectures": prefectures,
        "lgwan": {
            "count": len(lgwan),
            "states": lgwan_counts,
            "problems": [
                {"name": s.service.name, "display_name": s.service.display_name, "state": s.state.value}
                for s in lgwan
                if s.state in (State.DOWN, State.DEGRADED)
            ][:200],
        },
        "problems": problems[:MAX_PROBLEMS],
        "problems_total": len(problems),
        "incidents": [
            {
                "id": i.id,
                "title": i.title,
                "title_en": i.title_en,
                "severity": i.severity,
                "status": i.status,
                "level": i.level,
                "acked_by": i.acked_by,
                "opened_at": iso(i.opened_at),
                "next_escalation_at": iso(i.next_escalation_at),
                "children": len(i.affected.get("children", [])),
            }
            for i in sorted(incidents, key=lambda i: i.id, reverse=True)[:MAX_INCIDENTS]
        ],
        "incidents_total": len(incidents),
    }


def add_console_routes(app: web.Application) -> None:
    services = app[SERVICES]
    guard = services.guard
    shield = app[SHIELD]

    async def get_board(request: web.Request) -> web.Response:
        await guard.require(request, "read")

        async def build() -> web.Response:
            return web.json_response(board(services.engine, list(services.incidents.open.values()), time.time()))

        return await shield.respond(request, build)

    async def events(request: web.Request) -> web.StreamResponse:
        await guard.require(request, "read")
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=100)
        services.events.clients.add(queue)
        try:
            await response.write(b"retry: 2000\n\nevent: hello\ndata: {}\n\n")
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), HEARTBEAT)
                except TimeoutError:
                    message = ": heartbeat\n\n"
                await response.write(message.encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            services.events.clients.discard(queue)
        return response

    async def index(_: web.Request) -> web.FileResponse:
        return web.FileResponse(
            STATIC / "index.html", headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP}
        )

    app.router.add_get("/api/v1/board", get_board)
    app.router.add_get("/api/v1/events", events)
    app.router.add_get("/", index)
    app.router.add_static("/console/", STATIC, append_version=True)


CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
