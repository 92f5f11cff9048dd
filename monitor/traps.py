"""SNMP trap and inform receiver (v1, v2c, v3): traps feed the same state pipeline as polls.

A trap never sets a state. It names an agent (the datagram's source, or a v1 trap's agent-addr) and
maybe an interface (linkDown/linkUp carry ifIndex); the receiver asks the scheduler to re-poll the
checks concerned *now*, so a link that went down is DOWN within seconds instead of at the next cycle,
and the poll stays the single source of truth. Re-polls are coalesced per agent (one batch per
`coalesce` seconds), so a flood costs bounded work and still no state change goes unobserved.

Every trap is counted in monitor_snmp_traps_total{agent, trap, outcome}: accepted, rate_limited,
unknown_agent, unknown_trap. Unknown agents and OIDs are also logged (never dropped silently). Past a
per-agent token bucket, traps are only counted (not logged or handed to listeners) but still mark
their agent and interface for the coalesced re-poll. Listeners (the later disconnect playbook) get a
TrapEvent for each accepted trap.

The receiver has its own pysnmp engine (not the poller's): pysnmp does the USM work for v3, checks
communities and answers informs. Its socket gets a large receive buffer: a burst beyond the buffer
is dropped by the kernel before any code could count it.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter

from monitor.config.traps import TrapsConfig
from monitor.trap_decode import TrapEvent, decode_trap
from probes.snmp_transport import enlarge_receive_buffer
from probes.snmp_v3 import _AUTH, _PRIV

log = structlog.get_logger()
UNKNOWN = "unknown"
_REJECTION_COUNTERS = (
    ("__SNMPv2-MIB", ("snmpInBadCommunityNames", "snmpInBadCommunityUses")),
    (
        "__SNMP-USER-BASED-SM-MIB",
        ("usmStatsUnknownUserNames", "usmStatsWrongDigests", "usmStatsDecryptionErrors", "usmStatsNotInTimeWindows"),
    ),
)


class TrapMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.traps = Counter(
            "monitor_snmp_traps_total",
            "SNMP traps and informs received, by agent address, trap name and outcome.",
            ["agent", "trap", "outcome"],
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
    handle: asyncio.TimerHandle | None = None


# Resolves (agent address, ifIndex or None, whole device?) to the check ids to re-poll.
Resolver = Callable[[str, set[int], bool], list[str]]


class TrapReceiver:
    def __init__(
        self,
        config: TrapsConfig,
        metrics: TrapMetrics,
        known_agent: Callable[[str], bool],
        resolve_checks: Resolver,
        probe_soon: Callable[[Iterable[str]], None],
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
        self._buckets: dict[str, _Bucket] = {}
        self._pending: dict[str, _Pending] = {}
        self._mappings = {m.oid: m for m in config.mappings}
        self._counters: dict[tuple[str, str, str], Callable[[], None]] = {}
        self._rejected = 0

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the socket (OSError if the address is taken or privileged) and start receiving."""
        from pysnmp.carrier.asyncio.dgram import udp, udp6
        from pysnmp.entity import config as snmp_config
        from pysnmp.entity import engine
        from pysnmp.entity.rfc3413 import ntfrcv
        from pysnmp.proto.rfc1902 import OctetString

        host, port = self.address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.receive_buffer = enlarge_receive_buffer(sock)
            sock.bind((host, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.address = sock.getsockname()[:2]
        snmp_engine = engine.SnmpEngine()
        module = udp6 if family == socket.AF_INET6 else udp
        transport = module.UdpAsyncioTransport().open_server_mode(sock=sock)
        snmp_config.add_transport(snmp_engine, module.DOMAIN_NAME, transport)
        await transport._lport  # the endpoint is created in a task: wait until it is listening
        for i, community in enumerate(self.config.communities):
            snmp_config.add_v1_system(snmp_engine, f"trap-community-{i}", community.get_secret_value())
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
        ntfrcv.NotificationReceiver(snmp_engine, self._on_notification)
        self._engine = snmp_engine
        log.info("trap_listener_started", listen=f"{self.address[0]}:{self.address[1]}",
                 receive_buffer=self.receive_buffer)  # fmt: skip

    def close(self) -> None:
        for pending in self._pending.values():
            if pending.handle is not None:
                pending.handle.cancel()
        self._pending.clear()
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None

    def reconfigure(self, config: TrapsConfig) -> None:
        """Mappings and rate limits apply at once; listen address and credentials need a restart."""
        self._mappings = {m.oid: m for m in config.mappings}
        self.config = config

    # --- receiving -------------------------------------------------------------------------

    def _on_notification(
        self, snmp_engine: Any, state_reference: Any, _engine_id: Any, _context: Any, varbinds: Any, _ctx: Any
    ) -> None:
        try:
            _domain, address = snmp_engine.message_dispatcher.get_transport_info(state_reference)
            event = decode_trap(str(address[0]), varbinds, self._mappings, time.time())
        except Exception:  # a trap we cannot read must not break the receiver; it is logged and counted
            log.exception("trap_undecodable")
            self._count(UNKNOWN, UNKNOWN, "undecodable")
            return
        try:
            self.handle(event)
        except Exception:  # a bug here must not stop pysnmp's dispatcher
            log.exception("trap_handling_failed", agent=event.agent, trap=event.name)

    def count_rejected(self) -> int:
        """Fold pysnmp's own counters of notifications it refused (bad community, unknown v3 user, wrong
        digest or key, outside the time window) into monitor_snmp_traps_total{outcome="auth_failed"}:
        those never reach our callback, and must not vanish silently either."""
        if self._engine is None:
            return 0
        builder = self._engine.get_mib_builder()
        total = 0
        for module, names in _REJECTION_COUNTERS:
            for name in names:
                try:
                    (symbol,) = builder.import_symbols(module, name)
                    total += int(symbol.syntax)
                except Exception:  # a counter this pysnmp version does not keep
                    continue
        new = total - self._rejected
        if new > 0:
            self.metrics.traps.labels(UNKNOWN, UNKNOWN, "auth_failed").inc(new)
            log.warning("traps_rejected", count=new, hint="bad community or SNMPv3 credentials, or an unknown user")
        self._rejected = total
        return new

    async def watch_rejections(self, every: float = 5.0) -> None:
        while True:
            await asyncio.sleep(every)
            self.count_rejected()

    def handle(self, event: TrapEvent) -> None:
        agent = event.agent
        if not self.known_agent(agent):
            alt = event.agent_addr
            if alt and self.known_agent(alt):
                agent = event.agent = alt
            else:
                self._count(UNKNOWN, event.name, "unknown_agent")
                if self._allow(f"unknown:{agent}"):
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
            self._mark(agent, event)
            return
        self._count(agent, event.name, "accepted")
        log.info("trap_received", agent=agent, trap=event.name, trap_oid=event.trap_oid, kind=event.event,
                 if_index=event.if_index)  # fmt: skip
        self._mark(agent, event)
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

    def _mark(self, agent: str, event: TrapEvent) -> None:
        if not event.repoll:
            return
        pending = self._pending.get(agent)
        if pending is None:
            pending = self._pending[agent] = _Pending()
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
            log.debug("trap_repoll", agent=agent, checks=checks)
            self.probe_soon(checks)
