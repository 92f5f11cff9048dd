"""Incidents, their timeline and the notification outbox in SQLite (mixed into SQLiteStore)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

from monitor.store.records import IncidentEvent, IncidentRecord, OutboxItem

T = TypeVar("T")
_INCIDENT_COLUMNS = [f.name for f in fields(IncidentRecord) if f.name != "id"]
_OUTBOX_COLUMNS = [f.name for f in fields(OutboxItem) if f.name != "id"]
_JSON = {"labels", "affected", "payload", "detail"}


def _encode(name: str, value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False, sort_keys=True) if name in _JSON else value


def incident_from_row(row: sqlite3.Row | tuple[Any, ...]) -> IncidentRecord:
    values = dict(zip(["id", *_INCIDENT_COLUMNS], row, strict=True))
    for name in ("labels", "affected"):
        values[name] = json.loads(values[name])
    return IncidentRecord(**values)


def _outbox(row: tuple[Any, ...]) -> OutboxItem:
    values = dict(zip(["id", *_OUTBOX_COLUMNS], row, strict=True))
    values["payload"] = json.loads(values["payload"])
    return OutboxItem(**values)


SELECT_INCIDENT = f"SELECT id, {', '.join(_INCIDENT_COLUMNS)} FROM incidents"
_UPDATE_INCIDENT = f"UPDATE incidents SET {', '.join(f'{c} = ?' for c in _INCIDENT_COLUMNS)} WHERE id = ?"
_INSERT_INCIDENT = (
    f"INSERT INTO incidents ({', '.join(_INCIDENT_COLUMNS)}) VALUES ({', '.join('?' * len(_INCIDENT_COLUMNS))})"
)
_SELECT_OUTBOX = f"SELECT id, {', '.join(_OUTBOX_COLUMNS)} FROM outbox"


class IncidentQueries:
    """Needs `write(job)` and `read(job)` from the store it is mixed into."""

    write: Callable[..., Any]
    read: Callable[..., Any]

    # --- incidents -------------------------------------------------------------------------

    async def create_incident(self, incident: IncidentRecord, event: IncidentEvent | None = None) -> int:
        """Insert an incident (and its first timeline event); returns its id. A second open incident
        with the same key is refused by the database (sqlite3.IntegrityError)."""

        def job(conn: sqlite3.Connection) -> int:
            cur = conn.execute(_INSERT_INCIDENT, [_encode(c, getattr(incident, c)) for c in _INCIDENT_COLUMNS])
            incident_id = int(cur.lastrowid or 0)
            if event is not None:
                _insert_event(conn, incident_id, event)
            return incident_id

        result: int = await self.write(job)
        incident.id = result
        return result

    async def save_incident(self, incident: IncidentRecord, *events: IncidentEvent) -> None:
        """Write every field of an existing incident, plus timeline events, in one transaction."""
        await self.save_incidents([(incident, list(events))])

    async def save_incidents(self, batch: list[tuple[IncidentRecord, list[IncidentEvent]]]) -> None:
        """Several incidents and their new events in one transaction (a mass outage is one write)."""

        def job(conn: sqlite3.Connection) -> None:
            for incident, events in batch:
                conn.execute(
                    _UPDATE_INCIDENT, [*(_encode(c, getattr(incident, c)) for c in _INCIDENT_COLUMNS), incident.id]
                )
                for event in events:
                    _insert_event(conn, incident.id, event)

        await self.write(job)

    async def add_events(self, incident_id: int, *events: IncidentEvent) -> None:
        def job(conn: sqlite3.Connection) -> None:
            for event in events:
                _insert_event(conn, incident_id, event)

        await self.write(job)

    async def open_incidents(self) -> list[IncidentRecord]:
        rows = await self.read(
            lambda c: c.execute(f"{SELECT_INCIDENT} WHERE status != 'resolved' ORDER BY id").fetchall()
        )
        return [incident_from_row(r) for r in rows]

    async def get_incident(self, incident_id: int) -> IncidentRecord | None:
        row = await self.read(lambda c: c.execute(f"{SELECT_INCIDENT} WHERE id = ?", (incident_id,)).fetchone())
        return incident_from_row(row) if row else None

    async def list_incidents(
        self, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[list[IncidentRecord], int]:
        where, args = ("WHERE status = ?", [status]) if status else ("", [])

        def job(conn: sqlite3.Connection) -> tuple[list[Any], int]:
            total = conn.execute(f"SELECT COUNT(*) FROM incidents {where}", args).fetchone()[0]
            rows = conn.execute(
                f"{SELECT_INCIDENT} {where} ORDER BY id DESC LIMIT ? OFFSET ?", [*args, limit, offset]
            ).fetchall()
            return rows, int(total)

        rows, total = await self.read(job)
        return [incident_from_row(r) for r in rows], total

    async def incident_events(self, incident_id: int) -> list[IncidentEvent]:
        rows = await self.read(
            lambda c: c.execute(
                "SELECT incident_id, at, kind, actor, detail, id FROM incident_events WHERE incident_id = ? "
                "ORDER BY at, id",
                (incident_id,),
            ).fetchall()
        )
        return [IncidentEvent(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]

    # --- outbox ----------------------------------------------------------------------------

    async def enqueue(self, items: list[OutboxItem]) -> int:
        """Add notifications; one whose dedup key exists already is ignored (no duplicate page after a
        restart). Returns how many were new."""

        def job(conn: sqlite3.Connection) -> int:
            cur = conn.executemany(
                f"INSERT INTO outbox ({', '.join(_OUTBOX_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_OUTBOX_COLUMNS))}) ON CONFLICT DO NOTHING",
                [[_encode(c, getattr(item, c)) for c in _OUTBOX_COLUMNS] for item in items],
            )
            return int(cur.rowcount)  # the rows inserted; duplicates are not counted

        result: int = await self.write(job)
        return result

    async def due_notifications(self, now: float, limit: int = 100) -> list[OutboxItem]:
        rows = await self.read(
            lambda c: c.execute(
                f"{_SELECT_OUTBOX} WHERE status = 'pending' AND not_before <= ? ORDER BY not_before, id LIMIT ?",
                (now, limit),
            ).fetchall()
        )
        return [_outbox(r) for r in rows]

    async def next_notification_due(self) -> float | None:
        row = await self.read(
            lambda c: c.execute("SELECT MIN(not_before) FROM outbox WHERE status = 'pending'").fetchone()
        )
        return float(row[0]) if row and row[0] is not None else None

    async def mark_sent(self, item_id: int, at: float) -> None:
        await self.write(
            lambda c: c.execute(
                "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1, last_error = NULL "
                "WHERE id = ? AND status = 'pending'",
                (at, item_id),
            )
        )

    async def mark_failed(self, item_id: int, error: str, retry_at: float | None) -> None:
        """A failed attempt: retry at `retry_at`, or give up (status failed) when it is None."""
        await self.write(
            lambda c: c.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, "
                "status = CASE WHEN ? IS NULL THEN 'failed' ELSE 'pending' END, not_before = COALESCE(?, not_before) "
                "WHERE id = ? AND status = 'pending'",
                (error[:500], retry_at, retry_at, item_id),
            )
        )

    async def cancel_pending(self, incident_id: int, kinds: tuple[str, ...] = ("firing", "repeat")) -> int:
        """Cancel notifications of an incident that have not gone out (e.g. it was merged into its root cause)."""

        def job(conn: sqlite3.Connection) -> int:
            marks = ", ".join("?" * len(kinds))
            cur = conn.execute(
                "UPDATE outbox SET status = 'cancelled' "
                f"WHERE incident_id = ? AND status = 'pending' AND kind IN ({marks})",
                (incident_id, *kinds),
            )
            return cur.rowcount

        result: int = await self.write(job)
        return result

    async def notifications(self, incident_id: int | None = None) -> list[OutboxItem]:
        if incident_id is None:
            rows = await self.read(lambda c: c.execute(f"{_SELECT_OUTBOX} ORDER BY id").fetchall())
        else:
            rows = await self.read(
                lambda c: c.execute(f"{_SELECT_OUTBOX} WHERE incident_id = ? ORDER BY id", (incident_id,)).fetchall()
            )
        return [_outbox(r) for r in rows]

    async def firing_alerts(self) -> list[OutboxItem]:
        """Delivered firing Alertmanager-style items of incidents that are not resolved (for re-sending):
        per incident, channel and level the latest (a severity update supersedes the first alert)."""
        columns = ", ".join(f"o.{c}" for c in ["id", *_OUTBOX_COLUMNS])
        sql = (
            f"SELECT {columns} FROM outbox o JOIN incidents i ON i.id = o.incident_id "
            "WHERE i.status != 'resolved' AND o.status = 'sent' AND o.kind IN ('firing', 'update') "
            "AND o.payload LIKE '{\"alert\"%' AND o.id = (SELECT MAX(l.id) FROM outbox l WHERE "
            "l.incident_id = o.incident_id AND l.channel = o.channel AND l.level = o.level AND l.status = 'sent' "
            "AND l.kind IN ('firing', 'update'))"
        )
        rows = await self.read(lambda c: c.execute(sql).fetchall())
        return [_outbox(r) for r in rows]

    async def outbox_counts(self) -> dict[str, int]:
        rows = await self.read(lambda c: c.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())
        return {status: int(count) for status, count in rows}


def _insert_event(conn: sqlite3.Connection, incident_id: int, event: IncidentEvent) -> None:
    conn.execute(
        "INSERT INTO incident_events (incident_id, at, kind, actor, detail) VALUES (?, ?, ?, ?, ?)",
        (incident_id, event.at, event.kind, event.actor, json.dumps(event.detail, ensure_ascii=False, sort_keys=True)),
    )
