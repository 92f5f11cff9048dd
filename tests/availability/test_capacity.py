"""Circuit capacity: the 95th percentile of a known series is exact (Prometheus' definition), an aggregate's is
the percentile of its ports' sum, the forecast's least squares give the days a straight line says, slots are
cut from the counters as the probes read them, the config refuses ports that cannot be measured, and the
monthly report carries the section (its JSON, and its HTML in Japanese and English, kept in artifacts/)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.availability.capacity import SLOT, MonthFigures, Sample, forecast, month_figures, prometheus_quantile
from monitor.availability.capacity_html import capacity_section
from monitor.availability.capacity_metrics import CapacityMonitor
from monitor.availability.capacity_recorder import CapacityRecorder
from monitor.availability.capacity_report import build_section, roll_up
from monitor.availability.circuits import circuits
from monitor.availability.html_report import render_html
from monitor.availability.periods import month_span
from monitor.availability.report import ReportBuilder, to_json
from monitor.config.errors import ConfigError
from monitor.core.engine import Transition
from monitor.core.state import State
from monitor.store.sqlite import SQLiteStore
from probes.base import ProbeResult, Series
from tests.conftest import Loader

ARTIFACTS = Path(__file__).parents[2] / "artifacts"
os.environ.setdefault("TEST_SNMP_COMMUNITY", "public")  # the config refers to it (secrets are references)
DAY = 86400.0
CONFIG = """
modules:
  sw: {kind: snmp, snmp: {community: "${TEST_SNMP_COMMUNITY}"}}
  ping: {kind: icmp}
targets:
  - name: pref13-edge
    address: 127.0.0.1
    labels: {prefecture: "13", system: lgwan}
    modules: [sw, ping]
    checks:
      - {module: sw, name: uplink-primary, interface: "LGWAN uplink primary"}
      - {module: sw, name: uplink-backup, interface: "LGWAN uplink backup"}
services:
  - {name: lgwan-uplink-13, display_name: LGWAN接続回線（東京都）, display_name_en: LGWAN uplinks (Tokyo), rule: any,
     labels: {prefecture: "13", system: lgwan}, checks: [pref13-edge/uplink-primary, pref13-edge/uplink-backup]}
  - {name: edge, targets: [pref13-edge]}
capacity:
  threshold: 0.8
  alert_within_days: 90
  circuits:
    - name: lgwan-13-chiyoda
      display_name: LGWAN回線（千代田区）
      ports:
        - {check: pref13-edge/sw, interface: Gi0/1}
        - {check: pref13-edge/sw, interface: Gi0/2}
      capacity_bps: 200000000
