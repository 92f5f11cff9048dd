"""What the availability report needs from SQLite: corrections, monthly roll-ups, incidents of a
period with their first notification, and pruning of raw intervals already rolled up."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor.store.records import IncidentRecord
from monitor.store.sql_incidents import SELECT_INCIDENT, incident_from_row


@dataclass(frozen=True, slots=True)
class Correction:
    service: str
    start: float
    end: float
    reason: str
    created_by: str
    created_at: float
    id: int = 0


@dataclass(frozen=True, slots=True)
class MonthRollup:
    service: str
    month: str  # YYYY-MM (JST)
    service_seconds: float
    maintenance_seconds: float
    gap_seconds: float
    downtime_seconds: float
    outages: int
    longest_outage_seconds: float
    objective: float


class ReportQueries:
    """Needs `write(job)` and `read(job)` from the store it is mixed into."""

    write: Callable[..., Any]
    read: Callable[..., Any]

    async def add_correction(self, correction: Correction) -> int:
        def job(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO corrections (service, start, end, reason, created_by, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (correction.service, correction.start, correction.end, correction.reason, correction.created_by,
                 correction.created_at),
            )  # fmt: skip
            return int(cur.lastrowid or 0)

        result: int = await self.write(job)
        return result

    async def corrections(self, start: float, end: float) -> list[Correction]:
        rows = await self.read(
            lambda c: c.execute(
                "SELECT service, start, end, reason, created_by, created_at, id FROM corrections "
                "WHERE start < ? AND end > ? ORDER BY service, start",
                (end, start),
            ).fetchall()
        )
        return [Correction(*row) for row in rows]

    async def save_rollups(self, rollups: list[MonthRollup]) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO availability_months VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (service, month) DO UPDATE "
                "SET service_seconds = excluded.service_seconds, maintenance_seconds = excluded.maintenance_seconds, "
                "gap_seconds = excluded.gap_seconds, downtime_seconds = excluded.downtime_seconds, "
                "outages = excluded.outages, longest_outage_seconds = excluded.longest_outage_seconds, "
                "objective = excluded.objective",
                [(r.service, r.month, r.service_seconds, r.maintenance_seconds, r.gap_seconds, r.downtime_seconds,
                  r.outages, r.longest_outage_seconds, r.objective) for r in rollups],
            )  # fmt: skip

        await self.write(job)

    async def rollups(self, months: list[str]) -> list[MonthRollup]:
        marks = ", ".join("?" * len(months))
        rows = await self.read(
            lambda c: c.execute(f"SELECT * FROM availability_months WHERE month IN ({marks})", months).fetchall()
        )
        return [MonthRollup(*row) for row in rows]

    async def rolled_up_months(self) -> list[str]:
        rows = await self.read(
            lambda c: c.execute("SELECT DISTINCT month FROM availability_months ORDER BY month").fetchall()
        )
        return [row[0] for row in rows]

    async def incidents_between(self, start: float, end: float) -> list[IncidentRecord]:
        """Incidents open at any time in [start, end)."""
        rows = await self.read(
            lambda c: c.execute(
                f"{SELECT_INCIDENT} WHERE opened_at < ? AND (resolved_at IS NULL OR resolved_at >= ?) "
                "AND merged_into IS NULL ORDER BY opened_at",
                (end, start),
            ).fetchall()
        )
        return [incident_from_row(r) for r in rows]

    async def first_notifications(self, incident_ids: list[int]) -> dict[int, float]:
        if not incident_ids:
            return {}
        marks = ", ".join("?" * len(incident_ids))
        rows = await self.read(
            lambda c: c.execute(
                f"SELECT incident_id, MIN(sent_at) FROM outbox WHERE status = 'sent' AND incident_id IN ({marks}) "
                "GROUP BY incident_id",
                incident_ids,
            ).fetchall()
        )
        return {int(i): float(t) for i, t in rows if t is not None}

    async def prune_intervals(self, before: float) -> int:
        """Delete raw state intervals that ended before `before` (their months are rolled up)."""
        result: int = await self.write(
            lambda c: c.execute("DELETE FROM state_intervals WHERE end IS NOT NULL AND end < ?", (before,)).rowcount
        )
        return result
