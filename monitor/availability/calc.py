"""Availability the way Japanese government SLAs define it, time-weighted, pure arithmetic:

    稼働率 = (計画サービス時間 − 障害停止時間) ÷ 計画サービス時間

Planned service time is the service hours of the period minus planned maintenance (計画停止) and
minus monitoring gaps (times with no state or UNKNOWN, reported separately: a gap is never counted
as up, and never silently as down either; `worst_case` counts it as down). DEGRADED is up unless the
SLO says otherwise; UNREACHABLE is down (its root cause is kept with the outage). Outages re-classified
as planned after the fact (corrections) count as maintenance.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from monitor.availability.periods import Span, intersect, total

UP, DOWN, MAINTENANCE, GAP = "up", "down", "maintenance", "gap"
_CATEGORY = {"up": UP, "degraded": UP, "down": DOWN, "unreachable": DOWN, "maintenance": MAINTENANCE, "unknown": GAP}


class StateSpan(NamedTuple):
    """A state over [start, end). Plain (state, start, end, root_cause) tuples from the store work too."""

    state: str
    start: float
    end: float | None  # None: still going
    root_cause: str | None = None


SpanLike = tuple[Any, ...]  # StateSpan, or a row from the store starting (state, start, end, root_cause, ...)


class Outage(NamedTuple):
    start: float
    end: float
    seconds: float  # inside service hours
    root_causes: tuple[str, ...]


@dataclass
class Availability:
    service_seconds: float = 0.0  # service hours in the period (so far)
    maintenance_seconds: float = 0.0  # 計画停止時間
    gap_seconds: float = 0.0  # monitoring gaps
    downtime_seconds: float = 0.0  # 障害停止時間
    up_seconds: float = 0.0
    outages: list[Outage] = field(default_factory=list)

    @property
    def planned_seconds(self) -> float:
        """計画サービス時間: service hours less planned maintenance and monitoring gaps."""
        return max(0.0, self.service_seconds - self.maintenance_seconds - self.gap_seconds)

    @property
    def availability(self) -> float | None:
        planned = self.planned_seconds
        return None if planned <= 0 else (planned - self.downtime_seconds) / planned

    @property
    def worst_case(self) -> float | None:
        """Availability if every monitoring gap had been an outage."""
        planned = self.service_seconds - self.maintenance_seconds
        return None if planned <= 0 else (planned - self.downtime_seconds - self.gap_seconds) / planned

    @property
    def longest_outage_seconds(self) -> float:
        return max((o.seconds for o in self.outages), default=0.0)

    @property
    def mttr_seconds(self) -> float | None:
        return self.downtime_seconds / len(self.outages) if self.outages else None

    @property
    def mtbf_seconds(self) -> float | None:
        """Mean operating time between failures: time up divided by the number of outages."""
        return (self.planned_seconds - self.downtime_seconds) / len(self.outages) if self.outages else None

    def add(self, other: Availability) -> None:
        """Pool another service's time into this one (availability of a group, time-weighted)."""
        self.service_seconds += other.service_seconds
        self.maintenance_seconds += other.maintenance_seconds
        self.gap_seconds += other.gap_seconds
        self.downtime_seconds += other.downtime_seconds
        self.up_seconds += other.up_seconds
        self.outages.extend(other.outages)


def _segments(
    spans: Iterable[SpanLike], start: float, end: float, degraded_up: bool
) -> Iterator[tuple[float, float, str, str | None]]:
    """(lo, hi, category, root cause) covering [start, end) completely: gaps where no state was known."""
    cursor = start
    for s in spans:  # indexed, not unpacked: store rows carry more columns after these four
        s_end = s[2]
        lo, hi = max(s[1], cursor), min(s_end if s_end is not None else end, end)
        if hi <= lo:
            continue
        if lo > cursor:
            yield cursor, lo, GAP, None
        state = s[0]
        category = DOWN if state == "degraded" and not degraded_up else _CATEGORY.get(state, GAP)
        yield lo, hi, category, s[3]
        cursor = hi
    if cursor < end:
        yield cursor, end, GAP, None