"""


def test_the_95th_percentile_of_a_known_series_is_exact() -> None:
    """1..100: rank 0.95 x 99 = 94.05, so 95 + 0.05 x (96 - 95) = 95.05 (Prometheus interpolates between
    the samples around the rank; "nearest rank" would give 95). Order does not matter; edge cases as PromQL."""
    values = [float(v) for v in range(100, 0, -1)]
    assert prometheus_quantile(0.95, values) == pytest.approx(95.05, abs=1e-12)
    assert prometheus_quantile(0.5, [1.0, 2.0, 3.0, 4.0]) == 2.5
    assert prometheus_quantile(0.95, [7.0]) == 7.0
    assert prometheus_quantile(1.0, values) == 100.0 and prometheus_quantile(0.0, values) == 1.0
    assert math.isnan(prometheus_quantile(0.95, []))
    assert prometheus_quantile(1.5, values) == math.inf and prometheus_quantile(-1, values) == -math.inf


def test_an_aggregate_is_the_percentile_of_the_sum_not_the_sum_of_percentiles() -> None:
    """Two ports that burst at different times: each has a 95th percentile near its burst, their sum never
    bursts twice at once, so the circuit's 95th percentile is far below the sum of the ports'."""
    n = 100
    a = [900.0 if i < 10 else 100.0 for i in range(n)]
    b = [900.0 if 50 <= i < 60 else 100.0 for i in range(n)]
    total = [x + y for x, y in zip(a, b, strict=True)]
    assert prometheus_quantile(0.95, a) + prometheus_quantile(0.95, b) == 1800.0
    assert prometheus_quantile(0.95, total) == 1000.0
    start = month_span(2026, 11)[0]
    samples = [Sample("c", "out", start + i * SLOT, v, 2000.0) for i, v in enumerate(total)]
    figures = month_figures("c", "out", "2026-11", (start, start + n * SLOT), samples)
    assert figures.p95_ratio == 0.5 and figures.peak_ratio == 0.5 and figures.samples == n and figures.coverage == 1.0


def _month(label: str, p95: float, coverage: float = 1.0) -> MonthFigures:
    year, month = map(int, label.split("-"))
    start, end = month_span(year, month)
    slots = round((end - start) / SLOT)
    samples = round(slots * coverage)
    return MonthFigures("c", "out", label, samples, slots, p95, p95, start, p95 * 1e9, 1e9, (start + end) / 2)


def test_forecast_least_squares_over_monthly_percentiles() -> None:
    """p95 rising exactly 5 points per 30 days: the threshold is reached where the straight line says; fewer
    months than min_months (or months with too little data) is "not enough data"; over it already: 0 days."""
    months = ["2026-07", "2026-08", "2026-09", "2026-10", "2026-11"]
    base = month_span(2026, 7)
    mid0 = (base[0] + base[1]) / 2
    rows = []
    for label in months:
        m = _month(label, 0.0)
        rows.append(_month(label, 0.5 + 0.05 * (m.midpoint - mid0) / (30 * DAY)))
    now = month_span(2026, 12)[0]
    result = forecast(rows, 0.8, now, min_months=3, min_coverage=0.5)
    assert result.status == "rising" and result.months == 5
    assert result.slope_per_30d == pytest.approx(0.05)
    crossing = mid0 + (0.8 - 0.5) / 0.05 * 30 * DAY  # the line reaches 0.8 six 30-day steps after July's middle
    assert result.days == pytest.approx((crossing - now) / DAY, abs=1e-6)
    thin = [*rows[:3], _month("2026-10", 0.7, coverage=0.1), _month("2026-11", 0.75, coverage=0.1)]
    assert forecast(thin, 0.8, now, 4, 0.5).status == "not_enough_data"
    assert forecast(rows[:2], 0.8, now, 3, 0.5).status == "not_enough_data"
    assert forecast([*rows[:4], _month("2026-11", 0.85)], 0.8, now, 3, 0.5).days == 0.0
    falling = [_month(label, 0.6 - 0.01 * i) for i, label in enumerate(months)]
    assert (f := forecast(falling, 0.8, now, 3, 0.5)).status == "not_rising" and f.days is None


def _result(at: float, octets: dict[str, tuple[float, float]], speed_bytes: float = 125e6) -> ProbeResult:
    """A device check's result with these interfaces' (in, out) octet counters, as the SNMP probe writes them."""
    series = []
    for name, (rx, tx) in octets.items():
        labels = (("if_index", name[-1]), ("if_name", name), ("if_alias", ""))
        series += [
            Series("monitor_if_in_octets_total", "", "counter", labels, rx),
            Series("monitor_if_out_octets_total", "", "counter", labels, tx),
            Series("monitor_if_speed_bytes_per_second", "", "gauge", labels, speed_bytes),
        ]
    return ProbeResult(ok=True, series=series, finished_at=at)


async def test_recorder_cuts_5_minute_slots_from_the_counters(load_yaml_config: Loader, tmp_path: Path) -> None:
    """Polls every 60 s at 10 Mb/s on Gi0/1 and 30 Mb/s on Gi0/2 (out: half that): each 5-minute slot of the
    aggregate is 40 Mb/s in and 20 Mb/s out against its configured 200 Mb/s. A poll interval spanning a slot
    boundary is split by time; a counter reset loses only its own interval; a port that stops answering leaves
    its slots unwritten (counted as missed) instead of understating the sum."""
    inventory = load_yaml_config(CONFIG).inventory
    store = SQLiteStore(tmp_path / "m.db")
    t0 = month_span(2026, 11)[0] + 30.0  # polls 30 s after each slot boundary: one interval in five is split
    store.open(now=t0)
    clock = [t0]
    recorder = CapacityRecorder(store, lambda: inventory, lambda: clock[0])
    rates = {"Gi0/1": 10e6 / 8, "Gi0/2": 30e6 / 8}  # octets per second
    for i in range(31):
        at = t0 + 60 * i
        clock[0] = at
        octets = {name: (r * 60 * i, r * 60 * i / 2) for name, r in rates.items()}
        recorder.on_result("pref13-edge/sw", _result(at, octets))
    await recorder.flush()
    samples = await store.capacity_samples(t0 - 60, t0 + 3600, "lgwan-13-chiyoda")
    outs = [s for s in samples if s.direction == "out"]
    ins = [s for s in samples if s.direction == "in"]
    # the first slot is 90% covered (counting starts at the first poll): written, at its covered mean; the slot
    # in progress (30 s of it polled) is not closed yet
    assert [s.start for s in ins] == [t0 - 30 + k * SLOT for k in range(6)]
    assert all(s.bits_per_second == pytest.approx(40e6) and s.capacity_bps == 200e6 for s in ins)
    assert all(s.bits_per_second == pytest.approx(20e6) and s.utilisation == pytest.approx(0.1) for s in outs)
    assert recorder.missed == {}
    # Gi0/2 reset to 0 (its interval gives nothing) and then Gi0/1 stops answering; after the grace, the slots close
    for i in range(31, 41):
        at = t0 + 60 * i
        clock[0] = at
        counters = {"Gi0/1": rates["Gi0/1"] * 60 * i, "Gi0/2": rates["Gi0/2"] * 60 * (i - 31)}
        octets = {name: (v, v / 2) for name, v in counters.items()}
        if i >= 36:
            del octets["Gi0/1"]
        recorder.on_result("pref13-edge/sw", _result(at, octets))
    clock[0] = t0 + 60 * 41 + 3600
    recorder.close(clock[0])
    await recorder.flush()
    later = [s for s in await store.capacity_samples(t0 + 1700, t0 + 7200) if s.direction == "in"]
    # the slot with the reset is 80% covered on Gi0/2: written, at its mean; the next two had Gi0/1 for 30 s
    # and nothing: missed (in and out), not written as Gi0/2's traffic alone
    assert [s.start for s in later] == [t0 - 30 + 6 * SLOT]
    assert later[0].bits_per_second == pytest.approx(40e6)
    assert recorder.missed["lgwan-13-chiyoda"] == 4
    await store.close(clock[0])


def test_services_of_interface_checks_are_circuits_and_bad_ports_are_config_errors(load_yaml_config: Loader) -> None:
    """The uplink pair (rule any) is a circuit measured against its largest port; a configured circuit keeps its
    capacity; a port naming an ICMP check, a device check without an interface, or an unknown check is refused."""
    inventory = load_yaml_config(CONFIG).inventory
    found = {c.name: c for c in circuits(inventory)}
    assert set(found) == {"lgwan-13-chiyoda", "lgwan-uplink-13"}
    assert found["lgwan-uplink-13"].sizing == "largest" and found["lgwan-uplink-13"].kind == "uplink"
    assert found["lgwan-13-chiyoda"].capacity_bps == 200e6 and found["lgwan-13-chiyoda"].prefecture == "13"
    bad = CONFIG.replace("{check: pref13-edge/sw, interface: Gi0/2}", "{check: pref13-edge/ping}").replace(
        "{check: pref13-edge/sw, interface: Gi0/1}", "{check: pref13-edge/sw}"
    )
    with pytest.raises(ConfigError) as caught:
        load_yaml_config(bad + "    - {name: x, ports: [{check: nowhere/sw}]}\n")
    text = "\n".join(caught.value.messages)
    assert "is icmp, not snmp" in text and "is a device check: name the interface" in text
    assert 'unknown check "nowhere/sw"' in text


async def _seed(store: SQLiteStore, now: float) -> None:
    """Five months of the aggregate's out direction: a weekday-afternoon peak growing 4 points a month."""
    for k, (year, month) in enumerate(((2026, 7), (2026, 8), (2026, 9), (2026, 10), (2026, 11))):
        start, end = month_span(year, month)
        batch = []
        slot = start
        while slot < min(end, now):
            hour = ((slot + 9 * 3600) % DAY) / 3600  # JST
            busy = 0.45 + 0.04 * k + (0.25 if 13 <= hour < 17 else 0.0)
            batch.append(Sample("lgwan-13-chiyoda", "out", slot, busy * 200e6 * 0.5, 200e6))
            batch.append(Sample("lgwan-13-chiyoda", "in", slot, 0.1 * 200e6, 200e6))
            slot += SLOT
        await store.save_capacity_samples(batch)


