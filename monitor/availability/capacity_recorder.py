"""5-minute circuit traffic from the counters the SNMP checks already poll (monitor_if_in_octets_total,
monitor_if_out_octets_total, monitor_if_speed_bytes_per_second): a result consumer of the probe path (the
HA leader's only, like every actor), writing one sample per circuit, direction and 5-minute slot to the
store.

Between two polls of a port the octets counted are spread evenly over the time between them, so a slot gets
its share of each poll interval that overlaps it; a slot's rate is the octets it got over the seconds of it
that were covered. A poll interval longer than MAX_SPREAD is not spread (how the traffic fell within it is
unknown), and a counter going back (reset, device reboot on 64-bit counters) gives no increase: in both
cases the slot is less covered, never given made-up traffic. A circuit's slot is written once every port has
polled past its end (or GRACE after it ended, for a port that stopped answering), and only if every port
covered at least MIN_COVER of it: an aggregate with one port unmeasured would understate its sum, so that
slot is a gap, counted in monitor_capacity_slots_missed_total.

Kept in memory only: after a restart the first poll of each port starts its counting again, so the slot
in progress at the restart is a gap.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from monitor.availability.capacity import DIRECTIONS, SLOT, Sample
from monitor.availability.circuits import Circuit, Port, circuits
from monitor.core.inventory import Inventory
from monitor.store.base import Store
from probes.base import ProbeResult

log = structlog.get_logger()
MAX_SPREAD = 900.0  # seconds between polls beyond which their increase is not spread over the slots
GRACE = 900.0  # a slot is closed this long after its end even if a port has not polled past it
MIN_COVER = 0.5  # share of a slot each port must have covered for the circuit's slot to be written
FLUSH_SECONDS = 30.0  # how often closed slots are written to the store
OCTETS = {"in": "monitor_if_in_octets_total", "out": "monitor_if_out_octets_total"}
SPEED = "monitor_if_speed_bytes_per_second"


@dataclass
class Counter:
    value: float
    at: float


@dataclass
class PortTraffic:
    """One port's counting: the last counter read per direction, and each slot's octets and covered seconds."""

    last: dict[str, Counter] = field(default_factory=dict)
    slots: dict[str, dict[float, list[float]]] = field(default_factory=lambda: {d: {} for d in DIRECTIONS})
    speed_bps: float = 0.0
    polled_at: float = 0.0  # the last poll with counters

    def observe(self, direction: str, value: float, at: float) -> None:
        previous = self.last.get(direction)
        self.last[direction] = Counter(value, at)
        if previous is None or at <= previous.at:
            return
        seconds = at - previous.at
        if value < previous.value or seconds > MAX_SPREAD:  # a reset, or too long to know when it flowed
            return
        rate = (value - previous.value) / seconds
        slots = self.slots[direction]
        start = math.floor(previous.at / SLOT) * SLOT
        while start < at:
            overlap = min(at, start + SLOT) - max(previous.at, start)
            if overlap > 0:
                cell = slots.setdefault(start, [0.0, 0.0])
                cell[0] += rate * overlap
                cell[1] += overlap
            start += SLOT

    def forget_before(self, start: float) -> None:
        for slots in self.slots.values():
            for old in [s for s in slots if s < start]:
                del slots[old]


def _port_values(port: Port, result: ProbeResult) -> dict[str, float]:
    """The port's octet counters and speed in a result: all of an interface check's (it reads one
    interface), the named interface's of a device check's."""
    out: dict[str, float] = {}
    for series in result.series:
        if series.name not in (OCTETS["in"], OCTETS["out"], SPEED):
            continue
        if port.interface is not None:
            labels = dict(series.labels)
            if port.interface not in (labels.get("if_name"), labels.get("if_alias")):
                continue
        out[series.name] = series.value
    return out


class CapacityRecorder:
    """Result consumer: ports' counters in, circuits' 5-minute samples out (to the store)."""

    def __init__(self, store: Store, inventory: Callable[[], Inventory], now: Callable[[], float]) -> None:
        self._store = store
        self._inventory = inventory
        self._now = now
        self._ports: dict[Port, PortTraffic] = {}
        self._circuits: list[Circuit] = []
        self._by_check: dict[str, list[Port]] = {}
        self._of_check: dict[str, list[Circuit]] = {}  # the circuits a check's results can close slots of
        self._next: dict[str, float] = {}  # circuit -> the first slot not yet closed
        self.pending: list[Sample] = []  # closed, not yet written
        self.latest: dict[tuple[str, str], Sample] = {}  # the last sample of each circuit and direction
        self.missed: dict[str, int] = {}  # circuit -> slots not written (a port did not cover them)
        self._warned: set[str] = set()
        self.reload()

    @property
    def circuits(self) -> list[Circuit]:
        return self._circuits

    def reload(self) -> None:
        """(Re)read the circuits from the inventory; ports kept across a reload keep their counting."""
        self._circuits = circuits(self._inventory())
        ports = {p for c in self._circuits for p in c.ports}
        self._ports = {p: self._ports.get(p) or PortTraffic() for p in ports}
        self._by_check = {}
        for port in ports:
            self._by_check.setdefault(port.check, []).append(port)
        self._of_check = {}
        for circuit in self._circuits:
            for check in {p.check for p in circuit.ports}:
                self._of_check.setdefault(check, []).append(circuit)
        names = {c.name for c in self._circuits}
        self._next = {k: v for k, v in self._next.items() if k in names}

    def on_result(self, check_id: str, result: ProbeResult) -> None:
        ports = self._by_check.get(check_id)
        if not ports or not result.series:
            return
        at = result.finished_at
        touched = False
        for port in ports:
            values = _port_values(port, result)
            traffic = self._ports[port]
            if SPEED in values:
                traffic.speed_bps = values[SPEED] * 8
            for direction, name in OCTETS.items():
                if name in values:
                    traffic.observe(direction, values[name], at)
                    traffic.polled_at = max(traffic.polled_at, at)
                    touched = True
        if touched:  # only this check's circuits: the others are closed by `run` once a port stops answering
            now = self._now()
            for circuit in self._of_check.get(check_id, []):
                self._close_circuit(circuit, now)

    def close(self, now: float) -> None:
        """Close every slot of every circuit that can be closed by now."""
        oldest = math.inf
        for circuit in self._circuits:
            self._close_circuit(circuit, now)
            oldest = min(oldest, self._next.get(circuit.name, math.inf))
        if oldest < math.inf:
            for traffic in self._ports.values():
                traffic.forget_before(oldest)

    def _close_circuit(self, circuit: Circuit, now: float) -> None:
        traffic = [self._ports[p] for p in circuit.ports]
        if circuit.name not in self._next:
            starts = [s for t in traffic for d in DIRECTIONS for s in t.slots[d]]
            if not starts:
                return
            self._next[circuit.name] = min(starts)
        polled = min(t.polled_at for t in traffic)
        start = self._next[circuit.name]
        while start + SLOT <= polled or start + SLOT + GRACE <= now:
            self._close_slot(circuit, traffic, start)
            start += SLOT
        self._next[circuit.name] = start

    def _capacity(self, circuit: Circuit, traffic: list[PortTraffic]) -> float | None:
        if circuit.capacity_bps is not None:
            return circuit.capacity_bps
        speeds = [t.speed_bps for t in traffic]
        if not all(s > 0 for s in speeds):
            return None
        return max(speeds) if circuit.sizing == "largest" else sum(speeds)

    def _close_slot(self, circuit: Circuit, traffic: list[PortTraffic], start: float) -> None:
        if not any(start in t.slots[d] for t in traffic for d in DIRECTIONS):
            return  # nothing at all in the slot (no poll, a long silence): a gap, not a missed slot
        capacity = self._capacity(circuit, traffic)
        if capacity is None:
            if circuit.name not in self._warned:
                self._warned.add(circuit.name)
                log.warning("capacity_unknown", circuit=circuit.name,
                            hint="a port reports no ifSpeed/ifHighSpeed: set capacity_bps for the circuit")  # fmt: skip
            self.missed[circuit.name] = self.missed.get(circuit.name, 0) + 1
            return
        for direction in DIRECTIONS:
            cells = [t.slots[direction].get(start) for t in traffic]
            if any(c is None or c[1] < SLOT * MIN_COVER for c in cells):
                self.missed[circuit.name] = self.missed.get(circuit.name, 0) + 1
                continue
            bps = sum(c[0] * 8 / c[1] for c in cells if c is not None)
            sample = Sample(circuit.name, direction, start, bps, capacity)
            self.pending.append(sample)
            self.latest[(circuit.name, direction)] = sample

    async def flush(self) -> None:
        """Write the closed slots (kept for the next try if the store refuses them)."""
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        try:
            await self._store.save_capacity_samples(batch)
        except Exception:
            self.pending = batch + self.pending
            raise

    async def run(self) -> None:
        """Close slots of ports that went silent and write what closed, every FLUSH_SECONDS."""
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            self.close(self._now())
            try:
                await self.flush()
            except Exception as exc:  # the store is retried by its writer; keep the samples and go on
                log.error("capacity_samples_not_written", error=str(exc), pending=len(self.pending))
