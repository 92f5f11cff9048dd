"""Targets, services and checks as the engine sees them now (`/api/v1/targets`, `/api/v1/services`,
`/api/v1/checks/{id}`), and how a target's checks add up to one state (also for the console's board)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from monitor.access.auth import ProblemError
from monitor.core.engine import CheckRuntime, Engine
from monitor.core.state import State
from monitor.http.services import SERVICES, SHIELD
from monitor.timefmt import iso

# Worst first: how a target's checks add up to one state for lists and boards.
SEVERITY = (State.DOWN, State.UNREACHABLE, State.DEGRADED, State.MAINTENANCE, State.UNKNOWN, State.UP)


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


def add_target_routes(app: web.Application) -> None:
    services = app[SERVICES]
    guard = services.guard
    shield = app[SHIELD]

    async def targets(request: web.Request) -> web.Response:
        await guard.require(request, "read")

        async def build() -> web.Response:
            return web.json_response(targets_json(services.engine, request.query))

        return await shield.respond(request, build)

    async def service_list(request: web.Request) -> web.Response:
        await guard.require(request, "read")

        async def build() -> web.Response:
            return web.json_response(services_json(services.engine, request.query))

        return await shield.respond(request, build)

    async def check(request: web.Request) -> web.Response:
        await guard.require(request, "read")
        rt = services.engine.checks.get(request.match_info["check_id"])
        if rt is None:
            raise ProblemError(404, "no such check", request.match_info["check_id"])
        return web.json_response(check_json(rt, history=True))

    app.router.add_get("/api/v1/targets", targets)
    app.router.add_get("/api/v1/services", service_list)
    app.router.add_get("/api/v1/checks/{check_id:.+}", check)
