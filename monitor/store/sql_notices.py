"""Notices (お知らせ) in SQLite (mixed into SQLiteStore): one JSON body plus the columns queries need."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, fields
from typing import Any

from monitor.store.records import Notice

_FIELDS = [f.name for f in fields(Notice) if f.name != "id"]


def _notice(row: tuple[Any, ...]) -> Notice:
    body = json.loads(row[1])
    return Notice(id=int(row[0]), **{k: body[k] for k in _FIELDS if k in body})


class NoticeQueries:
    """Needs `write(job)` and `read(job)` from the store it is mixed into."""

    write: Callable[..., Any]
    read: Callable[..., Any]

    async def save_notice(self, notice: Notice) -> int:
        """Insert (id 0) or update; returns the id."""
        text = json.dumps({k: v for k, v in asdict(notice).items() if k != "id"}, ensure_ascii=False, sort_keys=True)

        def job(conn: sqlite3.Connection) -> int:
            if notice.id:
                conn.execute(
                    "UPDATE notices SET status = ?, incident_id = ?, published_at = ?, body = ? WHERE id = ?",
                    (notice.status, notice.incident_id, notice.published_at, text, notice.id),
                )
                return notice.id
            cur = conn.execute(
                "INSERT INTO notices (status, incident_id, published_at, created_at, body) VALUES (?, ?, ?, ?, ?)",
                (notice.status, notice.incident_id, notice.published_at, notice.created_at, text),
            )
            return int(cur.lastrowid or 0)

        notice.id = await self.write(job)
        return notice.id

    async def get_notice(self, notice_id: int) -> Notice | None:
        row = await self.read(lambda c: c.execute("SELECT id, body FROM notices WHERE id = ?", (notice_id,)).fetchone())
        return _notice(row) if row else None

    async def list_notices(
        self, statuses: tuple[str, ...] = ("draft", "published", "closed"), limit: int = 100, offset: int = 0
    ) -> tuple[list[Notice], int]:
        marks = ", ".join("?" * len(statuses))

        def job(conn: sqlite3.Connection) -> tuple[list[Any], int]:
            total = conn.execute(f"SELECT COUNT(*) FROM notices WHERE status IN ({marks})", statuses).fetchone()[0]
            rows = conn.execute(
                f"SELECT id, body FROM notices WHERE status IN ({marks}) ORDER BY id DESC LIMIT ? OFFSET ?",
                (*statuses, limit, offset),
            ).fetchall()
            return rows, int(total)

        rows, total = await self.read(job)
        return [_notice(r) for r in rows], total

    async def notices_for_incidents(self, incident_ids: list[int]) -> dict[int, list[Notice]]:
        if not incident_ids:
            return {}
        marks = ", ".join("?" * len(incident_ids))
        rows = await self.read(
            lambda c: c.execute(
                f"SELECT id, body FROM notices WHERE incident_id IN ({marks}) ORDER BY id", incident_ids
            ).fetchall()
        )
        out: dict[int, list[Notice]] = {}
        for row in rows:
            notice = _notice(row)
            assert notice.incident_id is not None
            out.setdefault(notice.incident_id, []).append(notice)
        return out
