"""The daemon's own endpoints: /metrics (Prometheus), /healthz (alive; degraded while this host keeps
checks from being watched), /readyz (started, and the store's file still the open database) and
POST /-/reload (re-read the config)."""

from __future__ import annotations

from aiohttp import web

from monitor.http.services import SERVICES
from monitor.metrics.body import BodyCache
from monitor.metrics.negotiation import choose


def add_operation_routes(app: web.Application) -> None:
    services = app[SERVICES]
    guard = services.guard
    cache = BodyCache(services.registry, services.state_collector)

    async def metrics(request: web.Request) -> web.StreamResponse:
        if guard.tokens.auth.protect_metrics:
            await guard.require(request, "read")
        gzipped = "gzip" in request.headers.get("Accept-Encoding", "")
        choice = choose(request.headers.get("Accept"))  # text, OpenMetrics or protobuf, as Prometheus asks
        body = await cache.get(choice.format, gzipped)
        headers = {"Content-Type": choice.content_type, "Vary": "Accept, Accept-Encoding"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def healthz(request: web.Request) -> web.Response:
        if guard.tokens.auth.protect_metrics:
            await guard.require(request, "read")
        gaps = services.engine.gap_summary()
        if gaps:  # alive, but some checks are not being watched because of this host (EMFILE, local firewall)
            return web.json_response(
                {"status": "degraded", "monitoring_gap": {"checks": sum(gaps.values()), "by_errno": gaps}}
            )
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        if services.store.file_problem is not None:  # writes would go to a file nobody will find again
            return web.json_response({"status": "store_file_lost", "error": services.store.file_problem}, status=503)
        if services.ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "starting"}, status=503)

    async def reload(request: web.Request) -> web.Response:
        who = await guard.require(request, "config.reload", "config.reload")
        # allow_empty=1: the operator means it, a config with no targets, services or tokens is applied
        ok, errors = await services.reload(request.query.get("allow_empty", "") in ("1", "true", "yes"))
        await guard.audit(request, who, "config.reload", "ok" if ok else "invalid", None, errors=errors[:20])
        if ok:
            return web.json_response({"status": "success"})
        return web.json_response({"status": "error", "errors": errors}, status=400)

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_post("/-/reload", reload)
