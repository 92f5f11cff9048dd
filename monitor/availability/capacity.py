"""Circuit capacity figures: the monthly 95th percentile of 5-minute utilisation, the peak, and a forecast
of the days until the threshold, per circuit and direction. Pure arithmetic on stored 5-minute samples
(capacity_recorder.py makes them; the store keeps them, sql_capacity.py); the report section and the
live metrics are built from these functions.

The 95th percentile is Prometheus' `quantile_over_time(0.95, ...)` exactly (promql/quantile.go,
`quantile`): the samples sorted, rank = 0.95 x (n - 1), linear interpolation between the samples at
floor(rank) and floor(rank) + 1. So the report and a PromQL query over the same 5-minute samples give the
same number, and tests/availability/test_capacity_prometheus.py checks that against a real Prometheus.
(This is not the "nearest rank" 95th percentile of burstable billing, which drops the top 5% and takes the
largest remaining sample: with 8,640 samples a month the two differ by at most one sample step.)

An aggregate circuit (several ports) is one series of 5-minute rates, the SUM of its ports' rates in each
5-minute slot, and its percentile is taken over that sum: the sum of the ports' percentiles would count
bursts that never happened together.

Forecast: ordinary least squares of the monthly 95th percentiles against time (each month at the middle of
its measured part), over the last `forecast_months` months with enough data (`min_coverage` of their
5-minute slots), and only with at least `min_months` of them ("not enough data" otherwise). Days until the
threshold = where the fitted line reaches it, from now; already over it in the latest month: 0; a flat or
falling trend: none foreseen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

SLOT = 300.0  # seconds: the 5-minute utilisation the figures are made of
DAY = 86400.0
Direction = Literal["in", "out"]
DIRECTIONS: tuple[Direction, Direction] = ("in", "out")


def prometheus_quantile(q: float, values: Sequence[float]) -> float:
    """Prometheus' quantile of `values` (quantile_over_time, the `quantile` aggregation): NaN for no values,
    -Inf below q = 0 and +Inf above q = 1, as Prometheus returns them."""
    if not values:
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(values)
    n = len(ordered)
    rank = q * (n - 1)
    lower = max(0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


@dataclass(frozen=True, slots=True)
class Sample:
    """One circuit's traffic in one direction over one 5-minute slot [start, start + 300)."""

    circuit: str
    direction: str
    start: float
    bits_per_second: float  # the sum of its ports' mean rates in the slot
    capacity_bps: float  # the circuit's capacity at that time

    @property
    def utilisation(self) -> float:
        return self.bits_per_second / self.capacity_bps


@dataclass(frozen=True, slots=True)
class MonthFigures:
    """A circuit's month in one direction (stored as the month's roll-up once it is over)."""

    circuit: str
    direction: str
    month: str  # YYYY-MM (JST)
    samples: int  # 5-minute slots measured
    slots: int  # 5-minute slots in the month (up to now, for the month in progress)
    p95_ratio: float | None  # 95th percentile of the 5-minute utilisation (None: no samples)
    peak_ratio: float | None  # the busiest 5 minutes
    peak_at: float | None  # when that slot began
    p95_bps: float | None  # 95th percentile of the rate (bits per second), for the report
    capacity_bps: float | None  # the capacity in the month (the latest, if it changed)
    midpoint: float  # the middle of the measured part of the month (the forecast's x)

    @property
    def coverage(self) -> float:
        return self.samples / self.slots if self.slots else 0.0


def month_figures(
    circuit: str, direction: str, month: str, span: tuple[float, float], samples: list[Sample]
) -> MonthFigures:
    """The figures of one month (`span`: its start and its end, or now if earlier) from its samples."""
    start, end = span
    slots = max(0, math.ceil((end - start) / SLOT))
    if not samples:
        return MonthFigures(circuit, direction, month, 0, slots, None, None, None, None, None, (start + end) / 2)
    ratios = [s.utilisation for s in samples]
    peak = max(samples, key=lambda s: s.utilisation)
    latest = max(samples, key=lambda s: s.start)
    first = min(s.start for s in samples)
    return MonthFigures(
        circuit,
        direction,
        month,
        len(samples),
        max(slots, len(samples)),
        prometheus_quantile(0.95, ratios),
        peak.utilisation,
        peak.start,
        prometheus_quantile(0.95, [s.bits_per_second for s in samples]),
        latest.capacity_bps,
        (first + latest.start + SLOT) / 2,
    )


@dataclass(frozen=True, slots=True)
class Forecast:
    status: Literal["not_enough_data", "saturated", "rising", "not_rising"]
    months: int  # months the fit used
    slope_per_30d: float | None  # change of the monthly 95th percentile per 30 days (0.02: 2 points a month)
    days: float | None  # days until the threshold: 0 when already over it, None when not foreseen

    @property
    def method(self) -> str:
        return "least squares over monthly 95th percentiles"


def forecast(
    months: list[MonthFigures], threshold: float, now: float, min_months: int, min_coverage: float
) -> Forecast:
    """Days until the 95th percentile reaches `threshold`, from the months given (oldest first)."""
    usable = [m for m in months if m.p95_ratio is not None and m.coverage >= min_coverage]
    if len(usable) < min_months:
        return Forecast("not_enough_data", len(usable), None, None)
    xs = [m.midpoint / DAY for m in usable]
    ys = [m.p95_ratio for m in usable if m.p95_ratio is not None]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx if sxx > 0 else 0.0
    if ys[-1] >= threshold:
        return Forecast("saturated", len(usable), slope * 30, 0.0)
    if slope <= 0:
        return Forecast("not_rising", len(usable), slope * 30, None)
    crossing = mean_x + (threshold - mean_y) / slope  # in days since the epoch
    return Forecast("rising", len(usable), slope * 30, max(0.0, crossing - now / DAY))
