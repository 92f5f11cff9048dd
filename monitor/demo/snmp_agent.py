"""A small packet-level SNMP v1/v2c agent for the simulated network (and a real peer for tests).

One UDP socket per device address serves the system group and IF-MIB (ifTable + ifXTable) of that
device: GET, GETNEXT and GETBULK, community checked, counters that move with time (each interface has
its own traffic rate) and links that can be taken down. It uses the project's BER codec, so a few
hundred simulated devices cost little CPU. `reboot()` restarts a device's uptime and counters.

SET is served for ifAdminStatus only, with the device's write community (none: every SET is refused
as a wrong community is, with silence): that is what the disconnect playbook sends, so the demo's cut
really takes the interface down (ifOperStatus follows) and the reconnect brings it back. Anything
else is answered as a real agent does: notWritable (v2c) / noSuchName (v1), wrongValue, wrongType,
and a SET is all or nothing.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from probes.snmp import ber
from probes.snmp.ber import OID, Value

SYSTEM = (1, 3, 6, 1, 2, 1, 1)
IF_NUMBER = (1, 3, 6, 1, 2, 1, 2, 1, 0)
IF = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
ENTERPRISE = (1, 3, 6, 1, 4, 1, 99999)  # example enterprise number for the demo's equipment
MAX_BULK_VARBINDS = 1000
IF_ADMIN_STATUS = 7  # ifTable column
# error-status values (RFC 3416 3; v1 has only the first five)
NO_SUCH_NAME, BAD_VALUE, WRONG_TYPE, WRONG_VALUE, NOT_WRITABLE = 2, 3, 7, 10, 17


@dataclass
class SimInterface:
    index: int
    name: str
    alias: str
    speed_mbps: int
    rate_bps: float  # average traffic, bits per second (in and out)
    admin: int = 1
    oper: int = 1
    last_change: float = 0.0  # monotonic time of the last oper change
    fill: float = 1.0  # traffic as a multiple of rate_bps ("fill a link" sets it near line rate)
    counted: float = 0.0  # bits counted up to `counted_at`, so a rate change never rewrites the past
    counted_at: float = field(default_factory=time.monotonic)

    def bits_per_second(self) -> float:
        return self.rate_bps * self.fill if self.oper == 1 else 0.0

    def bits(self, now: float) -> float:
        return self.counted + (now - self.counted_at) * self.bits_per_second()

    def rebase(self, now: float, counted: float | None = None) -> None:
        """Fold the traffic so far into `counted` before the rate changes (or reset it, at a reboot)."""
        self.counted = self.bits(now) if counted is None else counted
        self.counted_at = now


@dataclass
class SimDevice:
    name: str
    address: str
    community: bytes
    interfaces: list[SimInterface]
    descr: str = "Demo national backbone router"
    started: float = field(default_factory=time.monotonic)
    counter_base: float = field(default_factory=time.monotonic)  # counters count from here
    silent: bool = False  # a dead agent: receives, never answers
    write_community: bytes | None = None  # SET of ifAdminStatus with this community (None: no SET)
    sets: list[tuple[int, int]] = field(default_factory=list)  # (ifIndex, ifAdminStatus) applied, in order
    served: int = 0  # varbinds answered (benchmarks count the work asked of the agents)
    _oids: list[OID] = field(default_factory=list)
    _getters: dict[OID, Callable[[], Value]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.build()

    # --- the MIB ---------------------------------------------------------------------------

    def uptime_ticks(self) -> int:
        return int((time.monotonic() - self.started) * 100) % 2**32

    def cpu(self) -> int:
        """A load that moves slowly (a 10-minute cycle), different per device."""
        phase = int(hashlib.blake2b(self.name.encode(), digest_size=2).hexdigest(), 16) % 600 + time.time()
        return int(25 + 15 * math.sin(phase / 600 * 2 * math.pi))

    def _octets(self, iface: SimInterface, out: bool) -> int:
        factor = 0.6 if out else 1.0  # traffic is asymmetric, as on real uplinks
        wobble = 1.0 + 0.2 * ((iface.index * 7919) % 13) / 13
        return int(iface.bits(time.monotonic()) * factor * wobble / 8)

    def build(self) -> None:
        g: dict[OID, Callable[[], Value]] = {
            (*SYSTEM, 1, 0): lambda: (ber.OCTET_STRING, self.descr.encode()),
            (*SYSTEM, 2, 0): lambda: (ber.OBJECT_IDENTIFIER, (*ENTERPRISE, 1, 1)),
            (*SYSTEM, 3, 0): lambda: (ber.TIMETICKS, self.uptime_ticks()),
            (*SYSTEM, 5, 0): lambda: (ber.OCTET_STRING, self.name.encode()),
            IF_NUMBER: lambda: (ber.INTEGER, len(self.interfaces)),
            (*ENTERPRISE, 2, 1, 0): lambda: (ber.GAUGE32, self.cpu()),  # CPU load %
            (*ENTERPRISE, 2, 2, 0): lambda: (ber.INTEGER, 38 + self.cpu() // 10),  # chassis temperature C
        }
        for iface in self.interfaces:
            self._interface(g, iface)
        self._getters = g
        self._oids = sorted(g)

    def _interface(self, g: dict[OID, Callable[[], Value]], i: SimInterface) -> None:
        n = i.index

        def octets(out: bool, bits: int) -> Callable[[], Value]:
            tag = ber.COUNTER64 if bits == 64 else ber.COUNTER32
            return lambda: (tag, self._octets(i, out) % 2**bits)

        def packets(out: bool, share: float, bits: int) -> Callable[[], Value]:
            tag = ber.COUNTER64 if bits == 64 else ber.COUNTER32
            return lambda: (tag, int(self._octets(i, out) / 800 * share) % 2**bits)

        def last_change() -> Value:
            ticks = int((i.last_change - self.started) * 100) if i.last_change > self.started else 0
            return ber.TIMETICKS, ticks

        g[(*IF, 1, n)] = lambda: (ber.INTEGER, n)
        g[(*IF, 2, n)] = lambda: (ber.OCTET_STRING, f"{i.name} interface".encode())
        g[(*IF, 3, n)] = lambda: (ber.INTEGER, 6)  # ethernetCsmacd
        g[(*IF, 5, n)] = lambda: (ber.GAUGE32, min(i.speed_mbps * 1_000_000, 0xFFFFFFFF))
        g[(*IF, 7, n)] = lambda: (ber.INTEGER, i.admin)
        g[(*IF, 8, n)] = lambda: (ber.INTEGER, i.oper)
        g[(*IF, 9, n)] = last_change
        g[(*IF, 10, n)] = octets(False, 32)
        g[(*IF, 11, n)] = packets(False, 0.97, 32)
        g[(*IF, 13, n)] = lambda: (ber.COUNTER32, 0)
        g[(*IF, 14, n)] = lambda: (ber.COUNTER32, int(time.monotonic() - self.counter_base) // 600)
        g[(*IF, 16, n)] = octets(True, 32)
        g[(*IF, 17, n)] = packets(True, 0.97, 32)
        g[(*IF, 19, n)] = lambda: (ber.COUNTER32, 0)
        g[(*IF, 20, n)] = lambda: (ber.COUNTER32, 0)
        g[(*IFX, 1, n)] = lambda: (ber.OCTET_STRING, i.name.encode())
        for col, out, share in ((2, False, 0.02), (3, False, 0.01), (4, True, 0.02), (5, True, 0.01)):
            g[(*IFX, col, n)] = packets(out, share, 32)
        g[(*IFX, 6, n)] = octets(False, 64)
        g[(*IFX, 10, n)] = octets(True, 64)
        for col, out, share in ((7, False, 0.97), (8, False, 0.02), (9, False, 0.01)):
            g[(*IFX, col, n)] = packets(out, share, 64)
        for col, out, share in ((11, True, 0.97), (12, True, 0.02), (13, True, 0.01)):
            g[(*IFX, col, n)] = packets(out, share, 64)
        g[(*IFX, 15, n)] = lambda: (ber.GAUGE32, i.speed_mbps)
        g[(*IFX, 18, n)] = lambda: (ber.OCTET_STRING, i.alias.encode())

    # --- control ---------------------------------------------------------------------------

    def interface(self, wanted: str | int) -> SimInterface:
        for iface in self.interfaces:
            if wanted in (iface.index, iface.name, iface.alias):
                return iface
        raise KeyError(f"{self.name} has no interface {wanted}")

    def set_link(self, wanted: str | int, up: bool) -> SimInterface:
        iface = self.interface(wanted)
        new = 1 if up else 2
        if iface.oper != new:
            now = time.monotonic()
            iface.rebase(now)
            iface.oper, iface.last_change = new, now
        return iface

    def set_fill(self, wanted: str | int, fill: float) -> SimInterface:
        """Traffic on an interface as a multiple of its usual rate (1.0 = normal)."""
        iface = self.interface(wanted)
        iface.rebase(time.monotonic())
        iface.fill = fill
        return iface

    def set_admin(self, wanted: str | int, value: int) -> SimInterface:
        """ifAdminStatus: down (2) takes the link down; up (1) brings it back."""
        iface = self.interface(wanted)
        iface.admin = value
        self.set_link(iface.index, up=value == 1)
        return iface

    def reboot(self) -> None:
        """sysUpTime and every counter start again from zero, as after a power cycle."""
        now = self.started = self.counter_base = time.monotonic()
        for iface in self.interfaces:
            iface.rebase(now, counted=0.0)

    # --- requests --------------------------------------------------------------------------

    def _get(self, oid: OID) -> Value:
        getter = self._getters.get(oid)
        return getter() if getter is not None else (ber.NO_SUCH_INSTANCE, None)

    def _next(self, oid: OID) -> tuple[OID, Value]:
        pos = bisect.bisect_right(self._oids, oid)
        if pos >= len(self._oids):
            return oid, (ber.END_OF_MIB_VIEW, None)
        nxt = self._oids[pos]
        return nxt, self._getters[nxt]()

    def _set(self, message: ber.Message) -> bytes | None:
        """All varbinds are checked before any is applied (RFC 3416 4.2.5: a SET is atomic)."""
        v1 = message.version == ber.V1
        changes: list[tuple[SimInterface, int]] = []
        for position, (oid, value) in enumerate(message.varbinds, start=1):
            error = 0
            iface = None
            if len(oid) != len(IF) + 2 or oid[: len(IF)] != IF or oid[len(IF)] != IF_ADMIN_STATUS:
                error = NO_SUCH_NAME if v1 else NOT_WRITABLE
            else:
                iface = next((i for i in self.interfaces if i.index == oid[-1]), None)
                if iface is None:
                    error = NO_SUCH_NAME if v1 else NOT_WRITABLE
                elif value[0] != ber.INTEGER:
                    error = BAD_VALUE if v1 else WRONG_TYPE
                elif value[1] not in (1, 2):  # testing(3) is not something a demo router does
                    error = BAD_VALUE if v1 else WRONG_VALUE
            if error:
                return ber.encode(message.version, message.community, ber.RESPONSE, message.request_id,
                                  list(message.varbinds), error, position)  # fmt: skip
            assert iface is not None and isinstance(value[1], int)
            changes.append((iface, value[1]))
        for iface, wanted in changes:
            self.set_admin(iface.index, wanted)
            self.sets.append((iface.index, wanted))
        self.served += len(changes)
        return ber.encode(message.version, message.community, ber.RESPONSE, message.request_id,
                          list(message.varbinds))  # fmt: skip

    def answer(self, message: ber.Message) -> bytes | None:
        if self.silent:
            return None
        if message.pdu == ber.SET:
            if self.write_community is None or message.community != self.write_community:
                return None  # a read community cannot write: silence, as for a wrong community
            return self._set(message)
        if message.community not in (self.community, self.write_community):
            return None  # wrong community: real agents stay silent (and count it)
        v1 = message.version == ber.V1
        out: list[tuple[OID, Value]] = []
        names = [oid for oid, _ in message.varbinds]
        if message.pdu == ber.GET:
            out = [(oid, self._get(oid)) for oid in names]
        elif message.pdu == ber.GET_NEXT:
            out = [self._next(oid) for oid in names]
        elif message.pdu == ber.GET_BULK and not v1:
            non_rep = max(0, min(message.error_status, len(names)))
            reps = max(0, message.error_index)
            out = [self._next(oid) for oid in names[:non_rep]]
            cursors = names[non_rep:]
            for _ in range(reps):
                if not cursors or len(out) + len(cursors) > MAX_BULK_VARBINDS:
                    break
                row = [self._next(oid) for oid in cursors]
                out.extend(row)
                cursors = [oid for oid, _ in row]
                if all(value[0] == ber.END_OF_MIB_VIEW for _, value in row):
                    break
        else:
            return None
        if v1:  # v1 has no exception values: the first missing name is a noSuchName error
            for position, (_oid, value) in enumerate(out, start=1):
                if value[0] in ber.EXCEPTIONS:
                    return ber.encode(message.version, message.community, ber.RESPONSE, message.request_id,
                                      list(message.varbinds), 2, position)  # fmt: skip
        self.served += len(out)
        return ber.encode(message.version, message.community, ber.RESPONSE, message.request_id, out)


class _AgentProtocol(asyncio.DatagramProtocol):
    def __init__(self, device: SimDevice) -> None:
        self.device = device
        self.transport: asyncio.DatagramTransport | None = None
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.requests += 1
        try:
            reply = self.device.answer(ber.decode(data))
        except ber.BerError:
            return
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


class SnmpAgents:
    """Serves many simulated devices, each on its own address at one port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.devices: dict[str, SimDevice] = {}
        self._protocols: dict[str, _AgentProtocol] = {}
        self._transports: dict[str, asyncio.BaseTransport] = {}

    async def add(self, device: SimDevice) -> None:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _AgentProtocol(device), local_addr=(device.address, self.port)
        )
        if self.port == 0:
            self.port = transport.get_extra_info("sockname")[1]
        self.devices[device.name] = device
        self._protocols[device.name] = protocol
        self._transports[device.name] = transport

    def requests(self, name: str) -> int:
        return self._protocols[name].requests

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()


def demo_interfaces(device: str, role: str) -> list[SimInterface]:
    """A plausible port list for a device role: uplinks with aliases, a few access ports."""
    seed = int(hashlib.blake2b(device.encode(), digest_size=2).hexdigest(), 16)
    ports = [
        SimInterface(1, "Te0/0/0", "LGWAN uplink primary", 10_000, 2.0e8 + seed * 1e3),
        SimInterface(2, "Te0/0/1", "LGWAN uplink backup", 10_000, 2.0e7 + seed * 1e2),
        SimInterface(3, "Gi0/1/0", "inter-prefecture circuit", 1_000, 1.2e8),
        SimInterface(4, "Gi0/1/1", "server segment", 1_000, 3.0e7),
    ]
    if role in ("edge-router", "access-point"):
        ports += [SimInterface(5 + k, f"Gi0/2/{k}", f"municipality link {k + 1:02d}", 100, 5.0e6) for k in range(4)]
    ports.append(SimInterface(20, "Mgmt0", "management", 1_000, 1.0e5))
    return ports
