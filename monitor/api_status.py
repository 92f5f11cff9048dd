"""The public status page (`/status`, `/status.json`, `/status/feed.xml`: no login, read-only) and the
notices API (`/api/v1/notices`: reading needs `read`, every write `notice.write`, all audited)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from monitor.api_cache import ReadShield
from monitor.api_incidents import _int, body_of
from monitor.auth import Guard, ProblemError
from monitor.status.notices import NoticeDesk
from monitor.status.page import StatusView, notice_json
from monitor.status.render import render_atom, render_html
from monitor.store.records import NOTICE_STATUSES, Notice
from monitor.timefmt import iso

if TYPE_CHECKING:
    from monitor.api_console import EventHub
    from monitor.api_listener import ConnectionGate

PUBLIC_HEADERS = {
    "Cache-Control": "public, max-age=15",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'",
    "Referrer-Policy": "no-referrer",
}


class Daemonish(Protocol):
    guard: Guard
    events: EventHub
    http_gate: ConnectionGate
    notices: NoticeDesk
    status_view: StatusView
    inventory: Any


def add_status_routes(app: web.Application, daemon: Daemonish, shield: ReadShield | None = None) -> None:
    """The public pages only (also the whole app of status_page.listen)."""
    view = daemon.status_view
    if shield is None:
        shield = ReadShield(
            lambda: daemon.inventory.daemon.http, lambda: daemon.events.version, daemon.http_gate.metrics.limited.inc
        )

    def days() -> int:
        page = daemon.inventory.status_page
        return int(page.history_days) if page is not None else 90

    async def page(request: web.Request) -> web.Response:
        lang = "en" if request.query.get("lang") == "en" else "ja"

        async def build() -> web.Response:
            html = render_html(await view.snapshot(), lang, days())
            return web.Response(text=html, content_type="text/html", charset="utf-8", headers=PUBLIC_HEADERS)

        return await shield.respond(request, build)

    async def as_json(request: web.Request) -> web.Response:
        async def build() -> web.Response:
            return web.json_response(await view.snapshot(), headers=PUBLIC_HEADERS)

        return await shield.respond(request, build)

    async def feed(request: web.Request) -> web.Response:
        notices, _ = await view.store.list_notices(("published", "closed"), 50)
        config = daemon.inventory.status_page
        title = config.title if config is not None else "お知らせ"
        updated = iso(max((n.updated_at for n in notices), default=view.now()))
        xml = render_atom([notice_json(n) for n in notices], title, updated or "")
        return web.Response(text=xml, content_type="application/atom+xml", charset="utf-8", headers=PUBLIC_HEADERS)

    app.router.add_get("/status", page)
    app.router.add_get("/status.json", as_json)
    app.router.add_get("/status/feed.xml", feed)


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
    from datetime import datetime

    from monitor.availability.periods import JST

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


def add_notice_routes(app: web.Application, daemon: Daemonish) -> None:
    guard = daemon.guard
    desk = daemon.notices

    async def listing(request: web.Request) -> web.Response:
        await guard.require(request, "read")
        wanted = request.query.get("status")
        if wanted is not None and wanted not in NOTICE_STATUSES:
            raise ProblemError(400, "status must be draft, published or closed")
        limit = min(max(_int(request.query.get("limit", "100"), "limit"), 0), 1000)
        offset = max(_int(request.query.get("offset", "0"), "offset"), 0)
        items, total = await desk.store.list_notices((wanted,) if wanted else NOTICE_STATUSES, limit, offset)
        return web.json_response({"count": total, "offset": offset, "notices": [notice_admin_json(n) for n in items]})

    def write(action: str, run: Any, status: int = 200) -> Any:
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
