"""SNMP trap and inform receiver (v1, v2c, v3): traps feed the same state pipeline as polls.

A trap never sets a state. It names an agent (the datagram's source, or a v1 trap's agent-addr) and
maybe an interface (linkDown/linkUp carry ifIndex); the receiver asks the scheduler to re-poll the
checks concerned *now*, so a link that went down is DOWN within seconds instead of at the next cycle,
and the poll stays the single source of truth. Re-polls are coalesced per agent (one batch per
`coalesce` seconds), so a flood costs bounded work and still no state change goes unobserved.

Every datagram is accounted for. Traps are counted in monitor_snmp_traps_total{agent, trap, outcome}:
accepted, rate_limited, unknown_agent, unknown_trap, auth_failed (wrong community, or pysnmp's USM
refused it), undecodable (garbage, malformed BER: counted and dropped without a word, as an attacker
could fill the log with them). What never reached us is counted in monitor_traps_dropped_total{reason}:
"kernel" (the socket's queue overflowed: SO_RXQ_OVFL, or the drops column of /proc/net/udp) and
"backlog" (SNMPv3 datagrams beyond `v3_backlog`). Unknown agents and OIDs are also logged. Past a
per-agent token bucket, traps are only counted (not logged or handed to listeners) but still mark
their agent and interface for the coalesced re-poll. Listeners (the disconnect playbook) get a
TrapEvent for each accepted trap.

Why the receiver reads its socket itself: in a flood of 20,000 traps in 5 s, pysnmp's ~1 ms per
datagram let the kernel queue grow for seconds and then drop 40% of it, a real linkDown among them
(DOWN after 16 s). v1 and v2c, nearly all traps, are decoded by our BER codec (~20 us: the socket is
drained as fast as the flood arrives), communities are checked and informs answered here; only SNMPv3
goes to pysnmp (USM authentication, privacy, informs' engine discovery), through a bounded queue worked
off in slices so that it never holds up the rest.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from monitor.config.traps import TrapsConfig
from monitor.traps.decode import TrapEvent, decode_notification, decode_trap, snmp_version, v3_envelope_ok
from probes.snmp import ber
from probes.snmp.ber import BerError, Value, VarBind
from probes.snmp.v3 import _AUTH, _PRIV

log = structlog.get_logger()
UNKNOWN = "unknown"
READ_BATCH = 512  # datagrams read per wake-up before the loop gets a turn (timers, probes, HTTP)
V3_SLICE = 50  # SNMPv3 datagrams handed to pysnmp per loop turn
MAX_DATAGRAM = 65535
LINUX = sys.platform.startswith("linux")
# SO_RXQ_OVFL (40) puts the socket's count of dropped datagrams (as it was when the datagram was queued)
# on every datagram received; Python's socket module names neither it nor SO_RCVBUFFORCE (33)
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40 if LINUX else None)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33 if LINUX else None)
ANCILLARY = socket.CMSG_SPACE(4) if hasattr(socket, "CMSG_SPACE") else 0
_REJECTION_COUNTERS = (  # pysnmp refused the notification: credentials
    ("__SNMPv2-MIB", ("snmpInBadCommunityNames", "snmpInBadCommunityUses")),
    (
        "__SNMP-USER-BASED-SM-MIB",
        ("usmStatsUnknownUserNames", "usmStatsWrongDigests", "usmStatsDecryptionErrors", "usmStatsNotInTimeWindows"),
    ),
)
_UNDECODABLE_COUNTERS = (  # pysnmp could not read it (inside an envelope our check let through)
    ("__SNMPv2-MIB", ("snmpInASNParseErrs",)),
    ("__SNMP-MPD-MIB", ("snmpInvalidMsgs", "snmpUnknownPDUHandlers")),
)


class TrapMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.traps = Counter(
            "monitor_snmp_traps_total",
            "SNMP traps and informs received, by agent address, trap name and outcome.",
            ["agent", "trap", "outcome"],
            registry=registry,
        )
        self.dropped = Counter(
            "monitor_traps_dropped_total",
            "Trap datagrams lost before they could be read: kernel (the socket's receive queue was full), "
            "backlog (SNMPv3 datagrams beyond traps.v3_backlog).",
            ["reason"],
            registry=registry,
        )
        for reason in ("kernel", "backlog"):  # at 0 from the start: rate() and alerts see the first drop
            self.dropped.labels(reason)
        self.up = Gauge(
            "monitor_trap_listener_up",
            "1 while the trap listener is bound to its address, 0 when binding it failed (address taken by "
            "another process, port 162 without root): then traps re-poll nothing, a local failure. Absent when "
            "not configured.",
            ["listen"],
            registry=registry,
        )


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


@dataclass(slots=True)
class _Pending:
    device: bool = False  # re-poll the agent's device checks
    interfaces: set[int] = field(default_factory=set)  # ifIndexes named by link traps
    urgent: bool = False  # an accepted link trap asked for it: ahead of the routine probes...
    flooding: bool = False  # ...unless the agent is over its rate limit (or near it): then they are routine
    handle: asyncio.TimerHandle | None = None


# Resolves (agent address, ifIndex or None, whole device?) to the check ids to re-poll.
Resolver = Callable[[str, set[int], bool], list[str]]
# Asks the scheduler to probe checks now; True: ahead of routine probes waiting for a slot.
ProbeSoon = Callable[[Iterable[str], bool], None]


class _Sender:
    """What pysnmp's transport writes through (responses to v3 informs, discovery reports): our socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def sendto(self, data: bytes, address: Any) -> None:
        with contextlib.suppress(OSError):  # a full send buffer: the sender retries its inform
            self.sock.sendto(data, tuple(address))

    def close(self) -> None:
        pass


