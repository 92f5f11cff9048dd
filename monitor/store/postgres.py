"""PostgreSQL store: the shared SQL store (sql.py) on a server several daemons share, plus the leader lease.

The queries are the same statements as SQLite's, built for this dialect (dialect.POSTGRESQL: `%s` marks,
GREATEST); nothing is rewritten at run time. `PGConnection` is the thin part of a DB-API connection the
queries use, on psycopg: a unique violation is raised as sqlite3.IntegrityError (what callers relying on the
one-open-incident-per-key index catch, on either backend), and booleans are sent as integers (SQLite keeps
them so). The schema is migrations_pg.py; the version is kept in `schema_version`, and migrations run under
an advisory lock so two daemons starting at once do not race.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
import structlog
from psycopg.types.numeric import Int8Dumper

from monitor.store.dialect import POSTGRESQL, Cursor
from monitor.store.migrations_pg import MIGRATIONS
from monitor.store.sql import SQLStore

log = structlog.get_logger()
MIGRATION_LOCK = 0x6D6F6E69  # pg_advisory_xact_lock key ("moni")
STALE_RUN_SECONDS = 120.0  # a run without a heartbeat this long has ended (heartbeats come every few seconds)


class _BoolAsInteger(Int8Dumper):
    """Booleans into BIGINT columns, as SQLite stores them."""

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


class PGConnection:
    """The part of a DB-API connection the queries use (dialect.Connection), on psycopg (autocommit: the
    store sends BEGIN/COMMIT itself)."""

    def __init__(self, dsn: str) -> None:
        # client-side binding: parameters typed by their values, as SQLite does (`%s IS NULL` has no type otherwise)
        self.conn = psycopg.connect(dsn, autocommit=True, cursor_factory=psycopg.ClientCursor)
        self.conn.adapters.register_dumper(bool, _BoolAsInteger)

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        try:  # (bytes: psycopg's typing wants literal strings; these are built from the store's own constants)
            return self.conn.execute(sql.encode(), parameters or None)
        except psycopg.errors.UniqueViolation as exc:
            raise sqlite3.IntegrityError(str(exc)) from exc

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        cursor = self.conn.cursor()
        try:
            cursor.executemany(sql.encode(), parameters)
        except psycopg.errors.UniqueViolation as exc:
            raise sqlite3.IntegrityError(str(exc)) from exc
        return cursor

    def close(self) -> None:
        self.conn.close()


class PostgresStore(SQLStore[PGConnection]):
    RETRYABLE = (psycopg.OperationalError,)  # the server restarting, a dropped connection: try again
    RESUMES = False  # shared by an HA pair: the leader closes and reopens intervals at takeover instead
    MIGRATIONS = MIGRATIONS

    def __init__(self, dsn: str) -> None:
        super().__init__(POSTGRESQL, "postgresql")  # (not the DSN: it may hold a password)
        self.dsn = dsn
        self.lease = self  # several daemons share this store: it has the leader lease (base.LeaseStore)

    def _connect(self) -> PGConnection:
        return PGConnection(self.dsn)

    def _schema_version(self, conn: PGConnection) -> int:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0) if row else 0

    def _migrate(self, conn: PGConnection) -> None:
        conn.execute("BEGIN")
        try:
            conn.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")  # one daemon migrates, the other waits
            version = self._schema_version(conn)
            if version > len(MIGRATIONS):
                raise RuntimeError(f"the store's schema is version {version}, newer than this daemon knows")
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                conn.execute(script)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))
                log.info("store_migrated", version=number, backend="postgresql")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _recover(self) -> None:
        """Several daemons share this store: a run is over only when it stopped sending heartbeats; its open
        intervals are the leader's to close (at takeover), not every starting daemon's."""
        assert self._writer is not None
        stale = time.time() - STALE_RUN_SECONDS
        self._writer.execute(
            "UPDATE daemon_runs SET stopped = last_seen WHERE stopped IS NULL AND last_seen < %s", (stale,)
        )

    # --- HA: the leader lease (base.LeaseStore) ---------------------------------------------------

    async def hold_lease(self, holder: str, now: float, ttl: float) -> tuple[bool, float | None]:
        """Take or renew the leader lease. (held, since): `since` is the previous holder's last renewal when
        this takes over an expired lease (its state intervals end there), else None."""

        def job(conn: PGConnection) -> tuple[bool, float | None]:
            # daemons started together on a fresh database: the row must exist before it can be locked
            conn.execute(
                "INSERT INTO leases (name, holder, renewed_at, expires_at) VALUES ('leader', '', 0, 0) "
                "ON CONFLICT (name) DO NOTHING"
            )
            current, renewed_at, expires_at = conn.execute(
                "SELECT holder, renewed_at, expires_at FROM leases WHERE name = 'leader' FOR UPDATE"
            ).fetchone()
            # "host:listen#pid": the same host and listen address with another pid is this daemon's previous life
            # (two live daemons cannot listen on one address): it takes over at once instead of waiting out the lease
            earlier_self = current != holder and current.partition("#")[0] == holder.partition("#")[0]
            if current != holder and expires_at > now and not earlier_self:
                return False, None
            conn.execute(
                "UPDATE leases SET holder = %s, renewed_at = %s, expires_at = %s WHERE name = 'leader'",
                (holder, now, now + ttl),
            )
            return True, (None if current in (holder, "") else float(renewed_at))

        return await self.write(job)

    async def claim_shard(self, shard: str) -> None:
        """One database per shard (the lease and the intervals' bookkeeping are per store): refuse another's."""

        def job(conn: PGConnection) -> None:
            conn.execute(  # the first daemon on the database claims it (two starting together: one insert wins)
                "INSERT INTO leases (name, holder, renewed_at, expires_at) VALUES ('shard', %s, 0, 0) "
                "ON CONFLICT (name) DO NOTHING",
                (shard,),
            )
            row = conn.execute("SELECT holder FROM leases WHERE name = 'shard'").fetchone()
            if row[0] != shard:
                raise RuntimeError(
                    f"this database holds shard {row[0]}'s store, not shard {shard}'s: one database each"
                )

        await self.write(job)

    async def release_lease(self, holder: str) -> None:
        """A clean stop: hand over at once instead of letting the lease run out."""
        await self.write(lambda c: c.execute("DELETE FROM leases WHERE name = 'leader' AND holder = %s", (holder,)))

    async def close_open_intervals(self, at: float) -> None:
        """Takeover from a leader that died: what nobody recorded since its last renewal is a gap."""
        await self.write(lambda c: c.execute(self._close_all, (at,)))
