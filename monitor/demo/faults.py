"""Fault injection for the simulated network, on a schedule or on request, with ground truth.

Every change of a host's mode is logged (`fault_injected`, `fault_cleared`) and kept with its exact
wall-clock time, so what the daemon saw can be compared with what really happened.

SNMP faults act on the simulated agents: `link-down`/`link-up` take one interface down (and send the
linkDown/linkUp trap a real device would send, from the device's address, to the demo's trap
listener); `snmp-down` makes a device's agent stop answering while the device itself still does.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any, cast

import structlog
from aiohttp import web

from monitor.demo.network import Mode, SimNetwork
from monitor.demo.snmp_agent import SnmpAgents
from probes import snmp_ber as ber

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
    interface: str | None = None  # link-down: the interface (ifName or ifAlias)


def default_scenarios(network: SimNetwork) -> list[Scenario]:
    """A cycle that shows, within the first minutes: a root cause with unreachable children, a
    degraded LGWAN link, a slow server, a failing server and a flapping circuit."""
    prefs = sorted({name[4:6] for name in network.hosts if name.startswith("pref")})

    def pref(i: int) -> str:
        return prefs[i % len(prefs)]

    scenarios = [
        Scenario(20, f"pref{pref(12)}-edge", "down", 100, "prefecture edge router dies: its subtree is unreachable"),
        Scenario(
            30,
            f"pref{pref(26)}-lgwan-ap",
            "link-down",
            150,
            "LGWAN primary uplink cut: linkDown trap, uplink DOWN within seconds, uplinks DEGRADED",
            interface="LGWAN uplink primary",
        ),
        Scenario(200, f"pref{pref(5)}-core", "snmp-down", 120, "SNMP agent hangs on a core switch (device answers)"),
        Scenario(40, f"lgwan-{pref(26)}-01-primary", "down", 150, "primary LGWAN circuit cut: link degraded"),
        Scenario(60, "chukan-east", "slow", 120, "intermediate server platform answers slowly"),
        Scenario(90, "card-west", "error", 90, "card management server answers 503"),
        Scenario(150, f"lgwan-{pref(39)}-02-backup", "flap", 240, "backup circuit flapping"),
        Scenario(420, f"lgwan-{pref(0)}-02-primary", "down", 60, "primary and backup circuit cut: link down"),
        Scenario(420, f"lgwan-{pref(0)}-02-backup", "down", 60, "primary and backup circuit cut: link down"),
    ]
    return [s for s in scenarios if s.target in network.hosts]


class FaultInjector:
    def __init__(
        self, network: SimNetwork, snmp: SnmpAgents | None = None, trap_to: tuple[str, int] | None = None
    ) -> None:
        self.network = network
        self.snmp = snmp
        self.trap_to = trap_to  # where devices send their traps (the daemon's trap listener)
        self.records: list[FaultRecord] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._snmp_off: set[str] = set()

    async def set(self, target: str, mode: str, note: str = "", interface: str | None = None) -> FaultRecord:
        if mode in ("link-down", "link-up"):
            self._link(target, interface or "", mode == "link-up")
        elif mode == "snmp-down":
            self._snmp_off.add(target)
        else:
            if mode == "up":
                self._snmp_off.discard(target)
            await self.network.set_mode(target, cast(Mode, mode))
        self._sync_snmp()
        shown = f"{mode}:{interface}" if interface else mode
        record = FaultRecord(target, shown, time.time(), note)
        self.records.append(record)
        del self.records[:-1000]
        cleared = mode in ("up", "link-up")
        log.info("fault_cleared" if cleared else "fault_injected", target=target, mode=shown, note=note)
        return record

    def _sync_snmp(self) -> None:
        """A device's agent answers while the device is reachable and its agent is not hung."""
        if self.snmp is None:
            return
        for name, device in self.snmp.devices.items():
            device.silent = name in self._snmp_off or not self.network.reachable(name)

    def _link(self, target: str, interface: str, up: bool) -> None:
        if self.snmp is None or target not in self.snmp.devices:
            raise KeyError(f"{target} has no simulated SNMP agent")
        device = self.snmp.devices[target]
        iface = device.set_link(interface, up)
        if self.trap_to is None or device.silent:
            return
        trap = (1, 3, 6, 1, 6, 3, 1, 1, 5, 4 if up else 3)  # linkUp / linkDown (IF-MIB)
        entry = (1, 3, 6, 1, 2, 1, 2, 2, 1)
        varbinds: list[ber.VarBind] = [
            ((1, 3, 6, 1, 2, 1, 1, 3, 0), (ber.TIMETICKS, device.uptime_ticks())),
            ((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), (ber.OBJECT_IDENTIFIER, trap)),
            ((*entry, 1, iface.index), (ber.INTEGER, iface.index)),
            ((*entry, 7, iface.index), (ber.INTEGER, iface.admin)),
            ((*entry, 8, iface.index), (ber.INTEGER, iface.oper)),
        ]
        datagram = ber.encode(ber.V2C, device.community, ber.TRAP_V2, int(time.time()) % 2**31, varbinds)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((device.address, 0))  # from the device's own address: that is how the daemon knows it
            sock.sendto(datagram, self.trap_to)

    async def _scenario(self, s: Scenario) -> None:
        if s.mode == "flap":
            end = time.monotonic() + s.duration
            down = True
            while time.monotonic() < end:
                await self.set(s.target, "down" if down else "up", s.note)
                down = not down
                await asyncio.sleep(15)
        elif s.mode == "link-down":
            await self.set(s.target, "link-down", s.note, s.interface)
            await asyncio.sleep(s.duration)
            await self.set(s.target, "link-up", s.note, s.interface)
            return
        else:
            await self.set(s.target, s.mode, s.note)
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
            target, mode, interface = body.get("target"), body.get("mode"), body.get("interface")
            if target not in self.network.hosts:
                raise web.HTTPNotFound(text=f"no simulated host {target!r}")
            if mode not in VALID:
                raise web.HTTPBadRequest(text=f"mode must be one of {', '.join(VALID)}")
            if mode in ("link-down", "link-up") and not interface:
                raise web.HTTPBadRequest(text=f'{mode} needs "interface" (an ifName or ifAlias)')
            try:
                record = await self.set(str(target), str(mode), "requested through the API", interface)
            except KeyError as exc:
                raise web.HTTPNotFound(text=str(exc.args[0])) from None
            return web.json_response(asdict(record))

        app.router.add_get("/demo/faults", listing)
        app.router.add_post("/demo/faults", inject)


VALID = ("up", "down", "slow", "error", "link-down", "link-up", "snmp-down")
