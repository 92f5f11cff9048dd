"""Durable state: what must survive a restart. SQLite in the data directory by default (sqlite.py), or a
PostgreSQL server (postgres.py, `daemon.postgresql`) that several daemons can share. Both are the shared SQL
store (sql.py) behind the `Store` protocol (base.py); a shared one also offers `store.lease` (HA)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.config.model import DaemonConfig
    from monitor.store.base import Store


def open_store(daemon: DaemonConfig, data_dir: Path) -> Store:
    """The store the config asks for (not opened yet)."""
    # imported here: psycopg is loaded only by daemons configured for PostgreSQL
    if daemon.postgresql is not None:
        from monitor.store.postgres import PostgresStore

        return PostgresStore(daemon.postgresql.get_secret_value())
    from monitor.store.sqlite import SQLiteStore

    return SQLiteStore(data_dir / "monitor.db")
