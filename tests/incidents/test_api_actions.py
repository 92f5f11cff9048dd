"""The incident, maintenance, webhook and audit endpoints through aiohttp, on a real (not started) daemon:
roles are enforced (401/403, problem+json), refusals leave only an audit entry, valid writes work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from monitor.access.auth import token_digest
from monitor.core.state import State
from monitor.daemon import Daemon
from monitor.http.app import build_app
from probes.base import ProbeResult
from tests.conftest import Loader

TOKENS = {"viewer": "t-viewer", "operator": "t-operator", "admin": "t-admin", "alertmanager": "t-am"}
CONFIG = """
defaults: {failures_to_down: 1}
modules: {ping: {kind: icmp}}
targets:
  - {name: edge, address: 127.0.0.1, labels: {prefecture: 13}, modules: [ping]}
auth:
  anonymous: none
  tokens:
%s
"""


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


@pytest.fixture
async def api(
    load_yaml_config: Loader, tmp_path: Path
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Daemon]]:
    rows = "\n".join(
        f"    - {{name: {role}-user, role: {role}, token_sha256: {token_digest(t)}}}" for role, t in TOKENS.items()
    )
    daemon = Daemon(load_yaml_config(CONFIG % rows), data_dir=tmp_path / "data")
    daemon.store.open(now=daemon.clock.now())
    await daemon.incidents.load()
    daemon.ready = True
    async with TestClient(TestServer(build_app(daemon.http_services()))) as client:
        yield client, daemon
    await daemon.store.close(now=daemon.clock.now())


async def open_incident(daemon: Daemon) -> int:
    await daemon.incidents.handle(
        daemon.engine.observe("edge/ping", ProbeResult(ok=False, error="100% packet loss"), daemon.clock.now())
    )
    return daemon.incidents.open["target:edge"].id


async def audit(daemon: Daemon) -> list[tuple[str, str, str]]:
    entries, _ = await daemon.store.audit_log()
    return [(e.action, e.outcome, e.actor) for e in reversed(entries)]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/v1/incidents/{id}/ack", {}),
        ("post", "/api/v1/incidents/{id}/notes", {"text": "x"}),
        ("post", "/api/v1/incidents/{id}/escalate", {}),
        ("post", "/api/v1/incidents/{id}/resolve", {}),
        (
            "post",
            "/api/v1/maintenance",
            {"name": "w", "reason": "r", "targets": ["edge"], "cron": "0 2 * * 0", "duration": "1h"},
        ),
        ("delete", "/api/v1/maintenance/1", None),
        ("post", "/-/reload", None),
    ],
)
async def test_writes_refuse_no_token_bad_token_and_viewer(api: Any, method: str, path: str, body: Any) -> None:
    """Every write answers 401 without a token or with a wrong one and 403 for a viewer, as problem+json,
    changes nothing, and leaves exactly one audit entry per attempt."""
    client, daemon = api
    incident_id = await open_incident(daemon)
    url = path.format(id=incident_id)
    for headers, status in (({}, 401), ({"Authorization": "Bearer nope"}, 401), (auth("viewer"), 403)):
        response = await getattr(client, method)(url, json=body, headers=headers)
        assert response.status == status
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert (await response.json())["status"] == status
    incident = daemon.incidents.open["target:edge"]
    assert (incident.status, incident.level) == ("open", 0)
    assert await daemon.store.maintenance_windows() == []
    assert [outcome for _, outcome, _ in await audit(daemon)] == ["unauthenticated", "unauthenticated", "denied"]


async def test_operator_acts_and_everything_is_audited(api: Any) -> None:
    """An operator acknowledges, notes and resolves; acting on a resolved incident is a 409; all audited."""
    client, daemon = api
    incident_id = await open_incident(daemon)
    base = f"/api/v1/incidents/{incident_id}"
    response = await client.post(f"{base}/ack", json={"comment": "確認中"}, headers=auth("operator"))
    assert response.status == 200 and (await response.json())["acked_by"] == "operator-user"
    assert (await client.post(f"{base}/notes", json={"text": "NTT確認済"}, headers=auth("operator"))).status == 200
    assert (await client.post(f"{base}/notes", json={}, headers=auth("operator"))).status == 400
    assert (await client.post(f"{base}/resolve", json={"reason": "復旧"}, headers=auth("operator"))).status == 200
    again = await client.post(f"{base}/ack", headers=auth("operator"))
    assert again.status == 409 and "resolved" in (await again.json())["detail"]
    shown = await (await client.get(base, headers=auth("viewer"))).json()
    assert [t["kind"] for t in shown["timeline"]] == ["detected", "acknowledged", "note", "resolved"]
    assert await audit(daemon) == [
        ("incident.ack", "ok", "operator-user"),
        ("incident.note", "ok", "operator-user"),
        ("incident.note", "invalid", "operator-user"),  # a refused write is audited too (issue 24)
        ("incident.resolve", "ok", "operator-user"),
        ("incident.ack", "rejected", "operator-user"),
    ]
    assert (await client.get("/api/v1/audit", headers=auth("operator"))).status == 403
    log = await (await client.get("/api/v1/audit", headers=auth("admin"))).json()
    assert log["chain_valid"] and log["count"] == 5


async def test_reads_need_a_role_when_anonymous_is_none(api: Any) -> None:
    """With auth.anonymous none, even reads need a token; a viewer token is enough."""
    client, _ = api
    assert (await client.get("/api/v1/incidents")).status == 401
    assert (await client.get("/api/v1/targets", headers=auth("viewer"))).status == 200


async def test_maintenance_create_validate_and_cancel(api: Any) -> None:
    """A window is validated (unknown target, bad shape: 422), created (201) and cancelled; its checks follow."""
    client, daemon = api
    bad = await client.post(
        "/api/v1/maintenance",
        json={"name": "w", "reason": "r", "targets": ["nope"], "cron": "0 2 * * 0", "duration": "1h"},
        headers=auth("operator"),
    )
    assert bad.status == 422 and "unknown targets: nope" in (await bad.json())["detail"]
    shape = await client.post(
        "/api/v1/maintenance", json={"name": "w", "reason": "r", "targets": ["edge"]}, headers=auth("operator")
    )
    assert shape.status == 422
    created = await client.post(
        "/api/v1/maintenance",
        json={"name": "swap", "reason": "機器交換", "targets": ["edge"], "cron": "* * * * *", "duration": "1h"},
        headers=auth("operator"),
    )
    assert created.status == 201
    window = await created.json()
    daemon.engine.observe("edge/ping", ProbeResult(ok=True), daemon.clock.now())
    assert daemon.engine.checks["edge/ping"].state == State.MAINTENANCE
    listing = await (await client.get("/api/v1/maintenance", headers=auth("viewer"))).json()
    assert [(w["name"], w["active"], w["created_by"]) for w in listing["maintenance"]] == [
        ("swap", True, "operator-user")
    ]
    assert (await client.delete(f"/api/v1/maintenance/{window['id']}", headers=auth("operator"))).status == 200
    assert daemon.engine.checks["edge/ping"].state == State.UP
    assert (await client.delete(f"/api/v1/maintenance/{window['id']}", headers=auth("operator"))).status == 404


async def test_alertmanager_webhook_opens_and_resolves_incidents(api: Any) -> None:
    """Alerts pushed by Alertmanager (e.g. SLO burn) open an incident and resolve it; our own alerts are ignored."""
    client, daemon = api
    alert = {"status": "firing", "fingerprint": "abc123",
             "labels": {"alertname": "ServiceErrorBudgetBurn", "severity": "page", "service": "juki-net"},
             "annotations": {"summary": "住基ネットのエラーバジェット消費が急速"}}  # fmt: skip
    own = {"status": "firing", "labels": {"alertname": "MonitorIncident", "generator": "national-monitor"}}
    assert (
        await client.post("/api/v1/alertmanager/webhook", json={"alerts": [alert]}, headers=auth("operator"))
    ).status == 403
    response = await client.post(
        "/api/v1/alertmanager/webhook", json={"alerts": [alert, own]}, headers=auth("alertmanager")
    )
    assert await response.json() == {"opened": 1, "updated": 0, "resolved": 0, "ignored": 1}
    incident = daemon.incidents.open["alert:abc123"]
    assert (incident.severity, incident.title) == ("critical", "住基ネットのエラーバジェット消費が急速")
    resolved = await client.post(
        "/api/v1/alertmanager/webhook", json={"alerts": [{**alert, "status": "resolved"}]}, headers=auth("alertmanager")
    )
    assert (await resolved.json())["resolved"] == 1 and "alert:abc123" not in daemon.incidents.open
    bad = await client.post("/api/v1/alertmanager/webhook", data=b"not json", headers=auth("alertmanager"))
    assert bad.status == 400
