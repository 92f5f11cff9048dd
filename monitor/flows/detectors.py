"""The flow detectors of one connection: each watches one kind of misbehaviour per source host of the
organisation and returns a `Finding` (which rule, which flows) when its threshold is crossed.

Windows run on the flows' own clock (their first-seen time), not on arrival: an exporter sends a
record only at its active or inactive timeout, so arrival time says nothing about rate, and a replayed
capture is judged as it happened. Each sampled flow counts as `sampling` flows (and distinct peers),
the unbiased estimate under 1-in-N packet sampling; octets and packets come scaled already.

`build` makes the configured ones for a connection (monitor.flows.watch calls it on every reload).
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from monitor.config.flows_model import BytesPerHost, Detectors, Disallowed, NewPeer, Scan, Sustained
from monitor.config.response_model import Severity
from monitor.flows.baseline import PeerBaseline
from monitor.flows.records import Address, FlowRecord

MINUTE = 60.0
MAX_SOURCES = 4096  # source hosts tracked per detector and connection (a spoofed-source flood is bounded)
# A source over a threshold yields at most one finding per this much flow time and detector: the finding of
# each of a scan's probes would be dropped anyway (the same finding within `repeat` is in the incident), and
# building it (evidence, summary, addresses as text) made an attack cost ~1.5x a quiet minute per record.
REPORT_GRAIN = 1.0

PROTOCOL_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6", 47: "gre", 50: "esp", 132: "sctp"}


def flow_evidence(record: FlowRecord, rule: str) -> dict[str, Any]:
    """What an incident stores of one offending flow."""
    return {
        "src": str(record.src),
        "src_port": record.src_port,
        "dst": str(record.dst),
        "dst_port": record.dst_port,
        "protocol": PROTOCOL_NAMES.get(record.protocol, str(record.protocol)),
        "bytes": record.octets,
        "packets": record.packets,
        "first_seen": record.first_seen,
        "last_seen": record.last_seen,
        "exporter": record.exporter,
        "input_if": record.input_if,
        "output_if": record.output_if,
        "sampling": record.sampling,
        "rule": rule,
    }


def five_tuple(flow: dict[str, Any]) -> str:
    return f"{flow['protocol']} {flow['src']}:{flow['src_port']} -> {flow['dst']}:{flow['dst_port']}"


@dataclass
class Finding:
    connection: str
    rule: str  # disallowed, scan_hosts, scan_ports, new_peer, bytes
    severity: Severity
    dry_run: bool
    source: str  # the organisation's host
    summary: str
    # the offending flows; made into evidence (`flows`) only if the finding is reported: most are not (the
    # same source's same finding within `repeat` is in the incident already) and a flood makes one per flow
    records: Sequence[FlowRecord] = ()
    measured: float = 0.0  # what crossed the threshold (flows, hosts, ports, bytes)
    threshold: float = 0.0

    @cached_property
    def flows(self) -> list[dict[str, Any]]:
        return [flow_evidence(r, self.rule) for r in self.records]

    def detail(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "source_host": self.source,
            "measured": self.measured,
            "threshold": self.threshold,
            "dry_run": self.dry_run,
            "flows": self.flows,
        }


def _finding(
    connection: str,
    config: Disallowed | Scan | BytesPerHost | NewPeer,
    rule: str,
    record: FlowRecord,
    summary: str,
    records: Sequence[FlowRecord],
    measured: float,
    threshold: float,
) -> Finding:
    return Finding(
        connection, rule, config.severity, config.dry_run, str(record.src), summary, records, measured, threshold
    )


class FlowDetector(Protocol):
    rule_names: tuple[str, ...]

    def observe(self, record: FlowRecord, source: int, allowed_by: str | None, anomalous: bool) -> list[Finding]:
        """One flow from the organisation; `source` is key(record.src) (computed once for all detectors),
        `allowed_by` the allow rule that covers it (None: none does, or there is no allow-list),
        `anomalous` whether an earlier detector already reported it."""
        ...


def key(address: Address) -> int:
    """A dict key for an address: ints hash in C, ipaddress objects in Python (hex of the int, per lookup)."""
    value = int(address)
    return value if address.version == 4 else -value - 1  # IPv6 apart from IPv4 (::a00:1 is not 10.0.0.1)


class _Sources:
    """Per-source state, least recently used evicted beyond MAX_SOURCES."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._items: OrderedDict[int, Any] = OrderedDict()

    def get(self, key: int) -> Any:
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = self._make()
            if len(self._items) > MAX_SOURCES:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(key)
        return item


