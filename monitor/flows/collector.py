"""The NetFlow v9 / IPFIX listener: one UDP socket, beside the trap listener and built like it.

Every datagram is accounted for in monitor_flow_datagrams_total{exporter, outcome}: accepted,
rate_limited (the exporter is over flows.rate_limit: its templates and sampling are still learned, its
flows counted and dropped), unknown_exporter (a source not in flows.exporters: dropped unread, as a
spoofed flood must cost nothing), undecodable (not v9 / IPFIX). What was inside is counted per record
(monitor_flow_records_total), per data set without a template (monitor_flow_missing_template_total),
per malformed set or template (monitor_flow_malformed_total{reason}); sequence gaps per exporter and
domain tell what the network lost on the way, and SO_RXQ_OVFL what our own socket lost
(monitor_flow_dropped_total{reason="kernel"}): a local loss is never reported as the exporter's.

Why the socket is read directly (not a DatagramProtocol): as with traps, it is drained in batches with
recvmsg so the kernel's drop counter comes with the datagrams, and the loop gets a turn between batches
(probes and HTTP go on during a burst of export).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.config.flows import FlowsConfig
from monitor.flows.decode import FlowDecoder, Outcome
from monitor.flows.records import FlowSink
from monitor.traps.receiver import ANCILLARY, SO_RXQ_OVFL, bind_udp, proc_udp_drops

log = structlog.get_logger()
UNKNOWN = "unknown"
READ_BATCH = 256  # datagrams read per wake-up (~30 records each) before the loop gets a turn
# ...or sooner, once this much time is spent: at 11-30 us a record, 256 datagrams would hold the loop 85-230 ms,
# and the probes' timers (whose lateness is their measured latency) share this loop. The socket stays
# readable, so the rest is read on the next turn; the kernel buffer absorbs the difference.
READ_BUDGET = 0.005
MAX_DATAGRAM = 65535
SWEEP_SECONDS = 30.0  # template expiry and the kernel's drop counter are looked at this often
DATAGRAM_OUTCOMES = ("accepted", "rate_limited", "undecodable")


class FlowMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.datagrams = Counter(
            "monitor_flow_datagrams_total",
            "Flow export datagrams received, by exporter and outcome: accepted, rate_limited, undecodable, "
            'unknown_exporter (exporter="unknown": not in flows.exporters, dropped unread).',
            ["exporter", "outcome"],
            registry=registry,
        )
        self.records = Counter(
            "monitor_flow_records_total",
            "Flow records in accepted datagrams, by exporter and outcome: decoded (handed to the flow policy), "
            "options (sampling announcements), not_ip (templates without IP addresses), rate_limited.",
            ["exporter", "outcome"],
            registry=registry,
        )
        self.missing_template = Counter(
            "monitor_flow_missing_template_total",
            "Data sets whose template was not (or no longer) known: not decoded, never guessed; the exporter "
            "re-sends its templates periodically.",
            ["exporter"],
            registry=registry,
        )
        self.malformed = Counter(
            "monitor_flow_malformed_total",
            "Malformed parts of accepted datagrams, by exporter and reason (truncated_set, truncated_record, "
            "truncated_template, truncated_message, bad_set_length, reserved_set, invalid_template, "
            "trailing_bytes, too_many_templates, too_many_domains); the valid rest is kept.",
            ["exporter", "reason"],
            registry=registry,
        )
        self.template_events = Counter(
            "monitor_flow_template_events_total",
            "Template cache events by exporter: learned, refreshed, replaced (same id, new fields), withdrawn "
            "(IPFIX), expired (not refreshed within flows.template_timeout).",
            ["exporter", "event"],
            registry=registry,
        )
        self.templates = Gauge(
            "monitor_flow_templates",
            "Templates (data and options) currently known per exporter, all observation domains.",
            ["exporter"],
            registry=registry,
        )
        self.sequence_gaps = Counter(
            "monitor_flow_sequence_gaps_total",
            "Export messages whose sequence number skipped ahead, per exporter and observation domain: loss "
            "between the exporter and us.",
            ["exporter", "domain"],
            registry=registry,
        )
        self.sequence_lost = Counter(
            "monitor_flow_sequence_lost_total",
            "What the sequence gaps add up to: export packets for NetFlow v9 (RFC 3954), data records for "
            "IPFIX (RFC 7011).",
            ["exporter", "domain"],
            registry=registry,
        )
        self.sequence_resets = Counter(
            "monitor_flow_sequence_resets_total",
            "Export messages whose sequence number went backwards (the exporter restarted, or reordering).",
            ["exporter", "domain"],
            registry=registry,
        )
        self.decode_seconds = Histogram(
            "monitor_flow_decode_seconds",
            "Time to decode one export datagram (templates, records, accounting), sinks excluded.",
            buckets=(1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1),
            registry=registry,
        )
        self.sink_seconds = Histogram(
            "monitor_flow_sink_seconds",
            "Time the flow consumers (policy, detectors) took for one datagram's records.",
            buckets=(1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 0.1),
            registry=registry,
        )
        self.last_seen = Gauge(
            "monitor_flow_exporter_last_seen_timestamp_seconds",
            "When the last accepted datagram of each exporter arrived: a silent exporter means no detection.",
            ["exporter"],
            registry=registry,
        )
        self.dropped = Counter(
            "monitor_flow_dropped_total",
            "Export datagrams lost before they could be read: kernel (our socket's receive queue was full: a "
            "local loss, not the exporter's).",
            ["reason"],
            registry=registry,
        )
        self.dropped.labels("kernel")  # at 0 from the start: rate() and alerts see the first drop
        self.up = Gauge(
            "monitor_flow_collector_up",
            "1 while the flow collector is bound to its address, 0 when binding it failed (address taken by "
            "another process, privileged port): then nothing is detected from flows, a local failure. Absent when "
            "not configured.",
            ["listen"],
            registry=registry,
        )


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class ExporterList:
    """Which sources are exporters: exact addresses and prefixes of flows.exporters."""

    def __init__(self, config: FlowsConfig) -> None:
        self.networks: list[IPv4Network | IPv6Network] = [e.network() for e in config.exporters]
        self.sampling: dict[str, int] = {}  # configured sampling of single-address exporters
        self._prefix_sampling: list[tuple[IPv4Network | IPv6Network, int]] = []
        for exporter in config.exporters:
            network = exporter.network()
            if exporter.sampling is not None:
                if network.num_addresses == 1:
                    self.sampling[str(network.network_address)] = exporter.sampling
                else:
                    self._prefix_sampling.append((network, exporter.sampling))
        self._cache: dict[str, bool] = {}

    def known(self, address: str) -> bool:
        known = self._cache.get(address)
        if known is None:
            try:
                ip = ip_address(address)
            except ValueError:
                return False
            known = any(ip in n for n in self.networks)
            if len(self._cache) > 65536:  # spoofed sources must not grow it without bound
                self._cache.clear()
            self._cache[address] = known
        return known

    def configured_sampling(self, address: str) -> int | None:
        if address in self.sampling:
            return self.sampling[address]
        ip = ip_address(address)
        return next((rate for network, rate in self._prefix_sampling if ip in network), None)


def _plain(address: str) -> str:
    """An IPv4-mapped IPv6 source (a dual-stack socket) as the IPv4 address it is."""
    return address[7:] if address.startswith("::ffff:") and "." in address else address


class FlowCollector:
    def __init__(
        self,
        config: FlowsConfig,
        metrics: FlowMetrics,
        sinks: Sequence[FlowSink],
        listen: tuple[str, int] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.sinks = sinks  # the daemon's list: consumers added later are called too
        self.address = listen or config.listen_address()
        self.clock = clock
        self.exporters = ExporterList(config)
        self.decoder = FlowDecoder(config.template_timeout, self.exporters.configured_sampling)
        self.receive_buffer = 0
        self._sock: socket.socket | None = None
        self._buckets: dict[str, _Bucket] = {}
        self._log_budget: dict[str, _Bucket] = {}
        self._kernel_drops = 0
        self._counters: dict[tuple[str, ...], Callable[..., None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind (OSError if the address is taken) and start receiving."""
        sock, self.receive_buffer = bind_udp(*self.address, self.config.receive_buffer)
        self.address = sock.getsockname()[:2]
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())
        if self.receive_buffer < self.config.receive_buffer:
            log.warning("flow_receive_buffer_small", wanted=self.config.receive_buffer, got=self.receive_buffer,
                        hint="run as root or raise net.core.rmem_max")  # fmt: skip
        log.info("flow_collector_started", listen=f"{self.address[0]}:{self.address[1]}",
                 exporters=len(self.config.exporters), receive_buffer=self.receive_buffer)  # fmt: skip

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._sock is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def reconfigure(self, config: FlowsConfig) -> None:
        """Exporters, sampling, rate limit and template timeout apply at once; listen needs a restart.
        Exporters no longer listed lose their templates (their export is refused from now on)."""
        self.config = config
        self.exporters = ExporterList(config)
        self.decoder.sampling = self.exporters.configured_sampling
        self.decoder.template_timeout = config.template_timeout
        for exporter in list(self.decoder.domains):
            if not self.exporters.known(exporter):
                self.decoder.forget(exporter)
                self.metrics.templates.labels(exporter).set(0)
            else:  # a changed configured sampling applies to domains already known
                rate = self.exporters.configured_sampling(exporter)
                for domain in self.decoder.domains[exporter].values():
                    domain.sampling.configured = rate

    # --- receiving -------------------------------------------------------------------------

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        overflow: int | None = None
        deadline = time.perf_counter() + READ_BUDGET
        for _ in range(READ_BATCH):
            if time.perf_counter() > deadline:
                break
            try:
                data, ancillary, _flags, address = sock.recvmsg(MAX_DATAGRAM, ANCILLARY)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. an ICMP error queued on the socket: not export
                log.debug("flow_socket_error", error=str(exc))
                break
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(value) >= 4:
                    overflow = int.from_bytes(value[:4], sys.byteorder)
            self.datagram(data, _plain(str(address[0])))
        if overflow is not None:
            self._note_kernel_drops(overflow)

    def datagram(self, data: bytes, exporter: str) -> Outcome | None:
        """One datagram from `exporter`: decoded, accounted for, its flows handed to the sinks."""
        if not self.exporters.known(exporter):
            self._count("datagrams", UNKNOWN, "unknown_exporter")
            if self._allow(self._log_budget, "unknown", 1.0, 10):  # one budget for all: sources are easy to spoof
                log.warning("flow_from_unknown_exporter", exporter=exporter, hint="add it to flows.exporters")
            return None
        now = self.clock()
        limit = self.config.rate_limit
        allowed = self._allow(self._buckets, exporter, limit.per_second, limit.burst)
        started = time.perf_counter()
        try:
            outcome = self.decoder.decode(data, exporter, now, decode_data=allowed)
        except Exception:  # a decoder bug must not stop the collector: counted and logged, once in a while
            self._count("datagrams", exporter, "undecodable")
            if self._allow(self._log_budget, "bug", 1.0, 5):
                log.exception("flow_decode_failed", exporter=exporter, size=len(data))
            return None
        self.metrics.decode_seconds.observe(time.perf_counter() - started)
        if outcome.version == 0:
            self._count("datagrams", exporter, "undecodable")
            return outcome
        self._count("datagrams", exporter, "accepted" if allowed else "rate_limited")
        self.metrics.last_seen.labels(exporter).set(now)
        self._account(exporter, outcome)
        if outcome.records:
            self._deliver(exporter, outcome)
        return outcome

    def _account(self, exporter: str, outcome: Outcome) -> None:
        records = outcome.records
        if records:
            self._count("records", exporter, "decoded", n=len(records))
        if outcome.rate_limited:
            self._count("records", exporter, "rate_limited", n=outcome.rate_limited)
        if outcome.options:
            self._count("records", exporter, "options", n=outcome.options)
        if outcome.not_ip:
            self._count("records", exporter, "not_ip", n=outcome.not_ip)
        if outcome.missing_template:
            self._count("missing_template", exporter, n=outcome.missing_template)
        for reason in outcome.malformed:
            self._count("malformed", exporter, reason)
        if outcome.malformed and self._allow(self._log_budget, exporter, 0.2, 5):
            log.warning("flow_malformed", exporter=exporter, domain=outcome.domain, reasons=outcome.malformed)
        if outcome.templates:
            for event in outcome.templates:
                self._count("template_events", exporter, event)
            self.metrics.templates.labels(exporter).set(self.decoder.template_count(exporter))
        if outcome.gap or outcome.reset:
            domain = str(outcome.domain)
            if outcome.gap:
                self._count("sequence_gaps", exporter, domain)
                self._count("sequence_lost", exporter, domain, n=outcome.lost)
            else:
                self._count("sequence_resets", exporter, domain)

    def _deliver(self, exporter: str, outcome: Outcome) -> None:
        started = time.perf_counter()
        for sink in self.sinks:
            try:
                sink.on_flows(outcome.records)
            except Exception:  # a consumer's bug: the collector and the other consumers go on
                if self._allow(self._log_budget, "sink", 1.0, 5):
                    log.exception("flow_sink_failed", exporter=exporter)
        self.metrics.sink_seconds.observe(time.perf_counter() - started)

    def _count(self, family: str, *labels: str, n: int = 1) -> None:
        key = (family, *labels)
        inc = self._counters.get(key)
        if inc is None:
            metric: Counter = {
                "datagrams": self.metrics.datagrams,
                "records": self.metrics.records,
                "missing_template": self.metrics.missing_template,
                "malformed": self.metrics.malformed,
                "template_events": self.metrics.template_events,
                "sequence_gaps": self.metrics.sequence_gaps,
                "sequence_lost": self.metrics.sequence_lost,
                "sequence_resets": self.metrics.sequence_resets,
            }[family]
            inc = self._counters[key] = metric.labels(*labels).inc
        inc(n)

    @staticmethod
    def _allow(buckets: dict[str, _Bucket], key: str, per_second: float, burst: int) -> bool:
        """Token bucket per key: `per_second`, bursts of `burst`."""
        now = time.monotonic()
        bucket = buckets.get(key)
        if bucket is None:
            if len(buckets) > 100_000:
                buckets.clear()
            bucket = buckets[key] = _Bucket(float(burst), now)
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.at) * per_second)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    # --- housekeeping ----------------------------------------------------------------------

    def sweep(self) -> None:
        """Expire stale templates (counted, and the gauge follows) and read the kernel's drop count."""
        for exporter, count in self.decoder.expire(self.clock()).items():
            self.metrics.template_events.labels(exporter, "expired").inc(count)
            self.metrics.templates.labels(exporter).set(self.decoder.template_count(exporter))
        if self._sock is not None:
            total = proc_udp_drops(self._sock)
            if total is not None:
                self._note_kernel_drops(total)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                self.sweep()
            except Exception:
                log.exception("flow_sweep_failed")

    def _note_kernel_drops(self, total: int) -> None:
        if total > self._kernel_drops:
            new = total - self._kernel_drops
            self._kernel_drops = total
            self.metrics.dropped.labels("kernel").inc(new)
            log.warning("flows_dropped_by_kernel", count=new, receive_buffer=self.receive_buffer,
                        hint="raise flows.receive_buffer (or net.core.rmem_max)")  # fmt: skip


async def start_collector(
    config: FlowsConfig, metrics: FlowMetrics, sinks: Sequence[FlowSink], listen: tuple[str, int] | None = None
) -> FlowCollector | None:
    """The collector, listening; None (logged) when its address cannot be bound: the daemon still probes."""
    collector = FlowCollector(config, metrics, sinks, listen)
    try:
        await collector.start()
    except OSError as exc:
        host, port = collector.address
        log.error("flow_collector_failed", listen=f"{host}:{port}", error=exc.strerror or str(exc))
        metrics.up.labels(f"{host}:{port}").set(0)
        return None
    host, port = collector.address
    metrics.up.labels(f"{host}:{port}").set(1)
    return collector
