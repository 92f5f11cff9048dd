"""A prefecture's own variant of the monthly report: its services, its LGWAN links, the incidents that
touched them, its daily downtime, systems pooled from its services only, and its own circuits' capacity.
What its liaison receives when a version is approved (versions.ReportDesk.distribute).

Every field of `Report` is named here, as filtered to the prefecture or as the same for every prefecture
(the month, the period, when it was made); a test fails when `Report` gains a field this module does not
name, so a new section can neither leak nationwide figures into every variant (the capacity section did,
until it was filtered) nor silently drop out of them."""

from __future__ import annotations

import dataclasses

from monitor.availability.capacity_report import CapacitySection
from monitor.availability.report import Report, ReportBuilder, _daily, _lgwan_links

SAME_FOR_EVERY_PREFECTURE = frozenset({"month", "period", "generated_at"})
FILTERED = frozenset({"services", "prefectures", "systems", "lgwan_links", "incidents", "daily_downtime", "capacity"})


def prefecture_variant(report: Report, code: str) -> Report:
    services = [r for r in report.services if r.labels.get("prefecture") == code]
    ids = {i for r in services for i in r.incident_ids}
    names = {r.key for r in services}
    incidents = [
        line
        for line in report.incidents
        if line.incident.id in ids or names & set(line.services) or line.incident.labels.get("prefecture") == code
    ]
    return dataclasses.replace(
        report,
        services=services,
        prefectures=[r for r in report.prefectures if r.key == code],
        systems=ReportBuilder._systems(services),
        lgwan_links=_lgwan_links(services),
        incidents=incidents,
        daily_downtime=_daily(services, (report.period[0], min(report.period[1], report.generated_at))),
        capacity=_own_capacity(report.capacity, code),
    )


def _own_capacity(section: CapacitySection | None, code: str) -> CapacitySection | None:
    """The circuits of the prefecture (by the same `prefecture` label its services are chosen by): a
    national backbone circuit, with no prefecture, is in the nationwide report only. The method, threshold
    and forecast settings stay: they say how the prefecture's own figures were made."""
    if section is None:
        return None
    return dataclasses.replace(section, rows=[r for r in section.rows if r.circuit.prefecture == code])
