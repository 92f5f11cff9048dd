"""Maintenance windows and the audit log (one query class of the SQL stores, see sql.py).

The audit log is append-only (triggers refuse UPDATE and DELETE) and hash-chained: each entry's
hash covers its content and the previous entry's hash, so an edit made behind the daemon's back
(with the triggers dropped) is evident to `verify_audit_chain`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields, replace
from typing import Any

from monitor.store.dialect import Connection, Executor
from monitor.store.records import AuditEntry, MaintenanceWindow

_WINDOW_COLUMNS = [f.name for f in fields(MaintenanceWindow) if f.name != "id"]
_AUDIT_COLUMNS = ["at", "actor", "role", "action", "object", "outcome", "source", "detail", "prev_hash", "hash"]
GENESIS = "0" * 64


def audit_hash(entry: AuditEntry, prev_hash: str) -> str:
    content = {
        "prev": prev_hash,
        "at": repr(entry.at),
        "actor": entry.actor,
        "role": entry.role,
        "action": entry.action,
        "object": entry.object,
        "outcome": entry.outcome,
        "source": entry.source,
        "detail": entry.detail,
    }
    return hashlib.sha256(json.dumps(content, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def _window(row: tuple[Any, ...]) -> MaintenanceWindow:
    values = dict(zip(["id", *_WINDOW_COLUMNS], row, strict=True))
    values["scope"] = json.loads(values["scope"])
    return MaintenanceWindow(**values)


def _audit(row: tuple[Any, ...]) -> AuditEntry:
    values = dict(zip(["id", *_AUDIT_COLUMNS], row, strict=True))
    values["detail"] = json.loads(values["detail"])
    return AuditEntry(**values)


class AdminQueries:
    def __init__(self, db: Executor) -> None:
        self.db = db
        p = db.dialect.param
        self._insert_window = (
            f"INSERT INTO maintenance ({', '.join(_WINDOW_COLUMNS)}) VALUES ({db.dialect.marks(len(_WINDOW_COLUMNS))}) "
            "RETURNING id"
        )
        self._cancel_window = (
            f"UPDATE maintenance SET cancelled_at = {p}, cancelled_by = {p} WHERE id = {p} AND cancelled_at IS NULL"
        )
        self._insert_audit = (
            f"INSERT INTO audit_log ({', '.join(_AUDIT_COLUMNS)}) VALUES ({db.dialect.marks(len(_AUDIT_COLUMNS))}) "
            "RETURNING id"
        )
        self._page_audit = (
            f"SELECT id, {', '.join(_AUDIT_COLUMNS)} FROM audit_log ORDER BY id DESC LIMIT {p} OFFSET {p}"
        )

    # --- maintenance -----------------------------------------------------------------------

    async def add_maintenance(self, window: MaintenanceWindow) -> int:
        def job(conn: Connection) -> int:
            values = [
                json.dumps(window.scope, ensure_ascii=False, sort_keys=True) if c == "scope" else getattr(window, c)
                for c in _WINDOW_COLUMNS
            ]
            return int(conn.execute(self._insert_window, values).fetchone()[0])

        window.id = await self.db.write(job)
        return window.id

    async def cancel_maintenance(self, window_id: int, by: str, at: float) -> bool:
        """Cancel a window; False if there is no such (uncancelled) window."""

        def job(conn: Connection) -> bool:
            return conn.execute(self._cancel_window, (at, by, window_id)).rowcount == 1

        return await self.db.write(job)

    async def maintenance_windows(self, include_cancelled: bool = False) -> list[MaintenanceWindow]:
        where = "" if include_cancelled else "WHERE cancelled_at IS NULL"
        rows = await self.db.read(
            lambda c: c.execute(
                f"SELECT id, {', '.join(_WINDOW_COLUMNS)} FROM maintenance {where} ORDER BY id"
            ).fetchall()
        )
        return [_window(r) for r in rows]

    # --- audit -----------------------------------------------------------------------------

    async def audit(self, entry: AuditEntry) -> AuditEntry:
        """Append an entry, chained to the previous one; returns it with its id and hashes."""

        def job(conn: Connection) -> AuditEntry:
            row = conn.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
            prev = row[0] if row else GENESIS
            chained = replace(entry, prev_hash=prev, hash=audit_hash(entry, prev))
            values = [
                json.dumps(chained.detail, ensure_ascii=False, sort_keys=True) if c == "detail" else getattr(chained, c)
                for c in _AUDIT_COLUMNS
            ]
            return replace(chained, id=int(conn.execute(self._insert_audit, values).fetchone()[0]))

        return await self.db.write(job)

    async def audit_log(self, limit: int = 100, offset: int = 0) -> tuple[list[AuditEntry], int]:
        def job(conn: Connection) -> tuple[list[Any], int]:
            total = conn.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0]
            rows = conn.execute(self._page_audit, (limit, offset)).fetchall()
            return rows, int(total)

        rows, total = await self.db.read(job)
        return [_audit(r) for r in rows], total

    async def verify_audit_chain(self) -> tuple[bool, int | None]:
        """(True, None) if every entry's hash matches its content and predecessor, else (False, first bad id)."""
        rows = await self.db.read(
            lambda c: c.execute(f"SELECT id, {', '.join(_AUDIT_COLUMNS)} FROM audit_log ORDER BY id").fetchall()
        )
        prev = GENESIS
        for row in rows:
            entry = _audit(row)
            if entry.prev_hash != prev or entry.hash != audit_hash(entry, prev):
                return False, entry.id
            prev = entry.hash
        return True, None