async def test_the_report_has_the_capacity_section_for_this_and_previous_months(
    load_yaml_config: Loader, tmp_path: Path
) -> None:
    """The November report lists the circuit with its 95th percentile (the percentile of its samples), peak,
    trend and forecast; October, rolled up and its samples pruned, still reports what it said; JSON and HTML."""
    inventory = load_yaml_config(CONFIG).inventory
    store = SQLiteStore(tmp_path / "m.db")
    now = month_span(2026, 12)[0] + 3600
    store.open(now=month_span(2026, 7)[0])
    await _seed(store, now)
    store.record(
        [Transition("service", s, State.UNKNOWN, State.UP, month_span(2026, 7)[0]) for s in inventory.services]
    )
    await store.flush()
    october = await build_section(store, inventory, 2026, 10, now)
    for month in (7, 8, 9, 10):  # as the daemon does after each month
        await roll_up(store, inventory, 2026, month, now)
    assert await store.prune_capacity_samples(month_span(2026, 11)[0]) > 0
    again = await build_section(store, inventory, 2026, 10, now)
    assert [(r.figures.p95_ratio, r.figures.peak_ratio) for r in again.rows] == [
        (r.figures.p95_ratio, r.figures.peak_ratio) for r in october.rows
    ]
    report = await ReportBuilder(store, inventory).build("2026-11", now)
    assert report.capacity is not None
    rows = {(r.circuit.name, r.direction): r for r in report.capacity.rows}
    out = rows[("lgwan-13-chiyoda", "out")]
    samples = await store.capacity_samples(*month_span(2026, 11), "lgwan-13-chiyoda")
    expected = prometheus_quantile(0.95, [s.utilisation for s in samples if s.direction == "out"])
    assert out.figures.p95_ratio == expected and out.figures.coverage == 1.0
    assert out.figures.peak_ratio == pytest.approx((0.45 + 0.16 + 0.25) * 0.5)
    assert out.forecast.status == "rising" and out.forecast.months == 5 and out.forecast.days is not None
    assert [f.month for f in out.trend] == ["2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11"]
    assert rows[("lgwan-uplink-13", "in")].figures.samples == 0  # listed, no data: not a made-up zero
    assert rows[("lgwan-uplink-13", "in")].forecast.status == "not_enough_data"
    body = json.loads(to_json(report))["capacity"]
    assert body["threshold"] == 0.8 and "least squares" in body["method"]
    entry = next(c for c in body["circuits"] if c["circuit"] == "lgwan-13-chiyoda" and c["direction"] == "out")
    assert entry["p95_utilization"] == expected and entry["forecast"]["status"] == "rising"
    html = {lang: render_html(report, lang) for lang in ("ja", "en")}
    assert "回線帯域（95パーセンタイル値）" in html["ja"] and "LGWAN回線（千代田区）" in html["ja"]
    assert "Circuit capacity (95th percentile)" in html["en"] and "データ不足" in capacity_section(report.capacity)
    await store.close(now)
    ARTIFACTS.mkdir(exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    for lang, text in html.items():
        page = ARTIFACTS / f"capacity-report-2026-11-{lang}.html"
        page.write_text(text, encoding="utf-8")
        if chromium:
            shot = ARTIFACTS / f"capacity-report-2026-11-{lang}.png"
            command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                       f"--screenshot={shot}", "--window-size=1240,4200", page.as_uri()]  # fmt: skip
            await asyncio.to_thread(subprocess.run, command, capture_output=True, timeout=120, check=False)


