"""The store's health for /metrics: the writer's backlog, its failed write attempts, and whether the
path still leads to the open database file (see SQLiteStore.check_file; always 1 on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.store.base import Store


class StoreCollector(Collector):
    def __init__(self, store: Store) -> None:
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
        yield GaugeMetricFamily(
            "monitor_store_file_ok",
            "0 while the store's file was deleted or replaced under the running daemon and is not restored yet.",
            value=0 if self.store.file_problem else 1,
        )
        lost = CounterMetricFamily(
            "monitor_store_file_lost",
            "Times the store's file (or its WAL) was found deleted or replaced while open.",
            labels=["change"],
        )
        for change in ("deleted", "replaced", "wal_deleted", "wal_replaced"):
            lost.add_metric([change], self.store.files_lost.get(change, 0))
        yield lost
