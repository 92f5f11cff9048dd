"""The per-check and per-service part of /metrics, kept as text and updated as results arrive.

At 10,000 checks /metrics has ~150,000 lines. Rendering them all at scrape time costs seconds of
Python holding the interpreter lock, which stalls the event loop (and so the probe schedule) however
it is threaded. Instead each check's lines are written when its result arrives (a few microseconds,
spread over the probe path) into one chunk per metric family and check; a scrape only joins the
chunks. Families stay contiguous, as the exposition format requires.

Descriptive labels (tier, prefecture, system, role, site; a service's SLO variant) are not repeated on
every series: each check and each service has one `_info` series carrying them (the kube-state-metrics
pattern), and consumers join on the identity label (`* on (instance, check) group_left (prefecture)
monitor_check_info`). At 10,000 checks that removes ~40% of the /metrics bytes (bench.metrics_render),
and relabelling a check (a prefecture merger, a role swap) changes one series instead of every series'
identity, which would otherwise break every range query across the change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

from monitor.availability.slo import slo_for, slo_label
from monitor.config.slo_model import SLOConfig
from monitor.core.engine import CheckRuntime, Engine, ServiceRuntime
from monitor.core.inventory import METRIC_LABELS, Check, Service
from monitor.core.state import ALL_STATES, State
from probes import base, registry

# Identity labels, on every series of a check or service; the descriptive ones are on its _info series only
CHECK_LABELS = ("check", "target", "module", "kind")
SERVICE_LABELS = ("service",)
INFO_LABELS = METRIC_LABELS  # tier, prefecture, system, role, site
SLO_LABEL = "slo"  # on monitor_service_info: the SLO variant ("99.9%/month"); the rules select by it
CHECK_INFO = "monitor_check_info"
SERVICE_INFO = "monitor_service_info"
CHECK_STATE = "monitor_check_state"
SERVICE_UP = {State.UP: 1.0, State.DEGRADED: 1.0, State.DOWN: 0.0, State.UNREACHABLE: 0.0}

# The values probes measure, each kind declaring its own next to its code (probes.registry)
MEASURES = registry.measures()
PHASES = registry.phases()  # the phases exported; a probe's other timings are not
# Families in the order /metrics lists them: name -> (help, type); a probe's labelled series follow
FIXED: dict[str, tuple[str, str]] = {
    CHECK_INFO: (
        "Descriptive labels of the check (tier, prefecture, system, role, site), always 1: join on check.",
        "gauge",
    ),
    CHECK_STATE: ("Current state of the check (1 for the current state).", "gauge"),
    "monitor_check_flapping": ("1 while the check is flapping.", "gauge"),
    "monitor_probe_success": ("1 if the last probe succeeded.", "gauge"),
    "monitor_probe_duration_seconds": ("Duration of the last probe.", "gauge"),
    "monitor_probe_timestamp_seconds": ("When the last probe finished.", "gauge"),
    "monitor_probe_phase_duration_seconds": ("Duration of each phase of the last probe.", "gauge"),
    **{m.name: (m.help, "gauge") for m in MEASURES},
    SERVICE_INFO: (
        "Descriptive labels of the service (tier, prefecture, system, role, site) and its SLO variant (slo), "
        "always 1: join on service.",
        "gauge",
    ),
    "monitor_service_up": ("1 if the service is up or degraded, 0 if down.", "gauge"),
    "monitor_service_state": ("Current state of the service (1 for the current state).", "gauge"),
}
# result value key -> (family, the extra label's text)
_BY_KEY = {m.key: (m.name, f',{m.label[0]}="{m.label[1]}"' if m.label else "") for m in MEASURES}
_RESULT_FAMILIES = ("monitor_probe_success", "monitor_probe_duration_seconds", "monitor_probe_timestamp_seconds",
                    "monitor_probe_phase_duration_seconds")  # fmt: skip


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def join_labels(names: Iterable[str], values: Iterable[str]) -> str:
    return ",".join(f'{n}="{escape(v)}"' for n, v in zip(names, values, strict=True))


def number(value: float) -> str:
    """What floatToGoString writes, faster for the common whole numbers (counters)."""
    if value == 1:
        return "1.0"
    if value == 0:
        return "0.0"
    if type(value) is int:  # a provider's count (int has no is_integer() before Python 3.12)
        value = float(value)
    if value.is_integer() and -1e15 < value < 1e15:
        return f"{int(value)}.0"
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def check_label_values(check: Check) -> tuple[str, ...]:
    return (check.id, check.target.name, check.module, check.kind)


def service_label_values(service: Service) -> tuple[str, ...]:
    return (service.name,)


def info_line(family: str, identity: str, labels: Iterable[tuple[str, str]]) -> str:
    """One _info sample: the identity label text, then the descriptive labels that have a value (an
    empty label and a missing one are the same series to Prometheus; writing it would only cost bytes)."""
    extra = "".join(f',{k}="{escape(v)}"' for k, v in labels if v)
    return f"{family}{{{identity}{extra}}} 1.0\n"


def check_info_line(check: Check) -> str:
    labels = check.target.labels
    return info_line(CHECK_INFO, join_labels(("check",), (check.id,)), ((k, labels.get(k, "")) for k in INFO_LABELS))


def service_info_line(service: Service, slo: SLOConfig) -> str:
    labels = [(k, service.labels.get(k, "")) for k in INFO_LABELS]
    labels.append((SLO_LABEL, slo_label(slo_for(service, slo))))
    return info_line(SERVICE_INFO, join_labels(SERVICE_LABELS, service_label_values(service)), labels)


@dataclass(frozen=True, slots=True)
class FamilyView:
    """One family as a scrape sees it: `chunks` (subject -> lines, a copy) is None when the reader said it
    already has this `version`, so an encoder can reuse what it made of it last time."""

    name: str
    help: str
    type: str
    version: tuple[int, int]
    chunks: dict[str, str] | None


class LiveText:
    """Exposition chunks per family and subject, rewritten when a subject changes."""

    def __init__(self) -> None:
        self.families: dict[str, dict[str, str]] = {}  # family -> subject -> lines
        self.meta: dict[str, tuple[str, str]] = {}  # family -> (help, type), also of probe series
        self._prefix: dict[str, str] = {}  # check id -> escaped label text
        self._rows: dict[tuple[tuple[str, str], ...], str] = {}  # escaped text of a series' own labels
        self._written: dict[str, set[str]] = {}  # check id -> value and series families it wrote last time
        # Which families changed since the last view: an encoded (compressed, protobuf) family is kept by
        # (epoch, version) and redone only when it changed; a rebuild starts a new epoch.
        self._dirty: set[str] = set()
        self._versions: dict[str, int] = {}
        self._epoch = 0
        self._reset()

    def _reset(self) -> None:
        self.families = {name: {} for name in FIXED}
        self.meta = dict(FIXED)
        self._prefix.clear()
        self._written.clear()
        self._dirty.clear()
        self._versions.clear()
        self._epoch += 1

    # --- writing -----------------------------------------------------------------------------

    def rebuild(self, engine: Engine) -> None:
        """Everything from the engine's state: at start, after a reload (removed subjects disappear)."""
        self._reset()
        for rt in engine.checks.values():
            self.check_state(rt)
            self.check_result(rt)
        for srt in engine.services.values():
            self.service(srt, engine.inventory.slo)

    def _check_prefix(self, rt: CheckRuntime) -> str:
        prefix = self._prefix.get(rt.check.id)
        if prefix is None:
            # first time since the last rebuild: a check's labels only change with a reload, which rebuilds
            prefix = self._prefix[rt.check.id] = join_labels(CHECK_LABELS, check_label_values(rt.check))
            self.families[CHECK_INFO][rt.check.id] = check_info_line(rt.check)
            self._dirty.add(CHECK_INFO)
        return prefix

    def check_state(self, rt: CheckRuntime) -> None:
        if not rt.check.exported:  # another shard's: it exports it
            return
        p = self._check_prefix(rt)
        self.families[CHECK_STATE][rt.check.id] = "".join(
            f'{CHECK_STATE}{{{p},state="{s.value}"}} {"1.0" if rt.state == s else "0.0"}\n' for s in ALL_STATES
        )
        flapping = "1.0" if rt.machine.flapping else "0.0"
        self.families["monitor_check_flapping"][rt.check.id] = f"monitor_check_flapping{{{p}}} {flapping}\n"
        self._dirty.update((CHECK_STATE, "monitor_check_flapping"))

    def check_result(self, rt: CheckRuntime) -> None:
        if not rt.check.exported:
            return
        result = rt.last
        cid = rt.check.id
        fams = self.families
        if result is None:
            for name in (*_RESULT_FAMILIES, *self._written.pop(cid, ())):
                fams[name].pop(cid, None)
                self._dirty.add(name)
            return
        p = self._check_prefix(rt)
        fams["monitor_probe_success"][cid] = f"monitor_probe_success{{{p}}} {'1.0' if result.ok else '0.0'}\n"
        fams["monitor_probe_duration_seconds"][cid] = (
            f"monitor_probe_duration_seconds{{{p}}} {number(result.duration)}\n"
        )
        fams["monitor_probe_timestamp_seconds"][cid] = (
            f"monitor_probe_timestamp_seconds{{{p}}} {number(result.finished_at)}\n"
        )
        self._dirty.update(_RESULT_FAMILIES[:3])
        phases = "".join(
            f'monitor_probe_phase_duration_seconds{{{p},phase="{phase}"}} {number(seconds)}\n'
            for phase, seconds in result.phases.items()
            if phase in PHASES
        )
        self._put("monitor_probe_phase_duration_seconds", cid, phases)
        chunks: dict[str, str] = {}
        for key, value in result.values.items():  # a handful per probe: cheaper than walking MEASURES
            spec = _BY_KEY.get(key)
            if spec is not None:
                name, label = spec
                chunks[name] = chunks.get(name, "") + f"{name}{{{p}{label}}} {number(value)}\n"
        self._write_families(cid, p, result.series, chunks)

    def _write_families(self, cid: str, prefix: str, series: list[base.Series], values: dict[str, str]) -> None:
        """Writes the value chunks and a probe's labelled samples (SNMP interfaces), one chunk per family,
        and drops the families this check wrote last time but not now. The first sample of a name
        fixes its help and type."""
        chunks: dict[str, list[str]] = {}
        rows = self._rows
        for sample in series:
            if sample.name not in self.meta:
                self.meta[sample.name] = (sample.help, sample.type)
                self.families[sample.name] = {}
            elif sample.name in FIXED:  # not ours to extend
                continue
            own = rows.get(sample.labels)
            if own is None:
                if len(rows) > 4_000_000:  # interfaces renamed or gone over a long time: start over
                    rows.clear()
                own = rows[sample.labels] = "".join(f',{k}="{escape(v)}"' for k, v in sample.labels)
            chunks.setdefault(sample.name, []).append(f"{sample.name}{{{prefix}{own}}} {number(sample.value)}\n")
        written = {**values, **{name: "".join(lines) for name, lines in chunks.items()}}
        before = self._written.get(cid)
        if before:
            for name in before - written.keys():
                self.families[name].pop(cid, None)
                self._dirty.add(name)
        for name, text in written.items():
            self.families[name][cid] = text
        self._dirty.update(written)
        self._written[cid] = set(written)

    def _put(self, family: str, subject: str, text: str) -> None:
        self._dirty.add(family)
        if text:
            self.families[family][subject] = text
        else:
            self.families[family].pop(subject, None)

    def service(self, srt: ServiceRuntime, slo: SLOConfig) -> None:
        name = srt.service.name
        p = join_labels(SERVICE_LABELS, service_label_values(srt.service))
        infos = self.families[SERVICE_INFO]
        if name not in infos:  # labels and SLO only change with a reload, which rebuilds
            infos[name] = service_info_line(srt.service, slo)
            self._dirty.add(SERVICE_INFO)
        up = SERVICE_UP.get(srt.state)  # no sample in maintenance or while unknown: the SLI skips those times
        self._put("monitor_service_up", name, f"monitor_service_up{{{p}}} {number(up)}\n" if up is not None else "")
        self.families["monitor_service_state"][name] = "".join(
            f'monitor_service_state{{{p},state="{s.value}"}} {"1.0" if srt.state == s else "0.0"}\n' for s in ALL_STATES
        )
        self._dirty.add("monitor_service_state")

    # --- reading -----------------------------------------------------------------------------

    def snapshot(self) -> list[tuple[str, list[str]]]:
        """(family header, chunks) of every non-empty family. Cheap, so it runs on the event loop; the
        join of the chunks (the expensive part) can then happen in a thread."""
        out = []
        for name, chunks in self.families.items():
            if chunks:
                help_text, kind = self.meta[name]
                help_text = help_text.replace("\\", "\\\\").replace("\n", "\\n")
                out.append((f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n", list(chunks.values())))
        return out

    def view(self, have: Mapping[str, tuple[int, int]]) -> list[FamilyView]:
        """Every non-empty family with its version, its chunks copied only where `have` (family ->
        version the reader holds) is not current. Runs on the event loop: the copies are what an encoder
        in a thread may read while results keep arriving."""
        versions = self._versions
        for name in self._dirty:
            versions[name] = versions.get(name, 0) + 1
        self._dirty.clear()
        out = []
        for name, chunks in self.families.items():
            if chunks:
                help_text, kind = self.meta[name]
                version = (self._epoch, versions.get(name, 0))
                copy = dict(chunks) if have.get(name) != version else None
                out.append(FamilyView(name, help_text, kind, version, copy))
        return out


def render_snapshot(snapshot: list[tuple[str, list[str]]]) -> str:
    return "".join(header + "".join(chunks) for header, chunks in snapshot)
