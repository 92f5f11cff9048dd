"""The monthly availability report (月次稼働報告): per service, per prefecture, per LGWAN link and per
system, with the incident list, recovery-time objectives, daily downtime and a 12-month trend. Built from
the store; rendered as HTML (html_report.py), CSV (Excel-friendly) or JSON (schema
national-monitor/availability-report/v1, described in the README)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.availability.calc import Availability, Outage, compute
from monitor.availability.capacity_report import CapacitySection, build_section, section_json
from monitor.availability.periods import JST, Span, month_span, parse_month, previous_months, service_spans
from monitor.availability.slo import SLOSpec, slo_for
from monitor.config.prefectures import all_prefectures, lookup
from monitor.core.inventory import Inventory, Service
from monitor.incidents.policy import incident_objective
from monitor.store.records import IncidentRecord
from monitor.store.sql_reports import MonthRollup
from monitor.timefmt import iso

MIN = 60.0


@dataclass
class Row:
    """One line of the report: a service, or a group pooled from its services (time-weighted)."""

    key: str
    name: str
    name_en: str
    labels: dict[str, str]
    objective: float
    figures: Availability
    incident_ids: list[int] = field(default_factory=list)
    trend: list[tuple[str, float | None]] = field(default_factory=list)  # (YYYY-MM, availability)

    @property
    def met(self) -> bool | None:
        value = self.figures.availability
        return None if value is None else value >= self.objective - 1e-12

    @property
    def budget_seconds(self) -> float:
        return (1 - self.objective) * self.figures.planned_seconds

    @property
    def budget_used(self) -> float | None:
        return None if self.budget_seconds <= 0 else self.figures.downtime_seconds / self.budget_seconds


@dataclass
class IncidentLine:
    incident: IncidentRecord
    first_notified: float | None
    services: list[str]
    objective: float | None = None  # 目標復旧時間, seconds
    first_notice: float | None = None  # first publication of a notice tied to it (お知らせ)
    label: str = ""  # how the report names it when not by its id: "2-15" is incident 15 of shard 2

    @property
    def recovery_seconds(self) -> float | None:
        i = self.incident
        return None if i.resolved_at is None else i.resolved_at - i.opened_at

    @property
    def within_objective(self) -> bool | None:
        """True: recovered within its objective; False: recovered late, or still open past it; None: no
        objective, or still open and not yet late."""
        if self.objective is None:
            return None
        if self.recovery_seconds is not None:
            return self.recovery_seconds <= self.objective
        return False if self.incident.affected.get("recovery_breached_at") else None


@dataclass
class Report:
    month: str
    period: Span
    generated_at: float
    services: list[Row]
    prefectures: list[Row]
    systems: list[Row]
    lgwan_links: list[Row]
    incidents: list[IncidentLine]
    daily_downtime: list[tuple[str, float]]  # (YYYY-MM-DD JST, minutes of downtime over all services)
    capacity: CapacitySection | None = None  # circuits' 95th percentiles and forecasts (capacity_report.py)


def _pool(key: str, name: str, name_en: str, rows: list[Row], labels: dict[str, str]) -> Row:
    pooled = Availability()
    ids: set[int] = set()
    for row in rows:
        pooled.add(row.figures)
        ids.update(row.incident_ids)
    return Row(key, name, name_en, labels, min(r.objective for r in rows), pooled, sorted(ids))


def _daily(rows: list[Row], period: Span) -> list[tuple[str, float]]:
    """Downtime minutes per JST day; an outage's span may hold time outside service hours or corrected to
    planned, so only its downtime is spread over the days it touches."""
    labels: list[str] = []
    bounds: list[float] = []
    day = datetime.fromtimestamp(period[0], JST)
    while day.timestamp() < period[1]:
        labels.append(day.strftime("%Y-%m-%d"))
        bounds.append(day.timestamp())
        day += timedelta(days=1)
    bounds.append(period[1])
    minutes = [0.0] * len(labels)
    last = len(labels)
    for row in rows:
        for o_start, o_end, seconds, _roots in row.figures.outages:
            if o_end <= o_start:
                continue
            scale = seconds / (o_end - o_start) / MIN
            index = max(0, bisect_right(bounds, o_start) - 1)
            while index < last and bounds[index] < o_end:
                overlap = min(o_end, bounds[index + 1]) - max(o_start, bounds[index])
                if overlap > 0:
                    minutes[index] += overlap * scale
                index += 1
    return list(zip(labels, minutes, strict=True))


class ReportBuilder:
    def __init__(self, store: Any, inventory: Inventory) -> None:
        self.store = store
        self.inventory = inventory

    async def figures(self, year: int, month: int, now: float) -> dict[str, tuple[SLOSpec, Availability]]:
        """Every service's availability for one month (up to `now` for the month in progress)."""
        start, end = month_span(year, month)
        end = min(end, now)
        spans = await self.store.spans_between("service", start, end) if end > start else {}
        if not spans:  # not a single state known in the month (before monitoring began): no figures at all
            return {}
        fixes: dict[str, list[Span]] = defaultdict(list)
        for c in await self.store.corrections(start, end):
            fixes[c.service].append((c.start, c.end))
        result = {}
        for name, service in self.inventory.services.items():
            spec = slo_for(service, self.inventory.slo)
            hours = service_spans(start, end, spec.hours) if spec.hours is not None else None
            result[name] = (
                spec,
                compute(
                    spans.get(name, []), (start, max(start, end)), hours, sorted(fixes.get(name, [])), spec.degraded_up
                ),
            )
        return result

    async def rollup(self, year: int, month: int, now: float) -> list[MonthRollup]:
        """Roll a closed month up (kept after its raw intervals are pruned) and return the roll-ups."""
        label = f"{year:04d}-{month:02d}"
        rollups = [
            MonthRollup(
                name,
                label,
                a.service_seconds,
                a.maintenance_seconds,
                a.gap_seconds,
                a.downtime_seconds,
                len(a.outages),
                a.longest_outage_seconds,
                spec.objective,
            )
            for name, (spec, a) in (await self.figures(year, month, now)).items()
        ]
        await self.store.save_rollups(rollups)
        return rollups

    async def _trend(
        self, year: int, month: int, now: float, current: dict[str, tuple[SLOSpec, Availability]]
    ) -> dict[str, list[tuple[str, float | None]]]:
        months = previous_months(year, month, 12)
        labels = [f"{y:04d}-{m:02d}" for y, m in months]
        stored = {(r.service, r.month): r for r in await self.store.rollups(labels)}
        trend: dict[str, list[tuple[str, float | None]]] = defaultdict(list)
        for (y, m), label in zip(months, labels, strict=True):
            missing = any((name, label) not in stored for name in self.inventory.services)
            if (y, m) == (year, month):
                computed = current  # the report's own month: computed already
            else:
                computed = await self.figures(y, m, now) if missing and month_span(y, m)[0] < now else {}
            for name in self.inventory.services:
                if (name, label) in stored:
                    r = stored[(name, label)]
                    a = Availability(r.service_seconds, r.maintenance_seconds, r.gap_seconds, r.downtime_seconds)
                    trend[name].append((label, a.availability))
                elif name in computed:
                    trend[name].append((label, computed[name][1].availability))
                else:
                    trend[name].append((label, None))
        return trend

    async def build(self, month_text: str, now: float) -> Report:
        year, month = parse_month(month_text)
        start, end = month_span(year, month)
        figures = await self.figures(year, month, now)
        trend = await self._trend(year, month, now, figures)
        incidents = await self.store.incidents_between(start, min(end, now))
        first = await self.store.first_notifications([i.id for i in incidents])
        notices = await self.store.notices_for_incidents([i.id for i in incidents])
        by_service: dict[str, list[int]] = defaultdict(list)
        outages = self._outages_by_service(figures)
        lines = []
        for incident in incidents:
            names = sorted(
                {
                    *incident.affected.get("services", {}),
                    *([incident.labels["service"]] if incident.labels.get("service") else []),
                    *self._taken_down(incident, outages, now),
                }
            )
            for name in names:
                by_service[name].append(incident.id)
            published = [n.published_at for n in notices.get(incident.id, []) if n.published_at is not None]
            objective = incident_objective(incident, self.inventory.recovery)
            lines.append(IncidentLine(incident, first.get(incident.id), names, objective, min(published, default=None)))
        services = [
            self._row(s, figures[s.name], by_service.get(s.name, []), trend.get(s.name, []))
            for s in self.inventory.services.values()
            if s.name in figures  # none at all for a month before monitoring began: an empty report, not a crash
        ]
        return Report(
            month=f"{year:04d}-{month:02d}",
            period=(start, end),
            generated_at=now,
            services=services,
            prefectures=self._prefectures(services),
            systems=self._systems(services),
            lgwan_links=_lgwan_links(services),
            incidents=lines,
            daily_downtime=_daily(services, (start, min(end, now))),
            capacity=await build_section(self.store, self.inventory, year, month, now),
        )

    def _outages_by_service(
        self, figures: dict[str, tuple[SLOSpec, Availability]]
    ) -> list[tuple[str, frozenset[str], list[Outage]]]:
        """(service, its member targets, its outages) of every service that had an outage."""
        checks = self.inventory.checks
        return [
            (name, frozenset(checks[c].target.name for c in self.inventory.services[name].check_ids if c in checks),
             availability.outages)
            for name, (_spec, availability) in figures.items()
            if availability.outages and name in self.inventory.services
        ]  # fmt: skip

    @staticmethod
    def _taken_down(
        incident: IncidentRecord, outages: list[tuple[str, frozenset[str], list[Outage]]], now: float
    ) -> set[str]:
        """The services an incident took down, read from the outages themselves: every service with an outage
        during the incident whose root cause is the incident's target, or that the target is a member of. So
        the report attributes the incident to the services it took down whatever the incident kept of them
        (children merged in, services that went UNREACHABLE). A merged incident hands its services to its root."""
        target = incident.labels.get("target")
        if target is None or incident.merged_into is not None:
            return set()
        end = incident.resolved_at if incident.resolved_at is not None else now
        return {
            name
            for name, members, spans in outages
            if any(o.start < end and o.end > incident.opened_at and (target in members or target in o.root_causes)
                   for o in spans)
        }  # fmt: skip

    @staticmethod
    def _row(service: Service, figures: tuple[SLOSpec, Availability], incidents: list[int], trend: list[Any]) -> Row:
        spec, availability = figures
        return Row(
            service.name,
            service.display_name,
            service.display_name_en,
            dict(service.labels),
            spec.objective,
            availability,
            incidents,
            trend,
        )

    @staticmethod
    def _prefectures(services: list[Row]) -> list[Row]:
        by_code: dict[str, list[Row]] = defaultdict(list)
        for row in services:
            if row.labels.get("prefecture"):
                by_code[row.labels["prefecture"]].append(row)
        rows = []
        for pref in all_prefectures():  # JIS order: Hokkaido to Okinawa
            if pref.code in by_code:
                rows.append(_pool(pref.code, pref.name_ja, pref.name_en, by_code[pref.code], {"prefecture": pref.code}))
        return rows

    @staticmethod
    def _systems(services: list[Row]) -> list[Row]:
        by_system: dict[str, list[Row]] = defaultdict(list)
        for row in services:
            by_system[row.labels.get("system") or "-"].append(row)
        return [_pool(system, system, system, rows, {"system": system}) for system, rows in sorted(by_system.items())]


