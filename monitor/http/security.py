"""API of the disconnect playbook: IDS events in (role ids), security incidents listed and acted on
(approve, deny, execute, reconnect: role security or admin). Every call that changes something is
audited, allowed or not, with the caller's address."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web
from pydantic import Field, ValidationError

from monitor.access.auth import ProblemError
from monitor.config.errors import issues_from_validation
from monitor.config.model import StrictModel
from monitor.config.response_model import Severity
from monitor.config.security_model import Connection
from monitor.http.errors import body_of, whole_number
from monitor.http.services import SERVICES
from monitor.security.anomaly import Detection
from monitor.security.errors import SecurityError
from monitor.security.notices import describe
from monitor.store.records import SecurityIncident
from monitor.timefmt import iso

# What an action route does: (incident id, who, the JSON body) -> the incident, or what a dry run would do
Action = Callable[[int, str, dict[str, Any]], Awaitable[SecurityIncident | dict[str, Any]]]


class IdsEvent(StrictModel):
    """What an IDS pushes: who (a connection, an organisation or a source address), what, how bad."""

    signature: str = Field(min_length=1, max_length=500)
    severity: Severity = "major"
    connection: str | None = None
    organisation: str | None = None
    source: str | None = None  # an address of the organisation
    detail: dict[str, Any] = {}

    model_config = StrictModel.model_config | {"extra": "ignore"}  # IDS payloads carry more than we read


def security_json(incident: SecurityIncident) -> dict[str, Any]:
    body = asdict(incident)
    for key in ("opened_at", "cut_at", "reconnected_at", "closed_at", "updated_at"):
        body[key] = iso(body[key])
    body["step"] = incident.step
    body["proposal_text"] = describe(incident.proposal)
    body["evidence_count"] = len(incident.evidence)
    return body


def add_security_routes(app: web.Application) -> None:
    services = app[SERVICES]
    guard = services.guard
    desk = services.security

    def _matcher(event: IdsEvent) -> Callable[[Connection], bool]:
        """Which connection the event is about: named, by an address inside its ranges, or by organisation."""
        if event.connection:
            return lambda c: c.name == event.connection
        if event.source:
            try:
                address = ipaddress.ip_address(event.source.strip())
            except ValueError:
                raise ProblemError(
                    422, "invalid security event", f'source "{event.source}" is not an address'
                ) from None
            return lambda c: any(address in network for network in c.addresses)
        organisation = event.organisation
        return lambda c: organisation is not None and organisation in (c.organisation, c.organisation_en, c.name)

    async def ingest(request: web.Request) -> web.Response:
        who = await guard.require(request, "security.ingest", "security.event")
        body = await body_of(request)
        try:
            event = IdsEvent.model_validate(body)
        except ValidationError as exc:
            errors = [f"{'.'.join(map(str, i.loc))}: {i.message}" for i in issues_from_validation(exc, IdsEvent)]
            await guard.audit(request, who, "security.event", "invalid", None, errors=errors)
            raise ProblemError(422, "invalid security event", "; ".join(errors), errors=errors) from None
        match = _matcher(event)
        connection = next((c for c in desk.config.connections if match(c)), None)
        if connection is None and (elsewhere := desk.connections.on_another_shard(match)) is not None:
            other, shard = elsewhere
            await guard.audit(request, who, "security.event", "another_shard", None, event=body, shard=shard)
            raise ProblemError(
                421,
                "connection on another shard",
                f"connection {other.name} is watched by shard {shard}: send its events there",
                connection=other.name,
                shard=shard,
            )
        if connection is None:
            desk.metrics.events.labels("ids", "unmapped").inc()
            await guard.audit(request, who, "security.event", "unmapped", None, event=body)
            raise ProblemError(
                422,
                "no connection matches",
                "name a configured connection, organisation or an address inside a connection's addresses",
            )
        detection = Detection(
            connection.name,
            "ids",
            event.severity,
            f"IDS: {event.signature}",
            time.time(),
            {"from": who.name, **event.model_dump(exclude_none=True)},
        )
        incident, new = await desk.detect(detection)
        obj = f"security:{incident.id}"
        await guard.audit(request, who, "security.event", "ok", obj, signature=event.signature, new=new)
        return web.json_response(
            {"security_incident": incident.id, "connection": connection.name, "new": new, "phase": incident.phase},
            status=201 if new else 200,
        )

    async def listing(request: web.Request) -> web.Response:
        await guard.require(request, "read")
        limit = min(max(whole_number(request.query.get("limit", "100"), "limit"), 0), 1000)
        offset = max(whole_number(request.query.get("offset", "0"), "offset"), 0)
        items, total = await desk.store.list_security_incidents(request.query.get("status") == "open", limit, offset)
        items = [desk.open.get(i.connection, i) if i.closed_at is None else i for i in items]  # newest in memory
        return web.json_response(
            {"count": total, "offset": offset, "security_incidents": [security_json(i) for i in items]}
        )

    async def show(request: web.Request) -> web.Response:
        await guard.require(request, "read")
        try:
            incident = await desk.find(whole_number(request.match_info["id"], "id"))
        except SecurityError as exc:
            raise ProblemError(exc.status, "not found", str(exc)) from None
        return web.json_response(security_json(incident))

    async def flow_policy(request: web.Request) -> web.Response:
        """The connections' flow policies as running: allow rules unused for a week (a typo?), destinations
        that resolved to nothing, the latest flow of each organisation, the learned baselines."""
        await guard.require(request, "read")
        items = desk.flows.status(time.time())
        for item in items:
            for key in ("latest_flow", "learning_since"):
                item[key] = iso(item[key])
            for rule in item["allow"]:
                rule["last_match"] = iso(rule["last_match"])
        return web.json_response({"connections": items})

    def action(name: str, run: Action) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            incident_id = whole_number(request.match_info["id"], "id")
            obj = f"security:{incident_id}"
            who = await guard.require(request, "security.approve", f"security.{name}", obj)
            body = await body_of(request)
            result = await guard.attempt(request, who, f"security.{name}", obj, run(incident_id, who.name, body))
            await guard.audit(request, who, f"security.{name}", "ok", obj, **{k: str(v)[:500] for k, v in body.items()})
            return web.json_response(security_json(result) if isinstance(result, SecurityIncident) else result)

        return handler

    def text(body: dict[str, Any], key: str, default: str) -> str:
        return str(body.get(key) or default)[:2000]

    routes: list[tuple[str, Action]] = [
        ("approve", lambda i, a, b: desk.approve(i, a)),
        ("deny", lambda i, a, b: desk.deny(i, a, text(b, "reason", "denied"))),
        ("execute", lambda i, a, b: desk.execute(i, a, bool(b.get("dry_run", False)))),
        ("reconnect", lambda i, a, b: desk.request_reconnect(i, a, text(b, "reason", "cleared"))),
    ]
    app.router.add_post("/api/v1/security-events", ingest)
    app.router.add_get("/api/v1/security-incidents", listing)
    app.router.add_get("/api/v1/security-incidents/{id}", show)
    app.router.add_get("/api/v1/security/flows", flow_policy)
    for name, run in routes:
        app.router.add_post(f"/api/v1/security-incidents/{{id}}/{name}", action(name, run))
