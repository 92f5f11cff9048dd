"""API of the monthly availability report and of corrections (an outage re-classified as planned)."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from aiohttp import web

from monitor.access.auth import ProblemError
from monitor.availability.html_report import render_html
from monitor.availability.pdf import PdfError, live_stamp, render_pdf_async
from monitor.availability.periods import JST, month_of, month_span, parse_month, previous_months
from monitor.availability.report import ReportBuilder, to_csv, to_json
from monitor.http.errors import body_of
from monitor.http.report_versions import add_version_routes
from monitor.http.services import SERVICES
from monitor.store.sql_reports import Correction
from monitor.timefmt import iso


def _time(value: Any, name: str) -> float:
    """ISO 8601; without an offset it is JST."""
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ProblemError(422, f"invalid {name}", "write ISO 8601, e.g. 2026-11-05T10:00 (JST)") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=JST)).timestamp()


def months_between(start: float, end: float) -> list[tuple[int, int]]:
    """The JST months a span [start, end) touches."""
    months, (year, month) = [], month_of(start)
    while month_span(year, month)[0] < end:
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def pdf_response(body: bytes, filename: str) -> web.Response:
    return web.Response(body=body, content_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="{filename}"'})  # fmt: skip


async def rendered(work: Awaitable[bytes]) -> bytes:
    """A PDF, or a 503 saying the renderer is missing here (our failure, not the caller's request)."""
    try:
        return await work
    except PdfError as exc:
        raise ProblemError(503, "PDF renderer unavailable", str(exc)) from None


def add_report_routes(app: web.Application) -> None:
    services = app[SERVICES]
    guard = services.guard

    async def months(request: web.Request) -> web.Response:
        await guard.require(request, "read")
        now = guard.clock.now()
        labels = [f"{y:04d}-{m:02d}" for y, m in previous_months(*month_of(now), 13)]
        known = sorted({*labels, *await services.store.rolled_up_months()}, reverse=True)
        return web.json_response({"months": [
            {"month": m, "html": f"/api/v1/reports/{m}?format=html", "csv": f"/api/v1/reports/{m}?format=csv",
             "json": f"/api/v1/reports/{m}?format=json", "pdf": f"/api/v1/reports/{m}?format=pdf",
             "versions": f"/api/v1/reports/{m}/versions"} for m in known]})  # fmt: skip

    async def report(request: web.Request) -> web.StreamResponse:
        await guard.require(request, "read")
        month = request.match_info["month"]
        try:
            parse_month(month)
        except ValueError as exc:
            raise ProblemError(400, "invalid month", str(exc)) from None
        fmt = request.query.get("format", "html")
        if fmt not in ("html", "csv", "json", "pdf"):
            raise ProblemError(400, "invalid format", "format must be html, csv, json or pdf")
        lang = request.query.get("lang", "ja")
        if lang not in ("ja", "en"):
            raise ProblemError(400, "invalid lang", "lang must be ja or en")
        built = await ReportBuilder(services.store, services.inventory()).build(month, guard.clock.now())
        if fmt == "json":
            return web.Response(text=to_json(built), content_type="application/json")
        if fmt == "csv":
            disposition = f'attachment; filename="availability-{month}.csv"'
            return web.Response(body=to_csv(built), content_type="text/csv", charset="utf-8",
                                headers={"Content-Disposition": disposition})  # fmt: skip
        if fmt == "pdf":  # computed now: stamped as no version (the versions' PDFs are under /versions)
            body = await rendered(render_pdf_async(built, live_stamp(built), lang))
            return pdf_response(body, f"availability-{month}.pdf")
        return web.Response(text=render_html(built, lang), content_type="text/html")

    async def corrections(request: web.Request) -> web.Response:
        await guard.require(request, "read")
        month = request.query.get("month")
        try:
            start, end = month_span(*parse_month(month)) if month else (0.0, 1e12)
        except ValueError as exc:
            raise ProblemError(400, "invalid month", str(exc)) from None
        items = await services.store.corrections(start, end)
        return web.json_response({"corrections": [{**asdict(c), "start": iso(c.start), "end": iso(c.end),
                                                   "created_at": iso(c.created_at)} for c in items]})  # fmt: skip

    async def add_correction(request: web.Request) -> web.Response:
        who = await guard.require(request, "availability.correct", "availability.correct")
        body = await body_of(request)
        service, reason = str(body.get("service", "")), str(body.get("reason", "")).strip()
        if service not in services.inventory().services:
            await guard.audit(request, who, "availability.correct", "invalid", service, error="unknown service")
            raise ProblemError(422, "unknown service", f'no service named "{service}"')
        if not reason:
            raise ProblemError(422, "reason required", "say why the outage counts as planned")
        start, end = _time(body.get("start"), "start"), _time(body.get("end"), "end")
        if end <= start:
            raise ProblemError(422, "invalid span", "end must be after start")
        correction = Correction(service, start, end, reason[:2000], who.name, guard.clock.now())
        correction_id = await services.store.add_correction(correction)
        await guard.audit(request, who, "availability.correct", "ok", f"service:{service}",
                          start=iso(start), end=iso(end), reason=reason[:500])  # fmt: skip
        drafted = []  # an approved month the correction changes gets a new draft version at once
        for y, m in months_between(start, end):
            made = await services.reports.reconcile(f"{y:04d}-{m:02d}", who.name, reason[:2000])
            if made is not None:
                drafted.append({"month": made.month, "version": made.version, "supersedes": made.supersedes})
                await guard.audit(request, who, "report.draft", "ok", f"report:{made.month}:v{made.version}",
                                  reason=made.reason[:500], correction=correction_id)  # fmt: skip
        return web.json_response(
            {"id": correction_id, "service": service, "start": iso(start), "end": iso(end), "report_versions": drafted},
            status=201,
        )

    add_version_routes(app)  # the versions' routes first: /reports/{month}/versions is not a month's report
    app.router.add_get("/api/v1/reports", months)
    app.router.add_get(r"/api/v1/reports/{month}", report)
    app.router.add_get("/api/v1/corrections", corrections)
    app.router.add_post("/api/v1/corrections", add_correction)
