"""The daemon's HTTP application: /metrics, /healthz, /readyz, /-/reload, the JSON API under /api/v1, the
console at / and the public status page, one module per resource, over the collaborators in HttpServices."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from monitor.access.auth import ProblemError
from monitor.http.action_links import add_action_link_routes
from monitor.http.cache import ReadShield
from monitor.http.console import add_console_routes
from monitor.http.errors import error_middleware
from monitor.http.incidents import add_incident_routes
from monitor.http.notices import add_notice_routes
from monitor.http.oncall import add_oncall_routes
from monitor.http.openapi import document
from monitor.http.operations import add_operation_routes
from monitor.http.reports import add_report_routes
from monitor.http.security import add_security_routes
from monitor.http.services import SERVICES, SHIELD, HttpServices
from monitor.http.session import add_session_routes
from monitor.http.status import add_status_routes
from monitor.http.targets import add_target_routes

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
READS = ("GET", "HEAD", "OPTIONS")


@web.middleware
async def standby_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Only the HA leader acts, and this is the one place HTTP applies that rule: a standby shows what it
    sees but refuses every write to the API, which it would lose (it pages nothing, its store writes are
    the leader's to make)."""
    if request.method not in READS and request.path.startswith("/api/v1/") and not request.app[SERVICES].leader():
        raise ProblemError(503, "standby", "this daemon is the HA standby: send actions to the leader")
    return await handler(request)


@web.middleware
async def writes_touch_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A write that reached its handler, answered or refused, may change what the cached reads show: they
    are dropped."""
    try:
        return await handler(request)
    finally:
        if request.method not in READS:
            request.app[SERVICES].events.touch()


def read_shield(services: HttpServices) -> ReadShield:
    return ReadShield(
        lambda: services.inventory().daemon.http, lambda: services.events.version, services.gate.metrics.limited.inc
    )


def build_app(services: HttpServices) -> web.Application:
    app = web.Application(middlewares=[error_middleware(services.guard), standby_middleware, writes_touch_middleware])
    app[SERVICES] = services
    app[SHIELD] = read_shield(services)
    add_operation_routes(app)
    add_target_routes(app)
    add_incident_routes(app)
    add_report_routes(app)
    add_security_routes(app)
    add_status_routes(app)
    add_notice_routes(app)
    add_oncall_routes(app)
    add_session_routes(app)
    add_console_routes(app)
    add_action_link_routes(app)
    for add_routes in services.extra_routes:
        add_routes(app)

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(document(app))

    app.router.add_get("/api/v1/openapi.json", openapi)
    return app


def build_status_app(services: HttpServices) -> web.Application:
    """The public status page alone (status_page.listen, e.g. on the LGWAN side), with a cache of its own."""
    app = web.Application(middlewares=[error_middleware(services.guard)])
    app[SERVICES] = services
    app[SHIELD] = read_shield(services)
    add_status_routes(app)
    return app
