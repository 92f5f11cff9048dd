"""A store file deleted or replaced under the running daemon (issue 24, point 7): `rm monitor.db*` used to
go unnoticed (ready, writes answered, 0 errors) and the history was gone at the next start. Now the writer
notices within FILE_CHECK_SECONDS, readiness fails and a metric and the error log say so, and the open
data is written back to the path: after a restart nothing is missing, the rows from before the deletion
and those written after it alike."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from monitor.core.engine import Transition
from monitor.core.state import State
from monitor.daemon import Daemon
from monitor.http.app import build_app
from monitor.store.sqlite import FILE_CHECK_SECONDS, SQLiteStore
from tests.conftest import Loader


def t(subject_id: str, new: State, at: float) -> Transition:
    return Transition("check", subject_id, State.UNKNOWN, new, at, reason=f"{new.value} at {at}")


def remove_all(path: Path) -> None:
    """What `rm monitor.db*` does."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def wait_for(condition: Callable[[], bool], within: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < within:
        if condition():
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {within}s")


async def write_rows(store: SQLiteStore, start: int, count: int) -> None:
    """Transitions (fire and forget) and awaited writes of our own table, as the daemon's writes come."""
    store.record([t(f"c{n}/ping", State.UP, 1000.0 + n) for n in range(start, start + count)])
    await store.write(
        lambda c: c.executemany("INSERT INTO kept (n) VALUES (?)", [(n,) for n in range(start, start + count)])
    )


def history(path: Path) -> tuple[int, int, int]:
    """What a restarted daemon finds at `path`: state intervals, our rows, daemon runs."""
    with sqlite3.connect(path) as conn:
        return (
            conn.execute("SELECT count(*) FROM state_intervals").fetchone()[0],
            conn.execute("SELECT count(*) FROM kept").fetchone()[0],
            conn.execute("SELECT count(*) FROM daemon_runs").fetchone()[0],
        )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "data" / "monitor.db")
    store.open(now=1.0)
    await store.write(lambda c: c.execute("CREATE TABLE kept (n INTEGER)"))
    await write_rows(store, 0, 500)
    await store.flush()
    yield store
    await store.close(now=2.0)


async def test_deleted_file_and_wal_are_recreated_from_the_open_database(store: SQLiteStore) -> None:
    """rm monitor.db*: noticed within the check period, counted, and the file is back at its path with every
    row, those written before and after the deletion; the store stays writable throughout."""
    remove_all(store.path)
    await write_rows(store, 500, 500)  # answered as before: into the open (now unlinked) file
    took = await wait_for(lambda: store.files_lost.get("deleted") == 1 and store.file_problem is None, 10)
    assert took < FILE_CHECK_SECONDS + 1.5
    assert store.path.exists()
    await write_rows(store, 1000, 500)  # into the restored file
    await store.flush()
    await store.close(now=3.0)
    assert history(store.path) == (1500, 1500, 1)
    reopened = SQLiteStore(store.path)  # the restart: everything is there, the run was closed cleanly
    reopened.open(now=4.0)
    assert [r[3] for r in reopened.runs()] == [3.0, None]
    await reopened.close(now=5.0)


async def test_a_file_put_in_its_place_is_moved_aside_and_ours_restored(store: SQLiteStore, tmp_path: Path) -> None:
    """Someone copies another database over the path (a restore done while running, a forged history): it is
    not ours, so it is moved aside (not destroyed) and ours put back with everything written."""
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE theirs (x)")
        conn.execute("INSERT INTO theirs VALUES ('keep me')")
    conn.close()
    shutil.copy(other, tmp_path / "incoming.db")
    (tmp_path / "incoming.db").replace(store.path)
    await write_rows(store, 500, 100)
    await wait_for(lambda: store.files_lost.get("replaced") == 1 and store.file_problem is None, 10)
    await store.flush()
    await store.close(now=3.0)
    assert history(store.path) == (600, 600, 1)
    (aside,) = store.path.parent.glob("monitor.db.replaced-*[0-9]")
    with sqlite3.connect(aside) as conn:
        assert conn.execute("SELECT x FROM theirs").fetchall() == [("keep me",)]
    conn.close()


async def test_a_deleted_wal_alone_is_folded_into_the_database(store: SQLiteStore) -> None:
    """rm monitor.db-wal: the database file is still ours, but what the WAL held would be gone at the next
    start; it is checkpointed into the database and a new WAL started."""
    await write_rows(store, 500, 100)
    await store.flush()
    os.unlink(f"{store.path}-wal")
    await write_rows(store, 600, 100)
    await wait_for(lambda: store.files_lost.get("wal_deleted") == 1 and store.file_problem is None, 10)
    await write_rows(store, 700, 100)
    await store.flush()
    await store.close(now=3.0)
    assert history(store.path) == (800, 800, 1)


