"""The leader lease's decisions: lead when the lease is ours, step down before it can run out when the store
cannot be reached (so two leaders never page at once), hand over on a clean stop. The real lease on a real
PostgreSQL is exercised in tests/e2e/test_ha_process.py; here the store's answers are scripted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from monitor.cluster.ha import Leadership
from monitor.store.postgres import PostgresStore
from tests import pg


class ScriptedStore:
    def __init__(self) -> None:
        self.answer: tuple[bool, float | None] | None = (True, None)  # None: the store hangs
        self.released: list[str] = []

    async def hold_lease(self, holder: str, now: float, ttl: float) -> tuple[bool, float | None]:
        if self.answer is None:
            await asyncio.sleep(3600)
        assert self.answer is not None
        return self.answer

    async def release_lease(self, holder: str) -> None:
        self.released.append(holder)


async def test_lead_step_down_when_the_store_hangs_and_release() -> None:
    store = ScriptedStore()
    calls: list[Any] = []

    async def lead(since: float | None) -> None:
        calls.append(("lead", since))

    async def follow() -> None:
        calls.append("follow")

    ha = Leadership(store, "a", 1.0, lead, follow)  # ttl 1 s: a renewal may take 1/3 s
    await ha.step()
    assert ha.leader and calls == [("lead", None)]
    store.answer = None  # the store stops answering: still ours right after a renewal ...
    await ha.step()
    assert ha.leader
    await asyncio.sleep(0.3)
    await ha.step()  # ... but not once 60 % of the lease has passed without one
    assert not ha.leader and calls[-1] == "follow"
    store.answer = (True, 123.0)  # back, and the lease expired meanwhile: taken over, with the old renewal time
    await ha.step()
    assert ha.leader and calls[-1] == ("lead", 123.0)
    store.answer = (False, None)  # someone else holds it
    await ha.step()
    assert not ha.leader and calls[-1] == "follow"
    await ha.release()
    assert store.released == []  # only a leader hands over
    store.answer = (True, None)
    await ha.step()
    await ha.release()
    assert store.released == ["a"] and not ha.leader


@pytest.mark.skipif(not pg.available(), reason="postgresql not installed")
async def test_daemons_starting_together_on_a_fresh_database() -> None:
    """Four stores on one new PostgreSQL database claim the shard and race for the lease at the same moment:
    no unique-key error, exactly one leader, nobody 'takes over' from a previous leader (there was none)."""
    dsn = pg.fresh_database()
    stores = [PostgresStore(dsn) for _ in range(4)]
    stores[0].open(now=100.0)  # migrations once, as the first daemon to start does
    for store in stores[1:]:
        store.open(now=100.0)
    try:
        await asyncio.gather(*(store.claim_shard("1/1") for store in stores))
        results = await asyncio.gather(*(s.hold_lease(f"host:{i}#1", 200.0, 15.0) for i, s in enumerate(stores)))
        assert sorted(held for held, _ in results) == [False, False, False, True]
        assert all(since is None for _, since in results)
        with pytest.raises(RuntimeError, match="shard 1/1's store, not shard 2/2's"):
            await stores[0].claim_shard("2/2")
    finally:
        for store in stores:
            await store.close(now=300.0)
