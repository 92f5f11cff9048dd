"""Access control of the daemon's HTTP surface: every write endpoint refuses no token, a viewer token,
an expired token and a session request without its CSRF token (a cross-site form post); console logins
with scrypt hashes, rate-limited; the reverse-proxy user header believed only from the proxy;
/metrics and /healthz protected when configured."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from monitor.access.auth import token_digest
from monitor.access.sessions import hash_password, verify_password
from monitor.daemon import Daemon
from monitor.http.app import build_app
from tests.conftest import Loader

PASSWORD = "correct horse battery staple"
CONFIG = """
modules: {ping: {kind: icmp}}
targets:
  - {name: tokyo-edge, address: 127.0.0.1, labels: {prefecture: 13}, modules: [ping]}
auth:
  tokens:
    - {name: ops, role: operator, token_sha256: %(ops)s}
    - {name: old-ops, role: admin, token_sha256: %(old)s, expires: "2020-01-01T00:00:00"}
    - {name: watcher, role: viewer, token_sha256: %(viewer)s}
  users:
    - {name: yamada, role: operator, password_hash: "%(hash)s"}
    - {name: sso-admin, role: admin}
  proxy: {user_header: X-Remote-User, trusted: ["127.0.0.2"]}
  sessions: {login_attempts: 3, login_window: 60s}
  protect_metrics: %(protect)s
