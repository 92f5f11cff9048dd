"""Prometheus metrics: the daemon's own health, and per-check/per-service state.

Two renderers, one for each kind of series, never both for the same one:

- the daemon's own counters and gauges (reloads, probes run, traps, the store) live in an injected
  prometheus-client registry and are written by `generate_latest`;
- the per-check and per-service series (state, probe results, the values and labelled series probes
  measured, SLO figures) are kept as text by `StateCollector` (monitor.metrics.text), rewritten when
  a result or state change arrives: a scrape then only joins chunks instead of formatting every sample
  while the event loop waits (bench.metrics_render, 10,000 checks and ~240,000 lines: ~0.2 s, against
  ~4 s through a prometheus-client collector). A check removed by a reload leaves with the rebuild
  that follows it.

`exposition` writes the first, then the second: the /metrics body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, generate_latest

from monitor import __version__
from monitor.config.prefectures import all_prefectures
from monitor.core.engine import CheckRuntime, Engine, Outcome
from monitor.metrics.text import FamilyView, LiveText, join_labels, number, render_snapshot


class Families:
    """Plain samples per metric family in order (a provider's SLO figures), written by families_text."""

    def __init__(self) -> None:
        self.meta: dict[str, tuple[str, tuple[str, ...], str]] = {}  # name -> help, label names, type
        self.samples: dict[str, list[tuple[tuple[str, ...], float]]] = {}

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


class Provider(Protocol):
    """More per-subject families (SLO figures), as exposition text appended to the state's."""

    def text(self) -> str: ...


def families_text(fam: Families) -> str:
    """Exposition text of plain samples: for providers' families."""
    out = []
    for name, (help_text, names, kind) in fam.meta.items():
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
        out.extend(f"{name}{{{join_labels(names, values)}}} {number(value)}\n" for values, value in fam.samples[name])
    return "".join(out)


class StateCollector:
    """Per-check and per-service series from the engine's state, kept as text (the only renderer of them)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine  # never replaced: a reload changes its inventory
        self.providers: list[Provider] = []
        self.live = LiveText()
        self.attached = False  # True once a daemon keeps `live` up to date; otherwise a snapshot rebuilds it

    # --- kept up to date by the daemon (event loop) -------------------------------------------

    def rebuild(self) -> None:
        self.live.rebuild(self.engine)

    def on_result(self, rt: CheckRuntime) -> None:
        self.live.check_result(rt)

    def on_outcome(self, outcome: Outcome) -> None:
        engine = self.engine
        for t in outcome.transitions:
            if t.kind == "check" and (rt := engine.checks.get(t.id)) is not None:
                self.live.check_state(rt)
            elif t.kind == "service" and (srt := engine.services.get(t.id)) is not None:
                self.live.service(srt, engine.inventory.slo)
        for check_id, _event in outcome.flapping:
            if (rt := engine.checks.get(check_id)) is not None:
                self.live.check_state(rt)

    # --- /metrics ----------------------------------------------------------------------------------

    def snapshot(self) -> list[tuple[str, list[str]]]:
        if not self.attached:
            self.rebuild()
        return self.live.snapshot()

    def view(self, have: Mapping[str, tuple[int, int]]) -> list[FamilyView]:
        """The families with their versions, for the body cache (monitor.metrics.body)."""
        if not self.attached:
            self.rebuild()
        return self.live.view(have)

    def render(self, snapshot: list[tuple[str, list[str]]]) -> str:
        """The text of a snapshot plus the providers' (may run in a thread)."""
        return render_snapshot(snapshot) + "".join(provider.text() for provider in self.providers)


def exposition(
    registry: CollectorRegistry, state: StateCollector, snapshot: list[tuple[str, list[str]]] | None = None
) -> bytes:
    """The /metrics body: the registry's own metrics, then the state families as kept text. Take the
    snapshot on the event loop and pass it when calling this from a thread."""
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
            "the local firewall), by probe kind and errno (or `overload`: a timeout this daemon's late event loop "
            "caused): monitoring gaps, never counted as target failures.",
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