def _lgwan_links(services: list[Row]) -> list[Row]:
    return [r for r in services if r.labels.get("system") == "lgwan" or r.key.startswith("lgwan-link")]


def merge_reports(parts: list[Report], order: list[str]) -> Report:
    """One report over the shards' reports (`monitor run --shard i/N`, `parts[i-1]` from shard i): each
    service is in exactly one part. Incident numbers repeat across shards' stores, so in the union an
    incident is numbered SHARD x 1,000,000 + its id and labelled "SHARD-ID"."""
    rank = {name: k for k, name in enumerate(order)}
    services: list[Row] = []
    incidents: list[IncidentLine] = []
    for shard, part in enumerate(parts, start=1):

        def qualified(i: int, shard: int = shard) -> int:
            return shard * 1_000_000 + i

        for row in part.services:
            services.append(dataclasses.replace(row, incident_ids=[qualified(i) for i in row.incident_ids]))
        for line in part.incidents:
            incident = dataclasses.replace(line.incident, id=qualified(line.incident.id))
            incidents.append(dataclasses.replace(line, incident=incident, label=f"{shard}-{line.incident.id}"))
    services.sort(key=lambda r: rank.get(r.key, len(rank)))
    incidents.sort(key=lambda line: line.incident.opened_at)
    first = parts[0]
    return Report(
        month=first.month,
        period=first.period,
        generated_at=max(p.generated_at for p in parts),
        services=services,
        prefectures=ReportBuilder._prefectures(services),
        systems=ReportBuilder._systems(services),
        lgwan_links=_lgwan_links(services),
        incidents=incidents,
        daily_downtime=_daily(services, (first.period[0], min(first.period[1], first.generated_at))),
        capacity=_merged_capacity(parts),
    )


