"""Prometheus metrics: the daemon's own health, and per-check/per-service state from a custom Collector.

Per-target series come from `StateCollector`, which reads the engine's current state at scrape
time, so a check removed by a reload disappears by itself. prometheus-client's generic text writer
needs ~3 s for the ~120k series of 10,000 checks, so `exposition()` writes those families itself
from label strings escaped once per check (~60 ms), and renders everything else with
`generate_latest`. Both paths produce the same samples (a test holds them to it).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from monitor import __version__
from monitor.config.prefectures import all_prefectures
from monitor.engine import CheckRuntime, Engine
from monitor.inventory import METRIC_LABELS, Check, Service
from monitor.state import ALL_STATES, State
from probes import base

CHECK_LABELS = ("check", "target", "module", "kind", *METRIC_LABELS)
SERVICE_LABELS = ("service", "tier", "prefecture", "system")

# (metric name, help, result value key, extra label name and value) for values a probe measured.
VALUE_METRICS: tuple[tuple[str, str, str, tuple[str, str] | None], ...] = (
    ("monitor_icmp_rtt_seconds", "ICMP round-trip time of the last probe.", base.RTT_MIN, ("stat", "min")),
    ("monitor_icmp_rtt_seconds", "ICMP round-trip time of the last probe.", base.RTT_AVG, ("stat", "avg")),
    ("monitor_icmp_rtt_seconds", "ICMP round-trip time of the last probe.", base.RTT_MAX, ("stat", "max")),
    ("monitor_icmp_jitter_seconds", "ICMP round-trip jitter of the last probe.", base.JITTER, None),
    ("monitor_icmp_packet_loss_ratio", "Share of ICMP echo requests unanswered in the last probe.", base.LOSS, None),
    ("monitor_http_status_code", "HTTP status code of the last probe.", base.HTTP_STATUS, None),
    ("monitor_http_redirects", "Redirects followed in the last probe.", base.HTTP_REDIRECTS, None),
    ("monitor_http_version", "HTTP version of the last response.", base.HTTP_VERSION, None),
    ("monitor_http_content_length_bytes", "Body bytes read in the last probe.", base.CONTENT_LENGTH, None),
    ("monitor_tls_cert_expiry_timestamp_seconds", "notAfter of the peer's leaf certificate.", base.TLS_NOT_AFTER, None),
    (
        "monitor_tls_earliest_cert_expiry_timestamp_seconds",
        "Earliest notAfter in the peer's certificate chain.",
        base.TLS_EARLIEST_NOT_AFTER,
        None,
    ),
    ("monitor_crl_next_update_timestamp_seconds", "nextUpdate of the CRL served.", base.CRL_NEXT_UPDATE, None),
    ("monitor_crl_this_update_timestamp_seconds", "thisUpdate of the CRL served.", base.CRL_THIS_UPDATE, None),
    ("monitor_dns_answer_rrs", "Answer records in the last DNS response.", base.DNS_ANSWERS, None),
    ("monitor_dns_rcode", "Rcode of the last DNS response (0 is NOERROR).", base.DNS_RCODE, None),
)
PHASES = (
    "resolve", "connect", "tls", "processing", "transfer", "dialogue", "query",
    "system", "labels", "interfaces", "oids",  # SNMP
)  # fmt: skip

_skip_state = contextvars.ContextVar("skip_state_collector", default=False)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(check: Check) -> tuple[str, ...]:
    t = check.target
    return (check.id, t.name, check.module, check.kind, *(t.labels.get(k, "") for k in METRIC_LABELS))


def _service_labels(service: Service) -> tuple[str, ...]:
    return (service.name, *(service.labels.get(k, "") for k in SERVICE_LABELS[1:]))


Row = tuple[tuple[str, ...], tuple[tuple[str, str], ...], float]  # check labels, a series' own labels, value


def _number(value: float) -> str:
    """What floatToGoString writes, faster for the common whole numbers (counters)."""
    if value == 1:
        return "1.0"
    if value == 0:
        return "0.0"
    if value.is_integer() and -1e15 < value < 1e15:
        return f"{int(value)}.0"
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


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

    def text(self, prefix_cache: dict[tuple[str, ...], str], row_cache: dict[tuple[tuple[str, str], ...], str]) -> str:
        out: list[str] = []
        append = out.append
        for name, (help_text, names, kind) in self.meta.items():
            help_escaped = help_text.replace("\\", "\\\\").replace("\n", "\\n")
            append(f"# HELP {name} {help_escaped}\n# TYPE {name} {kind}\n")
            for values, value in self.samples[name]:
                prefix = prefix_cache.get(values)
                if prefix is None:
                    prefix = prefix_cache[values] = _join(names, values)
                append(f"{name}{{{prefix}}} {_number(value)}\n")
            rows = self.rows.get(name)
            if not rows:
                continue
            extra = names[len(CHECK_LABELS) :]
            for row in rows:
                check, own, value = row
                head = prefix_cache.get(check)
                if head is None:
                    head = prefix_cache[check] = _join(CHECK_LABELS, check)
                tail = row_cache.get(own)
                if tail is None:
                    if tuple(k for k, _ in own) != extra:  # label names differ from the family's: fill in
                        own = tuple(zip(extra, self._row_values(names, row)[len(CHECK_LABELS) :], strict=True))
                    tail = row_cache[row[1]] = ",".join(f'{k}="{_escape(v)}"' for k, v in own)
                append(
                    f"{name}{{{head},{tail}}} {_number(value)}\n" if tail else f"{name}{{{head}}} {_number(value)}\n"
                )
        return "".join(out)


def _join(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    return ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))


class StateCollector(Collector):
    """Per-check and per-service series from the engine's current state."""

    def __init__(self, engine: Callable[[], Engine]) -> None:
        self._engine = engine
        self._prefixes: dict[tuple[str, ...], str] = {}
        self.providers: list[Callable[[Families], None]] = []  # more per-subject families (SLO figures)
        self._rows: dict[tuple[tuple[str, str], ...], str] = {}  # escaped label text of table rows

    def _gather(self) -> Families:
        engine = self._engine()
        fam = Families()
        checks = list(engine.checks.values())  # engine replaces (never resizes) these dicts: safe in a thread
        for rt in checks:
            self._check_samples(fam, rt)
        for srt in list(engine.services.values()):
            labels = _service_labels(srt.service)
            up = {State.UP: 1.0, State.DEGRADED: 1.0, State.DOWN: 0.0, State.UNREACHABLE: 0.0}.get(srt.state)
            if up is not None:  # no sample in maintenance or while unknown: the SLI skips those times
                fam.add(
                    "monitor_service_up", "1 if the service is up or degraded, 0 if down.", SERVICE_LABELS, labels, up
                )
            for state in ALL_STATES:
                fam.add(
                    "monitor_service_state",
                    "Current state of the service (1 for the current state).",
                    (*SERVICE_LABELS, "state"),
                    (*labels, state.value),
                    1.0 if srt.state == state else 0.0,
                )
        for provider in self.providers:
            provider(fam)
        return fam

    def _check_samples(self, fam: Families, rt: CheckRuntime) -> None:
        labels = _labels(rt.check)
        for state in ALL_STATES:
            fam.add(
                "monitor_check_state",
                "Current state of the check (1 for the current state).",
                (*CHECK_LABELS, "state"),
                (*labels, state.value),
                1.0 if rt.state == state else 0.0,
            )
        fam.add(
            "monitor_check_flapping", "1 while the check is flapping.", CHECK_LABELS, labels, float(rt.machine.flapping)
        )
        result = rt.last
        if result is None:
            return
        fam.add("monitor_probe_success", "1 if the last probe succeeded.", CHECK_LABELS, labels, float(result.ok))
        fam.add("monitor_probe_duration_seconds", "Duration of the last probe.", CHECK_LABELS, labels, result.duration)
        fam.add(
            "monitor_probe_timestamp_seconds",
            "When the last probe finished.",
            CHECK_LABELS,
            labels,
            result.finished_at,
        )
        for phase in PHASES:
            seconds = result.phases.get(phase)
            if seconds is not None:
                fam.add(
                    "monitor_probe_phase_duration_seconds",
                    "Duration of each phase of the last probe.",
                    (*CHECK_LABELS, "phase"),
                    (*labels, phase),
                    seconds,
                )
        for name, help_text, key, extra in VALUE_METRICS:
            value = result.values.get(key)
            if value is None:
                continue
            if extra is None:
                fam.add(name, help_text, CHECK_LABELS, labels, value)
            else:
                fam.add(name, help_text, (*CHECK_LABELS, extra[0]), (*labels, extra[1]), value)
        if result.series:
            fam.add_series(labels, result.series)

    def collect(self) -> Iterator[Metric]:
        if _skip_state.get():
            return
        yield from self._gather().families()

    def render_text(self) -> str:
        if len(self._prefixes) > 500_000:  # labels of removed checks: start over
            self._prefixes.clear()
        if len(self._rows) > 4_000_000:  # interfaces renamed or gone
            self._rows.clear()
        return self._gather().text(self._prefixes, self._rows)


@contextmanager
def _without_state() -> Iterator[None]:
    token = _skip_state.set(True)
    try:
        yield
    finally:
        _skip_state.reset(token)


def exposition(registry: CollectorRegistry, state: StateCollector) -> bytes:
    """The /metrics body: the registry's metrics, with the state families written on the fast path."""
    with _without_state():
        head = generate_latest(registry)
    return head + state.render_text().encode()


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
        self.probes = Counter(
            "monitor_probes_total", "Probes run, by kind and result.", ["kind", "result"], registry=registry
        )
        self.transitions = Counter(
            "monitor_state_transitions_total",
            "State changes of checks and services, by new state.",
            ["subject", "state"],
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