class _Window:
    """Keys seen within the last minute (flow time) with a weight, and the latest offending flows.

    At most `cap` keys are kept (the threshold, in keys): once that many are seen the window is over its
    threshold whatever else arrives, so a scan of a /16 costs the threshold's worth of memory, not the
    /16's."""

    __slots__ = ("cap", "flows", "horizon", "over_since", "reported", "seen", "weight")

    def __init__(self, keep: int, cap: int) -> None:
        self.seen: OrderedDict[Any, float] = OrderedDict()  # key -> first_seen of its latest flow
        self.weight = 1
        self.flows: deque[FlowRecord] = deque(maxlen=keep)
        self.over_since: float | None = None
        self.cap = cap
        self.horizon = 0.0  # no key is older than this: expiry is looked for only once it is passed
        self.reported = -REPORT_GRAIN  # flow time of its latest finding

    def add(self, key: Any, at: float, record: FlowRecord, span: float = MINUTE) -> None:
        seen = self.seen
        previous = seen.get(key)
        if previous is None:
            seen[key] = at
            if len(seen) > self.cap:
                seen.popitem(last=False)
        else:
            seen.move_to_end(key)  # `horizon` stays a lower bound: the keys left in front are no older
            if at > previous:
                seen[key] = at
        if record.sampling > self.weight:
            self.weight = record.sampling  # the coarsest sampling in the window
        self.flows.append(record)
        cutoff = at - span
        if self.horizon < cutoff:
            while seen:
                oldest_key, oldest = next(iter(seen.items()))
                if oldest >= cutoff:
                    self.horizon = oldest
                    break
                del seen[oldest_key]

    def estimate(self) -> int:
        return len(self.seen) * self.weight


def _sustained(state: _Window | _Bytes, over: bool, at: float, config: Sustained) -> bool:
    """Over the threshold for at least `duration` (flow time), and not reported within REPORT_GRAIN?"""
    if not over:
        state.over_since = None
        return False
    if state.over_since is None:
        state.over_since = at
    if at - state.over_since < config.duration or 0 <= at - state.reported < REPORT_GRAIN:
        return False
    state.reported = at
    return True


class _Recent:
    """One source's latest flows outside the allow-list."""

    __slots__ = ("flows", "reported")

    def __init__(self) -> None:
        self.flows: deque[FlowRecord] = deque()
        self.reported = -REPORT_GRAIN


class DisallowedDetector:
    rule_names: tuple[str, ...] = ("disallowed",)

    def __init__(self, connection: str, config: Disallowed, keep: int, enabled: bool) -> None:
        self.connection, self.config, self.keep = connection, config, keep
        self.enabled = enabled  # only with an allow-list: without one nothing is "outside" it
        self._sources = _Sources(_Recent)

    def observe(self, record: FlowRecord, source: int, allowed_by: str | None, anomalous: bool) -> list[Finding]:
        if not self.enabled or allowed_by is not None:
            return []
        state: _Recent = self._sources.get(source)
        recent = state.flows
        recent.append(record)
        while recent and recent[0].first_seen < record.first_seen - self.config.window:
            recent.popleft()
        while len(recent) > max(self.config.count, self.keep):
            recent.popleft()
        count = sum(r.sampling for r in recent)
        if count < self.config.count or 0 <= record.first_seen - state.reported < REPORT_GRAIN:
            return []
        state.reported = record.first_seen
        flows = list(recent)[-self.keep :]
        proto = PROTOCOL_NAMES.get(record.protocol, str(record.protocol))
        summary = f"flow outside the allow-list: {proto} {record.src} -> {record.dst}:{record.dst_port}"
        if self.config.count > 1:
            summary += f" ({count} such flows within {self.config.window:g}s)"
        return [_finding(self.connection, self.config, "disallowed", record, summary, flows, count, self.config.count)]


