"""On-call overrides, swaps and handovers, one query class of the SQL stores (see sql.py): one JSON body
per row plus the columns queries need."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from monitor.store.dialect import Connection, Executor
from monitor.store.oncall_records import Handover, OnCallChange


def _dump(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _change(row: tuple[Any, ...]) -> OnCallChange:
    body = json.loads(row[2])
    return OnCallChange(id=int(row[0]), cancelled_at=row[1], **body)


class OnCallQueries:
    def __init__(self, db: Executor) -> None:
        self.db = db
        self.p = db.dialect.param

    async def add_change(self, change: OnCallChange) -> int:
        body = {k: v for k, v in asdict(change).items() if k not in ("id", "cancelled_at")}
        marks = self.db.dialect.marks(4)

        def job(conn: Connection) -> int:
            cur = conn.execute(
                f"INSERT INTO oncall_changes (schedule, created_at, cancelled_at, body) VALUES ({marks}) RETURNING id",
                (change.schedule, change.created_at, None, _dump(body)),
            )
            return int(cur.fetchone()[0])

        change.id = await self.db.write(job)
        return change.id

    async def cancel_change(self, change_id: int, at: float, by: str) -> OnCallChange | None:
        """Cancel a change not cancelled yet; the change as it is now (None: no such change)."""
        p = self.p

        def job(conn: Connection) -> tuple[Any, ...] | None:
            row = conn.execute(
                f"SELECT id, cancelled_at, body FROM oncall_changes WHERE id = {p}", (change_id,)
            ).fetchone()
            if row is None or row[1] is not None:
                return tuple(row) if row else None
            body = {**json.loads(row[2]), "cancelled_by": by}
            conn.execute(
                f"UPDATE oncall_changes SET cancelled_at = {p}, body = {p} WHERE id = {p}", (at, _dump(body), change_id)
            )
            return (row[0], at, _dump(body))

        row = await self.db.write(job)
        return _change(row) if row else None

    async def changes(self, schedule: str | None = None, include_cancelled: bool = True) -> list[OnCallChange]:
        """Changes in the order they were made (a later one wins for a slot)."""
        p = self.p
        where = [] if include_cancelled else ["cancelled_at IS NULL"]
        args: list[Any] = []
        if schedule is not None:
            where.append(f"schedule = {p}")
            args.append(schedule)
        sql = "SELECT id, cancelled_at, body FROM oncall_changes"
        sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        rows = await self.db.read(lambda c: c.execute(sql, args).fetchall())
        return [_change(r) for r in rows]

    async def save_handover(self, handover: Handover) -> bool:
        """Record a handover; False if the one for this shift change exists already (sent before a restart)."""
        body = _dump({k: v for k, v in asdict(handover).items() if k not in ("schedule", "at")})
        marks = self.db.dialect.marks(3)

        def job(conn: Connection) -> bool:
            cur = conn.execute(
                f"INSERT INTO oncall_handovers (schedule, at, body) VALUES ({marks}) ON CONFLICT DO NOTHING",
                (handover.schedule, handover.at, body),
            )
            return bool(cur.rowcount)

        return await self.db.write(job)

    async def handovers(self, schedule: str | None = None, limit: int = 10) -> list[Handover]:
        """The latest handovers, newest first."""
        p = self.p
        where, args = ("", [limit]) if schedule is None else (f" WHERE schedule = {p}", [schedule, limit])
        sql = f"SELECT schedule, at, body FROM oncall_handovers{where} ORDER BY at DESC LIMIT {p}"
        rows = await self.db.read(lambda c: c.execute(sql, args).fetchall())
        return [Handover(schedule=r[0], at=float(r[1]), **json.loads(r[2])) for r in rows]
