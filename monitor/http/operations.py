"""The daemon's own endpoints: /metrics (Prometheus), /healthz (alive; degraded while this host keeps
checks from being watched), /readyz (started, and the store's file still the open database) and
POST /-/reload (re-read the config)."""

from __future__ import annotations

import asyncio
import gzip
import time

from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.http.services import SERVICES
from monitor.metrics.exposition import StateCollector, exposition

# The format exposition() writes (prometheus-client 0.26 would announce a newer one by default).
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


class MetricsCache:
    """/metrics: a snapshot of the kept text is taken on the event loop (cheap), joined and compressed
    in a thread, and shared by scrapes that overlap (Prometheus HA pairs)."""

    def __init__(self, registry: CollectorRegistry, collector: StateCollector, max_age: float = 1.0) -> None:
        self._registry = registry
        self._collector = collector
        self._max_age = max_age
        self._body = b""
        self._gzipped: bytes | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def get(self, gzipped: bool) -> bytes:
        async with self._lock:
            if time.monotonic() - self._at > self._max_age:
                snapshot = self._collector.snapshot()
                self._body = await asyncio.to_thread(exposition, self._registry, self._collector, snapshot)
                self._gzipped = None
                self._at = time.monotonic()
            if not gzipped:
                return self._body
            if self._gzipped is None:
                self._gzipped = await asyncio.to_thread(gzip.compress, self._body, 1)
            return self._gzipped


def add_operation_routes(app: web.Application) -> None:
    services = app[SERVICES]
    guard = services.guard
    cache = MetricsCache(services.registry, services.state_collector)

    async def metrics(request: web.Request) -> web.StreamResponse:
        if guard.tokens.auth.protect_metrics:
            await guard.require(request, "read")
        gzipped = "gzip" in request.headers.get("Accept-Encoding", "")
        body = await cache.get(gzipped)
        headers = {"Content-Type": TEXT_FORMAT, **({"Content-Encoding": "gzip"} if gzipped else {})}
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