async def test_live_metrics_are_the_reports_figures_of_this_month(load_yaml_config: Loader, tmp_path: Path) -> None:
    """On 28 November: October is rolled up (by the HA leader only), and the exposition carries this month's figures:
    the aggregate's forecast in days (as the report computes it), "not enough data" for the uplink without samples,
    the last slot's utilisation, and the threshold. Parsed by prometheus_client's own parser."""
    inventory = load_yaml_config(CONFIG).inventory
    store = SQLiteStore(tmp_path / "m.db")
    now = month_span(2026, 11)[1] - 2 * DAY
    store.open(now=month_span(2026, 7)[0])
    await _seed(store, now)
    recorder = CapacityRecorder(store, lambda: inventory, lambda: now)
    leading = [False]
    monitor = CapacityMonitor(store, lambda: inventory, lambda: now, recorder, lambda: leading[0])
    await monitor.refresh()
    assert await store.capacity_months(["2026-10"]) == []  # a standby does not roll up
    leading[0] = True
    await monitor.refresh()
    assert {m.direction for m in await store.capacity_months(["2026-10"]) if m.circuit == "lgwan-13-chiyoda"} == {
        "in",
        "out",
    }
    recorder.latest[("lgwan-13-chiyoda", "out")] = Sample("lgwan-13-chiyoda", "out", now - SLOT, 120e6, 200e6)
    families = {f.name: f for f in text_string_to_metric_families(monitor.text())}
    report = await build_section(store, inventory, 2026, 11, now)
    expected = next(r for r in report.rows if r.circuit.name == "lgwan-13-chiyoda" and r.direction == "out")

    def value(name: str, **labels: str) -> float | None:
        for s in families[name].samples:
            if all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
        return None

    out = {"circuit": "lgwan-13-chiyoda", "direction": "out"}
    assert value("monitor_capacity_days_until_threshold", **out) == expected.forecast.days
    assert value("monitor_capacity_p95_utilization_ratio", **out) == expected.figures.p95_ratio
    assert value("monitor_capacity_utilization_ratio", **out) == 0.6
    assert value("monitor_capacity_threshold_ratio") == 0.8
    uplink = {"circuit": "lgwan-uplink-13", "direction": "in"}
    assert value("monitor_capacity_days_until_threshold", **uplink) is None
    assert value("monitor_capacity_forecast_status", **uplink, status="not_enough_data") == 1.0
    assert value("monitor_capacity_forecast_status", **uplink, status="rising") == 0.0
    await store.close(now)


