"""The capacity section of the monthly report (回線帯域): per circuit and direction, the month's 95th
percentile of 5-minute utilisation, the peak, the months before it, and the forecast of the days until the
threshold (the arithmetic is capacity.py's).

A closed month's figures come from its stored roll-up (kept after its 5-minute samples are pruned), so the
report of a previous month says what it said then; a month without one (in progress, or closed while no
daemon rolled it up) is computed from its samples. The live metrics (capacity_recorder.py) use the same
`circuit_months`, so the alert and the report never disagree about a month."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from monitor.availability.capacity import DIRECTIONS, SLOT, Forecast, MonthFigures, Sample, forecast, month_figures
from monitor.availability.circuits import Circuit, circuits
from monitor.availability.periods import month_span, previous_months
from monitor.config.capacity_model import CapacityConfig
from monitor.core.inventory import Inventory
from monitor.store.base import Store
from monitor.timefmt import iso

ROLLUP_GRACE = 3 * SLOT  # a month is rolled up once its last slots have certainly been written

Key = tuple[str, str]  # (circuit, direction)


@dataclass
class CapacityRow:
    circuit: Circuit
    direction: str
    figures: MonthFigures  # the report's month
    forecast: Forecast
    trend: list[MonthFigures]  # the months the forecast looked at, oldest first (the report's month last)


@dataclass
class CapacitySection:
    threshold: float
    alert_within_days: float
    forecast_months: int
    min_months: int
    min_coverage: float
    rows: list[CapacityRow] = field(default_factory=list)

    @property
    def method(self) -> str:
        return (
            f"95th percentile as Prometheus quantile_over_time(0.95) of 5-minute utilisation; forecast: least "
            f"squares over the monthly 95th percentiles of up to {self.forecast_months} months (at least "
            f"{self.min_months} with {self.min_coverage:.0%} of their 5-minute slots measured)"
        )

    def saturating(self) -> list[CapacityRow]:
        """Rows over the threshold already, or forecast to reach it within alert_within_days."""
        return [r for r in self.rows if r.forecast.days is not None and r.forecast.days <= self.alert_within_days]


def label(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


async def circuit_months(
    store: Store, names: list[str], months: list[tuple[int, int]], now: float
) -> dict[Key, list[MonthFigures]]:
    """Each circuit's figures of each month (oldest first): the stored roll-up, else computed from samples."""
    labels = [label(y, m) for y, m in months]
    stored: dict[tuple[str, str, str], MonthFigures] = {
        (f.circuit, f.direction, f.month): f for f in await store.capacity_months(labels)
    }
    out: dict[Key, list[MonthFigures]] = defaultdict(list)
    for (y, m), month in zip(months, labels, strict=True):
        start, end = month_span(y, m)
        if start >= now:
            continue
        span = (start, min(end, now))
        for name in names:
            if all((name, d, month) in stored for d in DIRECTIONS):
                for direction in DIRECTIONS:
                    out[(name, direction)].append(stored[(name, direction, month)])
                continue
            # one circuit at a time (its primary key's range), sorted and reduced off the event loop: the month
            # in progress of every circuit is millions of samples
            samples = await store.capacity_samples(start, span[1], name)
            computed = await asyncio.to_thread(_figures, name, month, span, samples)
            for way, figures in computed.items():
                out[(name, way)].append(stored.get((name, way, month)) or figures)
    return out


def _figures(name: str, month: str, span: tuple[float, float], samples: list[Sample]) -> dict[str, MonthFigures]:
    by_direction: dict[str, list[Sample]] = {d: [] for d in DIRECTIONS}
    for s in samples:
        by_direction[s.direction].append(s)
    return {d: month_figures(name, d, month, span, found) for d, found in by_direction.items()}


async def roll_up(store: Store, inventory: Inventory, year: int, month: int, now: float) -> list[MonthFigures]:
    """Store a closed month's figures of every circuit (the report and the forecast read them from then on)."""
    start, end = month_span(year, month)
    if end + ROLLUP_GRACE > now:
        return []
    names = {c.name for c in circuits(inventory)}
    figures: list[MonthFigures] = []
    for name in sorted(names | set(await store.capacity_circuits(start, end))):  # circuits gone since: history
        samples = await store.capacity_samples(start, end, name)
        figures.extend((await asyncio.to_thread(_figures, name, label(year, month), (start, end), samples)).values())
    await store.save_capacity_months(figures)
    return figures


async def build_section(store: Store, inventory: Inventory, year: int, month: int, now: float) -> CapacitySection:
    config: CapacityConfig = inventory.capacity
    section = CapacitySection(
        config.threshold, config.alert_within_days, config.forecast_months, config.min_months, config.min_coverage
    )
    listed = circuits(inventory)
    if not listed:
        return section
    months = previous_months(year, month, config.forecast_months)
    figures = await circuit_months(store, [c.name for c in listed], months, now)
    # the forecast is as of the report's month: its end, or now for the month in progress
    as_of = min(month_span(year, month)[1], now)
    for circuit in listed:
        for direction in DIRECTIONS:
            trend = figures.get((circuit.name, direction), [])
            if not trend or trend[-1].month != label(year, month):
                continue  # the month had not begun
            outlook = forecast(trend, config.threshold, as_of, config.min_months, config.min_coverage)
            section.rows.append(CapacityRow(circuit, direction, trend[-1], outlook, trend))
    return section


def section_json(section: CapacitySection) -> dict[str, Any]:
    return {
        "threshold": section.threshold,
        "alert_within_days": section.alert_within_days,
        "method": section.method,
        "circuits": [
            {
                "circuit": r.circuit.name,
                "name": r.circuit.display_name,
                "name_en": r.circuit.display_name_en,
                "kind": r.circuit.kind,
                "prefecture": r.circuit.prefecture,
                "ports": [p.check + (f" {p.interface}" if p.interface else "") for p in r.circuit.ports],
                "direction": r.direction,
                "capacity_bps": r.figures.capacity_bps,
                "samples": r.figures.samples,
                "slots": r.figures.slots,
                "coverage": round(r.figures.coverage, 4),
                "p95_utilization": r.figures.p95_ratio,
                "p95_bps": r.figures.p95_bps,
                "peak_utilization": r.figures.peak_ratio,
                "peak_at": iso(r.figures.peak_at),
                "forecast": {
                    "status": r.forecast.status,
                    "months": r.forecast.months,
                    "slope_per_30d": r.forecast.slope_per_30d,
                    "days_until_threshold": r.forecast.days,
                    "method": r.forecast.method,
                },
                "trend": [
                    {"month": f.month, "p95_utilization": f.p95_ratio, "coverage": round(f.coverage, 4)}
                    for f in r.trend
                ],
            }
            for r in section.rows
        ],
    }
