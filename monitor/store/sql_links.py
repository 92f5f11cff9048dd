"""Used action links, one query class of the SQL stores (see sql.py).

A signed link is single-use, and that must hold across a restart and between the daemons of an HA pair: the
first use inserts the token's digest, and the primary key makes a second insert, concurrent or replayed, a
no-op that reports the first use instead."""

from __future__ import annotations

from typing import Any

from monitor.store.dialect import Connection, Executor
from monitor.store.records import LinkUse

_COLUMNS = "digest, incident_id, action, recipient, channel, used_at"


def _use(row: tuple[Any, ...]) -> LinkUse:
    return LinkUse(str(row[0]), int(row[1]), str(row[2]), str(row[3]), str(row[4]), float(row[5]))


class LinkQueries:
    def __init__(self, db: Executor) -> None:
        self.db = db
        self.p = db.dialect.param

    async def use_action_link(self, use: LinkUse) -> LinkUse | None:
        """Record the first use of a link; if it was used before, nothing changes and that use is returned."""
        p, marks = self.p, self.db.dialect.marks(6)

        def job(conn: Connection) -> LinkUse | None:
            inserted = conn.execute(
                f"INSERT INTO action_link_uses ({_COLUMNS}) VALUES ({marks}) ON CONFLICT (digest) DO NOTHING "
                "RETURNING digest",
                (use.digest, use.incident_id, use.action, use.recipient, use.channel, use.used_at),
            ).fetchone()
            if inserted is not None:
                return None
            row = conn.execute(f"SELECT {_COLUMNS} FROM action_link_uses WHERE digest = {p}", (use.digest,)).fetchone()
            return _use(row)

        return await self.db.write(job)

    async def action_link_use(self, digest: str) -> LinkUse | None:
        sql = f"SELECT {_COLUMNS} FROM action_link_uses WHERE digest = {self.p}"
        row = await self.db.read(lambda c: c.execute(sql, (digest,)).fetchone())
        return _use(row) if row else None