def set_receive_buffer(sock: socket.socket, size: int) -> int:
    """The socket's receive queue at `size` bytes: SO_RCVBUFFORCE with CAP_NET_ADMIN (beyond
    net.core.rmem_max), else SO_RCVBUF (capped at rmem_max). Returns what the kernel granted, which
    is twice the request (it counts its own bookkeeping in)."""
    if SO_RCVBUFFORCE is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
            return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        except OSError:  # not privileged
            pass
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def bind_udp(host: str, port: int, receive_buffer: int) -> tuple[socket.socket, int]:
    """A non-blocking UDP socket bound to (host, port) with its receive queue at `receive_buffer` and the
    kernel's drop count (SO_RXQ_OVFL) asked for, and the queue size granted; OSError (address taken,
    privileged port) with nothing left open. The trap receiver and the flow collector listen alike.

    No SO_REUSEADDR: on UDP it lets a second daemon bind the same port, and Linux then gives each
    datagram to one of them only, so traps and flows would silently go to whichever bound last (a
    second shard on the host, a test daemon). UDP has no TIME_WAIT for it to help with."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        granted = set_receive_buffer(sock, receive_buffer)
        if SO_RXQ_OVFL is not None:
            with contextlib.suppress(OSError):  # then /proc alone tells of drops
                sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock, granted


def proc_udp_drops(sock: socket.socket) -> int | None:
    """The kernel's count of datagrams dropped on this socket (the `drops` column of /proc/net/udp or
    udp6, found by the socket's inode); None where there is no such file."""
    inode = str(os.fstat(sock.fileno()).st_ino)
    name = "udp6" if sock.family == socket.AF_INET6 else "udp"
    try:
        lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 13 and fields[9] == inode:
            return int(fields[-1])
    return None


