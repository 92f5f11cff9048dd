"""Prometheus metrics: the daemon's own health, and per-check/per-service state.

Per-target series come from `StateCollector`. For prometheus-client (`generate_latest`, tests) it is a
custom Collector reading the engine's current state, so a check removed by a reload disappears by
itself. For /metrics the same series are kept as text, rewritten when a result or state change
arrives (monitor.metrics_text): a scrape of 10,000 checks then only joins chunks instead of spending
seconds formatting 150,000 lines while the event loop waits. Both paths give the same samples (a test
holds them to it).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.config.prefectures import all_prefectures
from monitor.engine import CheckRuntime, Engine, Outcome
from monitor.metrics_text import (
    CHECK_LABELS,
    CHECK_STATE,
    FIXED,
    MEASURES,
    PHASES,
    SERVICE_LABELS,
    SERVICE_UP,
    LiveText,
    check_label_values,
    join_labels,
    number,
    render_snapshot,
    service_label_values,
)
from monitor.state import ALL_STATES
from probes import base

_skip_state = contextvars.ContextVar("skip_state_collector", default=False)


Row = tuple[tuple[str, ...], tuple[tuple[str, str], ...], float]  # check labels, a series' own labels, value


class Families:
    """Collects samples per metric family in order, then writes them in either output form.

    Probes' labelled series (tables: SNMP interfaces) are kept as (check labels, own labels, value)
    rows: an SNMP estate has millions of them, so the text path caches the escaped label text of
    both parts (the probe reuses one labels tuple per interface) instead of building tuples per row."""

    def __init__(self) -> None:
        self.meta: dict[str, tuple[str, tuple[str, ...], str]] = {}  # name -> help, label names, type
        self.samples: dict[str, list[tuple[tuple[str, ...], float]]] = {}
        self.rows: dict[str, list[Row]] = {}

    def add(
        self,
        name: str,
        help_text: str,
        names: tuple[str, ...],
        values: tuple[str, ...],
        value: float,
        kind: str = "gauge",
    ) -> None:
        if name not in self.meta:
            self.meta[name] = (help_text, names, kind)
            self.samples[name] = []
        self.samples[name].append((values, value))

    def add_series(self, labels: tuple[str, ...], series: list[base.Series]) -> None:
        """A probe's labelled samples: the check's labels plus the sample's own (the first sample of
        a name fixes its label names; a later sample lacking one gets an empty value)."""
        rows = self.rows
        for sample in series:
            family = rows.get(sample.name)
            if family is None:
                if sample.name in self.meta:  # a name some other path already uses: not ours to extend
                    continue
                own = tuple(k for k, _ in sample.labels)
                self.meta[sample.name] = (sample.help, (*CHECK_LABELS, *own), sample.type)
                self.samples[sample.name] = []
                family = rows[sample.name] = []
            family.append((labels, sample.labels, sample.value))

    def _row_values(self, names: tuple[str, ...], row: Row) -> tuple[str, ...]:
        check, own, _ = row
        extra = names[len(CHECK_LABELS) :]
        if tuple(k for k, _ in own) == extra:
            return (*check, *(v for _, v in own))
        given = dict(own)
        return (*check, *(given.get(n, "") for n in extra))

    def families(self) -> Iterator[Metric]:
        for name, (help_text, names, kind) in self.meta.items():
            family: GaugeMetricFamily | CounterMetricFamily
            if kind == "counter":
                family = CounterMetricFamily(name, help_text, labels=names)
            else:
                family = GaugeMetricFamily(name, help_text, labels=names)
            for values, value in self.samples[name]:
                family.add_metric(values, value)
            for row in self.rows.get(name, ()):
                family.add_metric(self._row_values(names, row), row[2])
            yield family


class Provider(Protocol):
    """More per-subject families (SLO figures): for prometheus-client, and as text for /metrics."""

    def add(self, fam: Families) -> None: ...

    def text(self) -> str: ...


def families_text(fam: Families) -> str:
    """Exposition text of plain samples (not probe series): for providers' families."""
    out = []
    for name, (help_text, names, kind) in fam.meta.items():
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
        out.extend(f"{name}{{{join_labels(names, values)}}} {number(value)}\n" for values, value in fam.samples[name])
    return "".join(out)