def _merged_capacity(parts: list[Report]) -> CapacitySection | None:
    """The shards' capacity rows together: a circuit's ports are probed by the shard that owns its checks, so
    a circuit is measured in one part; the others list it without samples."""
    sections = [p.capacity for p in parts if p.capacity is not None]
    if not sections:
        return None
    best: dict[tuple[str, str], Any] = {}
    for section in sections:
        for row in section.rows:
            key = (row.circuit.name, row.direction)
            if key not in best or row.figures.samples > best[key].figures.samples:
                best[key] = row
    return dataclasses.replace(sections[0], rows=list(best.values()))


# --- CSV and JSON ------------------------------------------------------------------------------


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / MIN, 2)


def row_json(row: Row, incidents: dict[int, IncidentLine] | None = None) -> dict[str, Any]:
    a = row.figures
    out: dict[str, Any] = {
        "service": row.key,
        "name": row.name,
        "name_en": row.name_en,
        "labels": row.labels,
        "service_minutes": _minutes(a.service_seconds),
        "planned_minutes": _minutes(a.planned_seconds),
        "maintenance_minutes": _minutes(a.maintenance_seconds),
        "downtime_minutes": _minutes(a.downtime_seconds),
        "monitoring_gap_minutes": _minutes(a.gap_seconds),
        "availability": a.availability,
        "availability_worst_case": a.worst_case,
        "target": row.objective,
        "met": row.met,
        "incident_count": len(row.incident_ids),
        "outage_count": len(a.outages),
        "mttr_minutes": _minutes(a.mttr_seconds),
        "mtbf_hours": None if a.mtbf_seconds is None else round(a.mtbf_seconds / 3600, 2),
        "longest_outage_minutes": _minutes(a.longest_outage_seconds),
        "error_budget_minutes": _minutes(row.budget_seconds),
        "error_budget_used_ratio": row.budget_used,
    }
    if incidents is not None:
        out["incidents"] = [incident_json(incidents[i]) for i in row.incident_ids if i in incidents]
        out["trend"] = [{"month": m, "availability": v} for m, v in row.trend]
    return out