class TrapReceiver:
    def __init__(
        self,
        config: TrapsConfig,
        metrics: TrapMetrics,
        known_agent: Callable[[str], bool],
        resolve_checks: Resolver,
        probe_soon: ProbeSoon,
        listeners: list[Callable[[TrapEvent], None]],
        listen: tuple[str, int] | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.known_agent = known_agent
        self.resolve_checks = resolve_checks
        self.probe_soon = probe_soon
        self.listeners = listeners
        self.address = listen or config.listen_address()
        self.receive_buffer = 0
        self._engine: Any = None
        self._sock: socket.socket | None = None
        self._v3_transport: Any = None
        self._v3_queue: collections.deque[tuple[bytes, tuple[str, int]]] = collections.deque()
        self._v3_handle: asyncio.Handle | None = None
        self._buckets: dict[str, _Bucket] = {}
        self._pending: dict[str, _Pending] = {}
        self._mappings = {m.oid: m for m in config.mappings}
        self._communities = [c.get_secret_value().encode() for c in config.communities]
        self._counters: dict[tuple[str, str, str], Callable[[], None]] = {}
        self._pysnmp_counts = {"auth_failed": 0, "undecodable": 0}
        self._kernel_drops = 0  # the socket's drop count already added to the metric

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the socket (OSError if the address is taken or privileged) and start receiving."""
        sock, self.receive_buffer = bind_udp(*self.address, self.config.receive_buffer)
        self.address = sock.getsockname()[:2]
        self._sock = sock
        self._engine = self._v3_engine(sock.family, sock)
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)
        if self.receive_buffer < self.config.receive_buffer:  # (granted is twice what was asked for)
            log.warning("trap_receive_buffer_small", wanted=self.config.receive_buffer, got=self.receive_buffer,
                        hint="run as root or raise net.core.rmem_max")  # fmt: skip
        log.info("trap_listener_started", listen=f"{self.address[0]}:{self.address[1]}",
                 receive_buffer=self.receive_buffer)  # fmt: skip

    def _v3_engine(self, family: int, sock: socket.socket) -> Any:
        """pysnmp's engine for SNMPv3 only, fed by us (its transport never reads the socket itself)."""
        from pysnmp.carrier.asyncio.dgram import udp, udp6
        from pysnmp.entity import config as snmp_config
        from pysnmp.entity import engine
        from pysnmp.entity.rfc3413 import ntfrcv
        from pysnmp.proto.rfc1902 import OctetString

        snmp_engine = engine.SnmpEngine()
        if family == socket.AF_INET6:
            domain, transport = udp6.DOMAIN_NAME, udp6.Udp6AsyncioTransport()
        else:
            domain, transport = udp.DOMAIN_NAME, udp.UdpAsyncioTransport()
        snmp_config.add_transport(snmp_engine, domain, transport)
        transport.connection_made(_Sender(sock))
        self._v3_transport = transport
        for user in self.config.v3_users:
            kwargs: dict[str, Any] = {}
            if user.security_level != "noAuthNoPriv" and user.auth_key is not None:
                kwargs["authProtocol"] = getattr(snmp_config, _AUTH[user.auth_protocol])
                kwargs["authKey"] = user.auth_key.get_secret_value()
            if user.security_level == "authPriv" and user.priv_key is not None:
                kwargs["privProtocol"] = getattr(snmp_config, _PRIV[user.priv_protocol])
                kwargs["privKey"] = user.priv_key.get_secret_value()
            if user.engine_id:
                kwargs["securityEngineId"] = OctetString(hexValue=user.engine_id)
            snmp_config.add_v3_user(snmp_engine, user.username, **kwargs)
        ntfrcv.NotificationReceiver(snmp_engine, self._on_v3_notification)
        return snmp_engine

    def close(self) -> None:
        for pending in self._pending.values():
            if pending.handle is not None:
                pending.handle.cancel()
        self._pending.clear()
        if self._v3_handle is not None:
            self._v3_handle.cancel()
            self._v3_handle = None
        self._v3_queue.clear()
        if self._sock is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None

    def reconfigure(self, config: TrapsConfig) -> None:
        """Mappings and rate limits apply at once; listen address and credentials need a restart."""
        self._mappings = {m.oid: m for m in config.mappings}
        self.config = config

    # --- receiving -------------------------------------------------------------------------

    def _readable(self) -> None:
        """Drain the socket (up to READ_BATCH datagrams, then let the loop run) and handle each."""
        sock = self._sock
        if sock is None:
            return
        overflow: int | None = None
        for _ in range(READ_BATCH):
            try:
                data, ancillary, _flags, address = sock.recvmsg(MAX_DATAGRAM, ANCILLARY)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. ICMP port unreachable reported on the socket: not a trap
                log.debug("trap_socket_error", error=str(exc))
                break
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(value) >= 4:
                    overflow = int.from_bytes(value[:4], sys.byteorder)
            self.datagram(data, (str(address[0]), int(address[1])))
        if overflow is not None:
            self._note_kernel_drops(overflow)

    def _note_kernel_drops(self, total: int) -> None:
        """`total`: the socket's drop count (one counter, read from a datagram or from /proc)."""
        if total > self._kernel_drops:
            new = total - self._kernel_drops
            self._kernel_drops = total
            self.metrics.dropped.labels("kernel").inc(new)
            log.warning("traps_dropped_by_kernel", count=new, receive_buffer=self.receive_buffer,
                        hint="raise traps.receive_buffer")  # fmt: skip

    def datagram(self, data: bytes, address: tuple[str, int]) -> None:
        """One datagram off the socket: v1/v2c here and now, v3 queued for pysnmp, the rest counted."""
        version = snmp_version(data)
        if version == 3:
            if not v3_envelope_ok(data):
                self._count(UNKNOWN, UNKNOWN, "undecodable")
            elif len(self._v3_queue) >= self.config.v3_backlog:
                self.metrics.dropped.labels("backlog").inc()
            else:
                self._v3_queue.append((data, address))
                if self._v3_handle is None:
                    self._v3_handle = asyncio.get_running_loop().call_soon(self._work_v3)
            return
        if version not in (ber.V1, ber.V2C):
            self._count(UNKNOWN, UNKNOWN, "undecodable")
            return
        try:
            message = decode_notification(data)
            event = decode_trap(address[0], message.varbinds, self._mappings, time.time())
        except BerError:
            self._count(UNKNOWN, UNKNOWN, "undecodable")
            return
        if not any(hmac.compare_digest(message.community, c) for c in self._communities):
            self._count(UNKNOWN, UNKNOWN, "auth_failed")
            if self._allow("log:bad_community"):  # one budget for all sources: spoofed ones are free to make
                log.warning("trap_bad_community", source=address[0], trap=event.name)
            return
        if message.pdu == ber.INFORM:
            self._acknowledge(message.version, message.community, message.request_id, message.raw_varbinds, address)
        self._handle_safely(event)

    def _acknowledge(
        self, version: int, community: bytes, request_id: int, varbinds: list[VarBind], address: tuple[str, int]
    ) -> None:
        """An InformRequest is answered with a Response echoing its varbinds (RFC 3416 4.2.7)."""
        if self._sock is None:
            return
        try:
            reply = ber.encode(version, community, ber.RESPONSE, request_id, varbinds)
            self._sock.sendto(reply, address)
        except (OSError, ValueError) as exc:  # the sender will retry; we have counted the inform
            log.debug("trap_inform_reply_failed", error=str(exc))

    def _work_v3(self) -> None:
        """A slice of the SNMPv3 queue through pysnmp, then the loop's turn again."""
        self._v3_handle = None
        transport = self._v3_transport
        for _ in range(min(V3_SLICE, len(self._v3_queue))):
            data, address = self._v3_queue.popleft()
            try:  # called directly, not through pysnmp's call_soon: its exceptions come back to us
                transport._callback_function(transport, transport.normalize_address(address), data)
            except Exception as exc:  # pysnmp raises TypeError and the like on some malformed messages
                self._count(UNKNOWN, UNKNOWN, "undecodable")
                log.debug("trap_undecodable", error=type(exc).__name__)
        if self._v3_queue:
            self._v3_handle = asyncio.get_running_loop().call_soon(self._work_v3)

    def _on_v3_notification(
        self, snmp_engine: Any, state_reference: Any, _engine_id: Any, _context: Any, varbinds: Any, _ctx: Any
    ) -> None:
        try:
            _domain, address = snmp_engine.message_dispatcher.get_transport_info(state_reference)
            plain = [(tuple(int(x) for x in name), _plain(value)) for name, value in varbinds]
            event = decode_trap(str(address[0]), plain, self._mappings, time.time())
        except Exception as exc:  # a trap we cannot read must not break the receiver: counted, no traceback
            self._count(UNKNOWN, UNKNOWN, "undecodable")
            log.debug("trap_undecodable", error=type(exc).__name__)
            return
        self._handle_safely(event)

    def _handle_safely(self, event: TrapEvent) -> None:
        try:
            self.handle(event)
        except Exception:  # a bug here must not stop the receiver
            log.exception("trap_handling_failed", agent=event.agent, trap=event.name)

    def count_rejected(self) -> int:
        """Fold pysnmp's own counters of SNMPv3 notifications it refused (unknown user, wrong digest or
        key, outside the time window) into monitor_snmp_traps_total{outcome="auth_failed"}, and of those
        it could not parse into outcome="undecodable": those never reach our callback, and must not
        vanish silently either."""
        if self._engine is None:
            return 0
        builder = self._engine.get_mib_builder()
        added = 0
        for outcome, counters in (("auth_failed", _REJECTION_COUNTERS), ("undecodable", _UNDECODABLE_COUNTERS)):
            total = 0
            for module, names in counters:
                for name in names:
                    try:
                        (symbol,) = builder.import_symbols(module, name)
                        total += int(symbol.syntax)
                    except Exception:  # a counter this pysnmp version does not keep
                        continue
            new = total - self._pysnmp_counts[outcome]
            if new > 0:
                self.metrics.traps.labels(UNKNOWN, UNKNOWN, outcome).inc(new)
                added += new
                if outcome == "auth_failed":
                    log.warning("traps_rejected", count=new, hint="bad SNMPv3 credentials, or an unknown user")
            self._pysnmp_counts[outcome] = total
        return added

    def count_kernel_drops(self) -> None:
        """The socket's drop counter from /proc: where SO_RXQ_OVFL is not available, and for the drops
        after the last datagram read (SO_RXQ_OVFL tells of them only with the next one)."""
        if self._sock is None:
            return
        total = proc_udp_drops(self._sock)
        if total is not None:
            self._note_kernel_drops(total)

    async def watch_rejections(self, every: float = 5.0) -> None:
        while True:
            await asyncio.sleep(every)
            self.count_rejected()
            self.count_kernel_drops()

    def handle(self, event: TrapEvent) -> None:
        agent = event.agent
        if not self.known_agent(agent):
            alt = event.agent_addr
            if alt and self.known_agent(alt):
                agent = event.agent = alt
            else:
                self._count(UNKNOWN, event.name, "unknown_agent")
                if self._allow("log:unknown_agent"):  # one budget for all strangers (sources are easy to spoof)
                    log.warning("trap_from_unknown_agent", agent=agent, trap_oid=event.trap_oid, trap=event.name)
                return
        if event.event is None:
            self._count(agent, UNKNOWN, "unknown_trap")
            if self._allow(agent):
                log.warning("trap_unknown_oid", agent=agent, trap_oid=event.trap_oid, varbinds=event.varbinds[:8])
            self._mark(agent, event)  # an unknown trap from a known device: worth a fresh look all the same
            return
        if not self._allow(agent):
            self._count(agent, event.name, "rate_limited")
            self._mark(agent, event, flooding=True)
            return
        self._count(agent, event.name, "accepted")
        log.info("trap_received", agent=agent, trap=event.name, trap_oid=event.trap_oid, kind=event.event,
                 if_index=event.if_index)  # fmt: skip
        self._mark(agent, event, urgent=event.event in ("link_down", "link_up"))
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                log.exception("trap_listener_failed")

    def _count(self, agent: str, trap: str, outcome: str) -> None:
        key = (agent, trap, outcome)
        inc = self._counters.get(key)
        if inc is None:
            inc = self._counters[key] = self.metrics.traps.labels(agent, trap, outcome).inc
        inc()

    def _allow(self, key: str) -> bool:
        """Token bucket per agent: `per_second` traps, bursts of `burst`."""
        limit = self.config.rate_limit
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) > 100_000:  # spoofed sources must not grow this forever
                self._buckets.clear()
            bucket = self._buckets[key] = _Bucket(float(limit.burst), now)
        bucket.tokens = min(float(limit.burst), bucket.tokens + (now - bucket.at) * limit.per_second)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    # --- coalesced re-polls ----------------------------------------------------------------

    def _mark(self, agent: str, event: TrapEvent, urgent: bool = False, flooding: bool = False) -> None:
        if not event.repoll:
            return
        pending = self._pending.get(agent)
        if pending is None:
            pending = self._pending[agent] = _Pending()
        pending.urgent = pending.urgent or urgent
        pending.flooding = pending.flooding or flooding
        if event.if_index is not None and event.event in ("link_down", "link_up"):
            pending.interfaces.add(event.if_index)
        else:
            pending.device = True
        if pending.handle is None:
            loop = asyncio.get_running_loop()
            pending.handle = loop.call_later(self.config.coalesce, self._flush, agent)

    def _flush(self, agent: str) -> None:
        pending = self._pending.pop(agent, None)
        if pending is None:
            return
        checks = self.resolve_checks(agent, pending.interfaces, pending.device)
        if checks:
            # urgent: a link trap from an agent that is not flooding: none of its traps were over the rate limit
            # and it used less than half its burst (a flood's first traps fit in the burst as well)
            bucket = self._buckets.get(agent)
            quiet = bucket is not None and bucket.tokens >= self.config.rate_limit.burst / 2
            urgent = pending.urgent and not pending.flooding and quiet
            log.debug("trap_repoll", agent=agent, checks=checks, urgent=urgent)
            self.probe_soon(checks, urgent)


def _plain(value: Any) -> Value:
    """A pysnmp value as the (tag, value) pair of our codec: its BER tag and a plain Python value."""
    tag_of = value.tagSet[-1]
    tag = int(tag_of.tagClass) | int(tag_of.tagFormat) | int(tag_of.tagId)
    if tag == ber.OBJECT_IDENTIFIER:
        return tag, tuple(int(x) for x in value)
    if hasattr(value, "asOctets"):
        return tag, bytes(value.asOctets())
    if tag in (ber.NULL, *ber.EXCEPTIONS):
        return tag, None
    return tag, int(value)
