"""The API against hostile input, in process (a real aiohttp server on loopback): every malformed request
is a 4xx problem+json with one log line, every refused write is audited, a seeded fuzzer over the JSON
bodies of every write route never gets a 5xx; console logins back off per address without locking the
real user out, cost the same for unknown users, and the limiter never forgets everyone at once; the
expensive reads are cached and rate-limited."""

from __future__ import annotations

import itertools
import json
import random
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from monitor.access.auth import token_digest
from monitor.access.sessions import LoginLimiter, hash_password
from monitor.config.http_model import HttpListenerConfig
from monitor.daemon import Daemon
from monitor.http.app import build_app
from monitor.http.cache import TokenBuckets
from monitor.http.listener import resolve_limits
from tests.conftest import Loader

PASSWORD = "correct horse battery staple"
TOKENS = {"operator": "hostile-ops-1", "admin": "hostile-admin-1", "alertmanager": "hostile-am-1"}
CONFIG = """
modules: {ping: {kind: icmp}}
targets:
  - {name: tokyo-edge, address: 127.0.0.1, labels: {prefecture: 13}, modules: [ping]}
services:
  - {name: juki, targets: [tokyo-edge]}
status_page: {services: [{id: juki, name: 住基ネット, services: [juki]}]}
auth:
  tokens:
%(tokens)s
  users:
    - {name: yamada, role: operator, password_hash: "%(hash)s"}
  sessions: {login_attempts: 3, login_window: 60s}
daemon:
  http: {read_rate: 5, read_burst: 10, read_cache_ttl: 5s}
"""


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


@pytest.fixture(scope="module")
def password_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
async def api(load_yaml_config: Loader, tmp_path: Path, password_hash: str) -> AsyncIterator[tuple[TestClient, Daemon]]:  # type: ignore[type-arg]
    rows = "\n".join(f"    - {{name: {r}-user, role: {r}, token_sha256: {token_digest(t)}}}" for r, t in TOKENS.items())
    daemon = Daemon(load_yaml_config(CONFIG % {"tokens": rows, "hash": password_hash}), data_dir=tmp_path / "data")
    daemon.store.open(now=1.0)
    daemon.ready = True
    async with TestClient(TestServer(build_app(daemon.http_services()))) as client:
        yield client, daemon
    await daemon.store.close(now=2.0)


async def audited(daemon: Daemon) -> int:
    _, total = await daemon.store.audit_log(1)
    return int(total)


DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"text": ' + b"[" * 5000 + b"]" * 5000 + b"}"
# (method, path, extra headers, raw body): what the hostile client of issue 24 sent, and relatives of it
BAD_WRITES: list[tuple[str, str, dict[str, str], bytes]] = [
    ("POST", "/login", {}, DEEP),
    ("POST", "/login", {}, b'{"name": "yamada", "password": ' + b"[" * 3000 + b"]" * 3000 + b"}"),
    ("POST", "/login", {}, b'{"name": "\\ud800", "password": "x"}'),
    ("POST", "/login", {}, b'{"name": "yamada", "password": "\\udfff"}'),
    ("POST", "/login", {}, b'{"name": 1' + b"0" * 5000 + b', "password": "x"}'),
    ("POST", "/login", {}, b"\xff\xfe not utf-8"),
    ("POST", "/api/v1/alertmanager/webhook", {}, DEEP),
    ("POST", "/api/v1/alertmanager/webhook", bearer("alertmanager"), DEEP),
    ("POST", "/api/v1/alertmanager/webhook", bearer("alertmanager"), b'{"alerts": ' + b"[" * 900 + b"]" * 900 + b"}"),
    ("POST", "/api/v1/incidents/1/notes", bearer("operator"), DEEP_OBJECT),
    ("POST", "/api/v1/incidents/1/notes", bearer("operator"), b'{"text": ' + b"9" * 5000 + b"}"),
    ("POST", "/api/v1/incidents/1/notes", bearer("operator"), b'{"text": 1e999999}'),
    ("POST", "/api/v1/incidents/1/notes", bearer("operator"), b'{"text": NaN}'),
    ("POST", "/api/v1/incidents/1/notes", bearer("operator"), b'{"text": "\\ud800"}'),
    ("POST", "/api/v1/incidents/" + "9" * 26 + "/ack", bearer("operator"), b"{}"),
    ("POST", "/api/v1/maintenance", bearer("operator"),
     b'{"name": "w", "reason": "r", "targets": ["tokyo-edge"], "start": "2030-01-01T00:00:00", "duration": "'
     + b"9" * 50 + b'd"}'),
    ("POST", "/api/v1/maintenance", bearer("operator"),
     b'{"name": "w", "reason": "r", "targets": ["tokyo-edge"], "start": "2030-01-01T00:00:00", "duration": '
     + b"9" * 50 + b"}"),
    ("DELETE", "/api/v1/maintenance/" + "9" * 26, bearer("operator"), b""),
    ("POST", "/api/v1/incidents/1/ack", {"Authorization": "Bearer \xff\xfe"}, b"{}"),
    ("POST", "/api/v1/notices", bearer("operator"), b'{"title": "' + b"\\ud800" + b'"}'),
    ("POST", "/api/v1/security-events", bearer("admin"), DEEP),
    ("POST", "/api/v1/corrections", bearer("admin"), b'{"service": "juki", "reason": "r", "start": "'
     + b"9" * 50 + b'", "end": "x"}'),
]  # fmt: skip
BAD_READS: list[tuple[str, dict[str, str]]] = [
    ("/api/v1/incidents/" + "9" * 26, {}),
    ("/api/v1/incidents?limit=" + "9" * 5000, {}),
    ("/api/v1/reports/2026-11?lang=%ff", {}),
    ("/api/v1/reports/2026-11?lang=de", {}),
    ("/api/v1/targets?offset=" + "9" * 5000, {}),
    ("/api/v1/security-incidents/" + "9" * 26, {}),
    ("/api/v1/targets", {"Authorization": "Bearer \xff"}),
    ("/no/such/page", {}),
]


def problem_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "request_refused" in line]


async def test_every_bad_input_is_a_4xx_problem_with_one_log_line(api: Any, capsys: pytest.CaptureFixture[str]) -> None:
    client, daemon = api
    capsys.readouterr()
    for method, path, headers, body in BAD_WRITES:
        before = await audited(daemon)
        response = await client.request(
            method, path, data=body, headers={"Content-Type": "application/json", **headers}
        )
        text = await response.text()
        assert 400 <= response.status < 500, (path, body[:60], response.status, text[:300])
        assert response.content_type == "application/problem+json", (path, body[:60])
        assert json.loads(text)["status"] == response.status
        assert await audited(daemon) == before + 1, (path, body[:60], "a refused write must be audited once")
        out = capsys.readouterr().out
        assert "Traceback" not in out and len(problem_lines(out)) == 1, (path, out[-2000:])
    for path, headers in BAD_READS:
        response = await client.get(path, headers=headers)
        assert 400 <= response.status < 500 and response.content_type == "application/problem+json", path
        out = capsys.readouterr().out
        assert "Traceback" not in out and len(problem_lines(out)) == 1, (path, out[-2000:])
    valid, _ = await daemon.store.verify_audit_chain()
    assert valid
    entries, _ = await daemon.store.audit_log(200)
    logins = [e for e in entries if e.action == "session.login"]
    assert len(logins) == 6 and all(e.outcome == "invalid" for e in logins)
    assert any(e.action == "auth.malformed_header" for e in entries)


async def test_csrf_refusals_are_audited(api: Any) -> None:
    client, daemon = api
    login = await client.post("/login", json={"name": "yamada", "password": PASSWORD})
    assert login.status == 200
    before = await audited(daemon)
    for path in ("/api/v1/incidents/1/ack", "/api/v1/maintenance", "/api/v1/notices", "/logout"):
        forged = await client.post(path, data={"text": "x"})  # what a form posted from another site sends
        assert forged.status == 403 and forged.content_type == "application/problem+json", path
    entries, total = await daemon.store.audit_log(10)
    assert total == before + 4
    assert sum(e.action == "csrf" and e.outcome == "denied" for e in entries) == 4


