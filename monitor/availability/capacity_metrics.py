"""Circuit capacity as Prometheus series (a provider of the state collector), and the job that keeps the
month-to-date figures current and rolls closed months up.

The month-to-date 95th percentile, peak and forecast are the report's own figures for the current month
(capacity_report.build_section), recomputed every REFRESH_SECONDS (30 minutes) from the store, so the alert on
`monitor_capacity_days_until_threshold` and the report's capacity section say the same. The last slot's
utilisation comes straight from the recorder. Forecasts that are not foreseen (not enough data, not rising)
have no `days_until_threshold` sample rather than a made-up one; `monitor_capacity_forecast_status` says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from monitor.availability.capacity import DAY
from monitor.availability.capacity_recorder import CapacityRecorder
from monitor.availability.capacity_report import CapacitySection, build_section, label, roll_up
from monitor.availability.periods import month_of, previous_months
from monitor.core.inventory import Inventory
from monitor.metrics.exposition import Families, families_text
from monitor.store.base import Store

log = structlog.get_logger()
REFRESH_SECONDS = 1800.0  # month-to-date figures: a month of 5-minute samples is read this often (BENCHMARKS.md)
# A circuit is neither a check nor a service (a configured circuit bundles ports of several checks), so no
# monitor_check_info / monitor_service_info row describes it: its `kind` and `prefecture` stay on its own
# series (docs/operations.md, "Reading the metrics", says why and what it costs).
LABELS = ("circuit", "kind", "prefecture", "direction")
STATUS_LABELS = ("circuit", "kind", "prefecture", "direction", "status")
MISSED_LABELS = ("circuit", "kind", "prefecture")
NO_LABELS = ()
STATUSES = ("not_enough_data", "not_rising", "rising", "saturated")
# name -> (help, type, label names): docs/metrics.md is generated from this table (monitor.docs_metrics)
FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "monitor_capacity_utilization_ratio": (
        "Circuit utilisation over the last 5-minute slot (rate / capacity).",
        "gauge",
        LABELS,
    ),
    "monitor_capacity_rate_bits_per_second": (
        "Circuit traffic over the last 5-minute slot in bits/s (its ports' sum).",
        "gauge",
        LABELS,
    ),
    "monitor_capacity_bandwidth_bits_per_second": (
        "Circuit capacity in bits per second (configured, else from the ports' ifHighSpeed/ifSpeed).",
        "gauge",
        LABELS,
    ),
    "monitor_capacity_p95_utilization_ratio": (
        "95th percentile of the circuit's 5-minute utilisation this month (JST).",
        "gauge",
        LABELS,
    ),
    "monitor_capacity_peak_utilization_ratio": (
        "Busiest 5-minute utilisation of the circuit this month so far (JST).",
        "gauge",
        LABELS,
    ),
    "monitor_capacity_coverage_ratio": (
        "Share of this month's 5-minute slots so far with a measured sample.",
        "gauge",
        LABELS,
    ),
    "monitor_capacity_days_until_threshold": (
        "Forecast days until the monthly 95th percentile reaches the threshold (0: over it); absent when not foreseen.",
        "gauge",
        LABELS,
    ),
    "monitor_capacity_forecast_status": (
        "1 for the forecast's status (not_enough_data, not_rising, rising, saturated).",
        "gauge",
        STATUS_LABELS,
    ),
    "monitor_capacity_threshold_ratio": (
        "The utilisation the forecast looks for (config capacity.threshold).",
        "gauge",
        NO_LABELS,
    ),
    "monitor_capacity_slots_missed_total": (
        "5-minute slots not written: a port of the circuit did not cover them.",
        "counter",
        MISSED_LABELS,
    ),
}


class CapacityMonitor:
    """Month-to-date figures for the metrics, and the monthly roll-up and pruning of the samples."""

    def __init__(
        self,
        store: Store,
        inventory: Callable[[], Inventory],
        now: Callable[[], float],
        recorder: CapacityRecorder,
        leading: Callable[[], bool],
    ) -> None:
        self._store = store
        self._inventory = inventory
        self._now = now
        self.recorder = recorder
        self._leading = leading  # only the HA leader rolls months up and prunes (it alone writes samples)
        self.section: CapacitySection | None = None
        self._rolled: set[str] = set()  # months rolled up by this run
        self._text: tuple[int, str] | None = None

    async def refresh(self) -> None:
        now = self._now()
        inventory = self._inventory()
        year, month = month_of(now)
        previous = previous_months(year, month, 2)[0]
        if (
            self._leading()
            and label(*previous) not in self._rolled
            and await roll_up(self._store, inventory, *previous, now)
        ):
            self._rolled.add(label(*previous))
            pruned = await self._store.prune_capacity_samples(now - inventory.capacity.retention_days * DAY)
            log.info("capacity_month_rolled_up", month=label(*previous), samples_pruned=pruned)
        self.section = await build_section(self._store, inventory, year, month, now)

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # the store is down or busy: the figures stay as they were until the next try
                log.exception("capacity_refresh_failed")
            await asyncio.sleep(REFRESH_SECONDS)

    def text(self) -> str:
        key = hash((id(self.section), len(self.recorder.latest), *self.recorder.latest.values(),
                    *self.recorder.missed.items()))  # fmt: skip
        if self._text is None or self._text[0] != key:
            fam = Families()
            self._add(fam)
            self._text = (key, families_text(fam))
        return self._text[1]

    def _add(self, fam: Families) -> None:
        by_name = {c.name: c for c in self.recorder.circuits}

        def add(metric: str, values: tuple[str, ...], value: float) -> None:
            help_text, kind, names = FAMILIES[metric]
            fam.add(metric, help_text, names, values, value, kind)

        for (name, direction), sample in sorted(self.recorder.latest.items()):
            circuit = by_name.get(name)
            if circuit is None:
                continue
            labels = (name, circuit.kind, circuit.prefecture, direction)
            add("monitor_capacity_utilization_ratio", labels, sample.utilisation)
            add("monitor_capacity_rate_bits_per_second", labels, sample.bits_per_second)
            add("monitor_capacity_bandwidth_bits_per_second", labels, sample.capacity_bps)
        section = self.section
        if section is not None:
            add("monitor_capacity_threshold_ratio", (), section.threshold)
            for row in section.rows:
                c = row.circuit
                labels = (c.name, c.kind, c.prefecture, row.direction)
                f = row.figures
                if f.p95_ratio is not None and f.peak_ratio is not None:
                    add("monitor_capacity_p95_utilization_ratio", labels, f.p95_ratio)
                    add("monitor_capacity_peak_utilization_ratio", labels, f.peak_ratio)
                add("monitor_capacity_coverage_ratio", labels, f.coverage)
                if row.forecast.days is not None:
                    add("monitor_capacity_days_until_threshold", labels, row.forecast.days)
                for status in STATUSES:
                    add("monitor_capacity_forecast_status", (*labels, status), float(row.forecast.status == status))
        for name, missed in sorted(self.recorder.missed.items()):
            circuit = by_name.get(name)
            if circuit is not None:
                add("monitor_capacity_slots_missed_total", (name, circuit.kind, circuit.prefecture), missed)
