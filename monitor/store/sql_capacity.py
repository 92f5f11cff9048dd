"""What circuit capacity needs from the store (one query class of the SQL stores, see sql.py): the 5-minute
samples of every circuit and direction, the months rolled up from them (kept after the samples are
pruned, so the report of an old month and the forecast still have them), and pruning."""

from __future__ import annotations

from typing import Any

from monitor.availability.capacity import MonthFigures, Sample
from monitor.store.dialect import Connection, Executor


def _month(r: Any) -> MonthFigures:
    """A capacity_months row (the DB-API row's values are untyped)."""
    p95, peak, peak_at, p95_bps, capacity = (None if v is None else float(v) for v in r[5:10])
    return MonthFigures(
        str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), p95, peak, peak_at, p95_bps, capacity, float(r[10])
    )


class CapacityQueries:
    def __init__(self, db: Executor) -> None:
        self.db = db
        self.p = db.dialect.param

    async def save_capacity_samples(self, samples: list[Sample]) -> None:
        """Upsert: a slot written again (after a restart of the recorder) keeps its latest figures."""
        if not samples:
            return
        sql = (
            f"INSERT INTO capacity_samples VALUES ({self.db.dialect.marks(5)}) "
            "ON CONFLICT (circuit, direction, start) DO UPDATE "
            "SET bits_per_second = excluded.bits_per_second, capacity_bps = excluded.capacity_bps"
        )
        rows = [(s.circuit, s.direction, s.start, s.bits_per_second, s.capacity_bps) for s in samples]

        def job(conn: Connection) -> None:
            conn.executemany(sql, rows)

        await self.db.write(job)

    async def capacity_samples(self, start: float, end: float, circuit: str | None = None) -> list[Sample]:
        """The samples of slots starting in [start, end), of one circuit or all, by circuit, direction, time."""
        p = self.p
        where = f"start >= {p} AND start < {p}" + (f" AND circuit = {p}" if circuit is not None else "")
        params = (start, end) if circuit is None else (start, end, circuit)
        sql = (
            "SELECT circuit, direction, start, bits_per_second, capacity_bps FROM capacity_samples "
            f"WHERE {where} ORDER BY circuit, direction, start"
        )

        def job(c: Connection) -> list[Sample]:
            # built in the reader's thread: a month of a circuit is 17,280 rows, not work for the event loop
            rows = c.execute(sql, params).fetchall()
            return [Sample(str(r[0]), str(r[1]), float(r[2]), float(r[3]), float(r[4])) for r in rows]

        return await self.db.read(job)

    async def capacity_circuits(self, start: float, end: float) -> list[str]:
        """The circuits with samples of slots starting in [start, end)."""
        p = self.p
        sql = f"SELECT DISTINCT circuit FROM capacity_samples WHERE start >= {p} AND start < {p} ORDER BY circuit"
        rows = await self.db.read(lambda c: c.execute(sql, (start, end)).fetchall())
        return [str(r[0]) for r in rows]

    async def save_capacity_months(self, months: list[MonthFigures]) -> None:
        if not months:
            return
        sql = (
            f"INSERT INTO capacity_months VALUES ({self.db.dialect.marks(11)}) "
            "ON CONFLICT (circuit, direction, month) DO UPDATE SET samples = excluded.samples, "
            "slots = excluded.slots, p95_ratio = excluded.p95_ratio, peak_ratio = excluded.peak_ratio, "
            "peak_at = excluded.peak_at, p95_bps = excluded.p95_bps, capacity_bps = excluded.capacity_bps, "
            "midpoint = excluded.midpoint"
        )
        rows = [
            (m.circuit, m.direction, m.month, m.samples, m.slots, m.p95_ratio, m.peak_ratio, m.peak_at, m.p95_bps,
             m.capacity_bps, m.midpoint)
            for m in months
        ]  # fmt: skip

        def job(conn: Connection) -> None:
            conn.executemany(sql, rows)

        await self.db.write(job)

    async def capacity_months(self, months: list[str]) -> list[MonthFigures]:
        if not months:
            return []
        marks = self.db.dialect.marks(len(months))
        rows = await self.db.read(
            lambda c: c.execute(
                "SELECT circuit, direction, month, samples, slots, p95_ratio, peak_ratio, peak_at, p95_bps, "
                f"capacity_bps, midpoint FROM capacity_months WHERE month IN ({marks}) "
                "ORDER BY circuit, direction, month",
                months,
            ).fetchall()
        )
        return [_month(r) for r in rows]

    async def prune_capacity_samples(self, before: float) -> int:
        """Delete 5-minute samples of slots that began before `before` (their months are rolled up)."""
        sql = f"DELETE FROM capacity_samples WHERE start < {self.p}"
        return await self.db.write(lambda c: c.execute(sql, (before,)).rowcount)
