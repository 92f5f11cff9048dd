"""SQLite store: WAL, one writer thread, batched transactions, safe under kill -9.

The event loop never waits for the disk: every write goes through one queue to a single writer
thread. State transitions and heartbeats are fire-and-forget and applied in batches (one
transaction per batch); incident, outbox, maintenance and audit writes are awaited and each runs
in a transaction of its own. A busy or locked database delays writes and loses none. Reads use a
second connection (WAL lets them run beside the writer).

After a crash, intervals left open are closed at the last heartbeat of the run that died (heartbeats
come every second), so the time the daemon was not watching shows up as a gap (no interval), never as
"up". An outage is the exception: a check or service DOWN (or UNREACHABLE) when the previous run ended
and found in the same state by this run's first observation is one outage across the restart: its
interval is reopened instead of a second one starting (`resumable`).

The file can vanish under a running daemon (`rm monitor.db*`, a cleanup job, a restore copied over
it): SQLite goes on writing to the unlinked inode, every write succeeds, and at the next start the
history is gone. So the writer compares the path's device and inode (of the database and its WAL)
with those it opened, every FILE_CHECK_SECONDS and whenever a write fails. On a mismatch readiness
fails (`file_problem`), the error is logged and counted, and the data still open is written back: a
WAL deleted alone is checkpointed into the database (still ours); a deleted database is recreated
at its path from the open connection with SQLite's backup API; a file put in its place is moved
aside (`<name>.replaced-<time>`, nothing of anyone's is destroyed) and ours restored. Then both
connections reopen on the path and writing goes on, nothing lost. If that fails (no directory, disk
full) readiness stays failed and the writes go on into the open file until a later check succeeds.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

import structlog

from monitor import __version__
from monitor.engine import Transition
from monitor.store import sql_admin, sql_incidents, sql_notices, sql_reports, sql_security
from monitor.store.migrations import MIGRATIONS
from monitor.store.records import Interval

log = structlog.get_logger()
BATCH = 2000
FILE_CHECK_SECONDS = 2.0  # how often the writer checks that the path still leads to the open database
OUTAGE_STATES = ("down", "unreachable")  # an interval in one of these may be resumed across a restart
RESUME_WITHIN = 900.0  # seconds: a longer gap in monitoring stays a gap, even between two outages
T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]


@dataclass(slots=True)
class _Call:
    job: Job
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


_STOP = object()


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise RuntimeError(f"the store's schema is version {version}, newer than this daemon knows")
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
        log.info("store_migrated", version=number)
    return len(MIGRATIONS)


class SQLiteStore(
    sql_incidents.IncidentQueries,
    sql_admin.AdminQueries,
    sql_reports.ReportQueries,
    sql_security.SecurityQueries,
    sql_notices.NoticeQueries,
):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self.run_id = 0
        self.write_errors = 0
        self.file_problem: str | None = None  # why the file at `path` is not the open database: not ready
        self.files_lost: dict[str, int] = {}  # "deleted", "replaced", "wal_deleted", ...: times detected
        self._identity: dict[str, tuple[int, int]] = {}  # "" and "-wal": (st_dev, st_ino) of what we opened
        self._checked = 0.0  # monotonic time of the last file check
        self.owns_intervals = True  # False on an HA standby: the leader alone writes the state intervals
        # the outages open when the previous run ended, by (subject, id): (interval row id, state, start, reason);
        # the first transition of each in this run either reopens it (same state) or drops it
        self.resumable: dict[tuple[str, str], tuple[int, str, float, str | None]] = {}
        self.previous_run: tuple[float, bool] | None = None  # (when the previous run ended, unclean?)
        self._unclean = False

    # --- lifecycle -------------------------------------------------------------------------

    RESUMES = True  # a store of one daemon: its outages resume across its restarts (see `resumable`)
    RETRYABLE: tuple[type[Exception], ...] = (sqlite3.OperationalError,)  # busy, locked, disk full: try again
    BEGIN = "BEGIN IMMEDIATE"

    def _connect(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return connect(self.path)

    def _migrate(self, conn: Any) -> None:
        migrate(conn)

    def _schema_version(self, conn: Any) -> int:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def open(self, now: float) -> None:
        """Migrate, recover from an unclean stop, start this run, start the writer thread."""
        self._writer = self._connect()
        self._migrate(self._writer)
        self._recover()
        if self.RESUMES:
            self._find_resumable(now)
        cur = self._writer.execute(
            "INSERT INTO daemon_runs (started, last_seen, version) VALUES (?, ?, ?)", (now, now, __version__)
        )
        self.run_id = int(cur.lastrowid or 0)
        self._reader = self._connect()
        self._remember_files()
        self._thread = threading.Thread(target=self._write_loop, name="store-writer", daemon=True)
        self._thread.start()

    def open_readonly(self) -> None:
        """Reads only, beside a running daemon (reports from the command line): no migration, no
        recovery, no run of its own. Writes fail."""
        if isinstance(self.path, Path) and not self.path.exists():
            raise FileNotFoundError(f"no store at {self.path}")
        self._reader = self._connect()
        version = self._schema_version(self._reader)
        if version != len(MIGRATIONS):
            raise RuntimeError(f"the store at {self.path} has schema {version}, this program needs {len(MIGRATIONS)}")

    def _recover(self) -> None:
        assert self._writer is not None
        row = self._writer.execute(
            "SELECT id, last_seen FROM daemon_runs WHERE stopped IS NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is not None:
            run_id, last_seen = row
            closed = self._writer.execute(
                "UPDATE state_intervals SET end = MAX(start, ?) WHERE end IS NULL", (last_seen,)
            ).rowcount
            self._writer.execute("UPDATE daemon_runs SET stopped = last_seen WHERE stopped IS NULL")
            log.warning("store_recovered_unclean_stop", run=run_id, last_seen=last_seen, intervals_closed=closed)
            self._unclean = True

    def _find_resumable(self, now: float) -> None:
        """The outages that were open when the previous run ended (cleanly or not): closed at its end."""
        assert self._writer is not None
        last = self._writer.execute("SELECT stopped FROM daemon_runs ORDER BY id DESC LIMIT 1").fetchone()
        if last is None or last[0] is None:
            return
        ended = float(last[0])
        self.previous_run = (ended, self._unclean)
        if now - ended > RESUME_WITHIN:
            return
        rows = self._writer.execute(
            "SELECT id, subject, subject_id, state, start, reason FROM state_intervals "
            f"WHERE end >= ? AND state IN ({', '.join('?' for _ in OUTAGE_STATES)})",
            (ended, *OUTAGE_STATES),
        ).fetchall()
        self.resumable = {(r[1], r[2]): (r[0], r[3], r[4], r[5]) for r in rows}

    def resumable_checks(self) -> dict[str, tuple[str, float, str | None]]:
        """check id -> (state, since, reason) of the checks DOWN or UNREACHABLE when the previous run ended."""
        return {sid: (state, start, reason) for (kind, sid), (_, state, start, reason) in self.resumable.items()
                if kind == "check"}  # fmt: skip

    async def close(self, now: float) -> None:
        """Close open intervals at `now` (a clean stop), drain the queue, stop the writer."""
        if self._thread is None:
            if self._reader is not None:  # opened read-only
                self._reader.close()
                self._reader = None
            return
        self._queue.put(("stop", now))
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        self._thread = None
        for conn in (self._writer, self._reader):
            if conn is not None:
                conn.close()

    # --- writes ----------------------------------------------------------------------------

    def record(self, transitions: Iterable[Transition]) -> None:
        """Queue state transitions (fire and forget; applied in order, in batches)."""
        for t in transitions:
            self._queue.put(("transition", t))

    def heartbeat(self, now: float) -> None:
        self._queue.put(("heartbeat", now))

    async def write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run `job(conn)` in a transaction of its own on the writer thread; its result, or its error."""
        if self._thread is None:
            raise RuntimeError("the store is not open for writing")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Call(job, future, loop))
        return await future

    async def read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run `job(conn)` on the reader connection, off the event loop."""

        def run() -> T:
            assert self._reader is not None
            with self._read_lock:
                return job(self._reader)

        return await asyncio.to_thread(run)

    @property
    def backlog(self) -> int:
        """Writes queued for the writer thread (grows while the disk is slow, locked or full)."""
        return self._queue.qsize()

    async def flush(self) -> None:
        """Wait until everything queued so far is on disk."""
        await asyncio.to_thread(self._queue.join)

    def _write_loop(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=FILE_CHECK_SECONDS)
            except queue.Empty:  # idle: a good moment to look at the file
                self.check_file()
                continue
            if time.monotonic() - self._checked >= FILE_CHECK_SECONDS:
                self.check_file()
            batch = [first]
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            plain: list[Any] = []  # transitions and heartbeats: one transaction for a run of them
            for item in batch:
                if isinstance(item, _Call) or item is _STOP:
                    self._with_retry(partial(self._apply, plain))
                    plain = []
                    if isinstance(item, _Call):
                        self._run_call(item)
                else:
                    plain.append(item)
            self._with_retry(partial(self._apply, plain))
            for _ in batch:
                self._queue.task_done()
            if _STOP in batch:
                return

    def _run_call(self, call: _Call) -> None:
        def transaction() -> Any:
            conn = self._writer
            assert conn is not None
            conn.execute(self.BEGIN)
            try:
                result = call.job(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        try:
            result = self._with_retry(transaction)
        except Exception as exc:  # the caller gets the error (a constraint, a bug), the writer lives on
            call.loop.call_soon_threadsafe(_settle, call.future, None, exc)
        else:
            call.loop.call_soon_threadsafe(_settle, call.future, result, None)

    def _with_retry(self, action: Callable[[], T]) -> T:
        """Busy, locked or full disk: wait and try again, keeping the work. Other errors propagate."""
        delay = 0.05
        while True:
            try:
                return action()
            except self.RETRYABLE as exc:
                self.write_errors += 1
                log.error("store_write_failed", error=str(exc), retry_in=delay)
                self.check_file()  # e.g. "readonly database" once SQLite itself notices the file moved
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _apply(self, items: list[Any]) -> None:
        if not items:
            return
        conn = self._writer
        assert conn is not None
        conn.execute(self.BEGIN)
        try:
            for kind, payload in items:
                if kind == "transition":
                    self._apply_transition(conn, payload)
                elif kind == "heartbeat":
                    conn.execute("UPDATE daemon_runs SET last_seen = ? WHERE id = ?", (payload, self.run_id))
                elif kind == "stop":
                    if self.owns_intervals:
                        conn.execute("UPDATE state_intervals SET end = MAX(start, ?) WHERE end IS NULL", (payload,))
                    conn.execute(
                        "UPDATE daemon_runs SET last_seen = ?, stopped = ? WHERE id = ?",
                        (payload, payload, self.run_id),
                    )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _apply_transition(self, conn: sqlite3.Connection, t: Transition) -> None:
        resumed = self.resumable.pop((t.kind, t.id), None)
        if resumed is not None and t.old.value == "unknown" and t.new.value in OUTAGE_STATES:
            # the same outage as before the restart: it goes on, the gap in monitoring included (DOWN and
            # UNREACHABLE are both downtime: a service seen UNREACHABLE first, DOWN next, is still one outage)
            if t.new.value == resumed[1]:
                conn.execute("UPDATE state_intervals SET end = NULL WHERE id = ?", (resumed[0],))
                return
            conn.execute("UPDATE state_intervals SET end = MAX(start, ?) WHERE id = ?", (t.at, resumed[0]))
        conn.execute(
            "UPDATE state_intervals SET end = MAX(start, ?) WHERE subject = ? AND subject_id = ? AND end IS NULL",
            (t.at, t.kind, t.id),
        )
        conn.execute(
            "INSERT INTO state_intervals (subject, subject_id, state, start, reason, root_cause) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (t.kind, t.id, t.new.value, t.at, t.reason, t.root_cause),
        )

    # --- the file under the open database ------------------------------------------------------

    def _files(self) -> dict[str, Path] | None:
        """The database, its WAL and its WAL index by suffix; None when the store is not a local file
        (PostgreSQL)."""
        if not isinstance(self.path, Path):
            return None
        return {suffix: Path(f"{self.path}{suffix}") for suffix in ("", "-wal", "-shm")}

    def _ours(self, suffix: str) -> bool:
        try:
            st = os.stat(f"{self.path}{suffix}")
        except (FileNotFoundError, NotADirectoryError):
            return False
        return self._identity.get(suffix) == (st.st_dev, st.st_ino)

    def _remember_files(self) -> None:
        files = self._files()
        self._identity = {}
        self._checked = time.monotonic()
        for suffix, path in (files or {}).items():
            try:
                st = os.stat(path)
            except OSError:  # no WAL yet: it is looked for once there is one
                continue
            self._identity[suffix] = (st.st_dev, st.st_ino)

    def _what_changed(self) -> str | None:
        """ "deleted", "replaced", "wal_deleted" or "wal_replaced" when the path no longer leads to what
        we have open, else None."""
        for suffix, path in (self._files() or {}).items():
            if suffix == "-shm":  # only the WAL index, rebuilt from the WAL: not data
                continue
            try:
                st = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):  # (the directory itself gone, a file in its place)
                if suffix in self._identity:
                    return "wal_deleted" if suffix else "deleted"
                continue
            except OSError as exc:  # e.g. no permission to look: we cannot tell, and say so
                log.warning("store_file_check_failed", path=str(path), error=str(exc))
                return None
            if suffix not in self._identity:  # the WAL appeared since we looked
                self._identity[suffix] = (st.st_dev, st.st_ino)
            elif self._identity[suffix] != (st.st_dev, st.st_ino):
                return "wal_replaced" if suffix else "replaced"
        return None

    def check_file(self) -> str | None:
        """On the writer thread: if the path no longer leads to the open database, say so (readiness
        fails) and write the open data back to the path. Returns the problem still standing, if any."""
        if self._writer is None or self._files() is None:
            return None
        self._checked = time.monotonic()
        change = self._what_changed()
        if change is None:
            return self.file_problem
        if self.file_problem is None:
            self.files_lost[change] = self.files_lost.get(change, 0) + 1
        self.file_problem = f"the store file {self.path} was {change.replace('_', ' ')} while open"
        log.error("store_file_lost", path=str(self.path), change=change,
                  action="writing the open database back to its path")  # fmt: skip
        try:
            aside = self._restore(change)
        except (OSError, sqlite3.Error) as exc:  # still unresolved: the next check tries again
            log.error("store_file_restore_failed", path=str(self.path), error=str(exc),
                      hint="the data is safe in the open file until the daemon stops: fix the directory")  # fmt: skip
            return self.file_problem
        log.error("store_file_restored", path=str(self.path), change=change, moved_aside=aside)
        self.file_problem = None
        return None

    def _restore(self, change: str) -> str | None:
        """Make the path hold the open database again; reopen both connections there."""
        assert self._writer is not None
        aside = None
        stamp = time.strftime("%Y%m%dT%H%M%S")
        if change.startswith("wal"):  # the database file is still ours: fold the open WAL into it
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        for suffix in ("", "-wal", "-shm") if change == "replaced" else ("-wal", "-shm"):
            found = Path(f"{self.path}{suffix}")
            if self._ours(suffix):  # our old WAL (index): the open connections keep it; a new one is made
                found.unlink()
            elif found.exists():  # someone's file: kept, beside ours (a WAL replayed into ours would corrupt it)
                aside = f"{self.path}.replaced-{stamp}"
                os.replace(found, f"{aside}{suffix}")
        if not change.startswith("wal"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = Path(f"{self.path}.restoring")  # (its journal mode is DELETE: no WAL beside it)
            partial.unlink(missing_ok=True)
            target = sqlite3.connect(partial)
            try:
                self._writer.backup(target)  # a consistent copy of everything committed, from the open file
            finally:
                target.close()
            os.replace(partial, self.path)  # the path holds a whole database or none at all
        # The old connections close before new ones open: SQLite shares a database's WAL index between
        # the connections of a process, and the old index must not describe the new WAL. Nothing is lost
        # in between: the open data is on the path by now, and no write runs (we are the writer).
        with self._read_lock:
            for conn in (self._reader, self._writer):
                if conn is not None:
                    conn.close()
            self._writer = self._connect()
            self._reader = self._connect()
        self._remember_files()
        return aside

    # --- reads -----------------------------------------------------------------------------

    def intervals(self, subject: str, subject_id: str, start: float, end: float) -> list[Interval]:
        """Intervals of one subject overlapping [start, end) (open ones have end None)."""
        assert self._reader is not None
        with self._read_lock:
            rows = self._reader.execute(
                "SELECT subject, subject_id, state, start, end, reason, root_cause FROM state_intervals "
                "WHERE subject = ? AND subject_id = ? AND start < ? AND (end IS NULL OR end > ?) ORDER BY start",
                (subject, subject_id, end, start),
            ).fetchall()
        return [Interval(*row) for row in rows]

    async def intervals_since(self, subject: str, since: float) -> dict[str, list[Interval]]:
        """Every interval of a subject kind that was still going at `since`, by subject id, in order."""
        rows = await self.read(
            lambda c: c.execute(
                "SELECT subject, subject_id, state, start, end, reason, root_cause FROM state_intervals "
                "WHERE subject = ? AND (end IS NULL OR end > ?) ORDER BY subject_id, start",
                (subject, since),
            ).fetchall()
        )
        found: dict[str, list[Interval]] = {}
        for row in rows:
            found.setdefault(row[1], []).append(Interval(*row))
        return found

    async def spans_between(self, subject: str, start: float, end: float) -> dict[str, list[tuple[Any, ...]]]:
        """(state, start, end, root_cause) of every interval of a subject kind overlapping [start, end), by
        subject id, in order: plain tuples read from the covering index (a month of 5,000 services can be a
        million rows)."""

        def job(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
            rows = conn.execute(
                "SELECT state, start, end, root_cause, subject_id FROM state_intervals "
                "WHERE subject = ? AND start < ? AND (end IS NULL OR end > ?) ORDER BY subject_id, start",
                (subject, end, start),
            ).fetchall()
            # the rows themselves, grouped: (state, start, end, root_cause, subject_id) serve as spans as they are
            return {subject_id: list(group) for subject_id, group in groupby(rows, key=itemgetter(4))}

        result: dict[str, list[tuple[Any, ...]]] = await self.read(job)
        return result

    def runs(self) -> list[tuple[int, float, float, float | None]]:
        assert self._reader is not None
        with self._read_lock:
            return list(self._reader.execute("SELECT id, started, last_seen, stopped FROM daemon_runs ORDER BY id"))


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
