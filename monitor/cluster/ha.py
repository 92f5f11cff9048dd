"""HA: two (or more) daemons on one PostgreSQL store; only the holder of the leader lease acts.

Every daemon probes and keeps the whole state (so a standby is ready the moment it leads). Only the leader
turns state changes into incidents, pages (the outbox), disconnects and stored state intervals. The lease
is a row in the shared store, renewed every third of its time; a leader that cannot renew steps down
before it runs out, so two leaders never page at once. A standby takes an expired lease over: it closes
the intervals the dead leader left open at its last renewal (the time in between is a monitoring gap),
loads the open incidents and the unsent pages from the store, and replays its current view of every check
to the incident side, so an outage that began during the handover is paged and one that ended is resolved.
Pages carry the same idempotency keys whoever sends them. A clean stop hands the lease over at once, and a
daemon restarted on the same host and listen address takes its previous life's lease at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from monitor.store.base import LeaseStore

log = structlog.get_logger()


class Leadership:
    def __init__(
        self,
        store: LeaseStore,  # the shared store's lease (`store.lease`)
        holder: str,
        ttl: float,
        lead: Callable[[float | None], Awaitable[None]],
        follow: Callable[[], Awaitable[None]],
    ) -> None:
        self.store = store
        self.holder = holder
        self.ttl = ttl
        self._lead = lead
        self._follow = follow
        self.leader = False
        self._renewed = float("-inf")

    async def run(self) -> None:
        while True:
            await self.step()
            await asyncio.sleep(self.ttl / 3)

    async def step(self) -> None:
        now = time.time()
        try:
            held, since = await asyncio.wait_for(self.store.hold_lease(self.holder, now, self.ttl), self.ttl / 3)
        except (TimeoutError, OSError, RuntimeError) as exc:  # the store is unreachable: keep it only while surely ours
            held, since = self.leader and time.time() - self._renewed < self.ttl * 0.6, None
            log.error("ha_lease_not_renewed", error=str(exc) or type(exc).__name__, still_leader=held)
        else:
            if held:
                self._renewed = now
        if held and not self.leader:
            self.leader = True
            log.warning("ha_became_leader", holder=self.holder, previous_leader_last_seen=since)
            await self._lead(since)
        elif not held and self.leader:
            self.leader = False
            log.warning("ha_stepped_down", holder=self.holder)
            await self._follow()

    async def release(self) -> None:
        if self.leader:
            self.leader = False
            try:
                await asyncio.wait_for(self.store.release_lease(self.holder), 5.0)
            except (TimeoutError, OSError, RuntimeError) as exc:
                log.error("ha_lease_not_released", error=str(exc))
