"""A prefecture's own variant of the monthly report: its services, its LGWAN links, the incidents that
touched them, its daily downtime and systems pooled from its services only. What its liaison receives
when a version is approved (versions.ReportDesk.distribute). Sections the report gains later (fields of
`Report` this module does not know) are kept as they are, so a variant never silently drops a section."""

from __future__ import annotations

import dataclasses

from monitor.availability.report import Report, ReportBuilder, _daily, _lgwan_links


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
    )
