"""The monthly report job: on the 1st of each month (JST) write last month's report as HTML, CSV and
JSON into DATA_DIR/reports, roll the month up, and prune raw intervals older than RAW_MONTHS (the
roll-ups keep the figures for the 12-month trend and beyond)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from monitor.availability.html_report import render_html
from monitor.availability.periods import JST, month_of, month_span, previous_months
from monitor.availability.report import ReportBuilder, to_csv, to_json
from monitor.core.inventory import Inventory

log = structlog.get_logger()
RAW_MONTHS = 14  # raw state intervals kept (the report needs 13: this month and 12 before it)


async def write_report(builder: ReportBuilder, month: str, now: float, directory: Path) -> list[Path]:
    report = await builder.build(month, now)
    files = {
        directory / f"{month}.html": render_html(report).encode(),
        directory / f"{month}.en.html": render_html(report, "en").encode(),
        directory / f"{month}.csv": to_csv(report),
        directory / f"{month}.json": to_json(report).encode(),
    }

    def save() -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for path, body in files.items():
            path.write_bytes(body)

    await asyncio.to_thread(save)
    return list(files)


class MonthlyJob:
    def __init__(
        self, store: Any, inventory: Callable[[], Inventory], data_dir: Path, clock: Callable[[], float]
    ) -> None:
        self.store = store
        self._inventory = inventory
        self.directory = data_dir / "reports"
        self._clock = clock
        self._scheduler = AsyncIOScheduler(timezone=JST)

    def start(self) -> None:
        if not self._inventory().slo.report_schedule:
            return
        self._scheduler.start()
        self._scheduler.add_job(self.run, CronTrigger(day=1, hour=0, minute=10, timezone=JST), id="monthly-report")

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    async def run(self) -> list[Path]:
        """Report, roll up and prune for the month before now."""
        now = self._clock()
        year, month = previous_months(*month_of(now), 2)[0]
        label = f"{year:04d}-{month:02d}"
        builder = ReportBuilder(self.store, self._inventory())
        try:
            files = await write_report(builder, label, now, self.directory)
            await builder.rollup(year, month, now)
            keep_from = month_span(*previous_months(*month_of(now), RAW_MONTHS)[0])[0]
            pruned = await self.store.prune_intervals(keep_from)
        except Exception:
            log.exception("monthly_report_failed", month=label)
            raise
        log.info("monthly_report_written", month=label, files=[str(f) for f in files], intervals_pruned=pruned)
        return files
