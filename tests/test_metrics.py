"""/metrics: the kept per-check text is byte for byte the golden file, follows state result by result as a
fresh rebuild would, passes promtool, and parses in the text format."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from monitor.core.engine import Engine
from monitor.core.state import State
from monitor.metrics.exposition import DaemonMetrics, StateCollector, exposition
from monitor.scheduling.scheduler import SchedulerMetrics
from probes import base, http, icmp, tls
from probes import dns as dns_probe
from probes.base import ProbeResult
from tests.conftest import Loader

os.environ.setdefault("TEST_METRICS_COMMUNITY", "public")
CONFIG = """
modules:
  ping: {kind: icmp}
  web: {kind: http, http: {scheme: https}}
  snmp: {kind: snmp, snmp: {community: "${TEST_METRICS_COMMUNITY}"}}
  dns: {kind: dns, dns: {query_name: portal.example.jp}}
targets:
  - {name: tokyo-edge, address: 127.0.0.1, labels: {prefecture: "13", tier: prefecture, role: 'edge "router"'}, modules: [ping, web, snmp, dns]}
  - {name: osaka-edge, address: 127.0.0.2, labels: {prefecture: 27}, parent: tokyo-edge, modules: [ping]}
services:
  - {name: pref-net, rule: all, targets: [tokyo-edge, osaka-edge], labels: {tier: prefecture, prefecture: "13"}}
"""


@pytest.fixture
def setup(load_yaml_config: Loader) -> tuple[CollectorRegistry, StateCollector, Engine]:
    engine = Engine(load_yaml_config(CONFIG).inventory)
    registry = CollectorRegistry()
    DaemonMetrics(registry)
    SchedulerMetrics(registry)
    collector = StateCollector(engine)
    ping = ProbeResult(ok=True, duration=0.0123, finished_at=1_700_000_000.5)
    ping.values.update(
        {icmp.RTT_MIN.key: 0.0001, icmp.RTT_AVG.key: 0.0002, icmp.RTT_MAX.key: 0.0004, icmp.LOSS.key: 0.0}
    )
    ping.values.update({icmp.JITTER.key: 0.00005, icmp.PACKETS_SENT: 3.0})  # packets sent: kept, not exported
    web = ProbeResult(ok=False, error="HTTP status 503", duration=0.05, finished_at=1_700_000_001.0)
    web.values.update({http.STATUS.key: 503.0, tls.NOT_AFTER.key: 1.8e9})
    web.values.update({http.REDIRECTS.key: 1.0, http.VERSION.key: 1.1, http.CONTENT_LENGTH.key: 5120.0})
    web.values.update({tls.EARLIEST_NOT_AFTER.key: 1.79e9, http.CRL_NEXT_UPDATE.key: 1.7e9})
    web.values.update({http.CRL_THIS_UPDATE.key: 1.6e9})
    web.phases.update({"connect": 0.001, "processing": 0.04, "unheard-of": 1.0})  # a phase not listed: not exported
    dns = ProbeResult(ok=True, duration=0.001, finished_at=1_700_000_000.25, phases={"query": 0.0009})
    dns.values.update({dns_probe.RCODE.key: 0.0, dns_probe.ANSWERS.key: 2.0})
    engine.observe("tokyo-edge/ping", ping, 1.0)
    engine.observe("tokyo-edge/web", web, 1.0)
    engine.observe("tokyo-edge/dns", dns, 1.0)
    engine.observe("tokyo-edge/snmp", snmp_result(), 1.0)
    return registry, collector, engine


def snmp_result() -> ProbeResult:
    """A device poll: system series and two interfaces (one with a quote and a backslash in its alias)."""
    result = ProbeResult(ok=True, duration=0.02, finished_at=1_700_000_002.0)
    result.series += [
        base.Series("monitor_snmp_up", "1 if the SNMP agent answered.", "gauge", (), 1.0),
        base.Series("monitor_device_uptime_seconds", "sysUpTime.", "gauge", (), 3600.5),
        base.Series("monitor_device_reboots_total", "Reboots seen.", "counter", (), 2.0),
    ]
    for index, name, alias, octets in ((1, "Gi0/1", 'LGWAN "primary"', 2**40), (2, "Gi0/2", "back\\slash", 7.0)):
        labels = (("if_index", str(index)), ("if_name", name), ("if_alias", alias))
        result.series += [
            base.Series("monitor_if_oper_status", "ifOperStatus.", "gauge", labels, 1.0),
            base.Series("monitor_if_in_octets_total", "Octets in.", "counter", labels, float(octets)),
            base.Series("monitor_if_utilization_ratio", "Utilisation.", "gauge", (*labels, ("direction", "in")), 0.25),
        ]
    return result


def fresh(registry: CollectorRegistry, engine: Engine) -> str:
    """/metrics as a collector that never saw an update would write it: rebuilt from the engine's state."""
    return exposition(registry, StateCollector(engine)).decode()


def samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_one_renderer_per_series(setup: tuple[CollectorRegistry, StateCollector, Engine]) -> None:
    """exposition() is the registry's own metrics then the kept state text: each family once, a probe's
    labelled counters typed counter, and nothing of the state in the registry (no second renderer)."""
    registry, collector, _ = setup
    text = exposition(registry, collector).decode()
    assert text.count("# TYPE monitor_check_state gauge") == 1
    assert text.count("# TYPE monitor_if_in_octets_total counter") == 1
    assert text.count("# TYPE monitor_device_reboots_total counter") == 1
    assert text.count("# TYPE monitor_probes_total counter") == 1  # the daemon's own, from the registry
    head = text[: text.index("# HELP monitor_check_state ")]
    assert "monitor_probe_success" not in head and "monitor_check_state" not in head
    assert text.endswith(collector.render(collector.snapshot()))


def test_snmp_series_carry_check_and_interface_labels(
    setup: tuple[CollectorRegistry, StateCollector, Engine],
) -> None:
    """Labelled SNMP series have the check's identity labels plus if_index/if_name/if_alias, with counters
    typed counter; the descriptive labels are on monitor_check_info only."""
    registry, collector, _ = setup
    text = exposition(registry, collector).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["monitor_if_in_octets"].type == "counter"
    assert families["monitor_if_oper_status"].type == "gauge"
    rows = {(s.labels["if_name"], s.labels["if_alias"]): s.value for s in families["monitor_if_in_octets"].samples}
    assert rows == {("Gi0/1", 'LGWAN "primary"'): float(2**40), ("Gi0/2", "back\\slash"): 7.0}
    sample = families["monitor_if_utilization_ratio"].samples[0]
    assert sample.labels["check"] == "tokyo-edge/snmp" and "prefecture" not in sample.labels
    assert sample.labels["direction"] == "in"
    assert families["monitor_snmp_up"].samples[0].value == 1.0


def test_series_follow_state(setup: tuple[CollectorRegistry, StateCollector, Engine]) -> None:
    """Probe success, durations, one-hot check state, ICMP RTT, HTTP status and TLS expiry carry the check's labels."""
    registry, collector, _ = setup
    got = {(n, dict(lb).get("check"), dict(lb).get("state") or dict(lb).get("stat") or dict(lb).get("phase")): v
           for n, lb, v in samples(exposition(registry, collector).decode())}  # fmt: skip
    assert got[("monitor_probe_success", "tokyo-edge/ping", None)] == 1.0
    assert got[("monitor_probe_success", "tokyo-edge/web", None)] == 0.0
    assert got[("monitor_probe_duration_seconds", "tokyo-edge/ping", None)] == pytest.approx(0.0123)
    assert got[("monitor_icmp_rtt_seconds", "tokyo-edge/ping", "avg")] == pytest.approx(0.0002)
    assert got[("monitor_http_status_code", "tokyo-edge/web", None)] == 503.0
    assert got[("monitor_tls_cert_expiry_timestamp_seconds", "tokyo-edge/web", None)] == 1.8e9
    assert got[("monitor_probe_phase_duration_seconds", "tokyo-edge/web", "processing")] == pytest.approx(0.04)
    states = {s: v for (n, c, s), v in got.items() if n == "monitor_check_state" and c == "tokyo-edge/ping"}
    assert states == {"unknown": 0, "up": 1, "degraded": 0, "down": 0, "unreachable": 0, "maintenance": 0}
    assert ("monitor_probe_success", "osaka-edge/ping", None) not in got  # never probed: no result series


def test_descriptive_labels_are_on_one_info_series_per_check_and_service(
    setup: tuple[CollectorRegistry, StateCollector, Engine],
) -> None:
    """Every per-check series carries exactly the identity labels (check, target, module, kind) plus its own
    (state, phase, if_name...), never tier/prefecture/system/role/site; those are on one monitor_check_info
    series per exported check (escaped, empty ones left out), and a service's with its SLO variant on
    monitor_service_info."""
    registry, collector, _ = setup
    got = samples(exposition(registry, collector).decode())
    descriptive = {"tier", "prefecture", "system", "role", "site"}
    per_check = [dict(lb) for n, lb, _ in got if "check" in dict(lb) and n != "monitor_check_info"]
    assert per_check and all(not descriptive & labels.keys() for labels in per_check)
    assert all({"check", "target", "module", "kind"} <= labels.keys() for labels in per_check)
    infos = {dict(lb)["check"]: (dict(lb), v) for n, lb, v in got if n == "monitor_check_info"}
    assert set(infos) == {"tokyo-edge/ping", "tokyo-edge/web", "tokyo-edge/snmp", "tokyo-edge/dns", "osaka-edge/ping"}
    assert infos["tokyo-edge/ping"] == (
        {"check": "tokyo-edge/ping", "tier": "prefecture", "prefecture": "13", "role": 'edge "router"'},
        1.0,
    )
    assert infos["osaka-edge/ping"][0]["prefecture"] == "27" and "role" not in infos["osaka-edge/ping"][0]
    services = [dict(lb) for n, lb, _ in got if n == "monitor_service_info"]
    assert services == [{"service": "pref-net", "tier": "prefecture", "prefecture": "13", "slo": "99.9%/month"}]
    state = [dict(lb) for n, lb, _ in got if n == "monitor_service_state"]
    assert {tuple(sorted(labels)) for labels in state} == {("service", "state")}