async def test_when_the_file_cannot_be_restored_it_keeps_failing_and_loses_nothing(store: SQLiteStore) -> None:
    """The whole directory is gone and a plain file sits where it was: the database cannot be written back
    yet. The problem stays (readiness fails), writes go on into the open file, and once the directory can
    be made again the next check restores everything."""
    data = store.path.parent
    shutil.rmtree(data)
    data.write_text("not a directory")
    await write_rows(store, 500, 100)
    await wait_for(lambda: store.file_problem is not None, 10)
    await asyncio.sleep(FILE_CHECK_SECONDS + 0.5)  # a second attempt fails as well
    assert store.file_problem is not None and "deleted" in store.file_problem
    assert store.files_lost == {"deleted": 1}  # one loss, however many checks see it
    await write_rows(store, 600, 100)
    data.unlink()
    await wait_for(lambda: store.file_problem is None, 10)
    await store.flush()
    await store.close(now=3.0)
    assert history(store.path) == (700, 700, 1)


CONFIG = """
modules: {ping: {kind: icmp}}
targets:
  - {name: edge, address: 127.0.0.1, modules: [ping]}
"""


async def test_readiness_and_metrics_say_so_while_the_file_is_lost(load_yaml_config: Loader, tmp_path: Path) -> None:
    """The daemon's /readyz is 503 with the reason, /metrics has monitor_store_file_ok 0 and the loss counted,
    while the file cannot be restored; both recover when it is."""
    daemon = Daemon(load_yaml_config(CONFIG), data_dir=tmp_path / "data")
    daemon.store.open(now=1.0)
    daemon.ready = True
    try:
        async with TestClient(TestServer(build_app(daemon.http_services()))) as client:
            assert (await client.get("/readyz")).status == 200
            shutil.rmtree(tmp_path / "data")
            (tmp_path / "data").write_text("in the way")
            await wait_for(lambda: daemon.store.file_problem is not None, 10)
            response = await client.get("/readyz")
            body = await response.json()
            assert response.status == 503 and body["status"] == "store_file_lost"
            assert str(daemon.store.path) in body["error"] and "deleted" in body["error"]
            assert sample(daemon, "monitor_store_file_ok") == 0
            assert sample(daemon, "monitor_store_file_lost_total", change="deleted") == 1
            (tmp_path / "data").unlink()
            await wait_for(lambda: daemon.store.file_problem is None, 10)
            assert (await client.get("/readyz")).status == 200
            assert sample(daemon, "monitor_store_file_ok") == 1
    finally:
        await daemon.store.close(now=2.0)
    assert history_runs(tmp_path / "data" / "monitor.db") == 1


def sample(daemon: Daemon, name: str, **labels: str) -> Any:
    return daemon.registry.get_sample_value(name, labels)


def history_runs(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        runs = int(conn.execute("SELECT count(*) FROM daemon_runs").fetchone()[0])
    conn.close()
    return runs


PROCESS_CONFIG = """
defaults: {interval: 1s, timeout: 500ms}
modules: {tcp: {kind: tcp}}
targets:
  - name: closed
    address: 127.0.0.1
    checks: [{module: tcp, port: %d}]
auth:
  tokens:
    - {name: ops, role: operator, token: "${STORE_TEST_TOKEN}"}
"""


@pytest.mark.slow
def test_rm_monitor_db_under_the_running_daemon_loses_no_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack as it was run: `monitor run`, audited writes, `rm monitor.db*`, more writes (answered 200),
    SIGTERM, start again. Before: ready all along, 0 store errors, the restarted daemon found an empty
    store. Now the loss is logged and counted, and the restarted daemon finds every audited write and
    both runs."""
    from tests.e2e.peers import daemon_process, free_port, http_get, http_post, wait_for

    monkeypatch.setenv("STORE_TEST_TOKEN", "store-test-operator")
    config = tmp_path / "monitor.yml"
    config.write_text(PROCESS_CONFIG % free_port(), encoding="utf-8")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    args = ["run", "--config", str(config), "--listen", f"127.0.0.1:{port}", "--data-dir", str(data)]

    def reloads(count: int) -> None:
        for _ in range(count):
            status, body = http_post(f"{base}/-/reload", token="store-test-operator")
            assert status == 200, body

    def metric(name: str) -> float | None:
        for line in http_get(f"{base}/metrics")[1].decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    with daemon_process(args, tmp_path, "first") as first:
        wait_for(lambda: http_get(f"{base}/readyz")[0] == 200, 30, what="daemon ready")
        reloads(10)
        remove_all(data / "monitor.db")
        reloads(10)  # answered as before: the writes go into the open file
        wait_for(lambda: metric('monitor_store_file_lost_total{change="deleted"}') == 1, 10, what="the loss counted")
        wait_for(lambda: http_get(f"{base}/readyz")[0] == 200 and metric("monitor_store_file_ok") == 1, 10)
        reloads(10)
        assert first.stop() == 0
    assert "store_file_lost" in first.output() and "store_file_restored" in first.output()
    with daemon_process(args, tmp_path, "second"):
        wait_for(lambda: http_get(f"{base}/readyz")[0] == 200, 30, what="restarted daemon ready")
    with sqlite3.connect(data / "monitor.db") as conn:
        reloaded = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'config.reload'").fetchone()[0]
        runs = conn.execute("SELECT count(*) FROM daemon_runs WHERE stopped IS NOT NULL").fetchone()[0]
    conn.close()
    assert (reloaded, runs) == (30, 2)