def _fuzz_values(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(12 if depth < 4 else 7)
    return [
        lambda: rng.randrange(-(10**30), 10**30),
        lambda: rng.random() * 10 ** rng.randrange(0, 300),
        lambda: "".join(rng.choice(["a", "é", "\u3042", "\x00", "\ud800", "\U0001f600", "%ff", "\\"]) for _ in range(rng.randrange(8))),
        lambda: None,
        lambda: rng.choice([True, False]),
        lambda: "9" * rng.randrange(1, 60) + rng.choice(["", "d", "s", "ms", "y"]),
        lambda: rng.choice(["2030-01-01T00:00:00", "9999-12-31T23:59:59", "0001-01-01", "", "tokyo-edge", "juki"]),
        lambda: [_fuzz_values(rng, depth + 1) for _ in range(rng.randrange(4))],
        lambda: {rng.choice(FIELDS): _fuzz_values(rng, depth + 1) for _ in range(rng.randrange(6))},
        lambda: {rng.choice(FIELDS): _fuzz_values(rng, depth + 1) for _ in range(rng.randrange(6))},
        lambda: [{"labels": {"alertname": _fuzz_values(rng, depth + 1)}, "status": "firing"}],
        lambda: {rng.choice(FIELDS): _fuzz_values(rng, depth + 1) for _ in range(rng.randrange(6))},
    ][choice]()  # fmt: skip


FIELDS = ["name", "password", "text", "comment", "reason", "targets", "start", "end", "duration", "alerts",
          "title", "body", "services", "starts_at", "ends_at", "service", "status", "labels", "source", "every"]  # fmt: skip


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=True).encode()  # "\ud800" written as its escape, as a client would


async def test_fuzzed_bodies_never_cause_a_server_error(api: Any) -> None:
    """A seeded fuzzer over the JSON bodies of every write route, with an operator, an admin and no token."""
    client, daemon = api
    routes = sorted(
        (r.method, r.resource.canonical.replace("{id}", "1"))
        for r in client.server.app.router.routes()
        if r.method in ("POST", "PATCH", "DELETE") and r.resource is not None
    )
    assert len(routes) >= 15
    rng = random.Random(24)
    sent = 0
    for _ in range(12):
        for method, path in routes:
            value = _fuzz_values(rng)
            body = _encode(value if rng.random() < 0.7 else {"alerts": value, "name": value, "text": value})
            if rng.random() < 0.1:
                body = body[: rng.randrange(len(body) + 1)]  # truncated
            headers = rng.choice([bearer("operator"), bearer("admin"), {}])
            response = await client.request(
                method, path, data=body, headers={"Content-Type": "application/json", **headers}
            )
            sent += 1
            assert response.status < 500, (method, path, body[:200], await response.text())
            if response.status >= 400:
                assert response.content_type == "application/problem+json", (method, path, body[:200])
    valid, _ = await daemon.store.verify_audit_chain()
    assert valid and sent >= 180


async def test_login_backs_off_per_address_and_never_locks_the_user_out(api: Any) -> None:
    client, daemon = api
    for _ in range(3):
        bad = await client.post("/login", json={"name": "yamada", "password": "guess"})
        assert bad.status == 401
    limited = await client.post("/login", json={"name": "yamada", "password": PASSWORD})
    assert limited.status == 429 and limited.content_type == "application/problem+json"
    assert 1 <= int(limited.headers["Retry-After"]) <= 3  # a back-off, not the old 5-minute lock-out
    # the same failures from another address do not keep the user out where they are
    limiter: LoginLimiter = daemon.guard.logins
    assert limiter.blocked("addr:192.0.2.7", "user:yamada") == 0.0