def test_info_series_follow_a_reload(
    setup: tuple[CollectorRegistry, StateCollector, Engine], load_yaml_config: Loader
) -> None:
    """A relabelled check changes its info series only; its other series keep their identity."""
    registry, collector, engine = setup
    collector.rebuild()
    collector.attached = True
    before = exposition(registry, collector, collector.snapshot()).decode()
    engine.apply_inventory(load_yaml_config(CONFIG.replace("prefecture: 27}", "prefecture: 28}")).inventory, 3.0)
    collector.rebuild()
    after = exposition(registry, collector, collector.snapshot()).decode()
    assert 'monitor_check_info{check="osaka-edge/ping",prefecture="27"} 1.0' in before
    assert 'monitor_check_info{check="osaka-edge/ping",prefecture="28"} 1.0' in after
    lines = lambda text: {ln for ln in text.splitlines() if "osaka-edge" in ln and "_info" not in ln}  # noqa: E731
    assert lines(before) == lines(after)


def test_service_up_absent_while_unknown(setup: tuple[CollectorRegistry, StateCollector, Engine]) -> None:
    """monitor_service_up has no sample while the service is UNKNOWN (so an SLI never counts a gap as up)."""
    registry, collector, engine = setup
    assert engine.services["pref-net"].state == State.UNKNOWN
    names = {n for n, _, _ in samples(exposition(registry, collector).decode())}
    assert "monitor_service_state" in names and "monitor_service_up" not in names


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_promtool_check_metrics_passes(setup: tuple[CollectorRegistry, StateCollector, Engine]) -> None:
    """`promtool check metrics` accepts a scrape without complaints (names, units, HELP, TYPE)."""
    registry, collector, _ = setup
    proc = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition(registry, collector), capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert proc.stdout.decode().strip() == "" and proc.stderr.decode().strip() == ""


def test_kept_text_follows_incremental_updates(
    setup: tuple[CollectorRegistry, StateCollector, Engine], load_yaml_config: Loader
) -> None:
    """Kept up to date result by result (as the daemon does), the /metrics text equals a fresh rebuild from
    the engine's state after state changes, a flapping change, values and phases that come and go, and a
    reload."""
    registry, collector, engine = setup
    collector.rebuild()
    collector.attached = True

    def observe(check: str, result: ProbeResult) -> None:
        outcome = engine.observe(check, result, 2.0)
        collector.on_result(engine.checks[check])
        collector.on_outcome(outcome)

    for _ in range(3):  # confirms DOWN: state series and the service change
        observe(
            "tokyo-edge/ping",
            ProbeResult(ok=False, error="100% packet loss", duration=2.0, finished_at=1_700_000_010.0),
        )
    plain = ProbeResult(ok=True, duration=0.3, finished_at=1_700_000_011.0)  # no phases, no TLS facts any more
    observe("tokyo-edge/web", plain)
    series = snmp_result()
    series.series = series.series[:2]  # the interfaces are gone from this poll
    observe("tokyo-edge/snmp", series)
    fast = exposition(registry, collector, collector.snapshot())
    assert samples(fast.decode()) == samples(fresh(registry, engine))
    assert b'monitor_check_state{check="tokyo-edge/ping"' in fast and b"monitor_if_in_octets_total" not in fast

    engine.apply_inventory(
        load_yaml_config(CONFIG.replace(", parent: tokyo-edge, modules: [ping]", ", modules: []")).inventory, 3.0
    )
    collector.rebuild()
    after = exposition(registry, collector, collector.snapshot())
    assert b'check="osaka-edge/ping"' not in after
    assert samples(after.decode()) == samples(fresh(registry, engine))


GOLDEN = Path(__file__).parent / "data" / "metrics_per_check.txt"


def test_per_check_text_is_byte_identical_to_golden(setup: tuple[CollectorRegistry, StateCollector, Engine]) -> None:
    """The per-check and per-service part of /metrics is byte for byte what it was when the golden file was
    written (names, labels, their order, values, HELP and TYPE): a change to the renderer cannot slip a
    different exposition past the sample-level tests. Regenerate the file only for an intended change."""
    _, collector, _ = setup
    assert collector.render(collector.snapshot()) == GOLDEN.read_text(encoding="utf-8")
