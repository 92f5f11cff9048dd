"""Traffic anomalies on a connection's interface, from the SNMP counters its check already polls.

Each poll of the interface check gives counter values; two polls give a rate (bytes and packets per
second, per direction). A rate is anomalous above the connection's absolute ceiling, or above
`factor` times the baseline learned for this hour of the week (JST: office hours and nights differ),
once that hour has `learning_samples` samples. Normal rates are learned (an exponentially weighted
mean), anomalous ones are not, so an attack does not teach the baseline that it is normal. An incident
needs the rate anomalous for `duration`: one spike is not enough.

A counter that has not moved since the last poll is no sample at all (agents refresh counters every
few seconds: the next change is measured from the last one), and a counter that goes back (a reboot,
which the probe resets its counters for) gives no rate. Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from monitor.config.security_model import Anomaly, Connection

JST = ZoneInfo("Asia/Tokyo")
ALPHA = 0.05  # weight of a new sample in a learned bucket (about the last 20 samples count)
MIN_RATE_PACKETS = 100.0  # packets/s: below this a baseline excess is not an anomaly (quiet links)
COUNTERS = {
    ("in", "bytes"): ("monitor_if_in_octets_total",),
    ("out", "bytes"): ("monitor_if_out_octets_total",),
    ("in", "packets"): (
        "monitor_if_in_unicast_packets_total",
        "monitor_if_in_multicast_packets_total",
        "monitor_if_in_broadcast_packets_total",
    ),
    ("out", "packets"): (
        "monitor_if_out_unicast_packets_total",
        "monitor_if_out_multicast_packets_total",
        "monitor_if_out_broadcast_packets_total",
    ),
}

BucketKey = tuple[str, str, int]  # (connection, metric e.g. "in_bytes", hour of the week 0-167)


def hour_of_week(at: float) -> int:
    local = dt.datetime.fromtimestamp(at, JST)
    return local.weekday() * 24 + local.hour


@dataclass(slots=True)
class Baselines:
    """Learned mean rate per connection, metric and hour of the week; `dirty` says what to store."""

    buckets: dict[BucketKey, tuple[float, int]] = field(default_factory=dict)
    dirty: set[BucketKey] = field(default_factory=set)

    def mean(self, key: BucketKey, learning_samples: int) -> float | None:
        bucket = self.buckets.get(key)
        return bucket[0] if bucket is not None and bucket[1] >= learning_samples else None

    def learn(self, key: BucketKey, rate: float) -> None:
        mean, samples = self.buckets.get(key, (0.0, 0))
        samples += 1
        weight = max(ALPHA, 1.0 / samples)  # a plain mean while young, then exponentially weighted
        self.buckets[key] = (mean + (rate - mean) * weight, samples)
        self.dirty.add(key)

    def take_dirty(self) -> dict[BucketKey, tuple[float, int]]:
        out = {k: self.buckets[k] for k in self.dirty if k in self.buckets}
        self.dirty.clear()
        return out


@dataclass(frozen=True, slots=True)
class Detection:
    connection: str
    source: str  # anomaly, trap, ids
    severity: str
    summary: str  # one line, for the timeline and pages
    at: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Watch:
    last: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)  # (dir, unit) -> (value, at)
    anomalous_since: float | None = None
    reported: bool = False  # this streak has been reported


def _judge(anomaly: Anomaly, unit: str, rate: float, mean: float | None) -> str | None:
    ceiling = anomaly.ceiling_bytes if unit == "bytes" else anomaly.ceiling_packets
    if ceiling is not None and rate > ceiling:
        return f"{rate:,.0f} {unit}/s above the ceiling of {ceiling:,.0f}"
    floor = anomaly.min_rate_bytes if unit == "bytes" else MIN_RATE_PACKETS
    if mean is not None and rate > floor and rate > anomaly.factor * mean:
        times = rate / mean if mean > 0 else float("inf")
        return f"{rate:,.0f} {unit}/s, {times:,.1f}x the usual {mean:,.0f} for this hour"
    return None


class AnomalyDetector:
    def __init__(self, connections: Iterable[Connection], baselines: Baselines) -> None:
        self.baselines = baselines
        self.by_check: dict[str, Connection] = {}
        self._watches: dict[str, _Watch] = {}
        self.configure(connections)

    def configure(self, connections: Iterable[Connection]) -> None:
        self.by_check = {c.check: c for c in connections if c.anomaly is not None}
        self._watches = {c.name: self._watches.get(c.name, _Watch()) for c in self.by_check.values()}

    def observe(self, check_id: str, values: dict[str, float], at: float) -> Detection | None:
        """One poll of a connection's interface check (metric name -> counter value, at its time)."""
        connection = self.by_check.get(check_id)
        if connection is None or connection.anomaly is None:
            return None
        anomaly = connection.anomaly
        watch = self._watches[connection.name]
        directions = ("in", "out") if anomaly.direction == "both" else (anomaly.direction,)
        reasons: list[str] = []
        rates: dict[str, float] = {}
        for direction in directions:
            for unit in ("bytes", "packets"):
                rate = self._rate(watch, direction, unit, values, at)
                if rate is None:
                    continue
                metric = f"{direction}_{unit}"
                rates[metric] = round(rate, 1)
                key = (connection.name, metric, hour_of_week(at))
                reason = _judge(anomaly, unit, rate, self.baselines.mean(key, anomaly.learning_samples))
                if reason is None:
                    self.baselines.learn(key, rate)
                else:
                    reasons.append(f"{direction}: {reason}")
        if not rates:
            return None
        if not reasons:
            watch.anomalous_since, watch.reported = None, False
            return None
        if watch.anomalous_since is None:
            watch.anomalous_since = at
        if watch.reported or at - watch.anomalous_since < anomaly.duration:
            return None
        watch.reported = True
        lasted = at - watch.anomalous_since
        return Detection(
            connection=connection.name,
            source="anomaly",
            severity=anomaly.severity,
            summary=f"traffic anomaly for {lasted:.0f}s: " + "; ".join(reasons),
            at=at,
            detail={"rates": rates, "reasons": reasons, "anomalous_since": watch.anomalous_since, "check": check_id},
        )

    @staticmethod
    def _rate(watch: _Watch, direction: str, unit: str, values: dict[str, float], at: float) -> float | None:
        names = COUNTERS[(direction, unit)]
        present = [values[n] for n in names if n in values]
        if not present:
            return None
        value = sum(present)
        previous = watch.last.get((direction, unit))
        if previous is not None and value == previous[0]:
            # Agents refresh counters every few seconds (net-snmp caches ifTable, routers every 5-10 s):
            # an unchanged value is no news, and the next change is measured from the last one.
            return None
        watch.last[(direction, unit)] = (value, at)
        if previous is None or at <= previous[1] or value < previous[0]:
            return None  # first sample, or the counters were reset (reboot): no rate from this pair
        return (value - previous[0]) / (at - previous[1])
