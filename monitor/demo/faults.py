"""Fault injection for the simulated network, at once, at a time or on a schedule, with ground truth.

Every fault and its end is logged (`fault_injected`, `fault_cleared`) and kept with its exact wall-clock
time, so what the daemon saw can be compared with what really happened (`GET /lab/faults`).

Faults (`MODES`):
  down, kill     the device dies (kill: it reboots when it comes back, so sysUpTime starts again);
                 every host behind it is cut off too
  cut            the link to the host is cut: it and everything behind it are unreachable, the device
                 itself keeps running (no reboot)
  degrade        with `loss` and as root: pure loss, the kernel drops `loss` % of the packets sent to
                 the host (no added latency); without `loss`, or without root: the host answers late
                 (latency over the 1 s thresholds)
  slow, error    HTTP answers late / with 503
  reboot         the device restarts: sysUpTime and every counter from zero (unreachable for `for`
                 seconds first, if given)
  snmp-down      the device's SNMP agent hangs while the device answers
  link-down/-up  one interface (ifName or ifAlias) goes down/up, with the linkDown/linkUp trap a real
                 device sends, from the device's address, to the trap listener
  flap           an interface (or, without one, the whole host) goes down and up every 15 s
  fill           an interface carries `fill` x its usual traffic (default: 95 % of its line rate)
  ocsp-trylater, ocsp-stale, ocsp-wrong-signer, ocsp-unknown
                 a JPKI OCSP responder answers tryLater / a stale response (nextUpdate passed) /
                 a response signed by a certificate without EKU OCSPSigning / unknown for every
                 certificate (ocsp_responder.py)
  intrude        with `kind` scan, disallowed-port or exfil: a terminal of the organisation (the target is
                 its connection name) misbehaves, seen only in the access point's flow export
                 (flow_lab.py); the record's time is the first offending packet's
  up             everything on the target back to normal
As root (`kernel_faults.py`), down/kill/cut also drop every packet to the hosts cut off, so probes time
out as on a real network instead of being refused.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, cast

import structlog
from aiohttp import web

from monitor.demo import kernel_faults
from monitor.demo.fault_modes import API_MODES, INTERFACE_MODES, INTRUDE_KINDS, MODES, OCSP_MODES, UNREACHABLE
from monitor.demo.flow_lab import FlowLab
from monitor.demo.network import Mode, SimNetwork
from monitor.demo.snmp_agent import SimDevice, SnmpAgents
from probes.snmp import ber

log = structlog.get_logger()
CYCLE_SECONDS = 720.0
FLAP_SECONDS = 15.0


class FaultError(ValueError):
    """A fault that cannot be applied: unknown target, mode or interface."""


@dataclass(frozen=True, slots=True)
class FaultRecord:
    target: str
    mode: str
    at: float  # UTC epoch seconds
    note: str
    kernel: bool = False  # real packet loss / drops in the kernel, not only the simulated hosts


@dataclass(frozen=True, slots=True)
class Fault:
    target: str
    mode: str
    note: str = ""
    interface: str | None = None
    duration: float | None = None  # seconds until it is undone (flap: how long it flaps)
    loss: float = 0.0  # degrade: percent of packets dropped (root only)
    fill: float | None = None  # fill: traffic as a multiple of the usual rate
    kind: str | None = None  # intrude: scan, disallowed-port, exfil


@dataclass(frozen=True, slots=True)
class Scenario:
    start: float  # seconds into the cycle
    target: str
    mode: str
    duration: float
    note: str
    interface: str | None = None  # link-down, flap, fill: the interface (ifName or ifAlias)


def default_scenarios(network: SimNetwork) -> list[Scenario]:
    """A cycle that shows, within the first minutes: a root cause with unreachable children, a
    degraded LGWAN link, a slow server, a failing server, a flapping circuit and a stale OCSP responder."""
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
        Scenario(240, "ocsp-west", "ocsp-stale", 90, "JPKI OCSP responder serves a stale response (nextUpdate passed)"),
        Scenario(150, f"lgwan-{pref(39)}-02-backup", "flap", 240, "backup circuit flapping"),
        Scenario(420, f"lgwan-{pref(0)}-02-primary", "down", 60, "primary and backup circuit cut: link down"),
        Scenario(420, f"lgwan-{pref(0)}-02-backup", "down", 60, "primary and backup circuit cut: link down"),
    ]
    return [s for s in scenarios if s.target in network.hosts]


class FaultInjector:
    def __init__(
        self,
        network: SimNetwork,
        snmp: SnmpAgents | None = None,
        trap_to: tuple[str, int] | None = None,
        kernel: kernel_faults.KernelFaults | None = None,
        flows: FlowLab | None = None,
    ) -> None:
        self.network = network
        self.flows = flows  # the access points' flow export (intrude), or None
        self.snmp = snmp
        self.trap_to = trap_to  # where devices send their traps (the daemon's trap listener)
        self.kernel = kernel  # real drops in the kernel (root), or None: simulated faults only
        self.records: list[FaultRecord] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._snmp_off: set[str] = set()
        self._killed: set[str] = set()  # devices that reboot when they come back
        self._links_down: set[tuple[str, str]] = set()
        self._filled: set[tuple[str, str]] = set()
        self._host_faults: dict[str, tuple[str, float]] = {}  # target -> (mode, loss %) for the kernel

    # --- applying ----------------------------------------------------------------------------

    def check(self, fault: Fault) -> None:
        """FaultError if the fault names an unknown target, mode or interface."""
        if fault.mode not in MODES:
            raise FaultError(f"mode must be one of {', '.join(MODES)}")
        if fault.mode == "intrude":
            if self.flows is None:
                raise FaultError("intrude needs the lab's flow export (not running here)")
            names = sorted(o.connection for o in self.flows.orgs)
            if fault.target not in names:
                raise FaultError(
                    f"no simulated host {fault.target!r}: intrude names an organisation: {', '.join(names)}"
                )
            if fault.kind not in INTRUDE_KINDS:
                raise FaultError(f'intrude needs "kind": one of {", ".join(INTRUDE_KINDS)}')
            return
        if fault.target not in self.network.hosts and not (self.snmp and fault.target in self.snmp.devices):
            raise FaultError(f"no simulated host {fault.target!r}")
        if fault.mode in (*INTERFACE_MODES, "reboot", "snmp-down") or (fault.mode == "flap" and fault.interface):
            device = self._device(fault.target)
            if fault.mode in INTERFACE_MODES or fault.mode == "flap":
                if not fault.interface:
                    raise FaultError(f'{fault.mode} needs "interface" (an ifName or ifAlias)')
                try:
                    device.interface(fault.interface)
                except KeyError as exc:
                    raise FaultError(str(exc.args[0])) from None
        if fault.mode in OCSP_MODES and fault.target not in self.network.estate.ocsp_hosts:
            raise FaultError(f"{fault.mode} needs an OCSP responder; {fault.target} is not one")
        if fault.mode in API_MODES and fault.target not in self.network.estate.api_hosts:
            raise FaultError(f"{fault.mode} needs a national API server; {fault.target} is not one")
        if not 0 <= fault.loss <= 100:
            raise FaultError("loss is a percentage, 0-100")

    async def apply(self, fault: Fault, at: float | None = None) -> FaultRecord | None:
        """Apply a fault now (its record) or at the epoch time `at` (None); `duration` undoes it later."""
        self.check(fault)
        if at is not None and at > time.time():
            self._spawn(self._later(fault, at))
            return None
        if fault.mode == "intrude":
            assert self.flows is not None and fault.kind is not None
            first_packet = self.flows.inject(fault.target, fault.kind)
            return self._record(fault.target, f"intrude:{fault.kind}", fault.note, at=first_packet)
        if fault.mode == "flap":
            self._spawn(self._flap(fault))
            return self._record(fault.target, f"flap:{fault.interface}" if fault.interface else "flap", fault.note)
        if fault.mode == "reboot" and fault.duration:
            record = await self.set(Fault(fault.target, "down", fault.note))
            self._spawn(self._undo_after(Fault(fault.target, "reboot", fault.note), fault.duration, then_up=True))
            return record
        record = await self.set(fault)
        if fault.duration:
            self._spawn(self._undo_after(self._undo(fault), fault.duration))
        return record

    async def set(self, fault: Fault) -> FaultRecord:
        """Apply one change now and log it."""
        target, mode = fault.target, fault.mode
        if mode in ("link-down", "link-up"):
            self._link(target, fault.interface or "", mode == "link-up")
        elif mode == "fill":
            self._fill(target, fault.interface or "", fault.fill)
        elif mode == "snmp-down":
            self._snmp_off.add(target)
        elif mode == "reboot":
            self._device(target).reboot()
        else:
            await self._host(target, mode, fault.loss)
        self._sync_snmp()
        kernel = self._sync_kernel(target)
        if mode == "fill" and fault.fill == 1.0:
            mode = "unfill"  # back to its usual traffic
        shown = f"{mode}:{fault.interface}" if fault.interface else mode
        return self._record(target, shown, fault.note, kernel)

    async def _host(self, target: str, mode: str, loss: float) -> None:
        if mode == "up":
            self._snmp_off.discard(target)
            for key in [k for k in self._links_down if k[0] == target]:
                self._link(target, key[1], True)
            for key in [k for k in self._filled if k[0] == target]:
                self._fill(target, key[1], 1.0)
            if target in self._killed and self.snmp and target in self.snmp.devices:
                self.snmp.devices[target].reboot()  # powered on again
            self._killed.discard(target)
            self._host_faults.pop(target, None)
        else:
            if mode == "kill":
                self._killed.add(target)
            self._host_faults[target] = (mode, loss)
        if target in self.network.hosts:
            host_mode = {"kill": "down", "cut": "down", "degrade": "slow"}.get(mode, mode)
            if mode == "degrade" and loss > 0 and self.kernel is not None:
                host_mode = "up"  # the kernel drops the packets; late answers on top would not be pure loss
            await self.network.set_mode(target, cast(Mode, host_mode))

    def _record(self, target: str, mode: str, note: str, kernel: bool = False, at: float | None = None) -> FaultRecord:
        record = FaultRecord(target, mode, time.time() if at is None else at, note, kernel)
        self.records.append(record)
        del self.records[:-5000]
        cleared = mode == "up" or mode.startswith(("link-up", "unfill"))
        log.info("fault_cleared" if cleared else "fault_injected", target=target, mode=mode, note=note, kernel=kernel)
        return record

    @staticmethod
    def _undo(fault: Fault) -> Fault:
        if fault.mode == "link-down":
            return Fault(fault.target, "link-up", fault.note, fault.interface)
        if fault.mode == "fill":
            return Fault(fault.target, "fill", fault.note, fault.interface, fill=1.0)
        return Fault(fault.target, "up", fault.note)

    # --- the simulated devices and the kernel ----------------------------------------------

    def _device(self, target: str) -> SimDevice:
        if self.snmp is None or target not in self.snmp.devices:
            raise FaultError(f"{target} has no simulated SNMP agent")
        return self.snmp.devices[target]

    def _sync_snmp(self) -> None:
        """A device's agent answers while the device is reachable and its agent is not hung."""
        if self.snmp is None:
            return
        for name, device in self.snmp.devices.items():
            device.silent = name in self._snmp_off or not self.network.reachable(name)

    def _sync_kernel(self, target: str) -> bool:
        """Drop in the kernel what the host faults say: all packets to cut-off hosts, a share to lossy ones."""
        if self.kernel is None:
            return False
        loss: dict[str, float] = {}
        for name, (mode, percent) in self._host_faults.items():
            if mode in UNREACHABLE and name in self.network.hosts:
                for address in self.network.addresses(self.network.subtree(name)):
                    loss[address] = 100.0
            elif mode == "degrade" and percent and name in self.network.hosts:
                for address in self.network.addresses([name]):
                    loss[address] = max(loss.get(address, 0.0), percent)
        self.kernel.apply(loss)
        return target in self._host_faults and self._host_faults[target][0] in (*UNREACHABLE, "degrade")

    def _fill(self, target: str, interface: str, factor: float | None) -> None:
        device = self._device(target)
        iface = device.interface(interface)
        if factor is None:  # near line rate
            factor = 0.95 * iface.speed_mbps * 1e6 / max(iface.rate_bps, 1.0)
        device.set_fill(interface, factor)
        key = (target, interface)
        self._filled.discard(key) if factor == 1.0 else self._filled.add(key)

    def _link(self, target: str, interface: str, up: bool) -> None:
        device = self._device(target)
        iface = device.set_link(interface, up)
        key = (target, interface)
        self._links_down.discard(key) if up else self._links_down.add(key)
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

    # --- time ------------------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _later(self, fault: Fault, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.time()))
        await self.apply(fault)

    async def _undo_after(self, undo: Fault, seconds: float, then_up: bool = False) -> None:
        await asyncio.sleep(seconds)
        await self.set(undo)
        if then_up:
            await self.set(Fault(undo.target, "up", undo.note))

    async def _flap(self, fault: Fault) -> None:
        end = time.monotonic() + (fault.duration or 120.0)
        down = True
        while time.monotonic() < end:
            if fault.interface:
                await self.set(Fault(fault.target, "link-down" if down else "link-up", fault.note, fault.interface))
            else:
                await self.set(Fault(fault.target, "down" if down else "up", fault.note))
            down = not down
            await asyncio.sleep(FLAP_SECONDS)
        if fault.interface:
            await self.set(Fault(fault.target, "link-up", fault.note, fault.interface))
        else:
            await self.set(Fault(fault.target, "up", fault.note))

    async def run_schedule(self, scenarios: list[Scenario], cycle: float = CYCLE_SECONDS) -> None:
        while True:
            started = time.monotonic()
            for s in sorted(scenarios, key=lambda x: x.start):
                await asyncio.sleep(max(0.0, started + s.start - time.monotonic()))
                await self.apply(Fault(s.target, s.mode, s.note, s.interface, s.duration))
            await asyncio.sleep(max(0.0, started + cycle - time.monotonic()))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.kernel is not None:
            self.kernel.close()

    # --- the API ---------------------------------------------------------------------------

    def routes(self, app: web.Application, path: str = "/demo/faults") -> None:
        """GET: hosts, their modes and the ground-truth log. POST {"target", "mode", "interface"?, "for"?,
        "at"? (epoch seconds, ISO 8601 or "+SECONDS"), "loss"?, "fill"?, "kind"? (intrude), "note"?}."""

        async def listing(_: web.Request) -> web.Response:
            modes = {name: host.mode for name, host in self.network.hosts.items()}
            return web.json_response({
                "modes": modes, "valid_modes": list(MODES), "kernel": self.kernel is not None,
                "log": [asdict(r) for r in self.records[-2000:]],
            })  # fmt: skip

        async def inject(request: web.Request) -> web.Response:
            try:
                body: dict[str, Any] = await request.json()
                if not isinstance(body, dict):
                    raise ValueError
            except ValueError:
                raise web.HTTPBadRequest(text='body must be a JSON object: {"target": ..., "mode": ...}') from None
            try:
                fault, at = fault_from_json(body)
                record = await self.apply(fault, at)
            except FaultError as exc:
                status = web.HTTPNotFound if str(exc).startswith("no simulated host") else web.HTTPBadRequest
                raise status(text=str(exc)) from None
            if record is None:
                return web.json_response({"scheduled_at": at, **asdict(fault)}, status=202)
            return web.json_response(asdict(record))

        app.router.add_get(path, listing)
        app.router.add_post(path, inject)


