"""What a superseding version lists: each changed figure with the reason of the correction that touched its
service (or a member of its group), rows and incidents that came or went, other sections named, and
"late data change" where no correction explains a difference."""

from __future__ import annotations

from typing import Any

from monitor.availability.report_diff import LATE, changes, content
from monitor.store.sql_reports import Correction


def row(key: str, availability: float, downtime: float, **labels: str) -> dict[str, Any]:
    return {"service": key, "labels": labels, "availability": availability, "downtime_minutes": downtime,
            "maintenance_minutes": 0.0, "monitoring_gap_minutes": 0.0, "met": True, "incident_count": 0}  # fmt: skip


def data(*services: dict[str, Any], incidents: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    prefs = sorted({s["labels"].get("prefecture") for s in services if s["labels"].get("prefecture")})
    return {"generated_at": "x", "services": list(services), "prefectures": [row(p, 1.0, 0.0) for p in prefs],
            "systems": [], "lgwan_links": [], "incidents": incidents or [], **extra}  # fmt: skip


def test_changes_with_their_reasons() -> None:
    fix = Correction("a", 0.0, 1.0, "工事", "admin", 5.0)
    before = data(row("a", 0.99, 30.0, prefecture="13"), row("gone", 1.0, 0.0),
                  incidents=[{"id": 1, "title": "t", "recovered_at": "10:30"}], recovery={"n": 1})  # fmt: skip
    after = data(row("a", 1.0, 0.0, prefecture="13"), row("new", 1.0, 0.0),
                 incidents=[{"id": 1, "title": "t", "recovered_at": "10:45"}], recovery={"n": 2})  # fmt: skip
    after["prefectures"][0]["downtime_minutes"] = 5.0
    listed = {c.item: c for c in changes(before, after, [fix])}
    assert (listed["services/a/availability"].before, listed["services/a/availability"].after) == (
        "99.000%",
        "100.000%",
    )
    assert listed["services/a/downtime_minutes"].reason == "工事"
    assert listed["prefectures/13/downtime_minutes"].reason == "工事"  # a member service was corrected
    assert listed["services/gone"].after == "—" and listed["services/new"].before == "—"
    assert listed["services/new"].reason == LATE and listed["incidents/1/recovered_at"].after == "10:45"
    assert listed["recovery"].reason == "工事"  # a section summed over services: every correction's reason
    assert "generated_at" not in listed and content(before)["services"] == before["services"]
    assert changes(after, after, []) == []
