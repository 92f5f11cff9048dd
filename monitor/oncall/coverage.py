"""Coverage of the playbook levels that page schedules: the stretches of the coming weeks when a level
would page nobody, with the overrides that are stored (one that leaves a slot empty makes a gap too).

A level is covered at a moment when it names a fixed contact, or when one of its schedules has someone
on call then. Each gap is told in the schedule's time zone, once per weekday and time, with its dates:

    nobody on level 1 on Sun 03:00-07:00 JST in the next 28 days (2026-12-13, 2026-12-20; schedule noc)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from monitor.config.response_model import ResponseConfig
from monitor.oncall import rotation
from monitor.oncall.rotation import Overrides

HORIZON_DAYS = 28


@dataclass(frozen=True, slots=True)
class Gap:
    playbook: str
    level: int  # 1-based
    schedules: tuple[str, ...]
    start: float
    end: float


def _intersect(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = []
    for s1, e1 in a:
        for s2, e2 in b:
            s, e = max(s1, s2), min(e1, e2)
            if s < e:
                out.append((s, e))
    return sorted(out)


def level_gaps(
    config: ResponseConfig, overrides: Mapping[str, Overrides], now: float, days: int = HORIZON_DAYS
) -> list[Gap]:
    """Every stretch of [now, now + days) in which a level that pages schedules reaches nobody."""
    end = now + days * rotation.DAY
    per_schedule = {
        name: rotation.gaps(name, schedule, now, end, overrides.get(name, {}))
        for name, schedule in config.schedules.items()
    }
    out: list[Gap] = []
    for book_name, book in config.playbooks.items():
        for index, level in enumerate(book.levels, start=1):
            named = sorted({n.schedule for n in level.notify if n.schedule is not None})
            if not named or any(n.contacts for n in level.notify):
                continue  # a fixed contact is always there (and no schedule: nothing to check)
            empty = [(now, end)]
            for name in named:
                empty = _intersect(empty, per_schedule.get(name, [(now, end)]))
            out += [Gap(book_name, index, tuple(named), s, e) for s, e in empty]
    return out


def _when(start: float, end: float, zone: ZoneInfo) -> str:
    a, b = datetime.fromtimestamp(start, zone), datetime.fromtimestamp(end, zone)
    until = b.strftime("%H:%M") if b.date() == a.date() or (b - a).total_seconds() < 1 else b.strftime("%a %H:%M")
    return f"{a.strftime('%a %H:%M')}-{until} {a.tzname()}"


def describe(gaps: list[Gap], config: ResponseConfig, days: int = HORIZON_DAYS) -> list[tuple[str, str]]:
    """(where, message) per playbook level and weekday/time, dates listed: the check-config lines."""
    grouped: dict[tuple[str, int, str, tuple[str, ...]], list[str]] = {}
    for gap in gaps:
        zone = ZoneInfo(config.schedules[gap.schedules[0]].timezone)
        key = (gap.playbook, gap.level, _when(gap.start, gap.end, zone), gap.schedules)
        grouped.setdefault(key, []).append(datetime.fromtimestamp(gap.start, zone).date().isoformat())
    out = []
    for (playbook, level, when, schedules), dates in grouped.items():
        where = f"playbooks.{playbook}.levels.{level - 1}"
        label = "schedule" if len(schedules) == 1 else "schedules"
        out.append(
            (where, f"nobody on level {level} on {when} in the next {days} days "
                    f"({', '.join(dates)}; {label} {', '.join(schedules)})")
        )  # fmt: skip
    return out