class ScanDetector:
    rule_names: tuple[str, ...] = ("scan_hosts", "scan_ports")

    def __init__(self, connection: str, config: Scan, keep: int) -> None:
        self.connection, self.config, self.keep = connection, config, keep
        hosts, ports = config.hosts_per_minute or 1, config.ports_per_minute or 1
        self._hosts = _Sources(lambda: _Window(keep, hosts))
        self._ports = _Sources(lambda: _Window(keep, ports))

    def observe(self, record: FlowRecord, source: int, allowed_by: str | None, anomalous: bool) -> list[Finding]:
        out: list[Finding] = []
        at = record.first_seen
        config = self.config
        if config.hosts_per_minute is not None:
            self._check("scan_hosts", self._hosts.get(source), key(record.dst), config.hosts_per_minute,
                        "destination hosts", record, at, out)  # fmt: skip
        if config.ports_per_minute is not None:
            self._check("scan_ports", self._ports.get(source), record.dst_port, config.ports_per_minute,
                        "destination ports", record, at, out)  # fmt: skip
        return out

    def _check(self, rule: str, window: _Window, seen: int, limit: int, what: str, record: FlowRecord, at: float,
               out: list[Finding]) -> None:  # fmt: skip
        window.add(seen, at, record)
        measured = window.estimate()
        if _sustained(window, measured >= limit, at, self.config):
            summary = f"scan from {record.src}: {measured} {what} within a minute (threshold {limit})"
            out.append(
                _finding(self.connection, self.config, rule, record, summary, list(window.flows), measured, limit)
            )


class BytesDetector:
    rule_names: tuple[str, ...] = ("bytes",)

    def __init__(self, connection: str, config: BytesPerHost, keep: int) -> None:
        self.connection, self.config, self.keep = connection, config, keep
        self._sources = _Sources(lambda: _Bytes(keep))

    def observe(self, record: FlowRecord, source: int, allowed_by: str | None, anomalous: bool) -> list[Finding]:
        state: _Bytes = self._sources.get(source)
        total = state.add(record)
        if not _sustained(state, total >= self.config.bytes_per_minute, record.first_seen, self.config):
            return []
        flows = state.largest()
        summary = (
            f"{record.src} sent {total:,.0f} bytes within a minute (threshold {self.config.bytes_per_minute:,.0f})"
        )
        return [
            _finding(self.connection, self.config, "bytes", record, summary, flows, total, self.config.bytes_per_minute)
        ]


