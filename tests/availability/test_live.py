"""Live SLO figures: incremental sums equal a full computation; running totals give the same burn-rate
windows as computing each window; the gauges carry budget and burn rates in the expected units."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.availability.calc import RunningTotals, StateSpan, compute
from monitor.availability.live import SLOTracker
from monitor.availability.metrics import SLOProvider
from monitor.availability.periods import month_span
from monitor.core.engine import Engine, Transition
from monitor.core.state import State
from monitor.store.sqlite import SQLiteStore
from tests.conftest import Loader


def random_spans(seed: int, start: float, end: float, count: int) -> list[StateSpan]:
    rng = random.Random(seed)
    times = sorted(rng.uniform(start, end) for _ in range(count))
    states = ["up", "down", "degraded", "maintenance", "unknown", "unreachable"]
    bounds = [start, *times]
    spans = []
    for lo, hi in itertools.pairwise(bounds):
        gap = rng.choice([0.0, 0.0, 0.0, (hi - lo) / 3])  # sometimes a monitoring gap before the next state
        spans.append(StateSpan(rng.choice(states), lo, hi - gap))
    spans.append(StateSpan("up", bounds[-1], None))
    return spans


@pytest.mark.parametrize("degraded_up", [True, False])
def test_running_totals_equal_compute(degraded_up: bool) -> None:
    """For random state histories, every trailing window's up and down seconds from RunningTotals equal compute()."""
    for seed in range(20):
        spans = random_spans(seed, 0.0, 100_000.0, 300)
        totals = RunningTotals(degraded_up)
        totals.update(spans)
        for window in (300.0, 3600.0, 86_400.0, 250_000.0):
            now = 100_500.0
            up, down = totals.window(spans, now - window, now)
            expected = compute(spans, (now - window, now), degraded_up=degraded_up)
            assert up == pytest.approx(expected.up_seconds) and down == pytest.approx(expected.downtime_seconds)


async def test_tracker_incremental_equals_full_and_gauges(load_yaml_config: Loader, tmp_path: Path) -> None:
    """Refreshing the tracker (checkpointed sums) gives the same month figures as computing the month whole;
    a 30-day month at 99.9% has a 43.2 minute budget; burn rates and remaining budget follow."""
    inventory = load_yaml_config(
        """
        modules: {ping: {kind: icmp}}
        targets: [{name: a, address: 127.0.0.1, modules: [ping]}]
        services: [{name: portal, targets: [a], labels: {tier: national}}]
        """
    ).inventory
    start, _ = month_span(2026, 11)
    store = SQLiteStore(tmp_path / "m.db")
    store.open(now=start)
    spans = random_spans(3, start, start + 20 * 86400, 200)
    store.record(
        [
            Transition("service", "portal", State.UNKNOWN, State(s.state), s.start)
            for s in spans
            if s.end is None or s.end > s.start
        ]
    )
    await store.flush()
    engine = Engine(inventory)
    clock = {"now": start + 20 * 86400 + 3600}
    tracker = SLOTracker(store, engine, lambda: clock["now"])
    await tracker.load()
    first = tracker.compute_status(clock["now"])["portal"]
    clock["now"] += 7200
    later = tracker.compute_status(clock["now"])["portal"]
    loaded = [StateSpan(i.state, i.start, i.end) for i in (await store.intervals_since("service", 0))["portal"]]
    full = compute(loaded, (start, clock["now"]))
    assert later.window.downtime_seconds == pytest.approx(full.downtime_seconds)
    assert later.window.gap_seconds == pytest.approx(full.gap_seconds) and later.window.up_seconds == pytest.approx(
        full.up_seconds
    )
    assert first.window.downtime_seconds <= later.window.downtime_seconds
    expected_budget = 0.001 * (30 * 86400 - full.maintenance_seconds - full.gap_seconds)
    assert later.budget_total_seconds == pytest.approx(expected_budget)
    text = SLOProvider(lambda: {"portal": later}, lambda: inventory).text()  # what /metrics appends
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"monitor_service_availability_ratio", "monitor_service_error_budget_remaining_seconds",
            "monitor_service_error_budget_remaining_ratio", "monitor_service_burn_rate"} <= set(families)  # fmt: skip
    burn = {s.labels["window"]: s.value for s in families["monitor_service_burn_rate"].samples}
    assert set(burn) <= {"5m", "30m", "1h", "2h", "6h", "1d", "3d"} and all(v >= 0 for v in burn.values())
    await store.close(now=clock["now"])
