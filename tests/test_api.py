"""The HTTP API served by aiohttp: filters, pagination, one check's history, readiness, reload errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from monitor.access.auth import token_digest
from monitor.daemon import Daemon
from monitor.http.app import build_app
from probes.base import ProbeResult
from tests.conftest import Loader

CONFIG = """
defaults: {failures_to_down: 1, successes_to_up: 1}
modules: {ping: {kind: icmp}}
targets:
  - {name: tokyo-edge, address: 127.0.0.1, labels: {prefecture: 13, tier: prefecture}, modules: [ping]}
  - {name: tokyo-fw, address: 127.0.0.2, labels: {prefecture: 13, tier: prefecture}, parent: tokyo-edge, modules: [ping]}
  - {name: osaka-edge, address: 127.0.0.3, labels: {prefecture: 27, tier: prefecture}, modules: [ping]}
services:
  - {name: tokyo-net, rule: all, targets: [tokyo-edge, tokyo-fw], labels: {prefecture: 13}}
auth:
  tokens:
    - {name: ops, role: operator, token_sha256: %s}
"""
OPERATOR = {"Authorization": "Bearer api-test-operator"}


@pytest.fixture
async def client(
    load_yaml_config: Loader, tmp_path: Path
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Daemon]]:
    """A real (not started) daemon: its store is open, its engine is fed results by hand."""
    loaded = load_yaml_config(CONFIG % token_digest("api-test-operator"))
    daemon = Daemon(loaded, data_dir=tmp_path / "data")
    daemon.store.open(now=1.0)
    engine = daemon.engine
    engine.observe("tokyo-edge/ping", ProbeResult(ok=False, error="100% packet loss (3 sent)", finished_at=1e9), 1.0)
    engine.observe("tokyo-fw/ping", ProbeResult(ok=False, error="100% packet loss (3 sent)"), 1.0)
    engine.observe("osaka-edge/ping", ProbeResult(ok=True, duration=0.001), 1.0)
    daemon.ready = True
    async with TestClient(TestServer(build_app(daemon.http_services()))) as c:
        yield c, daemon
    await daemon.store.close(now=2.0)


async def test_targets_filtered_by_state_and_prefecture(client: Any) -> None:
    """?state= and ?prefecture= select targets; an unreachable target names its root cause."""
    c, _ = client
    body = await (await c.get("/api/v1/targets", params={"prefecture": "13"})).json()
    assert {t["name"]: t["state"] for t in body["targets"]} == {"tokyo-edge": "down", "tokyo-fw": "unreachable"}
    fw = next(t for t in body["targets"] if t["name"] == "tokyo-fw")
    assert fw["root_cause"] == "tokyo-edge" and fw["checks"][0]["reason"] == "parent tokyo-edge is down"
    down = await (await c.get("/api/v1/targets", params={"state": "down"})).json()
    assert [t["name"] for t in down["targets"]] == ["tokyo-edge"]
    assert down["targets"][0]["checks"][0]["last"]["error"] == "100% packet loss (3 sent)"


async def test_pagination_and_bad_parameters(client: Any) -> None:
    """offset/limit page through the matches; count is the total; bad values are a 400."""
    c, _ = client
    page = await (await c.get("/api/v1/targets", params={"offset": "1", "limit": "1"})).json()
    assert page["count"] == 3 and page["offset"] == 1 and [t["name"] for t in page["targets"]] == ["tokyo-fw"]
    assert (await c.get("/api/v1/targets", params={"limit": "ten"})).status == 400
    assert (await c.get("/api/v1/services", params={"offset": "-1"})).status == 400


async def test_services_and_single_check(client: Any) -> None:
    """A service lists its members' states; one check shows its recent results."""
    c, _ = client
    services = await (await c.get("/api/v1/services")).json()
    assert services["services"][0]["state"] == "down"
    assert {m["id"]: m["state"] for m in services["services"][0]["checks"]} == {
        "tokyo-edge/ping": "down",
        "tokyo-fw/ping": "unreachable",
    }
    check = await (await c.get("/api/v1/checks/osaka-edge/ping")).json()
    assert check["state"] == "up" and len(check["recent"]) == 1 and check["recent"][0]["ok"] is True
    assert (await c.get("/api/v1/checks/nope/ping")).status == 404


async def test_readiness_and_reload_errors(client: Any) -> None:
    """/readyz is 503 until ready; reload needs an operator token; a broken file answers 400 with its errors."""
    c, daemon = client
    assert (await c.get("/readyz")).status == 200
    daemon.ready = False
    assert (await c.get("/readyz")).status == 503
    assert (await c.post("/-/reload")).status == 403
    assert (await c.post("/-/reload", headers={"Authorization": "Bearer wrong"})).status == 401
    daemon.config_path.write_text("modules: {x: {kind: pingg}}\n", encoding="utf-8")
    response = await c.post("/-/reload", headers=OPERATOR)
    body = await response.json()
    assert response.status == 400 and body["errors"] == [
        f'{daemon.config_path}:1: modules.x.kind: must be one of icmp, tcp, http, dns, snmp, ocsp, not "pingg"'
    ]
    assert (await c.get("/-/reload")).status == 405


async def test_metrics_endpoint_serves_exposition(client: Any) -> None:
    """/metrics answers in the Prometheus text format with the per-check series."""
    c, _ = client
    response = await c.get("/metrics")
    text = await response.text()
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'monitor_check_state{check="tokyo-fw/ping"' in text
