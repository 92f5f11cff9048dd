"""The flow policy inside a real (not started) daemon: records handed to the security desk as the collector
hands them (FlowSink.on_flows) open the connection's security incident with the flows as evidence, in the API,
on the page's reason and in the audit log; a second finding extends the same incident; the running policy is
readable at /api/v1/security/flows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from monitor.access.auth import token_digest
from monitor.daemon import Daemon
from monitor.http.app import build_app
from tests.conftest import Loader
from tests.flows.conftest import config_text, flow

ADMIN = {"Authorization": "Bearer flow-test-admin"}


@pytest.fixture
async def client(
    load_yaml_config: Loader, tmp_path: Path
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Daemon]]:
    text = (
        config_text()
        + f"auth:\n  tokens:\n    - {{name: auditor, role: admin, token_sha256: {token_digest('flow-test-admin')}}}\n"
    )
    daemon = Daemon(load_yaml_config(text), data_dir=tmp_path / "data")
    daemon.store.open(now=1.0)
    daemon.ready = True
    async with TestClient(TestServer(build_app(daemon.http_services()))) as c:
        yield c, daemon
    await daemon.store.close(now=2.0)


async def settle(daemon: Daemon, wanted: int) -> dict[str, Any]:
    for _ in range(200):
        incident = daemon.security.open.get("city-a")
        if incident is not None and len(incident.evidence) >= wanted:
            return {"id": incident.id}
        await asyncio.sleep(0.02)
    raise AssertionError("no security incident from the flows")


async def test_flows_open_and_extend_the_incident_with_evidence_and_audit(client: Any) -> None:
    c, daemon = client
    daemon.security.on_flows([flow(dport=443), flow(dst="10.200.0.80", dport=445, octets=777, packets=3)])
    await settle(daemon, 1)
    body = await (await c.get("/api/v1/security-incidents", headers=ADMIN)).json()
    [incident] = body["security_incidents"]
    assert incident["source"] == "flows" and incident["phase"] == "proposed"
    assert "rule disallowed" in incident["summary"] and "10.13.1.5:40000 -> 10.200.0.80:445" in incident["summary"]
    [evidence] = incident["evidence"]
    assert evidence["detail"]["rule"] == "disallowed" and evidence["detail"]["flows"][0]["bytes"] == 777
    # a scan from another host of the organisation extends the same incident
    daemon.security.on_flows([flow(src="10.13.9.9", dst=f"10.200.3.{i}", dport=443) for i in range(10)])
    await settle(daemon, 2)
    body = await (await c.get(f"/api/v1/security-incidents/{incident['id']}", headers=ADMIN)).json()
    assert [e["detail"]["rule"] for e in body["evidence"]] == ["disallowed", "scan_hosts"]
    for _ in range(100):  # the audit entry follows the evidence (the same task, after the store write)
        audit = await (await c.get("/api/v1/audit", params={"limit": "100"}, headers=ADMIN)).json()
        violations = [e for e in audit["entries"] if e["action"] == "security.flows.violation"]
        if len(violations) == 2:
            break
        await asyncio.sleep(0.02)
    assert {e["detail"]["rule"] for e in violations} == {"disallowed", "scan_hosts"}
    assert all(e["object"] == f"security:{incident['id']}" and e["detail"]["flows"] for e in violations)
    page = await daemon.store.get_incident(incident["incident_id"])
    assert page is not None and "rule disallowed" in page.reason
    running = await (await c.get("/api/v1/security/flows", headers=ADMIN)).json()
    [status] = running["connections"]
    assert status["connection"] == "city-a" and status["records"] == 12 and status["latest_flow"]
