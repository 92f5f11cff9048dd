"""The daemon's HTTP surface: /metrics, /healthz, /readyz, /-/reload and the JSON API under /api/v1."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.api_cache import ReadShield
from monitor.api_errors import error_middleware
from monitor.api_incidents import add_incident_routes
from monitor.api_reports import add_report_routes
from monitor.api_security import add_security_routes
from monitor.api_session import add_session_routes
from monitor.api_status import add_notice_routes, add_status_routes
from monitor.auth import Guard, ProblemError
from monitor.engine import CheckRuntime, Engine
from monitor.metrics import StateCollector, exposition
from monitor.openapi import document
from monitor.state import State
from monitor.timefmt import iso

if TYPE_CHECKING:
    from monitor.api_console import EventHub
    from monitor.api_listener import ConnectionGate

# The format exposition() writes (prometheus-client 0.26 would announce a newer one by default).
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
# Worst first: how a target's checks add up to one state for lists and boards.
SEVERITY = (State.DOWN, State.UNREACHABLE, State.DEGRADED, State.MAINTENANCE, State.UNKNOWN, State.UP)


class StoreHealth(Protocol):
    file_problem: str | None  # the store's file was deleted or replaced under us (SQLiteStore.check_file)


class DaemonView(Protocol):
    engine: Engine
    registry: CollectorRegistry
    state_collector: StateCollector
    ready: bool
    route_hooks: list[Callable[[web.Application], None]]
    guard: Guard
    events: EventHub
    http_gate: ConnectionGate

    @property
    def leader(self) -> bool: ...

    @property
    def store(self) -> StoreHealth: ...

    async def reload(self, allow_empty: bool = False) -> tuple[bool, list[str]]: ...


def check_json(rt: CheckRuntime, history: bool = False) -> dict[str, Any]:
    check = rt.check
    out: dict[str, Any] = {
        "id": check.id,
        "name": check.name,
        "module": check.module,
        "kind": check.kind,
        "state": rt.state.value,
        "since": iso(rt.since),
        "reason": rt.reason,
        "root_cause": rt.root_cause,
        "flapping": rt.machine.flapping,
        "interval_seconds": check.interval,
        "reachability": check.reachability,
        "probes_total": rt.probes_total,
        "failures_total": rt.failures_total,
        "monitoring_gap_since": iso(rt.gap_since),
        "last": None,
    }
    if rt.last is not None:
        r = rt.last
        out["last"] = {
            "ok": r.ok,
            "error": r.error,
            "degraded": r.degraded,
            "finished_at": iso(r.finished_at),
            "duration_seconds": round(r.duration, 6),
            "phases": {k: round(v, 6) for k, v in r.phases.items()},
            "values": r.values,
            "info": r.info,
        }
    if history:
        out["recent"] = [{"at": iso(t), "ok": ok, "duration_seconds": round(d, 6)} for t, ok, d in rt.recent]
    return out


def target_state(engine: Engine, name: str) -> State:
    states = {engine.checks[c].state for c in engine.inventory.checks_by_target.get(name, ())}
    return next((s for s in SEVERITY if s in states), State.UNKNOWN)


def _matches(labels: Mapping[str, str], query: Mapping[str, str]) -> bool:
    return all(
        labels.get(key) == query[key] for key in ("tier", "prefecture", "system", "role", "site") if key in query
    )


def _page(items: list[Any], query: Mapping[str, str]) -> tuple[list[Any], int, int]:
    """`offset` and `limit` query parameters (default: everything)."""
    try:
        offset = int(query.get("offset", 0))
        limit = int(query.get("limit", len(items)))
    except ValueError:
        raise ProblemError(400, "invalid paging", "offset and limit must be whole numbers") from None
    if offset < 0 or limit < 0:
        raise ProblemError(400, "invalid paging", "offset and limit must not be negative")
    return items[offset : offset + limit], offset, limit


def targets_json(engine: Engine, query: Mapping[str, str]) -> dict[str, Any]:
    wanted_state = query.get("state")
    text = query.get("q", "").lower()
    matched = []
    for name, target in engine.inventory.targets.items():
        if name in engine.inventory.context:  # another shard's: listed there
            continue
        if text and text not in name.lower() and text not in target.address:
            continue
        if not _matches(target.labels, query):
            continue
        state = target_state(engine, name)
        if wanted_state and state.value != wanted_state:
            continue
        matched.append((name, target, state))
    page, offset, _ = _page(matched, query)
    items = []
    for name, target, state in page:
        checks = [engine.checks[c] for c in engine.inventory.checks_by_target.get(name, ())]
        items.append(
            {
                "name": name,
                "address": target.address,
                "hostname": target.hostname,
                "description": target.description,
                "site": target.site,
                "labels": dict(target.labels),
                "parent": target.parent,
                "state": state.value,
                "root_cause": engine.root_cause(name) if state == State.UNREACHABLE else None,
                "checks": [check_json(rt, history="history" in query) for rt in checks],
            }
        )
    return {"count": len(matched), "offset": offset, "targets": items}


def services_json(engine: Engine, query: Mapping[str, str]) -> dict[str, Any]:
    wanted_state = query.get("state")
    matched = [
        srt
        for srt in engine.services.values()
        if (not wanted_state or srt.state.value == wanted_state) and _matches(srt.service.labels, query)
    ]
    page, offset, _ = _page(matched, query)
    items = []
    for srt in page:
        svc = srt.service
        name = svc.name
        members = [engine.checks[c] for c in svc.check_ids]
        items.append(
            {
                "name": name,
                "display_name": svc.display_name,
                "display_name_en": svc.display_name_en,
                "labels": dict(svc.labels),
                "rule": svc.rule if isinstance(svc.rule, str) else {"at_least": svc.rule},
                "state": srt.state.value,
                "since": iso(srt.since),
                "checks": [
                    {"id": m.check.id, "state": m.state.value, "reason": m.reason, "root_cause": m.root_cause}
                    for m in members
                ],
            }
        )
    return {"count": len(matched), "offset": offset, "services": items}


class MetricsCache:
    """/metrics: a snapshot of the kept text is taken on the event loop (cheap), joined and compressed
    in a thread, and shared by scrapes that overlap (Prometheus HA pairs)."""

    def __init__(self, daemon: DaemonView, max_age: float = 1.0) -> None:
        self._daemon = daemon
        self._max_age = max_age
        self._body = b""
        self._gzipped: bytes | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def get(self, gzipped: bool) -> bytes:
        async with self._lock:
            if time.monotonic() - self._at > self._max_age:
                snapshot = self._daemon.state_collector.snapshot()
                self._body = await asyncio.to_thread(
                    exposition, self._daemon.registry, self._daemon.state_collector, snapshot
                )
                self._gzipped = None
                self._at = time.monotonic()
            if not gzipped:
                return self._body
            if self._gzipped is None:
                self._gzipped = await asyncio.to_thread(gzip.compress, self._body, 1)
            return self._gzipped


def build_app(daemon: DaemonView) -> web.Application:
    @web.middleware
    async def standby_middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """An HA standby shows what it sees but takes no actions: they would be lost (it pages nothing)."""
        if (
            request.method not in ("GET", "HEAD", "OPTIONS")
            and request.path.startswith("/api/v1/")
            and not daemon.leader
        ):
            raise ProblemError(503, "standby", "this daemon is the HA standby: send actions to the leader")
        try:
            return await handler(request)
        finally:
            if request.method not in ("GET", "HEAD", "OPTIONS"):
                daemon.events.touch()  # a write may change what the cached reads show

    guard = daemon.guard
    app = web.Application(middlewares=[error_middleware(guard), standby_middleware])
    cache = MetricsCache(daemon)
    shield = ReadShield(
        lambda: daemon.engine.inventory.daemon.http, lambda: daemon.events.version, daemon.http_gate.metrics.limited.inc
    )

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
        gaps = daemon.engine.gap_summary()
        if gaps:  # alive, but some checks are not being watched because of this host (EMFILE, local firewall)
            return web.json_response(
                {"status": "degraded", "monitoring_gap": {"checks": sum(gaps.values()), "by_errno": gaps}}
            )
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        if daemon.store.file_problem is not None:  # writes would go to a file nobody will find again
            return web.json_response({"status": "store_file_lost", "error": daemon.store.file_problem}, status=503)
        if daemon.ready:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "starting"}, status=503)

    async def reload(request: web.Request) -> web.Response:
        who = await guard.require(request, "config.reload", "config.reload")
        # allow_empty=1: the operator means it, a config with no targets, services or tokens is applied
        ok, errors = await daemon.reload(allow_empty=request.query.get("allow_empty", "") in ("1", "true", "yes"))
        await guard.audit(request, who, "config.reload", "ok" if ok else "invalid", None, errors=errors[:20])
        if ok:
            return web.json_response({"status": "success"})
        return web.json_response({"status": "error", "errors": errors}, status=400)

    async def targets(request: web.Request) -> web.Response:
        await guard.require(request, "read")

        async def build() -> web.Response:
            return web.json_response(targets_json(daemon.engine, request.query))

        return await shield.respond(request, build)

    async def services(request: web.Request) -> web.Response:
        await guard.require(request, "read")

        async def build() -> web.Response:
            return web.json_response(services_json(daemon.engine, request.query))

        return await shield.respond(request, build)

    async def check(request: web.Request) -> web.Response:
        await guard.require(request, "read")
        rt = daemon.engine.checks.get(request.match_info["check_id"])
        if rt is None:
            raise ProblemError(404, "no such check", request.match_info["check_id"])
        return web.json_response(check_json(rt, history=True))

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_post("/-/reload", reload)
    app.router.add_get("/api/v1/targets", targets)
    app.router.add_get("/api/v1/services", services)
    app.router.add_get("/api/v1/checks/{check_id:.+}", check)
    add_incident_routes(app, daemon)  # type: ignore[arg-type]
    add_report_routes(app, daemon)  # type: ignore[arg-type]
    add_security_routes(app, daemon)  # type: ignore[arg-type]
    add_status_routes(app, daemon, shield)  # type: ignore[arg-type]
    add_notice_routes(app, daemon)  # type: ignore[arg-type]
    add_session_routes(app, daemon)
    from monitor.api_console import add_console_routes  # it builds on this module's helpers

    add_console_routes(app, daemon, shield)  # type: ignore[arg-type]
    for hook in daemon.route_hooks:
        hook(app)

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(document(app))

    app.router.add_get("/api/v1/openapi.json", openapi)
    return app
