"""The store's health for /metrics: the writer's backlog and its failed write attempts."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.store.sqlite import SQLiteStore


class StoreCollector(Collector):
    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "monitor_store_backlog", "Writes waiting for the store's writer thread.", value=self.store.backlog
        )
        yield CounterMetricFamily(
            "monitor_store_write_errors",
            "Store write attempts that failed (busy, locked, disk full) and were retried.",
            value=self.store.write_errors,
        )
