"""The notices API (お知らせ, `/api/v1/notices`): reading needs `read`, every write `notice.write`, all audited.
The public form of a notice is on the status page (status.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from monitor.access.auth import ProblemError
from monitor.availability.periods import JST
from monitor.http.errors import body_of, whole_number
from monitor.http.services import SERVICES
from monitor.status.page import notice_json
from monitor.store.records import NOTICE_STATUSES, Notice
from monitor.timefmt import iso

# What a write route does: (notice id, 0 when creating; who; the fields) -> the notice afterwards
Write = Callable[[int, str, dict[str, Any]], Awaitable[Notice]]


def notice_admin_json(notice: Notice) -> dict[str, Any]:
    """For operators: the public form plus who wrote and published it and what it is tied to."""
    return {
        **notice_json(notice),
        "incident_id": notice.incident_id,
        "maintenance_id": notice.maintenance_id,
        "created_at": iso(notice.created_at),
        "created_by": notice.created_by,
        "updated_by": notice.updated_by,
        "published_by": notice.published_by,
        "closed_at": iso(notice.closed_at),
    }


def _times(body: dict[str, Any]) -> dict[str, Any]:
    """Notice fields from a JSON body: ISO times (JST without an offset) become epoch seconds."""
    values = dict(body)
    for key in ("starts_at", "ends_at", "estimate_at"):
        if isinstance(values.get(key), str):
            try:
                parsed = datetime.fromisoformat(values[key])
            except ValueError:
                raise ProblemError(422, "invalid notice", f"{key}: not an ISO 8601 time") from None
            values[key] = (parsed if parsed.tzinfo else parsed.replace(tzinfo=JST)).timestamp()
    for key in ("services", "prefectures"):
        if key in values and not (isinstance(values[key], list) and all(isinstance(x, str) for x in values[key])):
            raise ProblemError(422, "invalid notice", f"{key}: must be a list of strings")
    for key in ("title", "title_en", "body", "body_en"):
        if key in values and values[key] is not None and not isinstance(values[key], str):
            raise ProblemError(422, "invalid notice", f"{key}: must be text")
    return values


def add_notice_routes(app: web.Application) -> None:
    services = app[SERVICES]
    guard = services.guard
    desk = services.notices

    async def listing(request: web.Request) -> web.Response:
        await guard.require(request, "read")
        wanted = request.query.get("status")
        if wanted is not None and wanted not in NOTICE_STATUSES:
            raise ProblemError(400, "status must be draft, published or closed")
        limit = min(max(whole_number(request.query.get("limit", "100"), "limit"), 0), 1000)
        offset = max(whole_number(request.query.get("offset", "0"), "offset"), 0)
        items, total = await desk.store.list_notices((wanted,) if wanted else NOTICE_STATUSES, limit, offset)
        return web.json_response({"count": total, "offset": offset, "notices": [notice_admin_json(n) for n in items]})

    def write(action: str, run: Write, status: int = 200) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            notice_id = request.match_info.get("id")
            obj = f"notice:{notice_id}" if notice_id else None
            who = await guard.require(request, "notice.write", f"notice.{action}", obj)
            body = _times(await body_of(request))
            work = run(int(notice_id) if notice_id and notice_id.isdigit() else 0, who.name, body)
            notice = await guard.attempt(request, who, f"notice.{action}", obj, work)
            await guard.audit(
                request,
                who,
                f"notice.{action}",
                "ok",
                f"notice:{notice.id}",
                status=notice.status,
                revision=notice.revision,
                title=notice.title,
            )
            return web.json_response(notice_admin_json(notice), status=status)

        return handler

    app.router.add_get("/api/v1/notices", listing)
    app.router.add_post("/api/v1/notices", write("create", lambda _i, a, b: desk.create(a, b), 201))
    app.router.add_patch(r"/api/v1/notices/{id:\d+}", write("update", desk.update))
    app.router.add_post(r"/api/v1/notices/{id:\d+}/publish", write("publish", lambda i, a, _b: desk.publish(i, a)))