"""
TOKENS = {"ops": "access-ops-1", "old": "access-old-1", "viewer": "access-viewer-1"}


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


@pytest.fixture(scope="module")
def password_hash() -> str:
    return hash_password(PASSWORD)


async def make_client(load_yaml_config: Loader, tmp_path: Path, password_hash: str, protect: bool = False) -> Any:
    text = CONFIG % {**{k: token_digest(v) for k, v in TOKENS.items()}, "hash": password_hash,
                     "protect": str(protect).lower()}  # fmt: skip
    daemon = Daemon(load_yaml_config(text), data_dir=tmp_path / "data")
    daemon.store.open(now=1.0)
    daemon.ready = True
    return daemon, TestClient(TestServer(build_app(daemon.http_services())))


@pytest.fixture
async def client(load_yaml_config: Loader, tmp_path: Path, password_hash: str) -> AsyncIterator[Any]:
    daemon, c = await make_client(load_yaml_config, tmp_path, password_hash)
    async with c:
        yield c, daemon
    await daemon.store.close(now=2.0)


def write_routes(app: web.Application) -> list[tuple[str, str]]:
    """Every state-changing route of the API (from the router itself, so a new one cannot be forgotten)."""
    out = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or ""
        # (the signed action links of pages carry their own credential, not a token or a session: their
        # refusals of unsigned, forged, used and expired links are tests/acting/test_action_links.py)
        if route.method in ("POST", "PATCH", "PUT", "DELETE") and path not in ("/login", "/logout", "/act/{token}"):
            concrete = path.replace("{id}", "1").replace("{id:\\\\d+}", "1").replace("{month}", "2026-11")
            out.append((route.method, concrete.replace("{version}", "1").replace("{schedule}", "noc")))
    return out


async def test_every_write_endpoint_refuses_the_unauthorised(client: Any) -> None:
    c, _ = client
    routes = write_routes(c.server.app)
    assert len(routes) >= 17 and ("POST", "/api/v1/security-incidents/1/approve") in routes
    for method, path in routes:
        no_token = await c.request(method, path, json={})
        assert no_token.status in (401, 403), (method, path, no_token.status)  # anonymous is a viewer here
        viewer = await c.request(method, path, headers=bearer("viewer"), json={})
        assert viewer.status == 403, (method, path, viewer.status)
        expired = await c.request(method, path, headers=bearer("old"), json={})
        assert expired.status == 401 and (await expired.json())["title"] == "token expired", (method, path)
    # a logged-in operator's session without the CSRF token: what a form posted from another site sends
    login = await c.post("/login", json={"name": "yamada", "password": PASSWORD})
    csrf = (await login.json())["csrf_token"]
    for method, path in routes:
        forged = await c.request(method, path, data={"text": "x"})
        assert forged.status == 403, (method, path, forged.status)
        assert (await forged.json())["title"] == "CSRF token missing or wrong"
    ok = await c.post("/api/v1/maintenance", headers={"X-CSRF-Token": csrf},
                      json={"name": "w", "reason": "r", "targets": ["tokyo-edge"],
                            "start": "2030-01-01T00:00:00", "end": "2030-01-01T01:00:00"})  # fmt: skip
    assert ok.status == 201, await ok.text()


async def test_login_sessions_and_rate_limit(client: Any) -> None:
    c, daemon = client
    assert (await c.get("/api/v1/session")).status == 200  # anonymous viewer
    bad = await c.post("/login", json={"name": "yamada", "password": "wrong"})
    assert bad.status == 401 and "monitor_session" not in bad.cookies
    good = await c.post("/login", json={"name": "yamada", "password": PASSWORD})
    assert good.status == 200
    cookie = good.cookies["monitor_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    me = await (await c.get("/api/v1/session")).json()
    assert me["name"] == "yamada" and me["role"] == "operator" and "incident.write" in me["permissions"]
    assert (await c.post("/logout", headers={"X-CSRF-Token": me["csrf_token"]})).status == 200
    assert (await (await c.get("/api/v1/session")).json())["name"] == "anonymous"
    for _ in range(3):  # three failures from this address: the fourth try is refused even when right
        assert (await c.post("/login", json={"name": "yamada", "password": "nope"})).status == 401
    limited = await c.post("/login", json={"name": "yamada", "password": PASSWORD})
    assert limited.status == 429 and int(limited.headers["Retry-After"]) > 0
    assert (await c.post("/login", json={"name": "sso-admin", "password": "anything"})).status in (401, 429)
    entries, _ = await daemon.store.audit_log(100)
    outcomes = [(e.action, e.outcome) for e in entries]
    assert ("session.login", "rate_limited") in outcomes and ("session.login", "denied") in outcomes


async def test_reverse_proxy_header_only_from_the_proxy(client: Any) -> None:
    """The user header is believed from the trusted proxy address only (the test client is 127.0.0.1)."""
    c, daemon = client
    forged = await c.get("/api/v1/session", headers={"X-Remote-User": "sso-admin"})
    assert forged.status == 401
    daemon.response.tokens.auth.proxy.trusted.append("127.0.0.1")
    trusted = await c.get("/api/v1/session", headers={"X-Remote-User": "sso-admin"})
    assert (await trusted.json())["role"] == "admin"
    unknown = await c.get("/api/v1/session", headers={"X-Remote-User": "mallory"})
    assert unknown.status == 401


async def test_metrics_and_health_can_be_protected(
    load_yaml_config: Loader, tmp_path: Path, password_hash: str
) -> None:
    daemon, c = await make_client(load_yaml_config, tmp_path, password_hash, protect=True)
    async with c:
        assert (await c.get("/metrics", headers={"Authorization": "Bearer nope"})).status == 401
        assert (await c.get("/metrics", headers=bearer("viewer"))).status == 200
        assert (await c.get("/healthz", headers=bearer("viewer"))).status == 200
    await daemon.store.close(now=2.0)


def test_password_hashes() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("scrypt$16384$8$1$") and PASSWORD not in stored
    assert verify_password(PASSWORD, stored) and not verify_password("x" + PASSWORD, stored)
    assert not verify_password(PASSWORD, "scrypt$garbage")


async def test_openapi_document_covers_every_route_and_nothing_answers_500(client: Any) -> None:
    """Every API route is in /api/v1/openapi.json; every operation, called by every role with odd
    input (ids that do not exist, empty and wrong-typed bodies), answers without a server error."""
    c, _ = client
    doc = await (await c.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.1") and "bearer" in doc["components"]["securitySchemes"]
    served = set()
    for route in c.server.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", str(info.get("path") or info.get("formatter") or ""))
        if path.startswith("/api/v1/") and path != "/api/v1/openapi.json":
            served.add(path)
    assert served == set(doc["paths"]) - {"/-/reload", "/login", "/logout"}
    for path, operations in doc["paths"].items():
        if path == "/api/v1/events":
            continue  # an endless stream
        for method, operation in operations.items():
            assert operation["summary"] and "401" in operation["responses"]
            concrete = path.replace("{id}", "999").replace("{month}", "2026-13").replace("{check_id}", "no/such")
            for headers in ({}, bearer("viewer"), bearer("ops"), bearer("old")):
                for body in ({}, {"text": 5, "services": "x", "start": []}, None):
                    response = await c.request(method.upper(), concrete, headers=headers,
                                               **({"json": body} if body is not None else {"data": b"\xff"}))  # fmt: skip
                    assert response.status < 500, (method, concrete, headers, body, await response.text())
                    if response.status >= 400:
                        assert response.content_type == "application/problem+json", (method, concrete)
