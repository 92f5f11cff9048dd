"""The flow policy as a FlowSink: each decoded record is mapped to its `security.connections[]` entry,
judged by that connection's allow-list and detectors, and what they find goes to `report` (the security
intake, which opens or extends the connection's incident). It also remembers the latest flow of each
connection, which is how a cut is verified by flows (monitor.security.execute).

Mapping, in order: the exporter's address and the flow's ingress ifIndex are the connection's edge
device and the ifIndex its SNMP interface check polled, and its egress ifIndex is another (the flow
entered our edge from the organisation); else the flow's source address is inside the connection's
address ranges. An exporter that reports the same ifIndex both ways (softflowd on one interface cannot
tell direction) is mapped by addresses alone. Flows towards the organisation are not judged (replies to
allowed traffic would all be "outside" an allow-list).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from monitor.clock import Clock
from monitor.config.flows_model import FlowPolicy
from monitor.config.security_model import Connection
from monitor.core.inventory import Inventory
from monitor.flows import detectors
from monitor.flows.baseline import PeerBaseline
from monitor.flows.detectors import Finding, FlowDetector
from monitor.flows.policy import Allowlist
from monitor.flows.policy_metrics import FlowPolicyMetrics
from monitor.flows.records import Address, FlowRecord

log = structlog.get_logger()
INDEX_REFRESH = 10.0  # seconds: an interface check's ifIndex becomes known after its first poll
UNUSED_CHECK = 300.0  # how often unused allow rules are looked for

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class Activity:
    """The latest flow from a connection's organisation."""

    last_seen: float  # its last packet, by the exporter's clock
    received: float  # when it arrived, by ours
    records: int = 0  # records since the daemon started


class _Index:
    """Connection by (exporter, ingress ifIndex), else by source prefix (longest match)."""

    def __init__(self, inventory: Inventory, ifindex: Callable[[str], int | None]) -> None:
        self.by_interface: dict[tuple[str, int], str] = {}
        self.by_prefix: dict[int, dict[tuple[int, int], str]] = {}  # prefix length -> (version, network) -> name
        security = inventory.security
        for connection in security.connections if security is not None else ():
            check = inventory.checks.get(connection.check)
            index = ifindex(connection.check) if check is not None else None
            if index is not None and check is not None:
                exporters = connection.flows.exporters if connection.flows and connection.flows.exporters else []
                for exporter in exporters or [check.target.address]:
                    self.by_interface.setdefault((exporter, index), connection.name)
            for network in connection.addresses:
                table = self.by_prefix.setdefault(network.prefixlen, {})
                table.setdefault((network.version, int(network.network_address)), connection.name)
        self.lengths = sorted(self.by_prefix, reverse=True)

    def connection_of(self, record: FlowRecord) -> str | None:
        if record.input_if is not None and record.output_if != record.input_if:
            found = self.by_interface.get((record.exporter, record.input_if))
            if found is not None:
                return found
        return self.by_address(record.src)

    def by_address(self, address: Address) -> str | None:
        value, bits = int(address), address.max_prefixlen
        for length in self.lengths:
            found = self.by_prefix[length].get((address.version, value >> (bits - length) << (bits - length)))
            if found is not None:
                return found
        return None


@dataclass
class _Policy:
    """One connection's compiled policy and detector state (kept across reloads that do not change it)."""

    config: FlowPolicy
    inventory_id: int
    allowlist: Allowlist
    detectors: list[FlowDetector]
    loaded_at: float
    last_match: dict[str, float] = field(default_factory=dict)
    reported: dict[tuple[str, int], float] = field(default_factory=dict)  # (rule, source host key) -> when
    flagged: dict[int, float] = field(default_factory=dict)  # source host (detectors.key) -> when last reported


