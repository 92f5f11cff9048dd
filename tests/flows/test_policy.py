"""The flow policy judged on records fed straight to the sink (the collector that decodes them is tested
on its own): mapping to the connection, allow rules resolved from the inventory, each detector with its
thresholds corrected for sampling, dry runs, the learned baseline, and allow rules nobody uses."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from monitor.config.loader import ConfigError
from monitor.flows.detectors import Finding
from monitor.flows.policy import CompiledRule
from monitor.flows.policy_metrics import FlowPolicyMetrics
from monitor.flows.watch import FlowWatch
from tests.conftest import Loader
from tests.flows.conftest import ASP_MAIL, EDGE, IFINDEX, config_text, flow


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def now(self) -> float:
        return self.t


class Harness:
    def __init__(self, load: Loader, flows: str | None = None) -> None:
        loaded = load(config_text(flows) if flows is not None else config_text())
        self.inventory = loaded.inventory
        self.clock = Clock()
        self.found: list[Finding] = []
        self.registry = CollectorRegistry()
        self.watch = FlowWatch(
            lambda: self.inventory,
            lambda check: IFINDEX if check == "edge/uplink" else None,
            self.clock,
            self.found.append,
            FlowPolicyMetrics(self.registry),
        )

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def rules(self) -> list[str]:
        return [f.rule for f in self.found]


def test_allowed_flows_find_nothing_and_names_resolve_to_addresses(load_yaml_config: Loader) -> None:
    h = Harness(load_yaml_config)
    h.watch.on_flows([flow(dst=ASP_MAIL, dport=587), flow(dport=443), flow(dst="10.1.1.53", dport=53, proto=17)])
    assert h.found == []
    assert h.metric("monitor_flow_allow_matches_total", connection="city-a", rule="mail") == 1
    assert h.metric("monitor_flow_allow_matches_total", connection="city-a", rule="asp-web") == 1
    assert h.metric("monitor_flow_policy_records_total", connection="city-a", verdict="allowed") == 3


def test_a_disallowed_port_is_found_with_its_flow_as_evidence(load_yaml_config: Loader) -> None:
    h = Harness(load_yaml_config)
    h.watch.on_flows([flow(dst="10.200.0.80", dport=445, octets=4321, packets=9)])
    assert h.rules() == ["disallowed"]
    finding = h.found[0]
    assert finding.connection == "city-a" and finding.source == "10.13.1.5" and finding.severity == "major"
    [evidence] = finding.flows
    assert evidence | {"first_seen": 0} == {
        "src": "10.13.1.5", "src_port": 40000, "dst": "10.200.0.80", "dst_port": 445, "protocol": "tcp",
        "bytes": 4321, "packets": 9, "first_seen": 0, "last_seen": 1_000_001.0, "exporter": EDGE,
        "input_if": None, "output_if": None, "sampling": 1, "rule": "disallowed",
    }  # fmt: skip
    assert h.metric("monitor_flow_violations_total", connection="city-a", rule="disallowed") == 1
    # the same source's same finding again within `repeat` is not reported again (the incident has it)
    h.watch.on_flows([flow(dst="10.200.0.81", dport=445)])
    assert h.rules() == ["disallowed"]
    h.clock.t += 61
    h.watch.on_flows([flow(dst="10.200.0.82", dport=445, at=1_000_061.0)])
    assert h.rules() == ["disallowed", "disallowed"]


def test_a_destination_outside_every_range_is_disallowed(load_yaml_config: Loader) -> None:
    h = Harness(load_yaml_config)
    h.watch.on_flows([flow(dst="203.0.113.9", dport=443)])
    assert h.rules() == ["disallowed"]
    assert "203.0.113.9:443" in h.found[0].summary


def test_a_scan_of_hosts_and_of_ports(load_yaml_config: Loader) -> None:
    h = Harness(load_yaml_config)
    # fan-out over hosts on an allowed port: no single flow is disallowed, the pattern is
    h.watch.on_flows([flow(dst=f"10.200.1.{i}", dport=443, at=1_000_000.0 + i) for i in range(9)])
    assert h.found == []
    h.watch.on_flows([flow(dst="10.200.1.99", dport=443, at=1_000_010.0)])
    assert h.rules() == ["scan_hosts"]
    assert h.found[0].measured == 10 and h.found[0].severity == "critical" and len(h.found[0].flows) == 10
    # a port scan of one host from another source (ports outside the allow-list are also disallowed)
    h.watch.on_flows([flow(src="10.13.2.2", dst="10.200.0.80", dport=p) for p in range(1, 11)])
    assert sorted(f.rule for f in h.found if f.source == "10.13.2.2") == ["disallowed", "scan_ports"]


def test_hosts_outside_the_minute_do_not_count(load_yaml_config: Loader) -> None:
    h = Harness(load_yaml_config)
    h.watch.on_flows([flow(dst=f"10.200.1.{i}", dport=443, at=1_000_000.0 + 7 * i) for i in range(30)])
    assert h.found == []  # one new host every 7 s: at most 9 within any minute (by the flows' own clock)


def test_sampling_scales_the_fan_out_estimate(load_yaml_config: Loader) -> None:
    h = Harness(load_yaml_config)
    # 1-in-4 sampling: 3 hosts seen stand for 12 probed
    h.watch.on_flows([flow(dst=f"10.200.1.{i}", dport=443, sampling=4) for i in range(3)])
    assert h.rules() == ["scan_hosts"] and h.found[0].measured == 12


def test_bytes_per_source_host_with_a_duration(load_yaml_config: Loader) -> None:
    flows = """
        allow: [{name: asp-web, to: ["10.200.0.0/16"], protocol: tcp, ports: [443]}]
        detectors:
          bytes: {bytes_per_minute: 1000000, duration: 30s, severity: critical}
    """
    h = Harness(load_yaml_config, flows)
    h.watch.on_flows([flow(octets=600_000, at=1_000_000.0), flow(octets=600_000, at=1_000_010.0)])
    assert h.found == []  # above the threshold, not yet for 30 s
    h.watch.on_flows([flow(octets=600_000, at=1_000_030.0)])
    assert h.found == []  # over since t+10, for 20 s so far
    h.watch.on_flows([flow(octets=600_000, at=1_000_040.0)])
    assert h.rules() == ["bytes"]
    assert h.found[0].measured >= 1_000_000 and h.found[0].flows[0]["bytes"] == 600_000


def test_mapping_by_exporter_and_ingress_ifindex(load_yaml_config: Loader) -> None:
    h = Harness(load_yaml_config)
    # a source outside the organisation's ranges, but entering our edge on its interface: still its flow
    h.watch.on_flows([flow(src="172.16.9.9", dport=445, input_if=IFINDEX)])
    assert h.rules() == ["disallowed"] and h.found[0].flows[0]["input_if"] == IFINDEX
    # the same ifIndex on another exporter is not this connection; neither is traffic towards the organisation
    h.watch.on_flows([flow(src="172.16.9.10", dport=445, input_if=IFINDEX, exporter="192.0.2.99")])
    h.watch.on_flows([flow(src="10.200.0.80", dst="10.13.1.5", dport=445)])
    # an exporter that cannot tell direction (the same ifIndex in and out) is mapped by addresses alone
    h.watch.on_flows([flow(src="172.16.9.11", dport=445, input_if=IFINDEX, output_if=IFINDEX)])
    assert h.rules() == ["disallowed"]
    assert h.metric("monitor_flow_unmapped_records_total") == 3
    assert h.watch.activity["city-a"].records == 1


def test_dry_run_detectors_report_as_dry_run(load_yaml_config: Loader) -> None:
    flows = """
        allow: [{name: asp-web, to: ["10.200.0.0/16"], protocol: tcp, ports: [443]}]
        detectors: {disallowed: {dry_run: true}, scan: null}
    """
    h = Harness(load_yaml_config, flows)
    h.watch.on_flows([flow(dport=3389)])
    assert [(f.rule, f.dry_run) for f in h.found] == [("disallowed", True)]
    assert h.metric("monitor_flow_dry_run_violations_total", connection="city-a", rule="disallowed") == 1
    assert h.metric("monitor_flow_violations_total", connection="city-a", rule="disallowed") == 0


def test_no_allow_list_judges_no_destination(load_yaml_config: Loader) -> None:
    h = Harness(load_yaml_config, "detectors: {scan: {hosts_per_minute: 100}}")
    h.watch.on_flows([flow(dst="203.0.113.1", dport=3389)])
    assert h.found == []
    assert h.metric("monitor_flow_policy_records_total", connection="city-a", verdict="unjudged") == 1


def test_new_peer_after_learning_and_anomalous_flows_are_not_learned(load_yaml_config: Loader) -> None:
    flows = """
        allow: [{name: asp-web, to: ["10.200.0.0/16"], protocol: tcp, ports: [443]}]
        detectors: {new_peer: {learning: 1h}, scan: null}
    """
    h = Harness(load_yaml_config, flows)
    h.watch.on_flows([flow(dst="10.200.0.1"), flow(dst="10.200.0.2")])
    h.watch.on_flows([flow(dst="10.200.0.66", dport=445)])  # disallowed while learning: never learned
    assert h.rules() == ["disallowed"]
    h.clock.t += 3600
    h.watch.on_flows([flow(src="10.13.7.7", dst="10.200.0.2"), flow(src="10.13.7.7", dst="10.200.0.3")])
    assert h.rules() == ["disallowed", "new_peer"] and "10.200.0.3/32" in h.found[-1].summary
    stored = h.watch.take_dirty()
    assert set(stored) == {("city-a", "10.200.0.1/32"), ("city-a", "10.200.0.2/32")}
    # a restarted daemon loads the baseline: learning is over, 10.200.0.1 is known, 10.200.0.66 is not
    again = Harness(load_yaml_config, flows)
    again.clock.t = h.clock.t
    again.watch.load_baselines(stored)
    again.watch.on_flows([flow(src="10.13.8.8", dst="10.200.0.1"), flow(src="10.13.8.8", dst="10.200.0.66")])
    assert again.rules() == ["new_peer"] and "10.200.0.66/32" in again.found[0].summary


def test_an_allow_rule_unused_for_a_week_is_reported(load_yaml_config: Loader) -> None:
    h = Harness(load_yaml_config)
    h.watch.on_flows([flow(dport=443)])
    h.clock.t += 3 * 86400
    h.watch.on_flows([flow(dport=443)])
    h.clock.t += 4 * 86400 + 1
    assert h.watch.check_unused(h.clock.t) == [("city-a", "mail"), ("city-a", "dns")]
    assert h.metric("monitor_flow_allow_unused", connection="city-a", rule="mail") == 1
    assert h.metric("monitor_flow_allow_unused", connection="city-a", rule="asp-web") == 0


def test_a_reload_that_keeps_the_policy_keeps_its_state(load_yaml_config: Loader) -> None:
    h = Harness(load_yaml_config)
    h.watch.on_flows([flow(dst=f"10.200.1.{i}", dport=443) for i in range(9)])
    h.inventory = load_yaml_config(config_text()).inventory  # a new inventory object, same policy
    h.watch.on_flows([flow(dst="10.200.1.200", dport=443)])
    assert h.rules() == ["scan_hosts"]


@pytest.mark.parametrize(
    ("flows", "message"),
    [
        ("allow: [{name: x, to: [no-such-service], protocol: tcp, ports: [443]}]", "neither a prefix nor"),
        ('allow: [{name: x, to: ["10.0.0.0/8"], ports: [443]}]', "ports need protocol"),
        ('allow: [{name: x, to: ["10.0.0.0/8"], protocol: tcp, ports: ["99999"]}]', "between 0 and 65535"),
        ('allow: [{name: x, to: ["10.0.0.0/8"], protocol: smtp}]', "unknown protocol"),
        ('allow: [{name: x, to: ["10.0.0.0/8"]}, {name: x, to: ["10.0.0.0/9"]}]', "duplicate allow rule"),
        ("detectors: {scan: {hosts_per_minutes: 3}}", "hosts_per_minutes"),
    ],
)
def test_policy_mistakes_are_config_errors(load_yaml_config: Loader, flows: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_yaml_config(config_text(flows))
    assert message in str(caught.value)


def test_status_shows_unused_rules_problems_and_the_latest_flow(load_yaml_config: Loader) -> None:
    h = Harness(load_yaml_config)
    h.watch.on_flows([flow(dport=443)])
    h.clock.t += 8 * 86400
    [status] = h.watch.status(h.clock.t)
    unused = {r["name"]: r["unused"] for r in status["allow"]}
    assert unused == {"mail": True, "asp-web": True, "dns": True}
    h.watch.on_flows([flow(dport=443, at=h.clock.t)])
    [status] = h.watch.status(h.clock.t)
    assert {r["name"]: r["unused"] for r in status["allow"]}["asp-web"] is False
    assert status["latest_flow"] == h.clock.t + 1 and status["records"] == 2 and status["problems"] == []
    assert status["detectors"] == ["disallowed", "scan_hosts", "scan_ports", "bytes"]


_networks = st.one_of(
    st.builds(lambda a, n: ipaddress.IPv4Network((a, n), strict=False), st.integers(0, 2**32 - 1),
              st.integers(0, 32)),
    st.builds(lambda a, n: ipaddress.IPv6Network((a, n), strict=False), st.integers(0, 2**128 - 1),
              st.integers(0, 128)),
)  # fmt: skip
_addresses = st.one_of(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
                       st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address))  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(networks=st.lists(_networks, max_size=4), dst=_addresses, near=st.booleans())
def test_a_rule_allows_exactly_the_addresses_ipaddress_says_are_in_its_networks(
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
    dst: ipaddress.IPv4Address | ipaddress.IPv6Address,
    near: bool,
) -> None:
    """The rule compares ints against precomputed masks; ipaddress' `in` is the reference (IPv4 and IPv6 apart:
    ::a00:1 is not 10.0.0.1)."""
    if near and networks:  # an address inside the first network, or just past its end
        first = networks[0]
        value = (int(first.network_address) + int(dst) % (first.num_addresses + 1)) % 2**first.max_prefixlen
        dst = ipaddress.IPv4Address(value) if first.version == 4 else ipaddress.IPv6Address(value)
    rule = CompiledRule("r", tuple(networks), None, ())
    assert rule.allows(flow(dst=str(dst))) == any(dst in n for n in networks if n.version == dst.version)
