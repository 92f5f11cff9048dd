"""Notices (お知らせ), one query class of the SQL stores (see sql.py): one JSON body plus the columns queries need."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

from monitor.store.dialect import Connection, Executor
from monitor.store.records import Notice

_FIELDS = [f.name for f in fields(Notice) if f.name != "id"]


def _notice(row: tuple[Any, ...]) -> Notice:
    body = json.loads(row[1])
    return Notice(id=int(row[0]), **{k: body[k] for k in _FIELDS if k in body})


class NoticeQueries:
    def __init__(self, db: Executor) -> None:
        self.db = db
        self.p = db.dialect.param

    async def save_notice(self, notice: Notice) -> int:
        """Insert (id 0) or update; returns the id."""
        text = json.dumps({k: v for k, v in asdict(notice).items() if k != "id"}, ensure_ascii=False, sort_keys=True)

        p, marks = self.p, self.db.dialect.marks

        def job(conn: Connection) -> int:
            if notice.id:
                conn.execute(
                    f"UPDATE notices SET status = {p}, incident_id = {p}, published_at = {p}, body = {p} "
                    f"WHERE id = {p}",
                    (notice.status, notice.incident_id, notice.published_at, text, notice.id),
                )
                return notice.id
            cur = conn.execute(
                f"INSERT INTO notices (status, incident_id, published_at, created_at, body) VALUES ({marks(5)}) "
                "RETURNING id",
                (notice.status, notice.incident_id, notice.published_at, notice.created_at, text),
            )
            return int(cur.fetchone()[0])

        notice.id = await self.db.write(job)
        return notice.id

    async def get_notice(self, notice_id: int) -> Notice | None:
        sql = f"SELECT id, body FROM notices WHERE id = {self.p}"
        row = await self.db.read(lambda c: c.execute(sql, (notice_id,)).fetchone())
        return _notice(row) if row else None

    async def list_notices(
        self, statuses: tuple[str, ...] = ("draft", "published", "closed"), limit: int = 100, offset: int = 0
    ) -> tuple[list[Notice], int]:
        p, marks = self.p, self.db.dialect.marks(len(statuses))

        def job(conn: Connection) -> tuple[list[Any], int]:
            total = conn.execute(f"SELECT COUNT(*) FROM notices WHERE status IN ({marks})", statuses).fetchone()[0]
            rows = conn.execute(
                f"SELECT id, body FROM notices WHERE status IN ({marks}) ORDER BY id DESC LIMIT {p} OFFSET {p}",
                (*statuses, limit, offset),
            ).fetchall()
            return rows, int(total)

        rows, total = await self.db.read(job)
        return [_notice(r) for r in rows], total

    async def notices_for_incidents(self, incident_ids: list[int]) -> dict[int, list[Notice]]:
        if not incident_ids:
            return {}
        marks = self.db.dialect.marks(len(incident_ids))
        rows = await self.db.read(
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
