"""The SQLite store: intervals from transitions, crash recovery, a busy database loses nothing."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from monitor.core.engine import Transition
from monitor.core.state import State
from monitor.store.migrations import MIGRATIONS
from monitor.store.sqlite import SQLiteStore, connect


def t(subject_id: str, old: State, new: State, at: float, kind: str = "check") -> Transition:
    return Transition(kind, subject_id, old, new, at, reason=f"{new.value} at {at}")  # type: ignore[arg-type]


async def test_transitions_become_intervals(tmp_path: Path) -> None:
    """Each transition closes the open interval of its subject and opens the next one."""
    store = SQLiteStore(tmp_path / "m.db")
    store.open(now=100.0)
    store.record([t("a/ping", State.UNKNOWN, State.UP, 100.0), t("a/ping", State.UP, State.DOWN, 160.0)])
    store.record([t("a/ping", State.DOWN, State.UP, 220.0)])
    await store.flush()
    rows = [(i.state, i.start, i.end) for i in store.intervals("check", "a/ping", 0, 1e12)]
    assert rows == [("up", 100.0, 160.0), ("down", 160.0, 220.0), ("up", 220.0, None)]
    await store.close(now=300.0)


async def test_clean_stop_closes_intervals_at_stop_time(tmp_path: Path) -> None:
    """A clean stop closes every open interval at the stop time and marks the run stopped."""
    store = SQLiteStore(tmp_path / "m.db")
    store.open(now=100.0)
    store.record([t("svc", State.UNKNOWN, State.UP, 100.0, "service")])
    await store.close(now=250.0)
    again = SQLiteStore(tmp_path / "m.db")
    again.open(now=400.0)
    assert [(i.start, i.end) for i in again.intervals("service", "svc", 0, 1e12)] == [(100.0, 250.0)]
    assert [r[3] for r in again.runs()] == [250.0, None]
    await again.close(now=401.0)


def _crashing_writer(path: str) -> None:
    """Child process: open the store, record, heartbeat, then die by SIGKILL without closing."""

    async def main() -> None:
        store = SQLiteStore(Path(path))
        store.open(now=1000.0)
        store.record([t("a/ping", State.UNKNOWN, State.DOWN, 1000.0)])
        store.heartbeat(1030.0)
        await store.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())


async def test_kill_9_leaves_a_gap_not_uptime(tmp_path: Path) -> None:
    """After kill -9, the next start closes open intervals at the last heartbeat: the dead time is a gap."""
    path = tmp_path / "m.db"
    proc = multiprocessing.get_context("fork").Process(target=_crashing_writer, args=(str(path),))
    proc.start()
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    store = SQLiteStore(path)
    store.open(now=5000.0)
    assert [(i.state, i.start, i.end) for i in store.intervals("check", "a/ping", 0, 1e12)] == [
        ("down", 1000.0, 1030.0)
    ]
    runs = store.runs()
    assert runs[0][2:] == (1030.0, 1030.0) and runs[1][3] is None
    await store.close(now=5001.0)


async def test_busy_database_delays_writes_and_loses_none(tmp_path: Path) -> None:
    """While another process holds the write lock, writes wait and are all applied afterwards."""
    path = tmp_path / "m.db"
    store = SQLiteStore(path)
    store.open(now=0.0)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # hold the write lock longer than the store's 5 s busy timeout
    store.record([t(f"c{i}", State.UNKNOWN, State.UP, float(i)) for i in range(500)])
    await asyncio.sleep(6.0)
    assert store.write_errors >= 1
    blocker.execute("COMMIT")
    blocker.close()
    await asyncio.wait_for(store.flush(), 30)
    assert sum(len(store.intervals("check", f"c{i}", 0, 1e12)) for i in range(500)) == 500
    await store.close(now=10.0)


def test_migrations_are_idempotent_and_versioned(tmp_path: Path) -> None:
    """Opening twice applies migrations once; user_version equals the number of migrations."""
    for _ in range(2):
        store = SQLiteStore(tmp_path / "m.db")
        store.open(now=time.time())
        asyncio.run(store.close(now=time.time()))
    conn = connect(tmp_path / "m.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_refused(tmp_path: Path) -> None:
    """A store written by a newer daemon is refused with a clear error instead of being damaged."""
    conn = connect(tmp_path / "m.db")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this daemon knows"):
        SQLiteStore(tmp_path / "m.db").open(now=0.0)


async def test_tampering_with_the_audit_log_is_detected(tmp_path: Path) -> None:
    """Direct UPDATE of the audit log is refused; with the trigger dropped, the changed entry breaks the chain."""
    from monitor.store.records import AuditEntry

    store = SQLiteStore(tmp_path / "m.db")
    store.open(now=0.0)
    first = await store.audit(AuditEntry(1.0, "yamada", "incident.ack", "ok"))
    await store.audit(AuditEntry(2.0, "suzuki", "incident.resolve", "ok"))
    conn = sqlite3.connect(tmp_path / "m.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE id = ?", (first.id,))
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE id = ?", (first.id,))
    conn.commit()
    conn.close()
    assert await store.verify_audit_chain() == (False, first.id)
    await store.close(now=3.0)


def _dying_mid_outage(path: str) -> None:
    """Child process: a run that sees a check and its service go DOWN, then dies by SIGKILL."""

    async def main() -> None:
        store = SQLiteStore(Path(path))
        store.open(now=1000.0)
        store.record([t("a/ping", State.UNKNOWN, State.UP, 1000.0), t("svc", State.UNKNOWN, State.UP, 1000.0, "service"),
                      t("b/ping", State.UNKNOWN, State.UP, 1000.0)])  # fmt: skip
        store.record([t("a/ping", State.UP, State.DOWN, 1010.0), t("svc", State.UP, State.DOWN, 1010.0, "service"),
                      t("b/ping", State.UP, State.DOWN, 1010.0), t("c/ping", State.UNKNOWN, State.DOWN, 1010.0)])  # fmt: skip
        store.heartbeat(1030.0)
        await store.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())


async def test_an_outage_down_before_and_after_kill_9_is_one_outage(tmp_path: Path) -> None:
    """After kill -9 the outages open at the last heartbeat are offered to resume: the first observation of this
    run in the same state reopens the interval (one outage, the gap included); one found otherwise (b/ping came
    back meanwhile) keeps the run ended at the last heartbeat and the gap stays a gap."""
    path = tmp_path / "m.db"
    proc = multiprocessing.get_context("fork").Process(target=_dying_mid_outage, args=(str(path),))
    proc.start()
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    store = SQLiteStore(path)
    store.open(now=1040.0)
    assert store.previous_run == (1030.0, True)
    assert store.resumable_checks() == {"a/ping": ("down", 1010.0, "down at 1010.0"),
                                        "b/ping": ("down", 1010.0, "down at 1010.0"),
                                        "c/ping": ("down", 1010.0, "down at 1010.0")}  # fmt: skip
    store.record([t("a/ping", State.UNKNOWN, State.DOWN, 1041.0), t("svc", State.UNKNOWN, State.DOWN, 1041.0, "service"),
                  t("b/ping", State.UNKNOWN, State.UP, 1041.0), t("c/ping", State.UNKNOWN, State.UNREACHABLE, 1042.0)])  # fmt: skip
    store.record([t("a/ping", State.DOWN, State.UP, 1100.0), t("svc", State.DOWN, State.UP, 1100.0, "service")])
    await store.flush()

    def rows(kind: str, sid: str) -> list[tuple[str, float, float | None]]:
        return [(i.state, i.start, i.end) for i in store.intervals(kind, sid, 0, 1e12)]

    assert rows("check", "a/ping") == [("up", 1000.0, 1010.0), ("down", 1010.0, 1100.0), ("up", 1100.0, None)]
    assert rows("service", "svc") == [("up", 1000.0, 1010.0), ("down", 1010.0, 1100.0), ("up", 1100.0, None)]
    assert rows("check", "b/ping") == [("up", 1000.0, 1010.0), ("down", 1010.0, 1030.0), ("up", 1041.0, None)]
    assert rows("check", "c/ping") == [("down", 1010.0, 1042.0), ("unreachable", 1042.0, None)]  # no gap between
    await store.close(now=1200.0)


async def test_a_long_gap_is_not_resumed(tmp_path: Path) -> None:
    """A daemon stopped for longer than RESUME_WITHIN does not claim the time it did not watch."""
    store = SQLiteStore(tmp_path / "m.db")
    store.open(now=100.0)
    store.record([t("a/ping", State.UNKNOWN, State.DOWN, 100.0)])
    await store.close(now=200.0)
    again = SQLiteStore(tmp_path / "m.db")
    again.open(now=200.0 + 3600.0)
    assert again.previous_run == (200.0, False) and again.resumable_checks() == {}
    await again.close(now=5000.0)
