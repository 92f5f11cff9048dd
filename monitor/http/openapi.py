"""The OpenAPI 3.1 document of the daemon's API (`GET /api/v1/openapi.json`), built from the router
itself, so every served route is in it, with a summary, the permission it needs and its parameters from
the table below. Errors are RFC 9457 problem+json everywhere."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from monitor import __version__

# (method, path) -> (summary, permission, query parameters, JSON body properties)
PAGE = ["limit", "offset"]
ROUTES: dict[tuple[str, str], tuple[str, str | None, list[str], dict[str, Any]]] = {
    ("GET", "/api/v1/targets"): (
        "Targets with their checks",
        "read",
        ["state", "prefecture", "tier", "system", "role", "site", "q", "history", *PAGE],
        {},
    ),
    ("GET", "/api/v1/services"): (
        "Services and their states",
        "read",
        ["state", "prefecture", "tier", "system", "role", "site", *PAGE],
        {},
    ),
    ("GET", "/api/v1/checks/{check_id}"): ("One check with its recent results", "read", [], {}),
    ("GET", "/api/v1/incidents"): ("Incidents, newest first", "read", ["status", *PAGE], {}),
    ("GET", "/api/v1/incidents/{id}"): ("One incident with its timeline and notifications", "read", [], {}),
    ("POST", "/api/v1/incidents/{id}/ack"): ("Acknowledge", "incident.write", [], {"comment": "string"}),
    ("POST", "/api/v1/incidents/{id}/notes"): ("Add a note", "incident.write", [], {"text": "string"}),
    ("POST", "/api/v1/incidents/{id}/escalate"): (
        "Page the next level now",
        "incident.write",
        [],
        {"comment": "string"},
    ),
    ("POST", "/api/v1/incidents/{id}/resolve"): ("Resolve by hand", "incident.write", [], {"reason": "string"}),
    ("GET", "/api/v1/maintenance"): ("Maintenance windows (config and API)", "read", [], {}),
    ("POST", "/api/v1/maintenance"): (
        "Schedule a maintenance window",
        "maintenance.write",
        [],
        {
            "name": "string",
            "reason": "string",
            "targets": "array",
            "select": "object",
            "start": "string",
            "end": "string",
            "cron": "string",
            "duration": "string",
            "timezone": "string",
        },
    ),
    ("DELETE", "/api/v1/maintenance/{id}"): ("Cancel a maintenance window", "maintenance.write", [], {}),
    ("POST", "/api/v1/alertmanager/webhook"): (
        "Alertmanager webhook receiver",
        "alerts.ingest",
        [],
        {"alerts": "array", "groupKey": "string"},
    ),
    ("GET", "/api/v1/audit"): ("The audit log, newest first, with chain verification", "audit.read", PAGE, {}),
    ("GET", "/api/v1/reports"): ("Monthly reports available", "read", [], {}),
    ("GET", "/api/v1/reports/{month}"): ("A monthly availability report", "read", ["format", "lang"], {}),
    ("GET", "/api/v1/report-versions"): ("Every month's report versions: which are approved, by whom", "read", [], {}),
    ("GET", "/api/v1/reports/{month}/versions"): ("A month's report versions", "read", [], {}),
    ("POST", "/api/v1/reports/{month}/versions"): (
        "Draft a new version of a month that is over",
        "report",
        [],
        {"reason": "string"},
    ),
    ("GET", "/api/v1/reports/{month}/versions/{version}"): (
        "One version: its record (json), its data as hashed (data) or its PDF (pdf)",
        "read",
        ["format", "lang"],
        {},
    ),
    ("POST", "/api/v1/reports/{month}/versions/{version}/review"): (
        "Review a draft (not by the approver)",
        "report",
        [],
        {"comment": "string"},
    ),
    ("POST", "/api/v1/reports/{month}/versions/{version}/approve"): (
        "Approve a reviewed version (a second person); distributes the prefecture variants",
        "report",
        [],
        {"comment": "string"},
    ),
    ("GET", "/api/v1/corrections"): ("Availability corrections", "read", [], {}),
    ("POST", "/api/v1/corrections"): (
        "Re-classify an outage as planned",
        "availability.correct",
        [],
        {"service": "string", "start": "string", "end": "string", "reason": "string"},
    ),
    ("POST", "/api/v1/security-events"): (
        "An IDS event",
        "security.ingest",
        [],
        {
            "signature": "string",
            "severity": "string",
            "source": "string",
            "organisation": "string",
            "connection": "string",
            "detail": "object",
        },
    ),
    ("GET", "/api/v1/security-incidents"): (
        "Security incidents of the disconnect playbook",
        "read",
        ["status", *PAGE],
        {},
    ),
    ("GET", "/api/v1/security-incidents/{id}"): ("One security incident", "read", [], {}),
    ("GET", "/api/v1/security/flows"): (
        "The flow policies as running: unused allow rules, unresolved destinations, latest flows, baselines",
        "read",
        [],
        {},
    ),
    ("POST", "/api/v1/security-incidents/{id}/approve"): (
        "Approve the pending cut or reconnect",
        "security.approve",
        [],
        {},
    ),
    ("POST", "/api/v1/security-incidents/{id}/deny"): ("Deny it", "security.approve", [], {"reason": "string"}),
    ("POST", "/api/v1/security-incidents/{id}/execute"): (
        "Execute the approved step (or dry-run)",
        "security.approve",
        [],
        {"dry_run": "boolean"},
    ),
    ("POST", "/api/v1/security-incidents/{id}/reconnect"): (
        "Request the reconnect",
        "security.approve",
        [],
        {"reason": "string"},
    ),
    ("GET", "/api/v1/notices"): ("Notices (drafts too)", "read", ["status", *PAGE], {}),
    ("POST", "/api/v1/notices"): (
        "Draft a notice from a template",
        "notice.write",
        [],
        {
            "template": "string",
            "services": "array",
            "prefectures": "array",
            "incident_id": "integer",
            "maintenance_id": "integer",
            "starts_at": "string",
            "ends_at": "string",
            "estimate_at": "string",
            "title": "string",
            "body": "string",
        },
    ),
    ("PATCH", "/api/v1/notices/{id}"): (
        "Update or close a notice",
        "notice.write",
        [],
        {
            "template": "string",
            "estimate_at": "string",
            "status": "string",
            "notify": "boolean",
            "title": "string",
            "body": "string",
        },
    ),
    ("POST", "/api/v1/notices/{id}/publish"): ("Publish a draft", "notice.write", [], {}),
    ("GET", "/api/v1/session"): ("Who is calling, with the session's CSRF token", None, [], {}),
    ("GET", "/api/v1/board"): ("The operator board: what is down now, by root cause", "read", [], {}),
    ("GET", "/api/v1/events"): ("Live changes (text/event-stream)", "read", [], {}),
    ("GET", "/api/v1/oncall"): ("Who is on call now, at each playbook level and in each schedule", "read", [], {}),
    ("GET", "/api/v1/oncall/changes"): ("Overrides and swaps made, newest first", "read", ["schedule"], {}),
    ("DELETE", "/api/v1/oncall/changes/{id}"): ("Cancel an override or swap", "oncall.swap", [], {}),
    ("GET", "/api/v1/oncall/handovers"): ("Shift handovers, newest first", "read", ["schedule", "limit"], {}),
    ("GET", "/api/v1/oncall/schedules/{schedule}/slots"): ("The coming slots and who holds them", "read", ["days"], {}),
    ("POST", "/api/v1/oncall/schedules/{schedule}/changes"): (
        "Swap two slots, or give one to someone (or nobody: managers)",
        "oncall.swap",
        [],
        {"kind": "string", "slots": "array", "slot": "string", "to": "string", "reason": "string"},
    ),
    ("GET", "/api/v1/oncall/schedules/{schedule}/calendar.ics"): ("iCal feed of a schedule", "read", [], {}),
    ("GET", "/api/v1/oncall/people/{person}/calendar.ics"): ("iCal feed of one person's duties", "read", [], {}),
    ("POST", "/-/reload"): ("Re-read the config", "config.reload", ["allow_empty"], {}),
    ("POST", "/login"): ("Console login (name, password)", None, [], {"name": "string", "password": "string"}),
    ("POST", "/logout"): ("Console logout", None, [], {}),
}
PROBLEM = {
    "description": "error",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def _path(info: Any) -> str:
    raw = str(info.get("path") or info.get("formatter") or "")
    return re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", raw)


def document(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        if route.method in ("HEAD", "*") or route.resource is None:
            continue
        path = _path(route.resource.get_info())
        if not (path.startswith("/api/v1") or path in ("/-/reload", "/login", "/logout")):
            continue
        if path == "/api/v1/openapi.json":
            continue
        summary, permission, query, body = ROUTES.get((route.method, path), (path, "read", [], {}))
        operation: dict[str, Any] = {
            "summary": summary,
            "operationId": f"{route.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path.lower()).strip('_')}",
            "parameters": [
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                for n in re.findall(r"\{(\w+)\}", path)
            ]
            + [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}} for q in query],
            "responses": {
                "200": {"description": "ok", "content": {"application/json": {"schema": {}}}},
                "400": PROBLEM,
                "401": PROBLEM,
                "403": PROBLEM,
                "404": PROBLEM,
                "409": PROBLEM,
                "422": PROBLEM,
                "429": PROBLEM,
            },
        }
        if path == "/api/v1/security-events":  # a shard refers the IDS to the shard that watches the connection
            operation["responses"]["421"] = PROBLEM
        if permission:
            operation["description"] = f"Needs the `{permission}` permission."
            operation["security"] = [{"bearer": []}, {"session": []}]
        if route.method in ("POST", "PATCH", "PUT"):
            operation["requestBody"] = {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {"type": "object", "properties": {k: {"type": v} for k, v in body.items()}}
                    }
                },
            }
        if route.method == "POST":
            operation["responses"]["201"] = {"description": "created", "content": {"application/json": {"schema": {}}}}
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "National backbone monitor API",
            "version": __version__,
            "description": "Bearer tokens for tools; console sessions (cookie) must send X-CSRF-Token on "
            "writes. Errors are application/problem+json (RFC 9457).",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "monitor_session"},
            },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                    },
                }
            },
        },
    }
