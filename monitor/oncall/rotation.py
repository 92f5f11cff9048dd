"""Who is on duty when: the slots of a schedule, the people the rotation and the overrides give them,
and the spans of time with who is on call in each (pure; times are epoch seconds).

**Slots.** A slot is one occurrence of one shift of one layer. Its identity is
`schedule/layer/shift/YYYY-MM-DD`: the names of the schedule, the layer and the shift, and the date (in
the schedule's time zone) the shift starts on. The shift's hand-off times are *not* part of it, so a
config change that moves a shift (日勤 08:30-20:30 becomes 09:00-21:00) keeps every slot's identity: a swap
or override made for "日勤 of 12 Dec" still holds for the moved 日勤 of 12 Dec. Renaming a shift or layer, or
moving a shift's start across midnight (so it starts on another date), makes new slots; overrides of
slots that no longer exist are reported as orphaned (`orphans`), never silently applied elsewhere.

**Rotation.** Within a layer, duties go round `members` in order from `rotation_start` (members[0] takes
the first shift of that day): with `rotate: shift` each shift goes to the next member, with `day` one
member keeps every shift of a day, with `week` of seven days. Only days the layer runs on count (`days:
workdays` skips weekends and holidays, so a weekday rotation is not thrown off by a holiday). Before
`rotation_start` a layer has no slots.

**Layers.** Where several layers have someone on duty at a moment, the last layer listed wins (a holiday
layer over the base rotation); a slot an override left empty lets the layers below show through. A moment
nobody covers is a coverage gap.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.config.oncall_model import Layer, Schedule
from monitor.config.response_model import OfficeHours
from monitor.incidents.policy import is_holiday

DAY = 86400.0


def slot_key(schedule: str, layer: str, shift: str, day: date) -> str:
    return f"{schedule}/{layer}/{shift}/{day.isoformat()}"


def parse_slot_key(key: str) -> tuple[str, str, str, date]:
    """(schedule, layer, shift, day) of a slot key; ValueError if it is not one."""
    parts = key.split("/")
    if len(parts) != 4 or not all(parts):
        raise ValueError(f'"{key}" is not a slot (schedule/layer/shift/YYYY-MM-DD)')
    try:
        day = date.fromisoformat(parts[3])
    except ValueError:
        raise ValueError(f'"{key}": "{parts[3]}" is not a date (YYYY-MM-DD)') from None
    return parts[0], parts[1], parts[2], day


@dataclass(frozen=True, slots=True)
class Slot:
    schedule: str
    layer: str
    layer_index: int  # precedence: a higher one wins
    shift: str
    day: date  # the date (schedule time zone) the shift starts on
    start: float
    end: float
    member: str  # whom the rotation gives it

    @property
    def key(self) -> str:
        return slot_key(self.schedule, self.layer, self.shift, self.day)


@dataclass(frozen=True, slots=True)
class Duty:
    """A slot and who holds it after the overrides (None: an override left it empty)."""

    slot: Slot
    person: str | None
    change_id: int | None = None  # the override or swap that put them there (None: the rotation)


# slot key -> (who holds it, the change that said so), the latest change per slot (monitor.oncall.roster)
Overrides = Mapping[str, tuple[str | None, int]]


def _calendar(schedule: Schedule) -> OfficeHours:
    return OfficeHours(
        weekdays=schedule.workdays, holidays=schedule.holidays, national_holidays=schedule.national_holidays
    )


def _runs_on(layer: Layer, day: date, calendar: OfficeHours) -> bool:
    if layer.days == "all":
        return True
    workday = day.isoweekday() in calendar.weekdays and not is_holiday(day, calendar)
    return workday == (layer.days == "workdays")


def _turn(layer: Layer, counted_days: int, shift_index: int) -> str:
    if layer.rotate == "shift":
        n = counted_days * len(layer.shifts) + shift_index
    elif layer.rotate == "day":
        n = counted_days
    else:
        n = counted_days // 7
    return layer.members[n % len(layer.members)]


def slots(name: str, schedule: Schedule, start: float, end: float) -> list[Slot]:
    """Every slot of the schedule that overlaps [start, end), by start time."""
    zone = ZoneInfo(schedule.timezone)
    calendar = _calendar(schedule)
    first = datetime.fromtimestamp(start, zone).date() - timedelta(days=1)  # a night shift from the day before
    last = datetime.fromtimestamp(end, zone).date()
    found: list[Slot] = []
    for index, layer in enumerate(schedule.layers):
        day = layer.rotation_start
        counted = 0
        if first > day:  # count the layer's days before the window once, then walk through it
            if layer.days == "all":
                counted, day = (first - day).days, first
            else:
                while day < first:
                    counted += _runs_on(layer, day, calendar)
                    day += timedelta(days=1)
        while day <= last:
            if _runs_on(layer, day, calendar):
                for i, shift in enumerate(layer.shifts):
                    begins = datetime.combine(day, shift.start, zone)
                    ends = datetime.combine(day + timedelta(days=shift.end <= shift.start), shift.end, zone)
                    s, e = begins.timestamp(), ends.timestamp()
                    if e > start and s < end:
                        found.append(Slot(name, layer.name, index, shift.name, day, s, e, _turn(layer, counted, i)))
                counted += 1
            day += timedelta(days=1)
    return sorted(found, key=lambda s: (s.start, s.layer_index))


def duties(name: str, schedule: Schedule, start: float, end: float, overrides: Overrides) -> list[Duty]:
    out = []
    for slot in slots(name, schedule, start, end):
        if slot.key in overrides:
            person, change = overrides[slot.key]
            out.append(Duty(slot, person, change))
        else:
            out.append(Duty(slot, slot.member))
    return out


def _on_call(active: Iterable[Duty]) -> tuple[Duty, ...]:
    staffed = [d for d in active if d.person is not None]
    if not staffed:
        return ()
    top = max(d.slot.layer_index for d in staffed)
    return tuple(d for d in staffed if d.slot.layer_index == top)


def on_call(name: str, schedule: Schedule, at: float, overrides: Overrides) -> tuple[Duty, ...]:
    """The duties that have people on call at `at` (empty: nobody)."""
    return _on_call(d for d in duties(name, schedule, at, at + 1, overrides) if d.slot.start <= at < d.slot.end)


@dataclass(frozen=True, slots=True)
class Span:
    start: float
    end: float
    on: tuple[Duty, ...]  # empty: a coverage gap

    @property
    def people(self) -> tuple[str, ...]:
        return tuple(sorted({d.person for d in self.on if d.person is not None}))


def spans(name: str, schedule: Schedule, start: float, end: float, overrides: Overrides) -> list[Span]:
    """[start, end) cut where who is on call changes; adjacent pieces with the same people and slots merge."""
    found = duties(name, schedule, start, end, overrides)
    cuts = sorted({start, end, *(t for d in found for t in (d.slot.start, d.slot.end) if start < t < end)})
    out: list[Span] = []
    for a, b in itertools.pairwise(cuts):
        on = _on_call(d for d in found if d.slot.start <= a < d.slot.end)
        if (
            out
            and {d.slot.key for d in out[-1].on} == {d.slot.key for d in on}
            and out[-1].people == Span(a, b, on).people
        ):
            out[-1] = Span(out[-1].start, b, on)
        else:
            out.append(Span(a, b, on))
    return out


def gaps(name: str, schedule: Schedule, start: float, end: float, overrides: Overrides) -> list[tuple[float, float]]:
    """The stretches of [start, end) when nobody is on call, merged."""
    out: list[tuple[float, float]] = []
    for span in spans(name, schedule, start, end, overrides):
        if span.on:
            continue
        if out and out[-1][1] == span.start:
            out[-1] = (out[-1][0], span.end)
        else:
            out.append((span.start, span.end))
    return out


def slot_at(name: str, schedule: Schedule, key: str) -> Slot | None:
    """The slot with this key in the current config (None: no such slot, e.g. its shift was renamed)."""
    try:
        sched, _layer, _shift, day = parse_slot_key(key)
    except ValueError:
        return None
    if sched != name:
        return None
    zone = ZoneInfo(schedule.timezone)
    midnight = datetime.combine(day, datetime.min.time(), zone).timestamp()
    for slot in slots(name, schedule, midnight, midnight + DAY):
        if slot.key == key:
            return slot
    return None


def orphans(name: str, schedule: Schedule, keys: Iterable[str]) -> list[str]:
    """Override keys that name no slot of the current config."""
    return [k for k in keys if slot_at(name, schedule, k) is None]