def test_limiter_backs_off_exponentially_and_evicts_the_oldest_key() -> None:
    limiter = LoginLimiter(attempts=3, window=300.0, max_keys=1000)
    waits = []
    for _ in range(8):
        limiter.failed("addr:a")
        waits.append(limiter.blocked("addr:a"))
    assert waits[:2] == [0.0, 0.0] and all(b > a * 1.5 for a, b in itertools.pairwise(waits[2:7]))
    assert max(waits) <= 300.0
    for _ in range(13):  # many failures for one name from everywhere: slowed a little, never locked for long
        limiter.failed("user:yamada")
    assert 0 < limiter.blocked("user:yamada") <= LoginLimiter.USER_MAX_WAIT
    for n in range(5000):  # a flood of addresses: the oldest go, the rest (the recent ones) stay
        limiter.failed(f"addr:flood-{n}")
    assert len(limiter.failures) == 1000 and "addr:flood-4999" in limiter.failures
    assert limiter.failures["addr:flood-4999"].count == 1 and "addr:a" not in limiter.failures


async def test_unknown_users_cost_as_much_as_real_ones(api: Any) -> None:
    """User enumeration by timing: an unknown name is checked against a dummy scrypt hash."""
    client, daemon = api
    daemon.guard.logins.attempts = 1000  # measure the hashing, not the limiter

    async def timed(name: str) -> float:
        start = time.perf_counter()
        response = await client.post("/login", json={"name": name, "password": "wrong password"})
        assert response.status == 401
        return time.perf_counter() - start

    known = [await timed("yamada") for _ in range(5)]
    unknown = [await timed(f"nobody-{i}") for i in range(5)]
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.6 < ratio < 1.6, (known, unknown)
    assert statistics.median(known) > 0.005  # scrypt really ran


async def test_expensive_reads_are_cached_and_rate_limited(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client, _daemon = api
    import monitor.http.cache
    import monitor.http.console

    calls = 0
    original = monitor.http.console.board

    def counting(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(*args)

    monkeypatch.setattr(monitor.http.console, "board", counting)
    monkeypatch.setattr(monitor.http.cache, "TARPIT", 0.0)  # the 429s' delay is measured in test_http_attacks
    for _ in range(6):
        response = await client.get("/api/v1/board")
        assert response.status == 200 and response.content_type == "application/json"
        assert (await response.json())["targets"]
    assert calls == 1  # computed once, then served from the cache
    statuses = [(await client.get("/status.json")).status for _ in range(12)]
    assert 429 in statuses  # burst 10 at 5/s, across all the expensive reads of one address
    limited = await client.get("/api/v1/targets")
    assert limited.status == 429 and limited.content_type == "application/problem+json"
    assert int(limited.headers["Retry-After"]) >= 1
    assert (await client.get("/healthz")).status == 200  # never limited
    assert _daemon.registry.get_sample_value("monitor_http_requests_limited_total") == statuses.count(429) + 1


def test_token_buckets_refill_and_forget_the_oldest() -> None:
    now = [0.0]
    buckets = TokenBuckets(lambda: now[0])
    assert [buckets.take("a", 2.0, 3) for _ in range(4)][:3] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 2.0, 3) > 0
    now[0] += 1.0
    assert buckets.take("a", 2.0, 3) == 0.0


def test_listener_caps_are_sized_from_the_descriptor_limit() -> None:
    """Unset caps leave three quarters of RLIMIT_NOFILE to probing; set ones are kept (per source <= all)."""
    issue = resolve_limits(HttpListenerConfig(), nofile=20_000)  # the daemon of issue 24
    assert (issue.max_connections, issue.max_per_source) == (5_000, 256)
    small = resolve_limits(HttpListenerConfig(), nofile=1024)
    assert (small.max_connections, small.max_per_source) == (256, 64)
    assert resolve_limits(HttpListenerConfig(), nofile=1 << 20).max_connections == 10_000
    given = resolve_limits(HttpListenerConfig(max_connections=100, max_connections_per_source=500), nofile=1024)
    assert (given.max_connections, given.max_per_source) == (100, 100)
    assert (given.header_timeout, given.idle_timeout) == (10.0, 30.0)
