"""What changed in a month's report data from its approved version to a new draft, and why: the section a
superseding version prints (stamp.Change). The reasons are the corrections made since the approval (their
`reason`, matched to the services they touched, and to the groups those services are in); a difference
no correction explains is a late data change (the store learnt something after the approval)."""

from __future__ import annotations

from typing import Any

from monitor.availability.stamp import Change
from monitor.store.sql_reports import Correction

LATE = "データの遅延反映 (late data change)"
SECTIONS = ("services", "prefectures", "systems", "lgwan_links")
FIELDS = ("availability", "downtime_minutes", "maintenance_minutes", "monitoring_gap_minutes", "met", "incident_count")
INCIDENT_FIELDS = ("severity", "recovered_at", "duration_minutes", "recovered_within_objective", "services")


def _text(field: str, value: Any) -> str:
    if value is None:
        return "—"
    if field == "availability" and isinstance(value, int | float):
        return f"{value * 100:.3f}%"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def content(data: dict[str, Any]) -> dict[str, Any]:
    """A report's data without the time it was generated: what two builds must agree on to be the same."""
    return {k: v for k, v in data.items() if k != "generated_at"}


def _reasons(row: dict[str, Any], section: str, services: dict[str, dict[str, Any]], fixes: list[Correction]) -> str:
    """The corrections that touched this row: its own service, or a member service of the group."""
    if section in ("services", "lgwan_links"):
        members = {row["service"]}
    else:
        label = "prefecture" if section == "prefectures" else "system"
        members = {name for name, s in services.items() if (s["labels"].get(label) or "-") == row["service"]}
    found = sorted({c.reason for c in fixes if c.service in members})
    return " / ".join(found) if found else LATE


def reasons(listed: list[Change]) -> str:
    """Every distinct reason of a list of changes, once each: the reason of the version they make."""
    return " / ".join(sorted({part for c in listed for part in c.reason.split(" / ")}))


def changes(before: dict[str, Any], after: dict[str, Any], fixes: list[Correction]) -> list[Change]:
    """Every difference of `after` from `before` (figures of each row, rows and incidents that came or went,
    incidents whose recovery changed), each with its reason."""
    out: list[Change] = []
    services = {r["service"]: r for r in after.get("services", [])}
    for section in SECTIONS:
        old = {r["service"]: r for r in before.get(section, [])}
        new = {r["service"]: r for r in after.get(section, [])}
        for key in sorted(old.keys() | new.keys()):
            if key not in new:
                out.append(Change(f"{section}/{key}", "present", "—", LATE))
                continue
            if key not in old:
                out.append(Change(f"{section}/{key}", "—", "present", _reasons(new[key], section, services, fixes)))
                continue
            for field in FIELDS:
                a, b = old[key].get(field), new[key].get(field)
                if a != b:
                    reason = _reasons(new[key], section, services, fixes)
                    out.append(Change(f"{section}/{key}/{field}", _text(field, a), _text(field, b), reason))
    old_incidents = {str(i.get("label") or i["id"]): i for i in before.get("incidents", [])}
    new_incidents = {str(i.get("label") or i["id"]): i for i in after.get("incidents", [])}
    for key in sorted(old_incidents.keys() | new_incidents.keys(), key=str):
        a, b = old_incidents.get(key), new_incidents.get(key)
        if a is None or b is None:
            title = (b or a or {}).get("title", "")
            out.append(Change(f"incidents/{key} {title}", "—" if a is None else "present",
                              "—" if b is None else "present", LATE))  # fmt: skip
            continue
        for field in INCIDENT_FIELDS:
            if a.get(field) != b.get(field):
                was, now = _text(field, a.get(field)), _text(field, b.get(field))
                out.append(Change(f"incidents/{key}/{field}", was, now, LATE))
    # sections this module does not itemise (recovery, daily downtime, sections added later): named when changed
    itemised = {*SECTIONS, "incidents", "generated_at"}
    # they sum over services: the reasons of the corrections that changed a service's figures
    changed = {c.item.split("/")[1] for c in out if c.item.startswith("services/")}
    overall = " / ".join(sorted({f.reason for f in fixes if f.service in changed})) or LATE
    for key in sorted((before.keys() | after.keys()) - itemised):
        if before.get(key) != after.get(key):
            out.append(Change(key, "—" if key not in before else "…", "—" if key not in after else "changed", overall))
    return out
