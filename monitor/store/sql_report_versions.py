"""The monthly report's versions in the store (one query class of the SQL stores, see sql.py): drafts,
their review and approval, the approved versions' PDFs, and which approved versions have been distributed.

Every state change is one conditional UPDATE (`WHERE status = <the state it leaves>`), so two reviewers
racing, or an approval of a version that was superseded meanwhile, change nothing and say so (False);
the schema adds its own guards (migrations: an approved row cannot be updated or deleted, an approver is
never the reviewer, a month has at most one open draft)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from monitor.store.dialect import Connection, Executor

OPEN = ("draft", "reviewed")


@dataclass(frozen=True, slots=True)
class ReportVersion:
    month: str  # YYYY-MM (JST)
    version: int
    status: str  # draft, reviewed, approved, superseded
    created_at: float
    created_by: str
    reason: str  # why this version was drafted: first issue, a correction's reason, a late data change
    data: str  # the canonical JSON of the report (stamp.canonical), as hashed
    data_sha256: str
    supersedes: int | None  # the approved version this one corrects
    changes: str  # JSON list of the differences from `supersedes` (report_diff.Change)
    reviewed_by: str | None = None
    reviewed_at: float | None = None
    review_comment: str | None = None
    approved_by: str | None = None
    approved_at: float | None = None
    approve_comment: str | None = None
    pdf_ja: bytes | None = None
    pdf_en: bytes | None = None


_COLUMNS = (
    "month, version, status, created_at, created_by, reason, data, data_sha256, supersedes, changes, reviewed_by, "
    "reviewed_at, review_comment, approved_by, approved_at, approve_comment"
)


def _blob(value: bytes | memoryview | None) -> bytes | None:
    return None if value is None else bytes(value)  # PostgreSQL's bytea comes as a memoryview


def _version(row: Any, pdfs: tuple[Any, Any] = (None, None)) -> ReportVersion:
    return replace(ReportVersion(*row), pdf_ja=_blob(pdfs[0]), pdf_en=_blob(pdfs[1]))


class ReportVersionQueries:
    def __init__(self, db: Executor) -> None:
        self.db = db
        self.p = db.dialect.param

    async def add_report_draft(self, draft: ReportVersion) -> ReportVersion:
        """Store a new draft of its month, numbered after the month's last version; an open draft of the
        month (stale, or replaced by a correction) becomes superseded in the same transaction."""
        p = self.p

        def job(conn: Connection) -> ReportVersion:
            conn.execute(
                f"UPDATE report_versions SET status = 'superseded' WHERE month = {p} "
                "AND status IN ('draft', 'reviewed')",
                (draft.month,),
            )
            row = conn.execute(f"SELECT MAX(version) FROM report_versions WHERE month = {p}", (draft.month,)).fetchone()
            number = int(row[0] or 0) + 1
            conn.execute(
                f"INSERT INTO report_versions ({_COLUMNS}) VALUES ({self.db.dialect.marks(16)})",
                (draft.month, number, "draft", draft.created_at, draft.created_by, draft.reason, draft.data,
                 draft.data_sha256, draft.supersedes, draft.changes, None, None, None, None, None, None),
            )  # fmt: skip
            return replace(draft, version=number, status="draft")

        return await self.db.write(job)

    async def report_version(self, month: str, version: int, pdfs: bool = False) -> ReportVersion | None:
        p = self.p
        extra = ", pdf_ja, pdf_en" if pdfs else ""
        row = await self.db.read(
            lambda c: c.execute(
                f"SELECT {_COLUMNS}{extra} FROM report_versions WHERE month = {p} AND version = {p}", (month, version)
            ).fetchone()
        )
        if row is None:
            return None
        return _version(row[:16], (row[16], row[17]) if pdfs else (None, None))

    async def report_versions(self, month: str | None = None) -> list[ReportVersion]:
        """Every version (without PDFs), of one month or of all, newest month first, versions in order."""
        where, args = (f"WHERE month = {self.p}", (month,)) if month else ("", ())
        rows = await self.db.read(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM report_versions {where} ORDER BY month DESC, version", args
            ).fetchall()
        )
        return [_version(r) for r in rows]

    async def review_report(self, month: str, version: int, by: str, at: float, comment: str) -> bool:
        p = self.p
        sql = (
            f"UPDATE report_versions SET status = 'reviewed', reviewed_by = {p}, reviewed_at = {p}, "
            f"review_comment = {p} WHERE month = {p} AND version = {p} AND status = 'draft'"
        )
        return await self.db.write(lambda c: c.execute(sql, (by, at, comment, month, version)).rowcount == 1)

    async def approve_report(
        self, month: str, version: int, by: str, at: float, comment: str, pdf_ja: bytes, pdf_en: bytes
    ) -> bool:
        """Approve a reviewed version (never by its reviewer) with its PDFs: from here on it is immutable."""
        p = self.p
        sql = (
            f"UPDATE report_versions SET status = 'approved', approved_by = {p}, approved_at = {p}, "
            f"approve_comment = {p}, pdf_ja = {p}, pdf_en = {p} "
            f"WHERE month = {p} AND version = {p} AND status = 'reviewed' AND reviewed_by <> {p}"
        )
        return await self.db.write(
            lambda c: c.execute(sql, (by, at, comment, pdf_ja, pdf_en, month, version, by)).rowcount == 1
        )

    async def report_distributed(self, month: str, version: int, at: float, items: int) -> None:
        sql = (
            f"INSERT INTO report_distributions VALUES ({self.db.dialect.marks(4)}) "
            "ON CONFLICT (month, version) DO NOTHING"
        )
        await self.db.write(lambda c: c.execute(sql, (month, version, at, items)))

    async def undistributed_reports(self) -> list[tuple[str, int]]:
        """Approved versions whose prefecture variants were not all queued (a restart in between)."""
        rows = await self.db.read(
            lambda c: c.execute(
                "SELECT v.month, v.version FROM report_versions v LEFT JOIN report_distributions d "
                "ON d.month = v.month AND d.version = v.version WHERE v.status = 'approved' AND d.month IS NULL "
                "ORDER BY v.month, v.version"
            ).fetchall()
        )
        return [(str(m), int(v)) for m, v in rows]
