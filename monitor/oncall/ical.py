"""iCal (RFC 5545) feeds of the on-call duties, for the people's calendars: one per schedule (every slot
and who holds it) and one per person (their duties in every schedule), written with the `icalendar`
package. Each duty is one VEVENT whose UID is its slot's identity, so a calendar that subscribes updates
the event in place when a swap or a moved shift changes it, instead of adding a second one."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from icalendar import Calendar, Event

from monitor.config.response_model import ResponseConfig
from monitor.oncall.rotation import Duty

PRODID = "-//monitor//on-call//JA"
PAST_DAYS = 7  # what the feeds show: a week back ...
AHEAD_DAYS = 56  # ... and eight weeks ahead


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _uid(key: str) -> str:
    return f"{key.encode().hex()}@oncall.monitor"  # slot keys hold Japanese shift names and "/": hex is safe everywhere


def feed(title: str, duties: Iterable[Duty], config: ResponseConfig, now: float, by_person: bool) -> bytes:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", title)
    cal.add("x-wr-timezone", "Asia/Tokyo")
    for duty in duties:
        if duty.person is None:
            continue  # an empty slot is nobody's duty (the schedule's coverage gaps are told elsewhere)
        slot = duty.slot
        contact = config.contacts.get(duty.person)
        who = contact.name if contact else duty.person
        schedule = config.schedules[slot.schedule]
        event = Event()
        event.add("uid", _uid(slot.key))
        event.add("dtstamp", _utc(now))
        event.add("dtstart", _utc(slot.start))
        event.add("dtend", _utc(slot.end))
        label = schedule.name or slot.schedule
        event.add("summary", f"{label} {slot.shift}" if by_person else f"{label} {slot.shift}: {who}")
        lines = [f"slot: {slot.key}", f"on duty: {who} ({duty.person})"]
        if duty.change_id is not None:
            lines.append(f"by on-call change #{duty.change_id} (rotation: {slot.member})")
        event.add("description", "\n".join(lines))
        event.add("categories", ["on-call", slot.schedule])
        event.add("transp", "OPAQUE")
        cal.add_component(event)
    return bytes(cal.to_ical())