class StateCollector(Collector):
    """Per-check and per-service series from the engine's current state."""

    def __init__(self, engine: Callable[[], Engine]) -> None:
        self._engine = engine
        self.providers: list[Provider] = []
        self.live = LiveText()
        self.attached = False  # True once a daemon keeps `live` up to date; otherwise exposition rebuilds it

    # --- kept up to date by the daemon (event loop) -------------------------------------------

    def rebuild(self) -> None:
        self.live.rebuild(self._engine())

    def on_result(self, rt: CheckRuntime) -> None:
        self.live.check_result(rt)

    def on_outcome(self, outcome: Outcome) -> None:
        engine = self._engine()
        for t in outcome.transitions:
            if t.kind == "check" and (rt := engine.checks.get(t.id)) is not None:
                self.live.check_state(rt)
            elif t.kind == "service" and (srt := engine.services.get(t.id)) is not None:
                self.live.service(srt)
        for check_id, _event in outcome.flapping:
            if (rt := engine.checks.get(check_id)) is not None:
                self.live.check_state(rt)

    # --- prometheus-client's path ---------------------------------------------------------------

    def _gather(self) -> Families:
        engine = self._engine()
        fam = Families()
        for rt in list(engine.checks.values()):
            self._check_samples(fam, rt)
        for srt in list(engine.services.values()):
            labels = service_label_values(srt.service)
            up = SERVICE_UP.get(srt.state)
            if up is not None:  # no sample in maintenance or while unknown: the SLI skips those times
                fam.add("monitor_service_up", FIXED["monitor_service_up"][0], SERVICE_LABELS, labels, up)
            for state in ALL_STATES:
                fam.add("monitor_service_state", FIXED["monitor_service_state"][0], (*SERVICE_LABELS, "state"),
                        (*labels, state.value), 1.0 if srt.state == state else 0.0)  # fmt: skip
        for provider in self.providers:
            provider.add(fam)
        return fam

    def _check_samples(self, fam: Families, rt: CheckRuntime) -> None:
        labels = check_label_values(rt.check)
        for state in ALL_STATES:
            fam.add(CHECK_STATE, FIXED[CHECK_STATE][0], (*CHECK_LABELS, "state"), (*labels, state.value),
                    1.0 if rt.state == state else 0.0)  # fmt: skip
        fam.add("monitor_check_flapping", FIXED["monitor_check_flapping"][0], CHECK_LABELS, labels,
                float(rt.machine.flapping))  # fmt: skip
        result = rt.last
        if result is None:
            return
        basics = {"monitor_probe_success": float(result.ok), "monitor_probe_duration_seconds": result.duration,
                  "monitor_probe_timestamp_seconds": result.finished_at}  # fmt: skip
        for name, basic in basics.items():
            fam.add(name, FIXED[name][0], CHECK_LABELS, labels, basic)
        for phase in sorted(PHASES):
            if phase in result.phases:
                name = "monitor_probe_phase_duration_seconds"
                fam.add(name, FIXED[name][0], (*CHECK_LABELS, "phase"), (*labels, phase), result.phases[phase])
        for m in MEASURES:
            value = result.values.get(m.key)
            if value is None:
                continue
            if m.label is None:
                fam.add(m.name, m.help, CHECK_LABELS, labels, value)
            else:
                fam.add(m.name, m.help, (*CHECK_LABELS, m.label[0]), (*labels, m.label[1]), value)
        if result.series:
            fam.add_series(labels, result.series)

    def collect(self) -> Iterator[Metric]:
        if _skip_state.get():
            return
        yield from self._gather().families()

    # --- /metrics ----------------------------------------------------------------------------------

    def snapshot(self) -> list[tuple[str, list[str]]]:
        if not self.attached:
            self.rebuild()
        return self.live.snapshot()

    def render(self, snapshot: list[tuple[str, list[str]]]) -> str:
        """The text of a snapshot plus the providers' (may run in a thread)."""
        return render_snapshot(snapshot) + "".join(provider.text() for provider in self.providers)


