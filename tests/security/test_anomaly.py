"""The traffic anomaly detector: ceilings, learned hour-of-week baselines, minimum duration,
counter resets and agents that refresh counters slowly. Pure: samples and times are given."""

from __future__ import annotations

import datetime as dt

from monitor.config.security_model import Anomaly, Connection
from monitor.security.anomaly import JST, AnomalyDetector, Baselines, hour_of_week

IN = "monitor_if_in_octets_total"
PKTS = "monitor_if_in_unicast_packets_total"
MONDAY_10 = dt.datetime(2026, 11, 30, 10, 0, tzinfo=JST).timestamp()


def detector(**anomaly: object) -> AnomalyDetector:
    connection = Connection(name="city-a", organisation="A市", check="edge/uplink", anomaly=Anomaly(**anomaly))
    return AnomalyDetector([connection], Baselines())


def feed(d: AnomalyDetector, start: float, rates: list[float], step: float = 10.0, value: float = 0.0) -> list[object]:
    """Poll every `step` seconds with the counter advancing at the given bytes/s; returns detections."""
    out = []
    at = start
    out.append(d.observe("edge/uplink", {IN: value}, at))
    for rate in rates:
        at += step
        value += rate * step
        out.append(d.observe("edge/uplink", {IN: value}, at))
    return [x for x in out if x is not None]


def test_hour_of_week_is_jst() -> None:
    """Monday 00:00 JST is hour 0, Sunday 23:00 JST is 167 (Sunday 14:00 UTC)."""
    assert hour_of_week(dt.datetime(2026, 11, 30, 0, 0, tzinfo=JST).timestamp()) == 0
    assert hour_of_week(dt.datetime(2026, 11, 29, 14, 30, tzinfo=dt.UTC).timestamp()) == 167


def test_ceiling_must_hold_for_the_duration() -> None:
    """One sample above the ceiling is a spike; above it for `duration` is one detection, not one per poll."""
    d = detector(ceiling_bytes=1000, duration=20)
    assert feed(d, MONDAY_10, [10, 5000, 10, 10]) == []
    found = feed(d, MONDAY_10 + 100, [5000, 5000, 5000, 5000, 5000], value=1e6)
    assert len(found) == 1
    detection = found[0]
    assert detection.connection == "city-a" and detection.source == "anomaly"  # type: ignore[attr-defined]
    assert "above the ceiling of 1,000" in detection.summary  # type: ignore[attr-defined]


def test_baseline_is_learned_per_hour_and_attacks_are_not_learned() -> None:
    """After learning ~1 kB/s at Monday 10:00, 20 kB/s is 20x the usual (anomalous); at another hour
    with no baseline it is not; the anomalous samples did not raise the baseline."""
    d = detector(factor=5, min_rate_bytes=5000, duration=0, learning_samples=10)
    assert feed(d, MONDAY_10, [1000.0] * 30) == []
    key = ("city-a", "in_bytes", hour_of_week(MONDAY_10))
    mean_before = d.baselines.buckets[key][0]
    assert 990 < mean_before < 1010
    found = feed(d, MONDAY_10 + 300, [20_000.0] * 3, value=300_000.0)  # the counter carries on
    assert len(found) == 1 and "20.0x the usual" in found[0].summary  # type: ignore[attr-defined]
    assert d.baselines.buckets[key][0] == mean_before
    other = detector(factor=5, min_rate_bytes=5000, duration=0, learning_samples=10)
    assert feed(other, MONDAY_10 + 3 * 3600, [20_000.0] * 3) == []


def test_quiet_links_need_the_floor() -> None:
    """5x a tiny baseline is still below min_rate_bytes: no incident for 500 B/s on an idle link."""
    d = detector(factor=5, min_rate_bytes=125_000, duration=0, learning_samples=5)
    feed(d, MONDAY_10, [50.0] * 10)
    assert feed(d, MONDAY_10 + 200, [500.0] * 3, value=1e6) == []


def test_counter_reset_gives_no_rate() -> None:
    """A counter that goes back (reboot) is not read as a negative or huge rate."""
    d = detector(ceiling_bytes=1000, duration=0)
    assert d.observe("edge/uplink", {IN: 5e9}, MONDAY_10) is None
    assert d.observe("edge/uplink", {IN: 100.0}, MONDAY_10 + 10) is None
    assert d.observe("edge/uplink", {IN: 200.0}, MONDAY_10 + 20) is None  # 10 B/s


def test_slowly_refreshed_counters_are_measured_between_changes() -> None:
    """An agent that refreshes its counters every 5 s polled every second: the unchanged polls are
    no samples (they would read as 0 B/s and break the streak); the rate spans the changes."""
    d = detector(ceiling_bytes=100_000, duration=8)
    found = []
    value = 0.0
    for second in range(0, 30):
        if second % 5 == 0:
            value = second * 1_000_000.0  # 1 MB/s, visible every 5 s
        found.append(d.observe("edge/uplink", {IN: value}, MONDAY_10 + second))
    hits = [f for f in found if f is not None]
    assert len(hits) == 1 and "1,000,000 bytes/s" in hits[0].summary


def test_packet_ceiling_and_direction() -> None:
    """Packets count too; with direction "in" outbound traffic is not judged."""
    d = detector(ceiling_packets=100, duration=0)
    d.observe("edge/uplink", {PKTS: 0.0, "monitor_if_out_octets_total": 0.0}, MONDAY_10)
    found = d.observe("edge/uplink", {PKTS: 5000.0, "monitor_if_out_octets_total": 1e12}, MONDAY_10 + 10)
    assert found is not None and "500 packets/s above the ceiling of 100" in found.summary


def test_connections_without_anomaly_are_not_watched() -> None:
    connection = Connection(name="c", organisation="o", check="e/u", anomaly=None)
    d = AnomalyDetector([connection], Baselines())
    assert d.by_check == {} and d.observe("e/u", {IN: 1.0}, MONDAY_10) is None


def test_dirty_buckets_are_taken_once() -> None:
    d = detector(duration=0)
    feed(d, MONDAY_10, [10.0, 10.0])
    assert len(d.baselines.take_dirty()) == 1
    assert d.baselines.take_dirty() == {}