def fault_from_json(body: dict[str, Any]) -> tuple[Fault, float | None]:
    """A fault from the API's JSON, and when to apply it (None: now). FaultError when malformed."""
    target, mode = body.get("target"), body.get("mode")
    if not isinstance(target, str) or not isinstance(mode, str):
        raise FaultError('"target" and "mode" are required strings')
    try:
        duration = float(body["for"]) if body.get("for") is not None else None
        loss = float(body.get("loss") or 0.0)
        fill = float(body["fill"]) if body.get("fill") is not None else None
    except (TypeError, ValueError):
        raise FaultError('"for", "loss" and "fill" are numbers') from None
    interface, kind = body.get("interface"), body.get("kind")
    fault = Fault(target, mode, str(body.get("note") or "requested through the API"),
                  str(interface) if interface is not None else None, duration, loss, fill,
                  str(kind) if kind is not None else None)  # fmt: skip
    return fault, parse_when(body.get("at"))


def parse_when(value: Any) -> float | None:
    """None (now), epoch seconds, "+SECONDS" from now, or an ISO 8601 time with its offset."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    try:
        if text.startswith("+"):
            return time.time() + float(text[1:])
        when = datetime.fromisoformat(text)
    except ValueError:
        raise FaultError(f'"at" must be epoch seconds, "+SECONDS" or ISO 8601 with an offset, not {text!r}') from None
    if when.tzinfo is None:
        raise FaultError(f'"at" {text!r} needs an offset (+09:00 for JST)')
    return when.timestamp()
