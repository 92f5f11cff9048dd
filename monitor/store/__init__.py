"""Durable state: what must survive a restart. SQLite in the data directory by default (sqlite.py), or a
PostgreSQL server (postgres.py, `daemon.postgresql`) that several daemons can share."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.config.model import DaemonConfig
    from monitor.store.sqlite import SQLiteStore


def open_store(daemon: DaemonConfig, data_dir: Path) -> SQLiteStore:
    """The store the config asks for (not opened yet)."""
    if daemon.postgresql is not None:
        from monitor.store.postgres import PostgresStore

        return PostgresStore(daemon.postgresql.get_secret_value())
    from monitor.store.sqlite import SQLiteStore

    return SQLiteStore(data_dir / "monitor.db")
