"""Incidents, their timeline and the notification outbox (one query class of the SQL stores, see sql.py)."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from monitor.store.dialect import Connection, Executor
from monitor.store.records import IncidentEvent, IncidentRecord, OutboxItem

_INCIDENT_COLUMNS = [f.name for f in fields(IncidentRecord) if f.name != "id"]
_OUTBOX_COLUMNS = [f.name for f in fields(OutboxItem) if f.name != "id"]
_JSON = {"labels", "affected", "payload", "detail"}


def _encode(name: str, value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False, sort_keys=True) if name in _JSON else value


def incident_from_row(row: tuple[Any, ...]) -> IncidentRecord:
    values = dict(zip(["id", *_INCIDENT_COLUMNS], row, strict=True))
    for name in ("labels", "affected"):
        values[name] = json.loads(values[name])
    return IncidentRecord(**values)


def _outbox(row: tuple[Any, ...]) -> OutboxItem:
    values = dict(zip(["id", *_OUTBOX_COLUMNS], row, strict=True))
    values["payload"] = json.loads(values["payload"])
    return OutboxItem(**values)


SELECT_INCIDENT = f"SELECT id, {', '.join(_INCIDENT_COLUMNS)} FROM incidents"
_SELECT_OUTBOX = f"SELECT id, {', '.join(_OUTBOX_COLUMNS)} FROM outbox"
ALERT_PAYLOAD = '{"alert"%'  # LIKE pattern of an Alertmanager-style payload (a parameter: `%` is psycopg's mark)


class IncidentQueries:
    def __init__(self, db: Executor) -> None:
        self.db = db
        self.p = p = db.dialect.param
        self._update_incident = (
            f"UPDATE incidents SET {', '.join(f'{c} = {p}' for c in _INCIDENT_COLUMNS)} WHERE id = {p}"
        )
        self._insert_incident = (
            f"INSERT INTO incidents ({', '.join(_INCIDENT_COLUMNS)}) "
            f"VALUES ({db.dialect.marks(len(_INCIDENT_COLUMNS))}) RETURNING id"
        )
        self._insert_event = (
            f"INSERT INTO incident_events (incident_id, at, kind, actor, detail) VALUES ({db.dialect.marks(5)})"
        )
        self._enqueue = (
            f"INSERT INTO outbox ({', '.join(_OUTBOX_COLUMNS)}) "
            f"VALUES ({db.dialect.marks(len(_OUTBOX_COLUMNS))}) ON CONFLICT DO NOTHING"
        )

    # --- incidents -------------------------------------------------------------------------

    async def create_incident(self, incident: IncidentRecord, event: IncidentEvent | None = None) -> int:
        """Insert an incident (and its first timeline event); returns its id. A second open incident
        with the same key is refused by the database (sqlite3.IntegrityError)."""

        def job(conn: Connection) -> int:
            row = conn.execute(self._insert_incident, [_encode(c, getattr(incident, c)) for c in _INCIDENT_COLUMNS])
            incident_id = int(row.fetchone()[0])
            if event is not None:
                self._add_event(conn, incident_id, event)
            return incident_id

        result = await self.db.write(job)
        incident.id = result
        return result

    async def save_incident(self, incident: IncidentRecord, *events: IncidentEvent) -> None:
        """Write every field of an existing incident, plus timeline events, in one transaction."""
        await self.save_incidents([(incident, list(events))])

    async def save_incidents(self, batch: list[tuple[IncidentRecord, list[IncidentEvent]]]) -> None:
        """Several incidents and their new events in one transaction (a mass outage is one write)."""

        def job(conn: Connection) -> None:
            for incident, events in batch:
                conn.execute(
                    self._update_incident,
                    [*(_encode(c, getattr(incident, c)) for c in _INCIDENT_COLUMNS), incident.id],
                )
                for event in events:
                    self._add_event(conn, incident.id, event)

        await self.db.write(job)

    async def add_events(self, incident_id: int, *events: IncidentEvent) -> None:
        def job(conn: Connection) -> None:
            for event in events:
                self._add_event(conn, incident_id, event)

        await self.db.write(job)

    async def open_incidents(self) -> list[IncidentRecord]:
        rows = await self.db.read(
            lambda c: c.execute(f"{SELECT_INCIDENT} WHERE status != 'resolved' ORDER BY id").fetchall()
        )
        return [incident_from_row(r) for r in rows]

    async def get_incident(self, incident_id: int) -> IncidentRecord | None:
        sql = f"{SELECT_INCIDENT} WHERE id = {self.p}"
        row = await self.db.read(lambda c: c.execute(sql, (incident_id,)).fetchone())
        return incident_from_row(row) if row else None

    async def list_incidents(
        self, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[list[IncidentRecord], int]:
        p = self.p
        where, args = (f"WHERE status = {p}", [status]) if status else ("", [])

        def job(conn: Connection) -> tuple[list[Any], int]:
            total = conn.execute(f"SELECT COUNT(*) FROM incidents {where}", args).fetchone()[0]
            rows = conn.execute(
                f"{SELECT_INCIDENT} {where} ORDER BY id DESC LIMIT {p} OFFSET {p}", [*args, limit, offset]
            ).fetchall()
            return rows, int(total)

        rows, total = await self.db.read(job)
        return [incident_from_row(r) for r in rows], total

    async def incident_events(self, incident_id: int) -> list[IncidentEvent]:
        rows = await self.db.read(
            lambda c: c.execute(
                f"SELECT incident_id, at, kind, actor, detail, id FROM incident_events WHERE incident_id = {self.p} "
                "ORDER BY at, id",
                (incident_id,),
            ).fetchall()
        )
        return [IncidentEvent(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]

    # --- outbox ----------------------------------------------------------------------------

    async def enqueue(self, items: list[OutboxItem]) -> int:
        """Add notifications; one whose dedup key exists already is ignored (no duplicate page after a
        restart). Returns how many were new."""

        def job(conn: Connection) -> int:
            cur = conn.executemany(
                self._enqueue, [[_encode(c, getattr(item, c)) for c in _OUTBOX_COLUMNS] for item in items]
            )
            return int(cur.rowcount)  # the rows inserted; duplicates are not counted

        return await self.db.write(job)

    async def due_notifications(self, now: float, limit: int = 100) -> list[OutboxItem]:
        p = self.p
        rows = await self.db.read(
            lambda c: c.execute(
                f"{_SELECT_OUTBOX} WHERE status = 'pending' AND not_before <= {p} ORDER BY not_before, id LIMIT {p}",
                (now, limit),
            ).fetchall()
        )
        return [_outbox(r) for r in rows]

    async def next_notification_due(self) -> float | None:
        row = await self.db.read(
            lambda c: c.execute("SELECT MIN(not_before) FROM outbox WHERE status = 'pending'").fetchone()
        )
        return float(row[0]) if row and row[0] is not None else None

    async def mark_sent(self, item_id: int, at: float) -> None:
        p = self.p
        await self.db.write(
            lambda c: c.execute(
                f"UPDATE outbox SET status = 'sent', sent_at = {p}, attempts = attempts + 1, last_error = NULL "
                f"WHERE id = {p} AND status = 'pending'",
                (at, item_id),
            )
        )

    async def mark_failed(self, item_id: int, error: str, retry_at: float | None) -> None:
        """A failed attempt: retry at `retry_at`, or give up (status failed) when it is None."""
        p = self.p
        await self.db.write(
            lambda c: c.execute(
                f"UPDATE outbox SET attempts = attempts + 1, last_error = {p}, "
                f"status = CASE WHEN {p} IS NULL THEN 'failed' ELSE 'pending' END, "
                f"not_before = COALESCE({p}, not_before) WHERE id = {p} AND status = 'pending'",
                (error[:500], retry_at, retry_at, item_id),
            )
        )

    async def cancel_pending(self, incident_id: int, kinds: tuple[str, ...] = ("firing", "repeat")) -> int:
        """Cancel notifications of an incident that have not gone out (e.g. it was merged into its root cause)."""

        sql = (
            "UPDATE outbox SET status = 'cancelled' "
            f"WHERE incident_id = {self.p} AND status = 'pending' AND kind IN ({self.db.dialect.marks(len(kinds))})"
        )
        return await self.db.write(lambda c: c.execute(sql, (incident_id, *kinds)).rowcount)

    async def notifications(self, incident_id: int | None = None) -> list[OutboxItem]:
        if incident_id is None:
            rows = await self.db.read(lambda c: c.execute(f"{_SELECT_OUTBOX} ORDER BY id").fetchall())
        else:
            sql = f"{_SELECT_OUTBOX} WHERE incident_id = {self.p} ORDER BY id"
            rows = await self.db.read(lambda c: c.execute(sql, (incident_id,)).fetchall())
        return [_outbox(r) for r in rows]

    async def firing_alerts(self) -> list[OutboxItem]:
        """Delivered firing Alertmanager-style items of incidents that are not resolved (for re-sending):
        per incident, channel and level the latest (a severity update supersedes the first alert)."""
        columns = ", ".join(f"o.{c}" for c in ["id", *_OUTBOX_COLUMNS])
        sql = (
            f"SELECT {columns} FROM outbox o JOIN incidents i ON i.id = o.incident_id "
            "WHERE i.status != 'resolved' AND o.status = 'sent' AND o.kind IN ('firing', 'update') "
            f"AND o.payload LIKE {self.p} AND o.id = (SELECT MAX(l.id) FROM outbox l WHERE "
            "l.incident_id = o.incident_id AND l.channel = o.channel AND l.level = o.level AND l.status = 'sent' "
            "AND l.kind IN ('firing', 'update'))"
        )
        rows = await self.db.read(lambda c: c.execute(sql, (ALERT_PAYLOAD,)).fetchall())
        return [_outbox(r) for r in rows]

    async def outbox_counts(self) -> dict[str, int]:
        rows = await self.db.read(lambda c: c.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())
        return {status: int(count) for status, count in rows}

    def _add_event(self, conn: Connection, incident_id: int, event: IncidentEvent) -> None:
        detail = json.dumps(event.detail, ensure_ascii=False, sort_keys=True)
        conn.execute(self._insert_event, (incident_id, event.at, event.kind, event.actor, detail))
