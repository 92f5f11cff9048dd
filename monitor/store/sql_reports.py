"""What the availability report needs from the store (one query class of the SQL stores, see sql.py):
corrections, monthly roll-ups, incidents of a period with their first notification, and pruning of raw
intervals already rolled up."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.store.dialect import Connection, Executor
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
    def __init__(self, db: Executor) -> None:
        self.db = db
        self.p = db.dialect.param

    async def add_correction(self, correction: Correction) -> int:
        sql = (
            'INSERT INTO corrections (service, start, "end", reason, created_by, created_at) '
            f"VALUES ({self.db.dialect.marks(6)}) RETURNING id"
        )

        def job(conn: Connection) -> int:
            cur = conn.execute(
                sql,
                (correction.service, correction.start, correction.end, correction.reason, correction.created_by,
                 correction.created_at),
            )  # fmt: skip
            return int(cur.fetchone()[0])

        return await self.db.write(job)

    async def corrections(self, start: float, end: float) -> list[Correction]:
        p = self.p
        rows = await self.db.read(
            lambda c: c.execute(
                'SELECT service, start, "end", reason, created_by, created_at, id FROM corrections '
                f'WHERE start < {p} AND "end" > {p} ORDER BY service, start',
                (end, start),
            ).fetchall()
        )
        return [Correction(*row) for row in rows]

    async def save_rollups(self, rollups: list[MonthRollup]) -> None:
        values = self.db.dialect.marks(9)

        def job(conn: Connection) -> None:
            conn.executemany(
                f"INSERT INTO availability_months VALUES ({values}) "
                "ON CONFLICT (service, month) DO UPDATE "
                "SET service_seconds = excluded.service_seconds, maintenance_seconds = excluded.maintenance_seconds, "
                "gap_seconds = excluded.gap_seconds, downtime_seconds = excluded.downtime_seconds, "
                "outages = excluded.outages, longest_outage_seconds = excluded.longest_outage_seconds, "
                "objective = excluded.objective",
                [(r.service, r.month, r.service_seconds, r.maintenance_seconds, r.gap_seconds, r.downtime_seconds,
                  r.outages, r.longest_outage_seconds, r.objective) for r in rollups],
            )  # fmt: skip

        await self.db.write(job)

    async def rollups(self, months: list[str]) -> list[MonthRollup]:
        marks = self.db.dialect.marks(len(months))
        rows = await self.db.read(
            lambda c: c.execute(f"SELECT * FROM availability_months WHERE month IN ({marks})", months).fetchall()
        )
        return [MonthRollup(*row) for row in rows]

    async def rolled_up_months(self) -> list[str]:
        rows = await self.db.read(
            lambda c: c.execute("SELECT DISTINCT month FROM availability_months ORDER BY month").fetchall()
        )
        return [row[0] for row in rows]

    async def incidents_between(self, start: float, end: float) -> list[IncidentRecord]:
        """Incidents open at any time in [start, end)."""
        p = self.p
        rows = await self.db.read(
            lambda c: c.execute(
                f"{SELECT_INCIDENT} WHERE opened_at < {p} AND (resolved_at IS NULL OR resolved_at >= {p}) "
                "AND merged_into IS NULL ORDER BY opened_at",
                (end, start),
            ).fetchall()
        )
        return [incident_from_row(r) for r in rows]

    async def first_notifications(self, incident_ids: list[int]) -> dict[int, float]:
        if not incident_ids:
            return {}
        marks = self.db.dialect.marks(len(incident_ids))
        rows = await self.db.read(
            lambda c: c.execute(
                f"SELECT incident_id, MIN(sent_at) FROM outbox WHERE status = 'sent' AND incident_id IN ({marks}) "
                "GROUP BY incident_id",
                incident_ids,
            ).fetchall()
        )
        return {int(i): float(t) for i, t in rows if t is not None}

    async def prune_intervals(self, before: float) -> int:
        """Delete raw state intervals that ended before `before` (their months are rolled up)."""
        sql = f'DELETE FROM state_intervals WHERE "end" IS NOT NULL AND "end" < {self.p}'
        return await self.db.write(lambda c: c.execute(sql, (before,)).rowcount)
