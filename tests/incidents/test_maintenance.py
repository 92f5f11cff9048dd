"""Maintenance windows: one-off and recurring (cron in JST) occurrences, what they cover, and the
driver that keeps the engine's MAINTENANCE set right."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from monitor.config.response_model import MaintenanceConfig
from monitor.core.engine import Engine
from monitor.core.state import State
from monitor.incidents.maintenance import MaintenanceDriver, covered_checks, from_config, next_start, occurrence
from probes.base import ProbeResult
from tests.conftest import Loader

JST = ZoneInfo("Asia/Tokyo")


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=JST).timestamp()


def window(**kw: object) -> MaintenanceConfig:
    return MaintenanceConfig.model_validate({"name": "w", "reason": "保守", "targets": ["a"], **kw})


def test_one_off_window_without_offset_is_jst() -> None:
    """A one-off window written without a UTC offset means Japan time; it is active from start to just before end."""
    w = from_config(window(start="2026-12-01T01:00", end="2026-12-01T03:00"), 0.0)
    assert occurrence(w, ts("2026-12-01T00:59:59")) is None
    assert occurrence(w, ts("2026-12-01T01:00:00")) == (ts("2026-12-01T01:00"), ts("2026-12-01T03:00"))
    assert occurrence(w, ts("2026-12-01T03:00:00")) is None
    assert w.starts_at == datetime(2026, 11, 30, 16, 0, tzinfo=ZoneInfo("UTC")).timestamp()


def test_recurring_window_follows_jst_cron_across_midnight() -> None:
    """Every Sunday 23:00 JST for 2 hours: active into Monday 00:59, not at 01:00, next start the following Sunday."""
    w = from_config(window(cron="0 23 * * 0", duration="2h"), 0.0)
    sunday = ts("2026-11-29T23:30")  # 2026-11-29 is a Sunday
    assert occurrence(w, sunday) == (ts("2026-11-29T23:00"), ts("2026-11-30T01:00"))
    assert occurrence(w, ts("2026-11-30T00:59")) is not None
    assert occurrence(w, ts("2026-11-30T01:00")) is None
    assert next_start(w, ts("2026-11-30T01:00")) == ts("2026-12-06T23:00")


def test_cancelled_window_is_never_active() -> None:
    """A cancelled window covers nothing, now or later."""
    w = from_config(window(cron="* * * * *", duration="1h"), 0.0)
    w.cancelled_at = 1.0
    assert occurrence(w, ts("2026-12-01T12:00")) is None and next_start(w, ts("2026-12-01T12:00")) is None


def test_scope_by_targets_and_labels(load_yaml_config: Loader) -> None:
    """A window covers the checks of the targets it names and of the targets its labels select."""
    inventory = load_yaml_config(
        """
        modules: {ping: {kind: icmp}, web: {kind: http}}
        targets:
          - {name: a, address: 127.0.0.1, modules: [ping, web]}
          - {name: b, address: 127.0.0.2, labels: {system: chukan}, modules: [ping]}
          - {name: c, address: 127.0.0.3, labels: {system: juki-net}, modules: [ping]}
        """
    ).inventory
    by_target = from_config(window(start="2026-12-01T01:00", end="2026-12-01T02:00"), 0.0)
    assert covered_checks(by_target, inventory) == {"a/ping", "a/web"}
    by_label = from_config(MaintenanceConfig.model_validate(
        {"name": "x", "reason": "r", "select": {"system": "chukan"}, "cron": "0 2 * * 0", "duration": "2h"}), 0.0)  # fmt: skip
    assert covered_checks(by_label, inventory) == {"b/ping"}


def test_window_shape_errors() -> None:
    """A window needs either start+end or cron+duration, an end after its start, and a scope."""
    import pytest
    from pydantic import ValidationError

    for bad in (
        {"start": "2026-12-01T01:00"},
        {"start": "2026-12-01T03:00", "end": "2026-12-01T01:00"},
        {"cron": "0 2 * * 0"},
        {"cron": "0 2 * * 0", "duration": "1h", "start": "2026-12-01T01:00", "end": "2026-12-01T02:00"},
        {"cron": "61 2 * * 0", "duration": "1h"},
    ):
        with pytest.raises(ValidationError):
            window(**bad)
    with pytest.raises(ValidationError, match="a window must say what it covers"):
        MaintenanceConfig.model_validate({"name": "w", "reason": "r", "cron": "0 2 * * 0", "duration": "1h"})


async def test_driver_applies_active_windows_to_the_engine(load_yaml_config: Loader) -> None:
    """The driver puts the covered checks in MAINTENANCE while the window is active and takes them out after."""
    inventory = load_yaml_config(
        """
        defaults: {failures_to_down: 1}
        modules: {ping: {kind: icmp}}
        targets:
          - {name: a, address: 127.0.0.1, modules: [ping]}
          - {name: b, address: 127.0.0.2, modules: [ping]}
        """
    ).inventory
    engine = Engine(inventory)
    engine.observe("a/ping", ProbeResult(ok=False, error="down"), 0.0)
    now = {"t": ts("2026-12-01T01:30")}
    windows = [from_config(window(start="2026-12-01T01:00", end="2026-12-01T02:00"), 0.0)]
    applied: list[dict[str, str]] = []

    def apply(covered: set[str], names: dict[str, str]) -> None:
        applied.append(names)
        engine.set_maintenance(names, now["t"])

    driver = MaintenanceDriver(lambda: windows, lambda: inventory, apply, lambda: now["t"])
    driver.start()
    try:
        assert applied[-1] == {"a/ping": "w"} and engine.checks["a/ping"].state == State.MAINTENANCE
        assert engine.checks["b/ping"].state == State.UNKNOWN
        now["t"] = ts("2026-12-01T02:00:01")
        driver.reconcile()
        assert applied[-1] == {} and engine.checks["a/ping"].state == State.DOWN
        await asyncio.sleep(0)
    finally:
        driver.stop()
