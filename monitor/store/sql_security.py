"""Security incidents of the disconnect playbook and the learned traffic baselines (one query class of
the SQL stores, see sql.py). A security incident is one JSON body plus the columns queries need; at
most one is open per connection (a unique partial index), so two detections racing cannot open two."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

from monitor.store.dialect import Connection, Executor
from monitor.store.records import SECURITY_CLOSED_PHASES, SecurityIncident

_BODY_FIELDS = [f.name for f in fields(SecurityIncident) if f.name != "id"]


def _incident(row: tuple[Any, ...]) -> SecurityIncident:
    body = json.loads(row[1])
    return SecurityIncident(id=int(row[0]), **{k: body[k] for k in _BODY_FIELDS if k in body})


class SecurityQueries:
    def __init__(self, db: Executor) -> None:
        self.db = db
        self.p = db.dialect.param

    async def save_security_incident(self, incident: SecurityIncident) -> int:
        """Insert (id 0) or update; returns the id. Raises sqlite3.IntegrityError if another incident
        is already open for the connection."""
        body = {k: v for k, v in asdict(incident).items() if k != "id"}
        text = json.dumps(body, ensure_ascii=False, sort_keys=True)
        closed = incident.closed_at if incident.phase in SECURITY_CLOSED_PHASES else None

        p, marks = self.p, self.db.dialect.marks

        def job(conn: Connection) -> int:
            if incident.id:
                conn.execute(
                    f"UPDATE security_incidents SET phase = {p}, closed_at = {p}, body = {p} WHERE id = {p}",
                    (incident.phase, closed, text, incident.id),
                )
                return incident.id
            cur = conn.execute(
                f"INSERT INTO security_incidents (connection, phase, opened_at, closed_at, body) VALUES ({marks(5)}) "
                "RETURNING id",
                (incident.connection, incident.phase, incident.opened_at, closed, text),
            )
            return int(cur.fetchone()[0])

        incident.id = await self.db.write(job)
        return incident.id

    async def open_security_incidents(self) -> list[SecurityIncident]:
        rows = await self.db.read(
            lambda c: c.execute(
                "SELECT id, body FROM security_incidents WHERE closed_at IS NULL ORDER BY id"
            ).fetchall()
        )
        return [_incident(r) for r in rows]

    async def get_security_incident(self, incident_id: int) -> SecurityIncident | None:
        sql = f"SELECT id, body FROM security_incidents WHERE id = {self.p}"
        row = await self.db.read(lambda c: c.execute(sql, (incident_id,)).fetchone())
        return _incident(row) if row else None

    async def list_security_incidents(
        self, open_only: bool = False, limit: int = 100, offset: int = 0
    ) -> tuple[list[SecurityIncident], int]:
        where = "WHERE closed_at IS NULL" if open_only else ""
        p = self.p

        def job(conn: Connection) -> tuple[list[Any], int]:
            total = conn.execute(f"SELECT COUNT(*) FROM security_incidents {where}").fetchone()[0]
            rows = conn.execute(
                f"SELECT id, body FROM security_incidents {where} ORDER BY id DESC LIMIT {p} OFFSET {p}",
                (limit, offset),
            ).fetchall()
            return rows, int(total)

        rows, total = await self.db.read(job)
        return [_incident(r) for r in rows], total

    async def traffic_baselines(self) -> dict[tuple[str, str, int], tuple[float, int]]:
        rows = await self.db.read(
            lambda c: c.execute(
                "SELECT connection, metric, hour_of_week, mean, samples FROM traffic_baselines"
            ).fetchall()
        )
        return {(r[0], r[1], int(r[2])): (float(r[3]), int(r[4])) for r in rows}

    async def save_traffic_baselines(self, buckets: dict[tuple[str, str, int], tuple[float, int]]) -> None:
        values = self.db.dialect.marks(5)

        def job(conn: Connection) -> None:
            conn.executemany(
                f"INSERT INTO traffic_baselines (connection, metric, hour_of_week, mean, samples) VALUES ({values})"
                " ON CONFLICT (connection, metric, hour_of_week) DO UPDATE SET mean = excluded.mean,"
                " samples = excluded.samples",
                [(c, m, h, mean, n) for (c, m, h), (mean, n) in buckets.items()],
            )

        if buckets:
            await self.db.write(job)

    async def flow_peers(self) -> dict[tuple[str, str], tuple[float, float]]:
        rows = await self.db.read(
            lambda c: c.execute("SELECT connection, peer, first_seen, last_seen FROM flow_peers").fetchall()
        )
        return {(r[0], r[1]): (float(r[2]), float(r[3])) for r in rows}

    async def save_flow_peers(self, peers: dict[tuple[str, str], tuple[float, float]]) -> None:
        values = self.db.dialect.marks(4)

        def job(conn: Connection) -> None:
            conn.executemany(
                f"INSERT INTO flow_peers (connection, peer, first_seen, last_seen) VALUES ({values})"
                " ON CONFLICT (connection, peer) DO UPDATE SET last_seen = excluded.last_seen",
                [(c, p, first, last) for (c, p), (first, last) in peers.items()],
            )

        if peers:
            await self.db.write(job)
