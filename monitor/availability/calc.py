"""Availability the way Japanese government SLAs define it, time-weighted, pure arithmetic:

    稼働率 = (計画サービス時間 − 障害停止時間) ÷ 計画サービス時間

Planned service time is the service hours of the period minus planned maintenance (計画停止) and
minus monitoring gaps (times with no state or UNKNOWN, reported separately: a gap is never counted
as up, and never silently as down either; `worst_case` counts it as down). DEGRADED is up unless the
SLO says otherwise; UNREACHABLE is down (its root cause is kept with the outage). Outages re-classified
as planned after the fact (corrections) count as maintenance.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from monitor.availability.periods import Span, intersect, total

UP, DOWN, MAINTENANCE, GAP = "up", "down", "maintenance", "gap"
_CATEGORY = {"up": UP, "degraded": UP, "down": DOWN, "unreachable": DOWN, "maintenance": MAINTENANCE, "unknown": GAP}


@dataclass(frozen=True, slots=True)
class StateSpan:
    state: str
    start: float
    end: float | None  # None: still going
    root_cause: str | None = None


@dataclass(frozen=True, slots=True)
class Outage:
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
    spans: Iterable[StateSpan], start: float, end: float, degraded_up: bool
) -> Iterator[tuple[float, float, str, str | None]]:
    """(lo, hi, category, root cause) covering [start, end) completely: gaps where no state was known."""
    cursor = start
    for s in spans:
        lo, hi = max(s.start, cursor), min(s.end if s.end is not None else end, end)
        if hi <= lo:
            continue
        if lo > cursor:
            yield cursor, lo, GAP, None
        category = _CATEGORY.get(s.state, GAP)
        if s.state == "degraded" and not degraded_up:
            category = DOWN
        yield lo, hi, category, s.root_cause
        cursor = hi
    if cursor < end:
        yield cursor, end, GAP, None


def compute(
    spans: Iterable[StateSpan],
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
    result = Availability(service_seconds=total(hours))
    open_outage: list[float] | None = None  # [start, end, seconds]
    roots: set[str] = set()
    for lo, hi, category, root in _segments(spans, start, end, degraded_up):
        inside = intersect([(lo, hi)], hours) if service_hours is not None else [(lo, hi)]
        seconds = total(inside)
        if category == DOWN and fixes:
            planned = total(intersect(inside, fixes))
            result.maintenance_seconds += planned
            seconds -= planned
        if category == DOWN:
            result.downtime_seconds += seconds
            if open_outage is not None and open_outage[1] == lo:
                open_outage[1], open_outage[2] = hi, open_outage[2] + seconds
            else:
                _close(result, open_outage, roots)
                open_outage, roots = [lo, hi, seconds], set()
            if root:
                roots.add(root)
            continue
        _close(result, open_outage, roots)
        open_outage = None
        if category == UP:
            result.up_seconds += seconds
        elif category == MAINTENANCE:
            result.maintenance_seconds += seconds
        else:
            result.gap_seconds += seconds
    _close(result, open_outage, roots)
    return result


def _close(result: Availability, outage: list[float] | None, roots: set[str]) -> None:
    if outage is not None and outage[2] > 0:
        result.outages.append(Outage(outage[0], outage[1], outage[2], tuple(sorted(roots))))
