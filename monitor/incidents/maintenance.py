"""Planned maintenance (計画停止): windows from the config and from operators, one-off or recurring
(cron in JST plus a duration), scoped by target names or label selectors.

Checks inside an active window are MAINTENANCE: still probed and shown, never paged, and left out of
availability. APScheduler fires at every window start and end so the state changes on the minute;
a reconcile every RECONCILE_SECONDS (and after every change) makes the set right whatever happened
in between (a restart, a clock step). A window that ends while its target is still down turns the
checks DOWN at once, which opens the incident.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from zoneinfo import ZoneInfo

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor.config.response_model import MaintenanceConfig, cron_trigger, labels_match
from monitor.core.inventory import Inventory
from monitor.store.records import MaintenanceWindow

log = structlog.get_logger()
RECONCILE_SECONDS = 30.0
JST = ZoneInfo("Asia/Tokyo")


def from_config(item: MaintenanceConfig, loaded_at: float) -> MaintenanceWindow:
    scope = {"targets": list(item.targets), "labels": {k: v for k, v in item.select.items()}}
    window = MaintenanceWindow(
        item.name, item.reason, "config", loaded_at, scope, source="config", timezone=item.timezone
    )
    if item.start is not None and item.end is not None:
        tz = ZoneInfo(item.timezone)
        window.starts_at = (item.start if item.start.tzinfo else item.start.replace(tzinfo=tz)).timestamp()
        window.ends_at = (item.end if item.end.tzinfo else item.end.replace(tzinfo=tz)).timestamp()
    else:
        window.cron, window.duration = item.cron, item.duration
    return window


def _trigger(window: MaintenanceWindow) -> CronTrigger:
    assert window.cron is not None
    return cron_trigger(window.cron, ZoneInfo(window.timezone))


def occurrence(window: MaintenanceWindow, now: float) -> tuple[float, float] | None:
    """The (start, end) of the occurrence of `window` active at `now`, or None."""
    if window.cancelled_at is not None:
        return None
    if window.starts_at is not None and window.ends_at is not None:
        return (window.starts_at, window.ends_at) if window.starts_at <= now < window.ends_at else None
    if window.cron is None or window.duration is None:
        return None
    # the first start after now - duration: an occurrence that ends exactly now is over
    earliest = dt.datetime.fromtimestamp(now - window.duration + 0.001, ZoneInfo(window.timezone))
    fire = _trigger(window).get_next_fire_time(None, earliest)
    if fire is not None and fire.timestamp() <= now:
        return fire.timestamp(), fire.timestamp() + window.duration
    return None


def next_start(window: MaintenanceWindow, now: float) -> float | None:
    if window.cancelled_at is not None:
        return None
    if window.starts_at is not None:
        return window.starts_at if window.starts_at > now else None
    if window.cron is None:
        return None
    fire = _trigger(window).get_next_fire_time(None, dt.datetime.fromtimestamp(now, ZoneInfo(window.timezone)))
    return fire.timestamp() if fire else None


def occurrences(window: MaintenanceWindow, now: float, horizon: float, limit: int = 10) -> list[tuple[float, float]]:
    """The window's occurrences going on at `now` or starting before `horizon` (at most `limit`)."""
    out = []
    active = occurrence(window, now)
    if active is not None:
        out.append(active)
    cursor = now
    while len(out) < limit:
        start = next_start(window, cursor)
        if start is None or start > horizon:
            break
        end = window.ends_at if window.ends_at is not None else start + (window.duration or 0.0)
        out.append((start, end))
        cursor = start + 1.0
    return out


def covered_checks(window: MaintenanceWindow, inventory: Inventory) -> set[str]:
    targets = set(window.scope.get("targets") or [])
    selector = window.scope.get("labels") or {}
    names = {
        n for n, t in inventory.targets.items() if n in targets or (selector and labels_match(selector, dict(t.labels)))
    }
    checks = {cid for cid in window.scope.get("checks", ()) if cid in inventory.checks}  # the security desk's cuts
    return checks | {cid for name in names for cid in inventory.checks_by_target.get(name, ())}


class MaintenanceDriver:
    """Keeps the engine's maintenance set equal to the checks of the windows active now."""

    def __init__(
        self,
        windows: Callable[[], Iterable[MaintenanceWindow]],
        inventory: Callable[[], Inventory],
        apply: Callable[[set[str], dict[str, str]], None],
        clock: Callable[[], float],
    ) -> None:
        self._windows = windows
        self._inventory = inventory
        self._apply = apply  # (check ids in maintenance, check id -> window name)
        self._clock = clock
        self._scheduler = AsyncIOScheduler(timezone=JST)

    def start(self) -> None:
        self._scheduler.start()
        self._scheduler.add_job(self._job, IntervalTrigger(seconds=RECONCILE_SECONDS), id="reconcile")
        self.reconcile()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def reconcile(self) -> None:
        """Apply the windows active now and schedule the next start and end of each window."""
        now = self._clock()
        inventory = self._inventory()
        covered: dict[str, str] = {}
        for job in self._scheduler.get_jobs():
            if job.id != "reconcile":
                job.remove()
        for window in self._windows():
            active = occurrence(window, now)
            if active is not None:
                for check_id in covered_checks(window, inventory):
                    covered.setdefault(check_id, window.name)
                self._at(active[1], f"end:{window.source}:{window.id}:{window.name}")
            start = next_start(window, now)
            if start is not None:
                self._at(start, f"start:{window.source}:{window.id}:{window.name}")
        self._apply(set(covered), covered)

    async def _job(self) -> None:
        """APScheduler runs plain functions in a thread pool: a coroutine keeps the engine on the loop."""
        self.reconcile()

    def _at(self, when: float, job_id: str) -> None:
        run_at = dt.datetime.fromtimestamp(when + 0.01, JST)  # just after the boundary: the window has changed
        self._scheduler.add_job(self._job, DateTrigger(run_date=run_at), id=job_id, replace_existing=True)
