"""The monthly report as a signed record: versions of a month go draft -> reviewed -> approved.

- A draft freezes the month's report data (canonical JSON, stamp.canonical) and its SHA-256. Only a month
  that is over can be drafted: the figures of a month in progress change by the minute.
- Review and approval each need the `report` permission and a comment, and are two different people (the
  store refuses an approval by the reviewer as well). The HTTP layer audits each attempt.
- Stale drafts are REFUSED, not silently re-drafted: before a review or an approval the month is rebuilt,
  and if its data is no longer what the draft froze (a correction, an incident resolved late) the step is
  refused (409) and the draft must be made again. Whoever signs must have read what they sign; re-drafting
  behind their back would put their name on figures they never saw.
- An approval renders the PDFs (Japanese and English, with both signatures on every page), stores them with
  the version, and from then on the version is immutable (the schema refuses changes too).
- A correction, or a late change of the store's data, to an approved month makes a new draft that lists
  what changed from the approved version and why (reconcile; the daemon also checks hourly, `watch`).
- On approval each prefecture's liaison (config `reports.distribution`) receives the prefecture's own
  variant as a PDF through the outbox, exactly once: one dedup key per (version, prefecture, notifier,
  contact), and a version whose variants were not all queued (a restart in between) is resumed on start.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import structlog

from monitor.access.auth import Refused
from monitor.availability.pdf import PdfError, render_many_async, report_data
from monitor.availability.periods import month_of, month_span, parse_month, previous_months
from monitor.availability.report import Report, ReportBuilder
from monitor.availability.report_diff import LATE, changes, content, reasons
from monitor.availability.stamp import Change, Sign, Stamp, canonical, sha256
from monitor.availability.variants import prefecture_variant
from monitor.config.prefectures import lookup
from monitor.core.inventory import Inventory
from monitor.store.base import Store
from monitor.store.records import AuditEntry, OutboxItem
from monitor.store.sql_report_versions import ReportVersion

log = structlog.get_logger()
FIRST_ISSUE = "初版 (first issue)"
WATCH_INTERVAL = 3600.0  # how often approved months are compared with the store's data (late changes)
WATCH_MONTHS = 13  # this many months back: what the report's trend shows


def stamp_of(version: ReportVersion, scope: str | None = None, data_sha256: str | None = None) -> Stamp:
    def sign(name: str | None, at: float | None, comment: str | None) -> Sign | None:
        return None if name is None or at is None else Sign(name, at, comment or "")

    listed = tuple(Change(**c) for c in json.loads(version.changes))
    return Stamp(
        version.month, version.version, version.status, version.created_at, data_sha256 or version.data_sha256,
        reviewed=sign(version.reviewed_by, version.reviewed_at, version.review_comment),
        approved=sign(version.approved_by, version.approved_at, version.approve_comment),
        supersedes=version.supersedes, changes=listed, scope=scope,
    )  # fmt: skip


class ReportDesk:
    def __init__(
        self,
        store: Store,
        now: Callable[[], float],
        inventory: Callable[[], Inventory],
        wake_outbox: Callable[[], None],
    ) -> None:
        self.store = store
        self.now = now
        self._inventory = inventory
        self._wake_outbox = wake_outbox
        self._lock = asyncio.Lock()  # one state change of the versions at a time in this daemon
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watch: asyncio.Task[None] | None = None

    # --- building ------------------------------------------------------------------------------

    async def build(self, month: str, at: float) -> tuple[Report, dict[str, Any]]:
        """The month's report as of now, stamped with the version's time `at` (so the same data gives the
        same document), and its data."""
        report = await ReportBuilder(self.store, self._inventory()).build(month, self.now())
        report = dataclasses.replace(report, generated_at=at)
        return report, report_data(report)  # type: ignore[return-value]

    async def frozen(self, version: ReportVersion) -> Report:
        """The report the version froze, rebuilt; Refused when the month's data has changed since."""
        report, data = await self.build(version.month, version.created_at)
        if content(data) != content(json.loads(version.data)):
            found = changes(json.loads(version.data), data, [])
            raise Refused(
                f"version {version.version} of {version.month} is stale: the month's data changed since it was "
                f"drafted ({len(found)} differences, e.g. {found[0].item if found else 'generated data'}); "
                "draft it again and review the new draft"
            )
        return report

    async def _get(self, month: str, version: int) -> ReportVersion:
        found = await self.store.report_version(month, version)
        if found is None:
            raise Refused(f"{month} has no version {version}", 404)
        return found

    # --- the workflow ----------------------------------------------------------------------------

    async def versions(self, month: str | None = None) -> list[ReportVersion]:
        return await self.store.report_versions(month)

    async def draft(self, month: str, by: str, reason: str = "") -> ReportVersion:
        """A new draft of a month that is over; the open draft it replaces becomes superseded. A draft
        whose data equals the open draft's, or the approved version's, is not made (409)."""
        year, number = parse_month(month)
        if month_span(year, number)[1] > self.now():
            raise Refused(f"{month} is not over yet: a report can be drafted from the first day of the next month")
        async with self._lock:
            at = self.now()
            report, data = await self.build(month, at)
            if not report.services:
                raise Refused(f"no monitoring data for {month}: nothing to report", 422)
            existing = await self.store.report_versions(month)
            approved = [v for v in existing if v.status == "approved"]
            basis = approved[-1] if approved else None  # the version in force: the one a new draft corrects
            for old in [*(v for v in existing if v.status in ("draft", "reviewed")), *([basis] if basis else [])]:
                if content(json.loads(old.data)) == content(data):
                    raise Refused(f"version {old.version} of {month} ({old.status}) already has this data")
            listed: list[Change] = []
            if basis is not None:
                start, end = month_span(year, number)
                fixes = [c for c in await self.store.corrections(start, end) if c.created_at >= basis.created_at]
                listed = changes(json.loads(basis.data), data, fixes)
                if not reason:
                    reason = reasons(listed) or LATE
            encoded = canonical(data)
            draft = ReportVersion(
                month, 0, "draft", at, by, (reason or FIRST_ISSUE)[:2000], encoded.decode(), sha256(encoded),
                None if basis is None else basis.version, json.dumps([dataclasses.asdict(c) for c in listed],
                                                                     ensure_ascii=False),
            )  # fmt: skip
            made = await self.store.add_report_draft(draft)
        log.info("report_drafted", month=month, version=made.version, by=by, supersedes=made.supersedes)
        return made

    async def review(self, month: str, version: int, by: str, comment: str) -> ReportVersion:
        if not comment.strip():
            raise Refused("a review needs a comment: say what was checked", 422)
        async with self._lock:
            found = await self._get(month, version)
            if found.status != "draft":
                raise Refused(f"version {version} of {month} is {found.status}: only a draft can be reviewed")
            await self.frozen(found)
            if not await self.store.review_report(month, version, by, self.now(), comment.strip()[:2000]):
                raise Refused(f"version {version} of {month} changed meanwhile; look again")
        return await self._get(month, version)

    async def approve(self, month: str, version: int, by: str, comment: str) -> ReportVersion:
        if not comment.strip():
            raise Refused("an approval needs a comment", 422)
        async with self._lock:
            found = await self._get(month, version)
            if found.status != "reviewed":
                raise Refused(
                    f"version {version} of {month} is {found.status}: only a reviewed version can be approved"
                )
            if found.reviewed_by == by:
                raise Refused(
                    f"{by} reviewed version {version}: the approval must come from a second person with the report "
                    "permission (two-person rule)"
                )
            report = await self.frozen(found)
            at = self.now()
            signed = dataclasses.replace(found, status="approved", approved_by=by, approved_at=at,
                                         approve_comment=comment.strip()[:2000])  # fmt: skip
            stamp = stamp_of(signed)
            try:
                pdf_ja, pdf_en = await render_many_async([(report, stamp, "ja"), (report, stamp, "en")])
            except PdfError as exc:  # our failure: nothing is approved, the reviewed version waits
                raise Refused(f"the PDF cannot be rendered here: {exc}", 503) from None
            if not await self.store.approve_report(
                month, version, by, at, signed.approve_comment or "", pdf_ja, pdf_en
            ):
                raise Refused(f"version {version} of {month} changed meanwhile; look again")
        log.info("report_approved", month=month, version=version, reviewed_by=found.reviewed_by, approved_by=by)
        self._spawn(self.distribute(month, version, report))
        return await self._get(month, version)

    # --- after approval: corrections and late data, distribution ---------------------------------

    async def reconcile(self, month: str, by: str, reason: str = "") -> ReportVersion | None:
        """A new draft when the month has an approved version and its data has changed since (a correction,
        a late change); None when nothing changed (or it is drafted already)."""
        existing = await self.store.report_versions(month)
        approved = [v for v in existing if v.status == "approved"]
        if not approved:
            return None
        try:
            return await self.draft(month, by, reason)
        except Refused:  # the same data: approved already, or an open draft has it
            return None

    async def reconcile_recent(self) -> list[ReportVersion]:
        """Drafts for every approved month of the last WATCH_MONTHS whose data changed late."""
        made = []
        approved = {v.month for v in await self.store.report_versions() if v.status == "approved"}
        for year, number in previous_months(*parse_month(_month_of(self.now())), WATCH_MONTHS):
            month = f"{year:04d}-{number:02d}"
            if month in approved and (draft := await self.reconcile(month, "monitor")) is not None:
                detail = {"version": draft.version, "reason": draft.reason}
                await self.store.audit(AuditEntry(self.now(), "monitor", "report.draft", "ok", object=f"report:{month}",
                                                  detail=detail))  # fmt: skip
                made.append(draft)
        return made

    async def distribute(self, month: str, version: int, report: Report | None = None) -> int:
        """Queue each liaison's prefecture variant of an approved version (once: dedup keys), then record
        the version as distributed. `report`: the approved report, when the caller has it."""
        found = await self.store.report_version(month, version)
        if found is None or found.status != "approved":
            return 0
        if report is None:
            try:
                report = await self.frozen(found)
            except Refused as exc:  # the approved data cannot be rebuilt any more: say so, never send other figures
                log.error("report_distribution_impossible", month=month, version=version, error=str(exc))
                await self.store.report_distributed(month, version, self.now(), 0)
                return 0
        inventory = self._inventory()
        config = inventory.reports.distribution
        items: list[OutboxItem] = []
        jobs: list[tuple[Report, Stamp, str]] = []
        recipients = []
        for code, contact_name in sorted(config.liaisons.items()):
            contact = inventory.response.contacts.get(contact_name)
            if contact is None or not contact.email:  # the config check refuses this; a reload may race
                continue
            variant = prefecture_variant(report, code)
            variant_hash = sha256(canonical(report_data(variant)))
            pref = lookup(code)
            scope = code if pref is None else pref.name_ja if config.language == "ja" else pref.name_en
            jobs.append((variant, stamp_of(found, scope, variant_hash), config.language))
            recipients.append((code, contact_name, contact.email, contact.name, scope, variant_hash))
        pdfs = await render_many_async(jobs)  # one child process for all the variants
        now = self.now()
        for (code, contact_name, address, display, scope, variant_hash), pdf in zip(recipients, pdfs, strict=True):
            subject, body = _mail(found, scope, variant_hash, config.language)
            attachment = {"filename": f"availability-{month}-v{version}-{code}.pdf", "content_type": "application/pdf",
                          "data": base64.b64encode(pdf).decode()}  # fmt: skip
            for via in config.via:
                payload = {"to": address, "to_name": display, "subject": subject, "body": body,
                           "attachments": [attachment]}  # fmt: skip
                key = f"report:{month}:v{version}:{code}:{via}:{contact_name}"
                items.append(OutboxItem(key, None, 0, via, contact_name, "report", payload, now, now))
        queued = await self.store.enqueue(items) if items else 0
        await self.store.report_distributed(month, version, self.now(), len(items))
        if queued:
            self._wake_outbox()
        log.info("report_distributed", month=month, version=version, items=len(items), new=queued)
        return queued

    async def resume(self) -> None:
        """Distribution a restart interrupted: approved versions whose variants were not all queued."""
        for month, version in await self.store.undistributed_reports():
            await self.distribute(month, version)

    # --- lifecycle --------------------------------------------------------------------------------

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("report_task_failed", error=repr(task.exception()))  # resumed on the next start

    async def start(self) -> None:
        """On the leader only (HA): one daemon drafts and distributes."""
        if self._watch is None or self._watch.done():
            self._watch = asyncio.create_task(self._watch_loop())

    async def _watch_loop(self) -> None:
        while True:
            try:
                await self.resume()
                await self.reconcile_recent()
            except Exception:
                log.exception("report_watch_failed")
            await asyncio.sleep(WATCH_INTERVAL)

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._watch] if self._watch else [])]
        self._watch = None
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)

    async def settle(self) -> None:
        """Wait for the distributions started (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _month_of(ts: float) -> str:
    year, number = month_of(ts)
    return f"{year:04d}-{number:02d}"


def _mail(version: ReportVersion, scope: str, data_hash: str, lang: str) -> tuple[str, str]:
    if lang == "en":
        subject = f"Monthly availability report {version.month} ({scope}), version {version.version}, approved"
        body = (f"The monthly availability report for {version.month} ({scope}), version {version.version}, was "
                f"reviewed by {version.reviewed_by} and approved by {version.approved_by}. It is attached as a PDF.\n"
                f"SHA-256 of its data: {data_hash}\n")  # fmt: skip
        return subject, body
    subject = f"月次稼働報告 {version.month}（{scope}）第{version.version}版 承認済み"
    body = (f"{version.month} の月次稼働報告（{scope}）第{version.version}版を送付します（PDF添付）。\n"
            f"確認: {version.reviewed_by} / 承認: {version.approved_by}\n"
            f"データのSHA-256: {data_hash}\n")  # fmt: skip
    if version.supersedes is not None:
        body += f"本版は承認済み第{version.supersedes}版を訂正するものです（変更点はPDFに記載）。\n"
    return subject, body