def compute(
    spans: Iterable[SpanLike],
    period: Span,
    service_hours: list[Span] | None = None,
    corrections: list[Span] | None = None,
    degraded_up: bool = True,
) -> Availability:
    """Availability of one subject over `period` ([start, end), end at most "now"). `service_hours`
    (sorted spans inside the period; None: all of it) and `corrections` (sorted, disjoint spans whose
    outages count as planned)."""
    start, end = period
    hours = service_hours if service_hours is not None else [(start, end)]
    fixes = corrections or []
    up = down = maintenance = gap = 0.0  # locals, not attributes: this loop runs a million times for a report
    outages: list[Outage] = []
    o_start = o_end = o_seconds = 0.0
    o_open = False
    roots: set[str] = set()
    for lo, hi, category, root in _segments(spans, start, end, degraded_up):
        if service_hours is None:  # the common case: no span lists to build
            seconds = hi - lo
            inside = [(lo, hi)] if category == DOWN and fixes else []
        else:
            inside = intersect([(lo, hi)], hours)
            seconds = total(inside)
        if category == DOWN:
            if fixes:
                planned = total(intersect(inside, fixes))
                maintenance += planned
                seconds -= planned
            down += seconds
            if o_open and o_end == lo:
                o_end, o_seconds = hi, o_seconds + seconds
            else:
                if o_open and o_seconds > 0:
                    outages.append(Outage(o_start, o_end, o_seconds, tuple(sorted(roots))))
                o_open, o_start, o_end, o_seconds, roots = True, lo, hi, seconds, set()
            if root:
                roots.add(root)
            continue
        if o_open:
            if o_seconds > 0:
                outages.append(Outage(o_start, o_end, o_seconds, tuple(sorted(roots))))
            o_open = False
        if category == UP:
            up += seconds
        elif category == MAINTENANCE:
            maintenance += seconds
        else:
            gap += seconds
    if o_open and o_seconds > 0:
        outages.append(Outage(o_start, o_end, o_seconds, tuple(sorted(roots))))
    return Availability(total(hours), maintenance, gap, down, up, outages)


class RunningTotals:
    """Seconds up and down accumulated from the first span to any moment, for an append-only list of
    spans: a trailing window's up and down time is two look-ups (bisect), whatever its length. Burn rates
    of thousands of services over seven windows each cost microseconds per service this way."""

    def __init__(self, degraded_up: bool = True) -> None:
        self.degraded_up = degraded_up
        self.first: SpanLike | None = None  # identity of spans[0] when built: a pruned list is rebuilt
        self.starts: list[float] = []
        self.up: list[float] = []  # totals at each span's start
        self.down: list[float] = []

    def _slot(self, state: str) -> int | None:
        category = DOWN if state == "degraded" and not self.degraded_up else _CATEGORY.get(state, GAP)
        return 0 if category == UP else 1 if category == DOWN else None

    def update(self, spans: Sequence[SpanLike]) -> None:
        if not spans or spans[0] is not self.first:
            self.first, self.starts, self.up, self.down = (spans[0] if spans else None), [], [], []
        for i in range(len(self.starts), len(spans)):
            up, down = (self.up[-1], self.down[-1]) if self.up else (0.0, 0.0)
            if i > 0:
                prev = spans[i - 1]
                length = (prev[2] if prev[2] is not None else spans[i][1]) - prev[1]
                slot = self._slot(prev[0])
                if slot == 0:
                    up += length
                elif slot == 1:
                    down += length
            self.starts.append(spans[i][1])
            self.up.append(up)
            self.down.append(down)

    def at(self, spans: Sequence[SpanLike], t: float) -> tuple[float, float]:
        """(up, down) seconds from the first span's start to `t`."""
        i = bisect_right(self.starts, t) - 1
        if i < 0:
            return 0.0, 0.0
        span = spans[i]
        end = span[2] if span[2] is not None else t
        part = max(0.0, min(t, end) - span[1])
        slot = self._slot(span[0])
        return self.up[i] + (part if slot == 0 else 0.0), self.down[i] + (part if slot == 1 else 0.0)

    def window(self, spans: Sequence[SpanLike], start: float, end: float) -> tuple[float, float]:
        (up0, down0), (up1, down1) = self.at(spans, start), self.at(spans, end)
        return up1 - up0, down1 - down0