class _Bytes:
    """Octets of one source's flows that started within the last minute (by the flows' clock), in
    per-second buckets, each with at most its `keep` largest flows as evidence (fewer after _prune):
    memory per source is bounded by the minute's seconds, not by its flows (50,000 records/s would
    otherwise be 3 million kept flows)."""

    __slots__ = ("buckets", "keep", "newest", "over_since", "reported", "total")

    def __init__(self, keep: int) -> None:
        self.buckets: dict[int, list[Any]] = {}  # second -> [octets, heap of (octets, n, record)]
        self.total = 0
        self.newest = 0  # the latest second seen: the window is the minute before it
        self.over_since: float | None = None
        self.reported = -REPORT_GRAIN
        self.keep = keep

    def add(self, record: FlowRecord) -> int:
        """The window's octets with this flow. A long flow exported at each active timeout arrives as
        several records: each carries only its own interval's octets. A flow that started more than a
        minute before the newest one is not in the window (counted to 1 s: the buckets' grain)."""
        second = int(record.first_seen)
        if second > self.newest:
            self.newest = second
            horizon = second - int(MINUTE)
            for old in [s for s in self.buckets if s <= horizon]:
                self.total -= self.buckets.pop(old)[0]
            self._prune()
        elif second <= self.newest - int(MINUTE):
            return self.total
        bucket = self.buckets.get(second)
        if bucket is None:
            bucket = self.buckets[second] = [0, []]
        bucket[0] += record.octets
        self.total += record.octets
        largest = bucket[1]
        entry = (record.octets, next(_order), record)
        if len(largest) < self.keep:
            heapq.heappush(largest, entry)
        elif record.octets > largest[0][0]:
            heapq.heapreplace(largest, entry)
        return self.total

    def _prune(self) -> None:
        """Drop the flows that can no longer be evidence: a flow with `keep` flows at least as large in
        newer seconds (which stay in the window longer than it does) is never among the window's `keep`
        largest again. Exact, and what is left is a few times `keep` per source, not `keep` per second
        (60x: 240,000 kept records for 200 busy sources)."""
        newer: list[int] = []  # the `keep` largest octets of the seconds after the one looked at
        for second in sorted(self.buckets, reverse=True):
            heap = self.buckets[second][1]
            if len(newer) == self.keep:
                floor = newer[0]
                if heap and heap[0][0] <= floor:
                    heap[:] = [e for e in heap if e[0] > floor]
                    heapq.heapify(heap)
            for octets, _, _ in heap:
                if len(newer) < self.keep:
                    heapq.heappush(newer, octets)
                elif octets > newer[0]:
                    heapq.heapreplace(newer, octets)

    def largest(self) -> list[FlowRecord]:
        entries = heapq.nlargest(self.keep, (e for _, heap in self.buckets.values() for e in heap))
        return [record for _, _, record in entries]


_order = itertools.count()  # ties between equal octets in a heap are broken by arrival, never by records


class NewPeerDetector:
    rule_names: tuple[str, ...] = ("new_peer",)

    def __init__(self, connection: str, config: NewPeer, keep: int, baseline: PeerBaseline, now: Callable[[], float]):
        self.connection, self.config, self.keep = connection, config, keep
        self.baseline = baseline
        self._now = now

    def peer(self, address: Address) -> str:
        length = self.config.prefix_v4 if address.version == 4 else self.config.prefix_v6
        return str(ipaddress.ip_network(f"{address}/{length}", strict=False))

    def observe(self, record: FlowRecord, source: int, allowed_by: str | None, anomalous: bool) -> list[Finding]:
        peer = self.peer(record.dst)
        now = self._now()
        if self.baseline.knows(peer):
            self.baseline.seen(peer, now)
            return []
        if self.baseline.learning(now, self.config.learning):
            if not anomalous:  # what another detector reports is never taught as normal
                self.baseline.learn(peer, now)
            return []
        summary = f"first-seen peer {peer} (from {record.src}, outside the learned baseline)"
        return [_finding(self.connection, self.config, "new_peer", record, summary, [record], 1, 1)]


def build(
    connection: str,
    config: Detectors,
    keep: int,
    has_allowlist: bool,
    baseline: PeerBaseline,
    now: Callable[[], float],
) -> list[FlowDetector]:
    """The configured detectors in evaluation order (new_peer last: it must know whether the others
    found the flow anomalous)."""
    out: list[FlowDetector] = []
    if config.disallowed is not None:
        out.append(DisallowedDetector(connection, config.disallowed, keep, has_allowlist))
    if config.scan is not None:
        out.append(ScanDetector(connection, config.scan, keep))
    if config.bytes is not None:
        out.append(BytesDetector(connection, config.bytes, keep))
    if config.new_peer is not None:
        out.append(NewPeerDetector(connection, config.new_peer, keep, baseline, now))
    return out