async def test_months_are_jst_months(load_yaml_config: Loader, tmp_path: Path) -> None:
    """The slot at 23:55 JST on 30 November (14:55 UTC) is November's, the one at 00:00 JST on 1 December
    (15:00 UTC, still 30 November in UTC) is December's: 5-minute slots never straddle a JST month."""
    inventory = load_yaml_config(CONFIG).inventory
    store = SQLiteStore(tmp_path / "m.db")
    boundary = month_span(2026, 12)[0]
    assert boundary % SLOT == 0 and time.strftime("%Y-%m-%d %H:%M", time.gmtime(boundary)) == "2026-11-30 15:00"
    store.open(now=boundary - DAY)
    await store.save_capacity_samples(
        [
            Sample("lgwan-13-chiyoda", "out", boundary - SLOT, 50e6, 200e6),
            Sample("lgwan-13-chiyoda", "out", boundary, 150e6, 200e6),
        ]
    )
    now = boundary + DAY
    november = await build_section(store, inventory, 2026, 11, now)
    december = await build_section(store, inventory, 2026, 12, now)

    def out(section: Any) -> MonthFigures:
        return next(r.figures for r in section.rows if r.circuit.name == "lgwan-13-chiyoda" and r.direction == "out")

    assert (out(november).samples, out(november).peak_ratio) == (1, 0.25)
    assert (out(december).samples, out(december).peak_ratio) == (1, 0.75)
    await store.close(now)
