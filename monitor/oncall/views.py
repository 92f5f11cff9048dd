"""The on-call roster as the API, the console and the CLI show it: who is on call now at each playbook
level and in each schedule, the coming slots, the changes made (JSON-ready dicts; times ISO 8601 UTC, as
the whole API writes them)."""

from __future__ import annotations

from typing import Any

from monitor.config.response_model import ResponseConfig
from monitor.oncall import rotation
from monitor.oncall.roster import Roster
from monitor.oncall.rotation import Duty
from monitor.store.oncall_records import OnCallChange
from monitor.timefmt import iso

LOOK_AHEAD = 8 * rotation.DAY  # how far "until" and "next" look (a week's rotation and a day)


def person_json(config: ResponseConfig, key: str | None) -> dict[str, Any] | None:
    if key is None:
        return None
    contact = config.contacts.get(key)
    return {"key": key, "name": contact.name if contact else key}


def duty_json(config: ResponseConfig, duty: Duty) -> dict[str, Any]:
    slot = duty.slot
    return {
        "key": slot.key,
        "layer": slot.layer,
        "shift": slot.shift,
        "day": slot.day.isoformat(),
        "start": iso(slot.start),
        "end": iso(slot.end),
        "person": duty.person,
        "person_name": (person_json(config, duty.person) or {}).get("name"),
        "rotation": slot.member,
        "change_id": duty.change_id,
    }


def change_json(change: OnCallChange) -> dict[str, Any]:
    return {
        "id": change.id,
        "schedule": change.schedule,
        "kind": change.kind,
        "slots": {k: {"from": change.previous.get(k), "to": v} for k, v in change.slots.items()},
        "actor": change.actor,
        "reason": change.reason,
        "created_at": iso(change.created_at),
        "cancelled_at": iso(change.cancelled_at),
        "cancelled_by": change.cancelled_by,
    }


def _until(roster: Roster, name: str, now: float) -> float | None:
    """When who is on call in the schedule next changes."""
    schedule = roster.schedule(name)
    found = rotation.spans(name, schedule, now, now + LOOK_AHEAD, roster.overrides(name))
    return found[0].end if found and found[0].end < now + LOOK_AHEAD else None


def schedule_now(roster: Roster, config: ResponseConfig, name: str, now: float) -> dict[str, Any]:
    schedule = config.schedules[name]
    on = roster.on_call(name, now)
    until = _until(roster, name, now)
    nxt = roster.on_call(name, until) if until is not None else ()
    return {
        "schedule": name,
        "name": schedule.name or name,
        "on_call": [duty_json(config, d) for d in on],
        "until": iso(until),
        "next": [duty_json(config, d) for d in nxt],
        "orphaned_changes": roster.orphans(name),
    }


def levels_now(roster: Roster, config: ResponseConfig, now: float) -> list[dict[str, Any]]:
    """Per playbook level: the people a page now would reach (fixed contacts and the schedules' on-call)."""
    out = []
    for book_name, book in config.playbooks.items():
        for index, level in enumerate(book.levels, start=1):
            people: list[str] = []
            schedules: list[str] = []
            ends: list[float] = []
            for notify in level.notify:
                people += [c for c in notify.contacts if c not in people]
                if notify.schedule is not None:
                    schedules.append(notify.schedule)
                    people += [p for p in roster.people(notify.schedule, now) if p not in people]
                    if (until := _until(roster, notify.schedule, now)) is not None:
                        ends.append(until)
            out.append({
                "playbook": book_name,
                "level": index,
                "people": [person_json(config, p) for p in people],
                "schedules": schedules,
                "until": iso(min(ends)) if ends else None,
            })  # fmt: skip
    return out


def oncall_now(roster: Roster, config: ResponseConfig, now: float) -> dict[str, Any]:
    return {
        "at": iso(now),
        "levels": levels_now(roster, config, now),
        "schedules": [schedule_now(roster, config, name, now) for name in config.schedules],
    }