@contextmanager
def _without_state() -> Iterator[None]:
    token = _skip_state.set(True)
    try:
        yield
    finally:
        _skip_state.reset(token)


def exposition(
    registry: CollectorRegistry, state: StateCollector, snapshot: list[tuple[str, list[str]]] | None = None
) -> bytes:
    """The /metrics body: the registry's own metrics, then the state families as kept text. Take the
    snapshot on the event loop and pass it when calling this from a thread."""
    with _without_state():
        head = generate_latest(registry)
    return head + state.render(snapshot if snapshot is not None else state.snapshot()).encode()


class DaemonMetrics:
    """The daemon's own metrics, on an injected registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.reload_success = Gauge(
            "monitor_config_last_reload_successful", "1 if the last config (re)load succeeded.", registry=registry
        )
        self.reload_timestamp = Gauge(
            "monitor_config_last_reload_success_timestamp_seconds",
            "When the config was last loaded successfully.",
            registry=registry,
        )
        self.reloads = Counter("monitor_config_reloads_total", "Config reload attempts.", ["result"], registry=registry)
        self.checks = Gauge("monitor_checks", "Checks configured, by probe kind.", ["kind"], registry=registry)
        self.services = Gauge("monitor_services", "Services configured.", registry=registry)
        self.shard = Gauge(
            "monitor_shard_info", "This daemon's share of the estate (--shard i/N).", ["shard", "of"], registry=registry
        )
        self.leader = Gauge(
            "monitor_ha_leader",
            "1 while this daemon holds the leader lease (HA) or runs alone, 0 on a standby.",
            registry=registry,
        )
        self.leader.set(1)
        self.context_checks = Gauge(
            "monitor_shard_context_checks",
            "Other shards' checks probed here only to know reachability (root cause); not exported.",
            registry=registry,
        )
        self.probes = Counter(
            "monitor_probes_total", "Probes run, by kind and result.", ["kind", "result"], registry=registry
        )
        self.transitions = Counter(
            "monitor_state_transitions_total",
            "State changes of checks and services, by new state.",
            ["subject", "state"],
            registry=registry,
        )
        self.local_failures = Counter(
            "monitor_probe_local_failures_total",
            "Probes that could not be done because of this host (no file descriptor left, a send refused by "
            "the local firewall), by probe kind and errno: monitoring gaps, never counted as target failures.",
            ["kind", "reason"],
            registry=registry,
        )
        self.checks_in_gap = Gauge(
            "monitor_checks_in_monitoring_gap",
            "Checks whose last probe failed because of this host: not watched until a probe succeeds in running.",
            registry=registry,
        )
        info = Info("monitor_build", "Version of the monitoring daemon.", registry=registry)
        info.info({"version": __version__})
        prefectures = Gauge(
            "monitor_prefecture_info",
            "The 47 prefectures (JIS X 0401 code and names), for dashboards.",
            ["prefecture", "name_ja", "name_en", "region_ja", "region_en"],
            registry=registry,
        )
        for p in all_prefectures():
            prefectures.labels(p.code, p.name_ja, p.name_en, p.region_ja, p.region_en).set(1)
        self._probe_children: dict[tuple[str, bool], Callable[[], None]] = {}

    def count_probe(self, kind: str, ok: bool) -> None:
        inc = self._probe_children.get((kind, ok))
        if inc is None:
            inc = self._probe_children[(kind, ok)] = self.probes.labels(kind, "success" if ok else "failure").inc
        inc()
