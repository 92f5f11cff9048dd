"""The status page's daily bars: one pass over the spans, equal to the reports' calculation per day."""

from __future__ import annotations

import random

from monitor.availability.calc import compute
from monitor.status.page import _day_bounds, build_history

NOW = 1_796_000_000.0


def test_daily_history_equals_the_report_calculation() -> None:
    """Random up/down/degraded/unreachable/maintenance/unknown spans over 91 days for 20 services: each
    day's pooled availability is what compute() gives for that day (maintenance and gaps out)."""
    rng = random.Random(2)
    spans = {}
    for i in range(20):
        t, rows = NOW - 91 * 86400, []
        while t < NOW:
            d = rng.uniform(600, 86400)
            rows.append(("up", t, min(t + d, NOW), None))
            t += d
            if t < NOW:
                e = rng.uniform(600, 20000)
                state = rng.choice(["down", "maintenance", "degraded", "unreachable", "unknown"])
                rows.append((state, t, min(t + e, NOW), None))
                t += e
        rows[-1] = (rows[-1][0], rows[-1][1], None, None)  # the open interval
        spans[f"s{i}"] = rows
    history = build_history(spans, {"all": list(spans), "none": ["missing"]}, NOW, 90)
    assert len(history.days) == 90 and history.ratios["none"] == [None] * 90
    for (_day, start, end), ratio in zip(_day_bounds(NOW, 90), history.ratios["all"], strict=True):
        planned = down = 0.0
        for rows in spans.values():
            figures = compute(rows, (start, end))
            planned += figures.planned_seconds
            down += figures.downtime_seconds
        expected = None if planned <= 0 else 1 - down / planned
        assert ratio is not None and expected is not None and abs(ratio - expected) < 1e-12
    assert min(r for r in history.ratios["all"] if r is not None) < 0.95  # the case has real downtime
