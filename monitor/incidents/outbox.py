"""The outbox worker: delivers queued notifications, retries with backoff, never loses one.

A notification leaves the outbox only when its channel accepted it (status sent). A channel that is
down delays its messages (exponential backoff up to BACKOFF_MAX) and loses none; after GIVE_UP_AFTER
a notification is marked failed and the incident's timeline says so. Alertmanager alerts of open
incidents are re-sent every `resend_interval`, since Alertmanager forgets alerts that stop coming.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from monitor.clock import Clock
from monitor.notifiers.base import Notifier, NotifyError, resending
from monitor.store.base import Store
from monitor.store.records import IncidentEvent, OutboxItem

log = structlog.get_logger()
BACKOFF_FIRST = 5.0
BACKOFF_MAX = 300.0
GIVE_UP_AFTER = 86400.0
IDLE_WAIT = 5.0
CONCURRENCY = 8


class OutboxMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter(
            "monitor_notifications_sent_total", "Notifications delivered.", ["channel", "kind"], registry=registry
        )
        self.failed = Counter(
            "monitor_notification_failures_total", "Failed delivery attempts (retried).", ["channel"], registry=registry
        )
        self.pending = Gauge("monitor_notifications_pending", "Notifications waiting in the outbox.", registry=registry)


def backoff(attempts: int) -> float:
    return float(min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(0, attempts - 1)))


class OutboxWorker:
    def __init__(
        self, store: Store, clock: Clock, notifiers: Callable[[], Mapping[str, Notifier]], metrics: OutboxMetrics
    ) -> None:
        self.store = store
        self.clock = clock
        self._notifiers = notifiers
        self.metrics = metrics
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self.resend_alerts: Callable[[], Any] | None = None  # set by the daemon: re-send firing alerts

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run()), asyncio.create_task(self._resend())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # before looking: a wake during delivery is not lost
            try:
                await self.deliver_due()
                due = await self.store.next_notification_due()
                counts = await self.store.outbox_counts()
                self.metrics.pending.set(counts.get("pending", 0))
            except Exception:
                log.exception("outbox_failed")
                due = None
            wait = IDLE_WAIT if due is None else max(0.0, min(IDLE_WAIT, due - self.clock.now()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _resend(self) -> None:
        """Keep firing alerts alive in Alertmanager while their incident is open."""
        while True:
            managers = resending(self._notifiers().values())
            interval = min((m.resend_interval for m in managers), default=IDLE_WAIT * 6)
            await asyncio.sleep(interval)
            try:
                await self.resend_firing()
            except Exception:
                log.exception("alert_resend_failed")

    async def resend_firing(self) -> int:
        """Post every firing alert of every open incident again (idempotent for Alertmanager)."""
        by_channel: dict[str, list[dict[str, Any]]] = {}
        for item in await self.store.firing_alerts():
            by_channel.setdefault(item.channel, []).append(item.payload["alert"])
        sent = 0
        managers = {m.name: m for m in resending(self._notifiers().values())}
        for channel, alerts in by_channel.items():
            notifier = managers.get(channel)
            if notifier is not None:
                try:
                    await notifier.post(alerts)
                    sent += len(alerts)
                except NotifyError as exc:
                    log.warning("alert_resend_failed", channel=channel, error=str(exc))
        return sent

    async def deliver_due(self) -> int:
        """Try every notification that is due; returns how many went out."""
        items = await self.store.due_notifications(self.clock.now())
        results = await asyncio.gather(*(self._deliver(item) for item in items))
        return sum(results)

    async def _deliver(self, item: OutboxItem) -> bool:
        notifier = self._notifiers().get(item.channel)
        async with self._slots:
            now = self.clock.now()
            if notifier is None:
                await self.store.mark_failed(item.id, f'notifier "{item.channel}" is no longer configured', None)
                return False
            try:
                await notifier.send(item.payload, item.dedup_key)
            except NotifyError as exc:
                return await self._failed(item, str(exc), now)
            except Exception as exc:  # a bug in a notifier: keep the message, say so
                log.exception("notifier_crashed", channel=item.channel)
                return await self._failed(item, f"internal error: {type(exc).__name__}", now)
            await self.store.mark_sent(item.id, now)
            self.metrics.sent.labels(item.channel, item.kind).inc()
            if item.incident_id is not None:
                detail = {"channel": item.channel, "recipient": item.recipient, "level": item.level,
                          "notification": item.kind, "attempts": item.attempts + 1}  # fmt: skip
                await self.store.add_events(
                    item.incident_id, IncidentEvent(item.incident_id, now, "notified", None, detail)
                )
            log.info("notification_sent", channel=item.channel, recipient=item.recipient, kind=item.kind,
                     incident=item.incident_id, level=item.level)  # fmt: skip
            return True

    async def _failed(self, item: OutboxItem, error: str, now: float) -> bool:
        self.metrics.failed.labels(item.channel).inc()
        give_up = now - item.created_at > GIVE_UP_AFTER
        retry_at = None if give_up else now + backoff(item.attempts + 1)
        await self.store.mark_failed(item.id, error, retry_at)
        log.warning("notification_failed", channel=item.channel, recipient=item.recipient, error=error,
                    attempts=item.attempts + 1, retry_at=retry_at)  # fmt: skip
        if give_up and item.incident_id is not None:
            detail = {"channel": item.channel, "recipient": item.recipient, "error": error}
            await self.store.add_events(
                item.incident_id, IncidentEvent(item.incident_id, now, "notify_failed", None, detail)
            )
        return False
