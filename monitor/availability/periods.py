"""Time spans for availability: calendar months in JST (not UTC: a month starts at 00:00 in Tokyo,
15:00 UTC the day before) and service hours (24h365d, or e.g. office hours on working days)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from monitor.config.response_model import OfficeHours
from monitor.incidents.policy import is_holiday

JST = ZoneInfo("Asia/Tokyo")
Span = tuple[float, float]  # [start, end) in UTC epoch seconds


def parse_month(text: str) -> tuple[int, int]:
    """ "2026-11" -> (2026, 11), with a clear error otherwise."""
    try:
        year, month = (int(part) for part in text.split("-"))
        dt.date(year, month, 1)
    except ValueError:
        raise ValueError(f'month must be written YYYY-MM, e.g. 2026-11, not "{text}"') from None
    return year, month


def month_span(year: int, month: int, tz: ZoneInfo = JST) -> Span:
    start = dt.datetime(year, month, 1, tzinfo=tz)
    nxt = dt.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=tz)
    return start.timestamp(), nxt.timestamp()


def month_of(ts: float, tz: ZoneInfo = JST) -> tuple[int, int]:
    local = dt.datetime.fromtimestamp(ts, tz)
    return local.year, local.month


def previous_months(year: int, month: int, count: int) -> list[tuple[int, int]]:
    """The `count` months ending with (year, month), oldest first."""
    out = []
    for _ in range(count):
        out.append((year, month))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return out[::-1]


def service_spans(start: float, end: float, hours: OfficeHours | None) -> list[Span]:
    """The parts of [start, end) that are service time: all of it (hours None), or the office hours of
    working days that are not holidays, in the hours' time zone."""
    if hours is None:
        return [(start, end)] if end > start else []
    tz = ZoneInfo(hours.timezone)
    spans: list[Span] = []
    for day in _days(start, end, tz):
        if day.isoweekday() not in hours.weekdays or is_holiday(day, hours):
            continue
        open_at = dt.datetime.combine(day, hours.start, tz).timestamp()
        close_at = dt.datetime.combine(day, hours.end, tz).timestamp()
        lo, hi = max(open_at, start), min(close_at, end)
        if hi > lo:
            spans.append((lo, hi))
    return spans


def _days(start: float, end: float, tz: ZoneInfo) -> Iterator[dt.date]:
    day = dt.datetime.fromtimestamp(start, tz).date()
    last = dt.datetime.fromtimestamp(end, tz).date()
    while day <= last:
        yield day
        day += dt.timedelta(days=1)


def intersect(a: list[Span], b: list[Span]) -> list[Span]:
    """Intersection of two sorted lists of disjoint spans."""
    out: list[Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def total(spans: list[Span]) -> float:
    return sum(hi - lo for lo, hi in spans)
