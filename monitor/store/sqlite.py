"""SQLite store: WAL, safe under kill -9. The writer thread, the batching and the queries are the shared
SQL store's (sql.py); this module is what only SQLite has: the file, its migrations (PRAGMA user_version)
and its recovery. Reads use a second connection (WAL lets them run beside the writer).

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

import os
import sqlite3
import time
from pathlib import Path

import structlog

from monitor.store.dialect import SQLITE
from monitor.store.migrations import MIGRATIONS
from monitor.store.sql import SQLStore

log = structlog.get_logger()
FILE_CHECK_SECONDS = 2.0  # how often the writer checks that the path still leads to the open database


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


class SQLiteStore(SQLStore[sqlite3.Connection]):
    RETRYABLE = (sqlite3.OperationalError,)  # busy, locked, disk full: try again
    MIGRATIONS = MIGRATIONS
    CHECK_SECONDS = FILE_CHECK_SECONDS

    def __init__(self, path: Path) -> None:
        super().__init__(SQLITE, str(path))
        self.path = path
        self._identity: dict[str, tuple[int, int]] = {}  # "" and "-wal": (st_dev, st_ino) of what we opened

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return connect(self.path)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        migrate(conn)

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def open_readonly(self) -> None:
        if not self.path.exists():
            raise FileNotFoundError(f"no store at {self.path}")
        super().open_readonly()

    # --- the file under the open database ------------------------------------------------------

    def _files(self) -> dict[str, Path]:
        """The database, its WAL and its WAL index by suffix."""
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
        for suffix, path in files.items():
            try:
                st = os.stat(path)
            except OSError:  # no WAL yet: it is looked for once there is one
                continue
            self._identity[suffix] = (st.st_dev, st.st_ino)

    def _what_changed(self) -> str | None:
        """ "deleted", "replaced", "wal_deleted" or "wal_replaced" when the path no longer leads to what
        we have open, else None."""
        for suffix, path in self._files().items():
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
        if self._writer is None:
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
