"""The probe scheduler: every check on its interval at a stable offset, never overlapping itself.

Each check's runs sit on a grid `offset + k * interval` of wall-clock time, the offset a hash of the
check id (as Prometheus spreads scrapes), so thousands of checks do not fire at once and two daemons
(shards, HA pairs) probe in the same phase. Timers are the event loop's own (`call_at`), one per
check. While a check is confirming a change (failing, or recovering) it is re-probed after its
retry interval instead of waiting for the next slot. A run still going when its next slot comes
holds that slot: if it ends within half an interval of it, the slot's run starts at once, late;
otherwise the slot is skipped (counted). So a probe whose timeout equals its interval (a dead target
at timeout == interval ends a few milliseconds after its next slot) is still probed every interval,
not every other one. Global and per-module semaphores bound probes in flight; the lag from
the due time to the start of the probe is recorded.

Urgent probes go first when probes wait for a slot, and may use a few slots beyond the global limit: a re-poll a
linkDown/linkUp trap asked for, and the retries confirming what it found, must not queue behind a flood
of routine re-polls, e.g. of dead agents whose every probe holds a slot for its whole timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.core.inventory import Check

STARTUP_SPREAD = 10.0  # first probes of all checks spread over at most this many seconds
LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def phase(check_id: str) -> float:
    """A stable number in [0, 1) from the check id."""
    digest = hashlib.blake2b(check_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class SchedulerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag = Histogram(
            "monitor_scheduler_lag_seconds",
            "Delay from a probe's due time to its start (includes waiting for a concurrency slot).",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        # plain counts on the probe path, read by the gauges at scrape time (no lock per probe)
        self.in_flight = 0
        self.waiting = 0
        in_flight = Gauge("monitor_probes_in_flight", "Probes running now.", registry=registry)
        in_flight.set_function(lambda: self.in_flight)
        waiting = Gauge("monitor_probes_waiting", "Probes due but waiting for a concurrency slot.", registry=registry)
        waiting.set_function(lambda: self.waiting)
        self.skipped = Counter(
            "monitor_probes_skipped_total",
            "Probe runs skipped because the previous run of the same check was still going.",
            registry=registry,
        )


class PrioritySlots:
    """A semaphore of `value` slots whose urgent holders go first and may use `extra` slots beyond it:
    an urgent probe starts at once even while routine probes that each wait out a timeout hold all the
    others. Each kind is served in arrival order; a routine waiter can be made urgent (`promote`)."""

    def __init__(self, value: int, extra: int = 0) -> None:
        self.value, self.extra = value, extra
        self._in_use = 0
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._routine: deque[asyncio.Future[None]] = deque()
        self._waiting: dict[object, asyncio.Future[None]] = {}  # by the caller's key, for promote()

    def _can(self, urgent: bool) -> bool:
        return self._in_use < self.value + (self.extra if urgent else 0)

    async def acquire(self, urgent: bool = False, key: object = None) -> None:
        queue = self._urgent if urgent else self._routine
        if self._can(urgent) and not queue and (urgent or not self._urgent):
            self._in_use += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(future)
        if key is not None:
            self._waiting[key] = future
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted just as we were cancelled: pass it on
                self.release()
            else:
                for waiting in (self._urgent, self._routine):
                    if future in waiting:
                        waiting.remove(future)
            raise
        finally:
            if key is not None:
                self._waiting.pop(key, None)

    def promote(self, key: object) -> None:
        """The routine waiter acquiring with `key` waits as an urgent one from now on."""
        future = self._waiting.get(key)
        if future is not None and future in self._routine:
            self._routine.remove(future)
            self._urgent.append(future)
            self._grant()

    def release(self) -> None:
        self._in_use -= 1
        self._grant()

    def _grant(self) -> None:
        while True:
            queue = self._urgent if self._urgent and self._can(True) else self._routine if self._can(False) else None
            if not queue:
                return
            future = queue.popleft()
            if not future.done():
                self._in_use += 1
                future.set_result(None)


def urgent_reserve(max_concurrent: int) -> int:
    """Slots urgent probes may use beyond the global limit: 5% of it, at least one."""
    return max(1, max_concurrent // 20)


@dataclass(slots=True)
class _Entry:
    check: Check
    phase: float
    handle: asyncio.TimerHandle | None = None
    due: float = 0.0  # loop time of the scheduled run
    running: bool = False
    removed: bool = False
    rerun: bool = False  # probe_soon while running: run again right after, the running probe may predate the news
    urgent_runs: int = 0  # this many next runs go before routine probes waiting for a slot
    waiting: bool = False  # running, but still waiting for a slot: the probe has not started
    promoted: bool = False  # the run waiting for a slot is an urgent one
    last_took: float = 0.0  # seconds the last run took
    late: float | None = None  # the due time of a slot that came while the run was going (the slot rule)


class Scheduler:
    def __init__(
        self,
        execute: Callable[[Check], Awaitable[None]],
        confirming: Callable[[str], bool],
        metrics: SchedulerMetrics,
        max_concurrent: int,
        module_limits: Mapping[str, int] | None = None,
    ) -> None:
        self._execute = execute
        self._confirming = confirming
        self._metrics = metrics
        self._max_concurrent = max_concurrent
        self._global = PrioritySlots(max_concurrent, urgent_reserve(max_concurrent))
        self._module_limits: dict[str, PrioritySlots] = {}
        self._entries: dict[str, _Entry] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        self.set_limits(max_concurrent, module_limits or {})

    # --- configuration ---------------------------------------------------------------------

    def set_limits(self, max_concurrent: int, module_limits: Mapping[str, int]) -> None:
        """New limits apply to probes that start from now on; running ones finish under the old."""
        if max_concurrent != self._max_concurrent:
            self._global = PrioritySlots(max_concurrent, urgent_reserve(max_concurrent))
            self._max_concurrent = max_concurrent
        self._module_limits = {m: PrioritySlots(n) for m, n in module_limits.items()}

    def set_checks(self, checks: Mapping[str, Check]) -> None:
        """Start, reload: new checks are scheduled, removed ones cancelled, kept ones keep running."""
        for cid in set(self._entries) - set(checks):
            entry = self._entries.pop(cid)
            entry.removed = True
            if entry.handle:
                entry.handle.cancel()
        now = self._loop.time()
        for cid, check in checks.items():
            existing = self._entries.get(cid)
            if existing is None:
                entry = self._entries[cid] = _Entry(check, phase(cid))
                spread = min(check.interval, STARTUP_SPREAD)
                self._schedule(entry, now + entry.phase * spread)
            else:
                interval_changed = existing.check.interval != check.interval
                existing.check = check
                if interval_changed and not existing.running:
                    self._schedule(existing, self._next_slot(existing, now))

    def probe_soon(self, check_ids: Iterable[str], urgent: bool = False) -> None:
        """Run these checks now: to probe a parent on a child failure, or a device that sent a trap.
        A check already running runs once more when it finishes (its result may predate the news).
        `urgent`: ahead of routine probes waiting for a slot (a link trap's re-poll), if the check is quick."""
        now = self._loop.time()
        for cid in check_ids:
            entry = self._entries.get(cid)
            if entry is None:
                continue
            # The re-poll and the retries that confirm what it finds, bounded however it ends; and only for a
            # check whose last run was quick: one that waits out its timeout (a dead agent, a flood of traps
            # spoofed in its name) would hold the urgent slots as long as it holds the others.
            if urgent and entry.last_took < entry.check.timeout / 2:
                policy = entry.check.policy
                entry.urgent_runs = max(entry.urgent_runs, policy.failures_to_down, policy.successes_to_up)
            if entry.running and entry.waiting:  # not started yet: its result will be fresh
                if urgent:
                    self._promote(entry)
            elif entry.running:
                entry.rerun = True
            else:
                self._schedule(entry, now)

    def _promote(self, entry: _Entry) -> None:
        if entry.promoted:
            return
        entry.promoted = True
        entry.urgent_runs = max(0, entry.urgent_runs - 1)  # the waiting run is the first urgent one
        for slot in (self._global, *([m] if (m := self._module_limits.get(entry.check.module)) else [])):
            slot.promote(entry.check.id)

    # --- timing ----------------------------------------------------------------------------

    def _next_slot(self, entry: _Entry, after: float) -> float:
        """The first grid time (wall-clock aligned offset + k * interval) after loop time `after`.

        Timers may fire a little early (uvloop rounds to milliseconds), so a time within 1% of an
        interval before a grid point counts as on it: the run at a slot never reschedules itself
        into the same slot."""
        interval = entry.check.interval
        loop_now, wall_now = self._loop.time(), time.time()
        wall_after = wall_now + (after - loop_now)
        offset = entry.phase * interval
        k = math.floor((wall_after - offset) / interval + 0.01) + 1
        return loop_now + (k * interval + offset - wall_now)

    def _schedule(self, entry: _Entry, due: float) -> None:
        if entry.handle:
            entry.handle.cancel()
        entry.due = due
        entry.handle = self._loop.call_at(due, self._fire, entry)

    def _fire(self, entry: _Entry) -> None:
        if entry.removed:
            return
        due, now = entry.due, self._loop.time()
        next_due = self._next_slot(entry, due)
        if next_due < now:  # the loop was stalled past whole slots: skip them rather than catch up in a burst
            self._metrics.skipped.inc(math.ceil((now - next_due) / entry.check.interval))
            next_due = self._next_slot(entry, now)
        self._schedule(entry, next_due)
        if entry.running:
            if entry.late is not None:  # an earlier slot held by this same run: that one is lost
                self._metrics.skipped.inc()
            entry.late = due  # the run's end decides: run this slot late, or skip it (_run)
            return
        entry.running = True
        task = self._loop.create_task(self._run(entry, due))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, entry: _Entry, due: float) -> None:
        check = entry.check
        slots = [self._global, *([m] if (m := self._module_limits.get(check.module)) else [])]
        metrics = self._metrics
        acquired: list[PrioritySlots] = []
        entry.promoted = entry.urgent_runs > 0
        entry.urgent_runs = max(0, entry.urgent_runs - 1)
        try:
            metrics.waiting += 1
            entry.waiting = True
            try:
                for slot in slots:
                    await slot.acquire(entry.promoted, check.id)
                    acquired.append(slot)
            finally:
                metrics.waiting -= 1
                entry.waiting = False
            start = self._loop.time()
            metrics.lag.observe(max(0.0, start - due))
            metrics.in_flight += 1
            try:
                await self._execute(check)
            finally:
                metrics.in_flight -= 1
                entry.last_took = self._loop.time() - start
        finally:
            for slot in acquired:
                slot.release()
            entry.running = False
        late, entry.late = entry.late, None
        if entry.removed:
            return
        now = self._loop.time()
        if late is not None and not entry.rerun and now - late > check.interval / 2:
            self._metrics.skipped.inc()  # too late for that slot: the next one is on time
            late = None
        if entry.rerun or late is not None:  # probe_soon while running, or the slot this run overran
            entry.rerun = False
            self._schedule(entry, now)
        elif self._confirming(check.id):
            retry_at = self._loop.time() + check.retry_interval
            if retry_at < entry.due:
                self._schedule(entry, retry_at)

    # --- lifecycle -------------------------------------------------------------------------

    async def stop(self, grace: float = 5.0) -> None:
        """Stop scheduling; let running probes finish for up to `grace` seconds, then cancel them."""
        for entry in self._entries.values():
            entry.removed = True
            if entry.handle:
                entry.handle.cancel()
        self._entries.clear()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    @property
    def scheduled(self) -> int:
        return len(self._entries)
