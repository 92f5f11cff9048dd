"""API of the monthly report's versions (availability/versions.py): list, draft, review, approve, and each
version's PDF and its data exactly as hashed (so `sha256sum` of the download is the printed hash).
Review and approval need the `report` permission; every attempt is audited, refusals with their reason."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

from monitor.access.auth import ProblemError, Refused
from monitor.availability.pdf import PdfError, render_pdf_async
from monitor.availability.periods import parse_month
from monitor.availability.versions import stamp_of
from monitor.http.errors import body_of
from monitor.http.services import SERVICES
from monitor.store.sql_report_versions import ReportVersion
from monitor.timefmt import iso

BASE = "/api/v1/reports/{month}/versions"


def version_json(v: ReportVersion) -> dict[str, Any]:
    base = f"/api/v1/reports/{v.month}/versions/{v.version}"

    def sign(by: str | None, at: float | None, comment: str | None) -> dict[str, Any] | None:
        return None if by is None else {"by": by, "at": iso(at), "comment": comment}

    return {
        "month": v.month, "version": v.version, "status": v.status, "created_at": iso(v.created_at),
        "created_by": v.created_by, "reason": v.reason, "data_sha256": v.data_sha256, "supersedes": v.supersedes,
        "changes": json.loads(v.changes), "reviewed": sign(v.reviewed_by, v.reviewed_at, v.review_comment),
        "approved": sign(v.approved_by, v.approved_at, v.approve_comment),
        "links": {"pdf": f"{base}?format=pdf", "pdf_en": f"{base}?format=pdf&lang=en", "data": f"{base}?format=data"},
    }  # fmt: skip


def _month(request: web.Request) -> str:
    month = request.match_info["month"]
    try:
        parse_month(month)
    except ValueError as exc:
        raise ProblemError(400, "invalid month", str(exc)) from None
    return month


def _number(request: web.Request) -> int:
    text = request.match_info["version"]
    if not text.isdigit() or not 0 < int(text) < 1_000_000:
        raise ProblemError(400, "invalid version", "a version is a positive whole number")
    return int(text)


def _comment(body: dict[str, Any]) -> str:
    comment = body.get("comment")
    if not isinstance(comment, str) or not comment.strip():
        raise ProblemError(422, "comment required", "say what you checked (review) or why you approve (approval)")
    return comment.strip()


def add_version_routes(app: web.Application) -> None:
    services = app[SERVICES]
    guard, desk = services.guard, services.reports

    async def listing(request: web.Request) -> web.Response:
        await guard.require(request, "read")
        month = _month(request)
        return web.json_response({"month": month, "versions": [version_json(v) for v in await desk.versions(month)]})

    async def all_versions(request: web.Request) -> web.Response:
        """Every month with versions: which are approved, by whom (the console's page)."""
        await guard.require(request, "read")
        return web.json_response({"versions": [version_json(v) for v in await desk.versions()]})

    async def draft(request: web.Request) -> web.Response:
        who = await guard.require(request, "report", "report.draft", f"report:{request.match_info['month']}")
        month = _month(request)
        body = await body_of(request)
        reason = str(body.get("reason") or "").strip()[:2000]
        made = await guard.attempt(request, who, "report.draft", f"report:{month}", desk.draft(month, who.name, reason))
        obj = f"report:{month}:v{made.version}"
        await guard.audit(request, who, "report.draft", "ok", obj, data_sha256=made.data_sha256, reason=made.reason)
        return web.json_response(version_json(made), status=201)

    async def one(request: web.Request) -> web.StreamResponse:
        await guard.require(request, "read")
        month, number = _month(request), _number(request)
        fmt, lang = request.query.get("format", "json"), request.query.get("lang", "ja")
        if fmt not in ("json", "data", "pdf"):
            raise ProblemError(400, "invalid format", "format must be json, data or pdf")
        if lang not in ("ja", "en"):
            raise ProblemError(400, "invalid lang", "lang must be ja or en")
        found = await services.store.report_version(month, number, pdfs=fmt in ("json", "pdf"))
        if found is None:
            raise ProblemError(404, "no such version", f"{month} has no version {number}")
        if fmt == "json":  # with the stored PDFs' own SHA-256: `sha256sum` of a signed copy is checked against it
            stored_pdfs = {"ja": found.pdf_ja, "en": found.pdf_en}
            pdf_sha256 = {k: hashlib.sha256(v).hexdigest() for k, v in stored_pdfs.items() if v is not None}
            return web.json_response({**version_json(found), "pdf_sha256": pdf_sha256 or None})
        if fmt == "data":  # the bytes that were hashed, unchanged
            return web.Response(body=found.data.encode(), content_type="application/json", charset="utf-8")
        stored = found.pdf_ja if lang == "ja" else found.pdf_en
        if stored is None:  # a draft or a reviewed version: printed now, from the data it froze
            try:
                report = await desk.frozen(found)
            except Refused as exc:
                raise ProblemError(409, "stale draft", str(exc)) from None
            try:
                stored = await render_pdf_async(report, stamp_of(found), lang)
            except PdfError as exc:
                raise ProblemError(503, "PDF renderer unavailable", str(exc)) from None
        name = f"availability-{month}-v{number}{'' if lang == 'ja' else '-en'}.pdf"
        return web.Response(body=stored, content_type="application/pdf",
                            headers={"Content-Disposition": f'inline; filename="{name}"'})  # fmt: skip

    def signing(action: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            obj = f"report:{request.match_info['month']}:v{request.match_info['version']}"
            who = await guard.require(request, "report", f"report.{action}", obj)  # before the input: 401/403 first
            month, number = _month(request), _number(request)
            comment = _comment(await body_of(request))
            step = desk.review if action == "review" else desk.approve
            done = await guard.attempt(request, who, f"report.{action}", obj, step(month, number, who.name, comment))
            await guard.audit(request, who, f"report.{action}", "ok", obj, comment=comment[:500],
                              data_sha256=done.data_sha256)  # fmt: skip
            return web.json_response(version_json(done))

        return handler

    app.router.add_get("/api/v1/report-versions", all_versions)
    app.router.add_get(BASE, listing)
    app.router.add_post(BASE, draft)
    app.router.add_get(BASE + "/{version}", one)
    app.router.add_post(BASE + "/{version}/review", signing("review"))
    app.router.add_post(BASE + "/{version}/approve", signing("approve"))