def incident_json(line: IncidentLine) -> dict[str, Any]:
    i = line.incident
    return {
        "id": i.id,
        **({"label": line.label} if line.label else {}),
        "title": i.title,
        "title_en": i.title_en,
        "severity": i.severity,
        "root_cause": i.labels.get("target") or i.key,
        "reason": i.reason,
        "services": line.services,
        "detected_at": iso(i.opened_at),
        "first_notified_at": iso(line.first_notified),
        "acknowledged_at": iso(i.acked_at),
        "acknowledged_by": i.acked_by,
        "recovered_at": iso(i.resolved_at),
        "duration_minutes": _minutes((i.resolved_at or 0) - i.opened_at) if i.resolved_at else None,
        "recovery_objective_minutes": _minutes(line.objective),
        "recovered_within_objective": line.within_objective,
        "first_notice_at": iso(line.first_notice),
        "time_to_first_notice_minutes": _minutes(line.first_notice - i.opened_at) if line.first_notice else None,
    }


def recovery_summary(report: Report) -> dict[str, Any]:
    """目標復旧時間: how many incidents had an objective, how many were recovered within it, the breaches,
    and how soon the first notice was published after detection."""
    judged = [line for line in report.incidents if line.objective is not None]
    notice_delays = sorted(
        line.first_notice - line.incident.opened_at for line in report.incidents if line.first_notice is not None
    )
    return {
        "incidents_with_objective": len(judged),
        "within_objective": sum(1 for line in judged if line.within_objective is True),
        "breached": [line.incident.id for line in judged if line.within_objective is False],
        "incidents_with_notice": len(notice_delays),
        "median_time_to_first_notice_minutes": _minutes(notice_delays[len(notice_delays) // 2])
        if notice_delays
        else None,
    }


def to_json(report: Report) -> str:
    incidents = {line.incident.id: line for line in report.incidents}
    body = {
        "schema": "national-monitor/availability-report/v1",
        "month": report.month,
        "timezone": "Asia/Tokyo",
        "period": {"start": iso(report.period[0]), "end": iso(report.period[1])},
        "generated_at": iso(report.generated_at),
        "services": [row_json(r, incidents) for r in report.services],
        "prefectures": [row_json(r) for r in report.prefectures],
        "systems": [row_json(r) for r in report.systems],
        "lgwan_links": [row_json(r) for r in report.lgwan_links],
        "incidents": [incident_json(line) for line in report.incidents],
        "recovery": recovery_summary(report),
        "daily_downtime_minutes": [{"date": d, "minutes": round(m, 2)} for d, m in report.daily_downtime],
        **({"capacity": section_json(report.capacity)} if report.capacity is not None else {}),
    }
    return json.dumps(body, ensure_ascii=False)  # no indent: only then does json use its C encoder


CSV_HEAD = ["区分 (kind)", "サービス (service)", "名称 (name)", "都道府県 (prefecture)"]
CSV_COLUMNS = [
    ("計画サービス時間[分] (planned min)", "planned_minutes"),
    ("計画停止時間[分] (maintenance min)", "maintenance_minutes"),
    ("障害停止時間[分] (downtime min)", "downtime_minutes"),
    ("監視欠測[分] (gap min)", "monitoring_gap_minutes"),
    ("稼働率[%] (availability)", "availability"),
    ("目標[%] (target)", "target"),
    ("達成 (met)", "met"),
    ("障害件数 (incidents)", "incident_count"),
    ("MTTR[分]", "mttr_minutes"),
    ("MTBF[時間]", "mtbf_hours"),
    ("最長停止[分] (longest min)", "longest_outage_minutes"),
    ("エラーバジェット消費率[%] (budget used)", "error_budget_used_ratio"),
]
PERCENT = {"availability", "target", "error_budget_used_ratio"}


def _cell(key: str, value: Any) -> Any:
    if value is None:
        return ""
    if key in PERCENT:
        return f"{value * 100:.4f}"
    if key == "met":
        return "達成" if value else "未達"
    return value


def to_csv(report: Report) -> bytes:
    """UTF-8 with a BOM and CRLF line ends, so Excel opens the Japanese text correctly."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*CSV_HEAD, *(title for title, _ in CSV_COLUMNS)])
    for kind, rows in (("service", report.services), ("prefecture", report.prefectures), ("system", report.systems)):
        for row in rows:
            data = row_json(row)
            pref = lookup(row.labels["prefecture"]) if row.labels.get("prefecture") else None
            head = [kind, row.key, row.name, pref.name_ja if pref else ""]
            writer.writerow([*head, *(_cell(key, data[key]) for _, key in CSV_COLUMNS)])
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")
