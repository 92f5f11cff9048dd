"""The store contract for used action links, on every backend of tests/store/test_contract.py: the first use
is recorded, a second one (a replay) changes nothing and reports the first, and both survive a restart."""

from __future__ import annotations

from pathlib import Path

from monitor.store.base import Store
from monitor.store.records import LinkUse
from monitor.store.sqlite import SQLiteStore
from tests.store.test_contract import store  # noqa: F401  (the fixture: every backend)


async def test_a_link_is_used_once(store: Store) -> None:  # noqa: F811
    """The first use returns None (go ahead); a replay returns the first use, unchanged."""
    first = LinkUse("d" * 64, 7, "ack", "oncall-1", "mail", 120.0)
    assert await store.use_action_link(first) is None
    again = await store.use_action_link(LinkUse("d" * 64, 7, "ack", "someone-else", "webhook", 130.0))
    assert again == first
    assert await store.action_link_use("d" * 64) == first
    assert await store.action_link_use("e" * 64) is None


async def test_used_links_survive_a_restart(tmp_path: Path) -> None:
    """A used link stays used after the daemon restarts (the digest is on disk, not in memory)."""
    path = tmp_path / "links.db"
    before = SQLiteStore(path)
    before.open(now=100.0)
    await before.use_action_link(LinkUse("a" * 64, 3, "escalate", "oncall-1", "mail", 110.0))
    await before.close(now=120.0)
    after = SQLiteStore(path)
    after.open(now=130.0)
    try:
        assert await after.use_action_link(LinkUse("a" * 64, 3, "escalate", "oncall-1", "mail", 140.0)) is not None
    finally:
        await after.close(now=150.0)
