"""The public status page (`/status`, `/status.json`, `/status/feed.xml`): no login, read-only; also the whole
app of status_page.listen (app.build_status_app)."""

from __future__ import annotations

from aiohttp import web

from monitor.http.services import SERVICES, SHIELD
from monitor.status.page import notice_json
from monitor.status.render import render_atom, render_html
from monitor.timefmt import iso

PUBLIC_HEADERS = {
    "Cache-Control": "public, max-age=15",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'",
    "Referrer-Policy": "no-referrer",
}


def add_status_routes(app: web.Application) -> None:
    services = app[SERVICES]
    view = services.status_view
    shield = app[SHIELD]

    def days() -> int:
        page = services.inventory().status_page
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
        config = services.inventory().status_page
        title = config.title if config is not None else "お知らせ"
        updated = iso(max((n.updated_at for n in notices), default=view.now()))
        xml = render_atom([notice_json(n) for n in notices], title, updated or "")
        return web.Response(text=xml, content_type="application/atom+xml", charset="utf-8", headers=PUBLIC_HEADERS)

    app.router.add_get("/status", page)
    app.router.add_get("/status.json", as_json)
    app.router.add_get("/status/feed.xml", feed)