class FlowWatch:
    def __init__(
        self,
        inventory: Callable[[], Inventory],
        ifindex: Callable[[str], int | None],
        clock: Clock,
        report: Callable[[Finding], None],
        metrics: FlowPolicyMetrics,
    ) -> None:
        self._inventory = inventory
        self._ifindex = ifindex
        self._clock = clock
        self._report = report  # the security intake's entry point for flow findings
        self.metrics = metrics
        self.baselines: dict[str, PeerBaseline] = {}
        self.activity: dict[str, Activity] = {}
        self._policies: dict[str, _Policy] = {}
        self._index: _Index | None = None
        self._index_of: tuple[int, float] = (0, 0.0)  # (id of the inventory, when built)
        self._unused_checked = 0.0

    # --- the FlowSink ----------------------------------------------------------------------

    def on_flows(self, records: list[FlowRecord]) -> None:
        now = self._clock.now()
        inventory = self._inventory()
        index = self._current_index(inventory, now)
        # counted per datagram, not per record: a labelled child's lookup costs more than judging a flow
        tally: dict[tuple[str, str, str], int] = {}
        unmapped = 0
        touched: set[str] = set()
        for record in records:
            name = index.connection_of(record)
            if name is None:
                unmapped += 1
                continue
            self._note_activity(name, record, now)
            touched.add(name)
            policy = self._policy(name, inventory, now)
            if policy is not None:
                judged, rule = self._judge(name, policy, record, now)
                tally[(name, judged, rule)] = tally.get((name, judged, rule), 0) + 1
        if unmapped:
            self.metrics.unmapped.inc(unmapped)
        for (name, judged, rule), count in tally.items():
            self.metrics.records.labels(name, judged).inc(count)
            if rule:
                self.metrics.allow_matches.labels(name, rule).inc(count)
        for name in touched:
            self.metrics.last_flow.labels(name).set(self.activity[name].last_seen)
        if now - self._unused_checked >= UNUSED_CHECK:
            self.check_unused(now)

    def _note_activity(self, name: str, record: FlowRecord, now: float) -> None:
        seen = self.activity.get(name)
        if seen is None:
            seen = self.activity[name] = Activity(record.last_seen, now)
        elif record.last_seen >= seen.last_seen:
            seen.last_seen, seen.received = record.last_seen, now
        seen.records += 1

    def _judge(self, name: str, policy: _Policy, record: FlowRecord, now: float) -> tuple[str, str]:
        """Run the detectors on one flow; (verdict, allow rule or "") for the metrics."""
        allowed_by = policy.allowlist.match(record)
        if allowed_by is not None:
            policy.last_match[allowed_by] = now
            verdict = ("allowed", allowed_by)
        else:
            verdict = ("unlisted" if policy.allowlist.rules else "unjudged", "")
        src = detectors.key(record.src)
        # a flow is anomalous (never learned as normal) when it is outside the allow-list or its source is
        # under report by any detector
        flagged = policy.flagged.get(src)
        anomalous = (allowed_by is None and bool(policy.allowlist.rules)) or (
            flagged is not None and now - flagged < policy.config.repeat
        )
        for detector in policy.detectors:
            for finding in detector.observe(record, src, allowed_by, anomalous):
                anomalous = True
                self._found(policy, finding, src, now)
        return verdict

    def _found(self, policy: _Policy, finding: Finding, src: int, now: float) -> None:
        """Reported unless this source's same finding was within `repeat`. This runs for every flow of a
        source over a threshold (a scan's every probe): it must cost a dict lookup, not a parse."""
        key = (finding.rule, src)
        policy.flagged[src] = now
        last = policy.reported.get(key)
        if last is not None and now - last < policy.config.repeat:
            return  # this source's same finding is in the incident already
        policy.reported[key] = now
        if len(policy.reported) > 10_000:  # hostile input: forget the oldest
            for old in sorted(policy.reported, key=policy.reported.__getitem__)[:5000]:
                del policy.reported[old]
            policy.flagged = {s: t for s, t in policy.flagged.items() if now - t < policy.config.repeat}
        if finding.dry_run:
            self.metrics.dry_run.labels(finding.connection, finding.rule).inc()
        else:
            self.metrics.violations.labels(finding.connection, finding.rule).inc()
        log.warning(
            "flow_violation",
            connection=finding.connection,
            rule=finding.rule,
            source_host=finding.source,
            dry_run=finding.dry_run,
            summary=finding.summary,
            flows=len(finding.flows),
        )
        self._report(finding)

    # --- configuration ---------------------------------------------------------------------

    def _current_index(self, inventory: Inventory, now: float) -> _Index:
        built_for, built_at = self._index_of
        if self._index is None or built_for != id(inventory) or now - built_at >= INDEX_REFRESH:
            self._index = _Index(inventory, self._ifindex)
            self._index_of = (id(inventory), now)
        return self._index

    def _policy(self, name: str, inventory: Inventory, now: float) -> _Policy | None:
        current = self._policies.get(name)
        if current is not None and current.inventory_id == id(inventory):
            return current
        connection = _connection(inventory, name)
        if connection is None or connection.flows is None:
            self._policies.pop(name, None)
            return None
        config = connection.flows
        allowlist = Allowlist(config.allow, inventory.estate)  # a shard's too: the names of every shard
        if current is not None and current.config == config and current.allowlist.rules == allowlist.rules:
            current.inventory_id = id(inventory)  # a reload that changed nothing here keeps the state
            return current
        for problem in allowlist.problems:
            log.error("flow_policy_problem", connection=name, problem=problem)
        baseline = self.baselines.setdefault(name, PeerBaseline())
        built = detectors.build(
            name, config.detectors, config.evidence_flows, bool(allowlist.rules), baseline, self._clock.now
        )
        policy = _Policy(config, id(inventory), allowlist, built, now)
        if current is not None:  # rules that survive the reload keep their last match
            policy.last_match = {r: t for r, t in current.last_match.items() if r in {x.name for x in allowlist.rules}}
            policy.loaded_at = current.loaded_at
        self._policies[name] = policy
        return policy

    def check_unused(self, now: float) -> list[tuple[str, str]]:
        """Allow rules that matched nothing for their connection's `unused_after`: the metric, a log line,
        and the list (for the API and check-config)."""
        self._unused_checked = now
        inventory = self._inventory()
        unused = []
        for name, policy in list(self._policies.items()):
            if _connection(inventory, name) is None:
                del self._policies[name]
                continue
            for rule in policy.allowlist.rules:
                since = policy.last_match.get(rule.name, policy.loaded_at)
                idle = now - since >= policy.config.unused_after
                self.metrics.allow_unused.labels(name, rule.name).set(1 if idle else 0)
                if idle:
                    unused.append((name, rule.name))
        for name, rule_name in unused:
            log.warning("flow_allow_rule_unused", connection=name, rule=rule_name)
        return unused

    def status(self, now: float) -> list[dict[str, Any]]:
        """Per connection with a flow policy: its allow rules (last match, unused), destinations that
        resolved to nothing, the latest flow, the learned baseline (GET /api/v1/security/flows)."""
        inventory = self._inventory()
        security = inventory.security
        out = []
        for connection in security.connections if security is not None else ():
            if connection.flows is None:
                continue
            policy = self._policy(connection.name, inventory, now)
            assert policy is not None
            seen = self.activity.get(connection.name)
            baseline = self.baselines.get(connection.name)
            rules = []
            for rule in policy.allowlist.rules:
                last = policy.last_match.get(rule.name)
                idle = now - (last if last is not None else policy.loaded_at)
                rules.append({"name": rule.name, "last_match": last, "unused": idle >= policy.config.unused_after,
                              "networks": len(rule.networks)})  # fmt: skip
            out.append(
                {
                    "connection": connection.name,
                    "allow": rules,
                    "problems": policy.allowlist.problems,
                    "detectors": [n for d in policy.detectors for n in d.rule_names],
                    "latest_flow": seen.last_seen if seen is not None else None,
                    "records": seen.records if seen is not None else 0,
                    "baseline_peers": len(baseline.peers) if baseline is not None else 0,
                    "learning_since": baseline.since if baseline is not None else None,
                }
            )
        return out

    # --- the learned baselines (stored by the security desk) ---------------------------------

    def load_baselines(self, peers: dict[tuple[str, str], tuple[float, float]]) -> None:
        by_connection: dict[str, dict[str, tuple[float, float]]] = {}
        for (connection, peer), times in peers.items():
            by_connection.setdefault(connection, {})[peer] = times
        self.baselines = {c: PeerBaseline(p) for c, p in by_connection.items()}
        self._policies.clear()  # detectors hold their baseline: rebuild them on the loaded ones

    def take_dirty(self) -> dict[tuple[str, str], tuple[float, float]]:
        out = {}
        for connection, baseline in self.baselines.items():
            for peer, times in baseline.take_dirty().items():
                out[(connection, peer)] = times
        return out


def _connection(inventory: Inventory, name: str) -> Connection | None:
    security = inventory.security
    if security is None:
        return None
    return next((c for c in security.connections if c.name == name), None)
