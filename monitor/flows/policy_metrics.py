"""Metric families of the flow policy (the collector's own are declared beside the collector)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class FlowPolicyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.violations = Counter(
            "monitor_flow_violations_total",
            "Flow policy violations reported to the connection's security incident, by connection and rule.",
            ["connection", "rule"],
            registry=registry,
        )
        self.dry_run = Counter(
            "monitor_flow_dry_run_violations_total",
            "Violations found by detectors in dry_run (logged and audited, no incident), by connection and rule.",
            ["connection", "rule"],
            registry=registry,
        )
        self.records = Counter(
            "monitor_flow_policy_records_total",
            "Flow records judged by a connection's policy: allowed by a rule, unlisted (no rule covers it) or"
            " unjudged (the connection has no allow-list).",
            ["connection", "verdict"],
            registry=registry,
        )
        self.unmapped = Counter(
            "monitor_flow_unmapped_records_total",
            "Flow records not from a configured connection's organisation (neither exporter + ingress ifIndex nor"
            " address ranges match): other traffic, and traffic towards the organisations.",
            registry=registry,
        )
        self.allow_matches = Counter(
            "monitor_flow_allow_matches_total",
            "Flow records an allow rule matched, by connection and rule.",
            ["connection", "rule"],
            registry=registry,
        )
        self.allow_unused = Gauge(
            "monitor_flow_allow_unused",
            "1 for an allow rule that matched no flow for its connection's unused_after (a week by default):"
            " a typo in the policy, or a service nobody uses.",
            ["connection", "rule"],
            registry=registry,
        )
        self.last_flow = Gauge(
            "monitor_flow_last_seen_timestamp_seconds",
            "When the latest flow from the connection's organisation ended (exporter's clock).",
            ["connection"],
            registry=registry,
        )
