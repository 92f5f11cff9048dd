"""Fault injection for the simulated network, on a schedule or on request, with ground truth.

Every change of a host's mode is logged (`fault_injected`, `fault_cleared`) and kept with its exact
wall-clock time, so what the daemon saw can be compared with what really happened.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any, cast

import structlog
from aiohttp import web

from monitor.demo.network import Mode, SimNetwork

log = structlog.get_logger()
CYCLE_SECONDS = 720.0


@dataclass(frozen=True, slots=True)
class FaultRecord:
    target: str
    mode: str
    at: float  # UTC epoch seconds
    note: str


@dataclass(frozen=True, slots=True)
class Scenario:
    start: float  # seconds into the cycle
    target: str
    mode: str  # a Mode, or "flap": down and up every 15 s for the duration
    duration: float
    note: str


def default_scenarios(network: SimNetwork) -> list[Scenario]:
    """A cycle that shows, within the first minutes: a root cause with unreachable children, a
    degraded LGWAN link, a slow server, a failing server and a flapping circuit."""
    prefs = sorted({name[4:6] for name in network.hosts if name.startswith("pref")})

    def pref(i: int) -> str:
        return prefs[i % len(prefs)]

    scenarios = [
        Scenario(20, f"pref{pref(12)}-edge", "down", 100, "prefecture edge router dies: its subtree is unreachable"),
        Scenario(40, f"lgwan-{pref(26)}-01-primary", "down", 150, "primary LGWAN circuit cut: link degraded"),
        Scenario(60, "chukan-east", "slow", 120, "intermediate server platform answers slowly"),
        Scenario(90, "card-west", "error", 90, "card management server answers 503"),
        Scenario(150, f"lgwan-{pref(39)}-02-backup", "flap", 240, "backup circuit flapping"),
        Scenario(420, f"lgwan-{pref(0)}-02-primary", "down", 60, "primary and backup circuit cut: link down"),
        Scenario(420, f"lgwan-{pref(0)}-02-backup", "down", 60, "primary and backup circuit cut: link down"),
    ]
    return [s for s in scenarios if s.target in network.hosts]


class FaultInjector:
    def __init__(self, network: SimNetwork) -> None:
        self.network = network
        self.records: list[FaultRecord] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def set(self, target: str, mode: Mode, note: str = "") -> FaultRecord:
        await self.network.set_mode(target, mode)
        record = FaultRecord(target, mode, time.time(), note)
        self.records.append(record)
        del self.records[:-1000]
        log.info("fault_cleared" if mode == "up" else "fault_injected", target=target, mode=mode, note=note)
        return record

    async def _scenario(self, s: Scenario) -> None:
        if s.mode == "flap":
            end = time.monotonic() + s.duration
            down = True
            while time.monotonic() < end:
                await self.set(s.target, "down" if down else "up", s.note)
                down = not down
                await asyncio.sleep(15)
        else:
            await self.set(s.target, cast(Mode, s.mode), s.note)
            await asyncio.sleep(s.duration)
        await self.set(s.target, "up", s.note)

    async def run_schedule(self, scenarios: list[Scenario], cycle: float = CYCLE_SECONDS) -> None:
        while True:
            started = time.monotonic()
            for s in sorted(scenarios, key=lambda x: x.start):
                await asyncio.sleep(max(0.0, started + s.start - time.monotonic()))
                task = asyncio.create_task(self._scenario(s))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(max(0.0, started + cycle - time.monotonic()))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def routes(self, app: web.Application) -> None:
        """GET /demo/faults: hosts, modes and the fault log. POST /demo/faults {"target", "mode"}."""

        async def listing(_: web.Request) -> web.Response:
            modes = {name: host.mode for name, host in self.network.hosts.items()}
            return web.json_response(
                {"modes": modes, "log": [asdict(r) for r in self.records[-200:]], "valid_modes": list(VALID)}
            )

        async def inject(request: web.Request) -> web.Response:
            try:
                body: dict[str, Any] = await request.json()
            except ValueError:
                raise web.HTTPBadRequest(text='body must be JSON: {"target": ..., "mode": ...}') from None
            target, mode = body.get("target"), body.get("mode")
            if target not in self.network.hosts:
                raise web.HTTPNotFound(text=f"no simulated host {target!r}")
            if mode not in VALID:
                raise web.HTTPBadRequest(text=f"mode must be one of {', '.join(VALID)}")
            record = await self.set(str(target), cast(Mode, mode), "requested through the API")
            return web.json_response(asdict(record))

        app.router.add_get("/demo/faults", listing)
        app.router.add_post("/demo/faults", inject)


VALID = ("up", "down", "slow", "error")
