"""API for people and tools acting on incidents: list, show, acknowledge, note, escalate, resolve;
maintenance windows; the Alertmanager webhook receiver; the audit log. Writes need a token with
the right role and are all audited."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from monitor.access.auth import ProblemError
from monitor.config.errors import issues_from_validation
from monitor.config.response_model import MaintenanceConfig
from monitor.config.status_model import Recovery
from monitor.http.errors import body_of, whole_number
from monitor.http.services import SERVICES
from monitor.incidents.maintenance import from_config, occurrence, occurrences
from monitor.incidents.policy import incident_objective
from monitor.store.records import IncidentRecord, MaintenanceWindow
from monitor.timefmt import iso

# What an action route does: (incident id, who, the JSON body) -> the incident afterwards
Action = Callable[[int, str, dict[str, Any]], Awaitable[IncidentRecord]]
Handler = Callable[[web.Request], Awaitable[web.Response]]


def incident_json(incident: IncidentRecord, now: float, recovery: Recovery | None = None) -> dict[str, Any]:
    affected = dict(incident.affected)
    children = list(affected.get("children", []))
    affected["children"] = children[:100]
    affected["children_count"] = len(children)
    due = incident.next_escalation_at
    return {
        "id": incident.id,
        "key": incident.key,
        "status": incident.status,
        "severity": incident.severity,
        "title": incident.title,
        "title_en": incident.title_en,
        "reason": incident.reason,
        "labels": incident.labels,
        "playbook": incident.playbook,
        "level": incident.level,
        "next_escalation_at": iso(due),
        "next_escalation_in_seconds": round(max(0.0, due - now), 1) if due is not None else None,
        "opened_at": iso(incident.opened_at),
        "acked_at": iso(incident.acked_at),
        "acked_by": incident.acked_by,
        "ack_expires_at": iso(incident.ack_expires_at),
        "resolved_at": iso(incident.resolved_at),
        "resolved_by": incident.resolved_by,
        "resolve_reason": incident.resolve_reason,
        "merged_into": incident.merged_into,
        "affected": affected,
        **recovery_json(incident, now, recovery),
    }


def recovery_json(incident: IncidentRecord, now: float, recovery: Recovery | None) -> dict[str, Any]:
    """目標復旧時間 on the incident: the objective, when it falls due, and how much of it has gone."""
    objective = incident_objective(incident, recovery) if recovery is not None else None
    if objective is None:
        return {"recovery_objective_seconds": None, "recovery_due_at": None, "recovery_elapsed_ratio": None}
    elapsed = (incident.resolved_at or now) - incident.opened_at
    return {
        "recovery_objective_seconds": objective,
        "recovery_due_at": iso(incident.opened_at + objective),
        "recovery_elapsed_ratio": round(elapsed / objective, 3) if objective > 0 else None,
    }


def window_json(window: MaintenanceWindow) -> dict[str, Any]:
    times = {k: iso(getattr(window, k)) for k in ("starts_at", "ends_at", "created_at", "cancelled_at")}
    return {**asdict(window), **times}


def add_incident_routes(app: web.Application) -> None:
    services = app[SERVICES]
    guard = services.guard

    async def list_incidents(request: web.Request) -> web.Response:
        await guard.require(request, "read")
        status = request.query.get("status")
        if status not in (None, "open", "acknowledged", "resolved"):
            raise ProblemError(400, "status must be open, acknowledged or resolved")
        limit = whole_number(request.query.get("limit", "100"), "limit")
        offset = whole_number(request.query.get("offset", "0"), "offset")
        items, total = await services.store.list_incidents(status, min(max(limit, 0), 1000), max(offset, 0))
        now = guard.clock.now()
        rows = [incident_json(i, now, services.inventory().recovery) for i in items]
        return web.json_response({"count": total, "offset": offset, "incidents": rows})

    async def show_incident(request: web.Request) -> web.Response:
        await guard.require(request, "read")
        incident_id = whole_number(request.match_info["id"], "id")
        incident = services.incidents.find(incident_id) or await services.store.get_incident(incident_id)
        if incident is None:
            raise ProblemError(404, "no such incident", f"no incident #{incident_id}")
        body = incident_json(incident, guard.clock.now(), services.inventory().recovery)
        body["timeline"] = [
            {"at": iso(e.at), "kind": e.kind, "actor": e.actor, "detail": e.detail}
            for e in await services.store.incident_events(incident_id)
        ]
        body["notifications"] = [
            {"channel": n.channel, "recipient": n.recipient, "level": n.level, "kind": n.kind, "status": n.status,
             "attempts": n.attempts, "sent_at": iso(n.sent_at), "last_error": n.last_error}
            for n in await services.store.notifications(incident_id)
        ]  # fmt: skip
        return web.json_response(body)

    def action(name: str, run: Action) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            incident_id = whole_number(request.match_info["id"], "id")
            obj = f"incident:{incident_id}"
            who = await guard.require(request, "incident.write", f"incident.{name}", obj)
            body = await body_of(request)
            incident = await guard.attempt(request, who, f"incident.{name}", obj, run(incident_id, who.name, body))
            await guard.audit(request, who, f"incident.{name}", "ok", obj, **{k: str(v)[:500] for k, v in body.items()})
            return web.json_response(incident_json(incident, guard.clock.now(), services.inventory().recovery))

        return handler

    async def note(incident_id: int, actor: str, body: dict[str, Any]) -> IncidentRecord:
        text = str(body.get("text", "")).strip()
        if not text:
            raise ProblemError(400, "text is required", 'send {"text": "..."}')
        return await services.incidents.add_note(incident_id, actor, text[:4000])

    manager = services.incidents
    routes: list[tuple[str, str, Action]] = [  # (path, audited action, what it does)
        ("ack", "ack", lambda i, a, b: manager.acknowledge(i, a, str(b.get("comment", ""))[:2000])),
        ("notes", "note", note),
        ("escalate", "escalate", lambda i, a, b: manager.escalate_now(i, a, str(b.get("comment", ""))[:2000])),
        (
            "resolve",
            "resolve",
            lambda i, a, b: manager.resolve(i, a, str(b.get("reason") or "resolved by hand")[:2000]),
        ),
    ]
    app.router.add_get("/api/v1/incidents", list_incidents)
    app.router.add_get(r"/api/v1/incidents/{id}", show_incident)
    for path, name, run in routes:
        app.router.add_post(f"/api/v1/incidents/{{id}}/{path}", action(name, run))

    async def list_maintenance(request: web.Request) -> web.Response:
        await guard.require(request, "read")
        now = guard.clock.now()
        windows = []
        for w in [
            *(from_config(m, 0.0) for m in services.inventory().response.maintenance),
            *await services.store.maintenance_windows(),
        ]:
            active = occurrence(w, now)
            upcoming = [{"start": iso(a), "end": iso(b)} for a, b in occurrences(w, now, now + 62 * 86400.0, 31)]
            windows.append(
                window_json(w)
                | {
                    "active": active is not None,
                    "active_until": iso(active[1]) if active else None,
                    "upcoming": upcoming,
                }
            )
        return web.json_response({"count": len(windows), "maintenance": windows})

    async def create_maintenance(request: web.Request) -> web.Response:
        who = await guard.require(request, "maintenance.write", "maintenance.create")
        body = await body_of(request)
        try:
            spec = MaintenanceConfig.model_validate(body)
        except ValidationError as exc:
            errors = [
                f"{'.'.join(map(str, i.loc))}: {i.message}" for i in issues_from_validation(exc, MaintenanceConfig)
            ]
            await guard.audit(request, who, "maintenance.create", "invalid", None, errors=errors)
            raise ProblemError(422, "invalid maintenance window", "; ".join(errors), errors=errors) from None
        unknown = [t for t in spec.targets if t not in services.inventory().targets]
        if unknown:
            await guard.audit(request, who, "maintenance.create", "invalid", None, unknown_targets=unknown)
            raise ProblemError(422, "invalid maintenance window", f"unknown targets: {', '.join(unknown)}")
        try:
            window = from_config(spec, guard.clock.now())
        except (OverflowError, ValueError) as exc:  # e.g. a duration of 50 digits: beyond any calendar
            await guard.audit(request, who, "maintenance.create", "invalid", None, error=str(exc)[:200])
            raise ProblemError(422, "invalid maintenance window", "a time or duration is out of range") from None
        window.source, window.created_by = "api", who.name
        await services.store.add_maintenance(window)
        await guard.audit(request, who, "maintenance.create", "ok", f"maintenance:{window.id}", window=body)
        await services.maintenance_changed()
        return web.json_response(window_json(window), status=201)

    async def cancel_maintenance(request: web.Request) -> web.Response:
        window_id = whole_number(request.match_info["id"], "id")
        obj = f"maintenance:{window_id}"
        who = await guard.require(request, "maintenance.write", "maintenance.cancel", obj)
        if not await services.store.cancel_maintenance(window_id, who.name, guard.clock.now()):
            await guard.audit(request, who, "maintenance.cancel", "rejected", obj, error="no such active window")
            raise ProblemError(
                404,
                "no such window",
                f"no uncancelled maintenance window #{window_id} (config windows are edited in the config)",
            )
        await guard.audit(request, who, "maintenance.cancel", "ok", obj)
        await services.maintenance_changed()
        return web.json_response({"id": window_id, "cancelled": True})

    app.router.add_get("/api/v1/maintenance", list_maintenance)
    app.router.add_post("/api/v1/maintenance", create_maintenance)
    app.router.add_delete(r"/api/v1/maintenance/{id}", cancel_maintenance)

    async def alertmanager_webhook(request: web.Request) -> web.Response:
        who = await guard.require(request, "alerts.ingest", "alerts.receive")
        body = await body_of(request)
        alerts = body.get("alerts")
        if not isinstance(alerts, list):
            raise ProblemError(400, "not an Alertmanager webhook payload", "expected an object with an alerts list")
        counts = await services.incidents.receive_alerts([a for a in alerts if isinstance(a, dict)])
        await guard.audit(request, who, "alerts.receive", "ok", body.get("groupKey"), **counts)
        return web.json_response(counts)

    async def audit_log(request: web.Request) -> web.Response:
        await guard.require(request, "audit.read")
        limit = whole_number(request.query.get("limit", "100"), "limit")
        offset = whole_number(request.query.get("offset", "0"), "offset")
        entries, total = await services.store.audit_log(min(max(limit, 0), 1000), max(offset, 0))
        valid, first_bad = await services.store.verify_audit_chain()
        return web.json_response({
            "count": total, "offset": offset, "chain_valid": valid, "first_invalid_id": first_bad,
            "entries": [{**asdict(e), "at": iso(e.at)} for e in entries],
        })  # fmt: skip

    app.router.add_post("/api/v1/alertmanager/webhook", alertmanager_webhook)
    app.router.add_get("/api/v1/audit", audit_log)
