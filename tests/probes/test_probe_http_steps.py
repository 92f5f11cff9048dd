"""HTTP transactions (`steps:`) and the header and JSON assertions, against real aiohttp servers on
loopback: a login -> token -> call flow, each failure class with its exact verdict and reason, cookies
across steps, variables in url, headers and body, secrets used and never shown, config errors."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from monitor.config.loader import ConfigError, load_config
from monitor.incidents.reasons import reason_ja
from probes import http
from probes.base import ProbeRequest, ProbeResult
from probes.http import HTTPProbe, HTTPSettings
from probes.registry import series

LOOPBACK4 = "127.0.0.1"
PASSWORD = "hunter2-s3cret"  # the secret the login step sends; must never show in a reason


class API:
    """A small national API: POST /login (JSON credentials, sets a session cookie), GET /token (needs the
    cookie; {"status", "token"}), GET /items/{id} (needs the bearer token; {"data": {...}}). What it was
    sent is kept, so a test can see what the probe substituted."""

    def __init__(self) -> None:
        self.token_status = "OK"
        self.login_status = 200
        self.item: dict[str, Any] = {"state": "green", "count": 3}
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        self.echo_user = False

    def routes(self) -> list[web.RouteDef]:
        async def login(request: web.Request) -> web.Response:
            body = await request.read()
            self.seen.append((request.path_qs, dict(request.headers), body))
            credentials = json.loads(body)
            if self.echo_user:  # a server that quotes what it got
                return web.json_response({"user": credentials["password"]})
            if credentials != {"user": "noc", "password": PASSWORD} or self.login_status != 200:
                return web.json_response(
                    {"error": "denied"}, status=self.login_status if self.login_status != 200 else 401
                )
            response = web.json_response({"ok": True}, headers={"X-Request-Id": "req-42"})
            response.set_cookie("session", "s-1")
            return response

        async def token(request: web.Request) -> web.Response:
            self.seen.append((request.path_qs, dict(request.headers), await request.read()))
            if request.cookies.get("session") != "s-1":
                return web.json_response({"error": "no session"}, status=401)
            return web.json_response({"status": self.token_status, "token": "t-77", "item": 12})

        async def item(request: web.Request) -> web.Response:
            self.seen.append((request.path_qs, dict(request.headers), await request.read()))
            if request.headers.get("Authorization") != "Bearer t-77":
                return web.json_response({"error": "bad token"}, status=403)
            return web.json_response({"data": self.item, "id": request.match_info["id"]},
                                     headers={"Cache-Control": "no-store"})  # fmt: skip

        async def plain(request: web.Request) -> web.Response:
            return web.Response(text="not json", headers={"X-Backend": "b2", "Server": "lab/1.0 debug"})

        return [
            web.post("/login", login),
            web.get("/token", token),
            web.get("/items/{id}", item),
            web.get("/plain", plain),
        ]


@pytest.fixture
async def api(peers: Any) -> tuple[API, int]:
    server = API()
    return server, await peers.http(server.routes())


FLOW: list[dict[str, Any]] = [
    {
        "name": "login",
        "method": "POST",
        "url": "/login",
        "body": {"user": "noc", "password": "${password}"},
        "fail_if_header_not_matches": [{"header": "X-Request-Id", "regexp": "^req-"}],
        "extract": {"request_id": {"header": "X-Request-Id", "regexp": "req-(\\d+)"}},
    },
    {
        "name": "token",
        "url": "/token",
        "fail_if_json_not_matches": [{"path": "status", "value": "OK"}],
        "extract": {"token": {"json": "token"}, "item": {"json": "item"}},
    },
    {
        "name": "call",
        "url": "/items/${item}?req=${request_id}",
        "headers": {"Authorization": "Bearer ${token}", "X-Trace": "trace-${request_id}"},
        "fail_if_json_not_matches": [
            {"path": "data.state", "value": "green"},
            {"path": "data.count", "regexp": "^[0-9]+$"},
        ],
    },
]


def settings(monkeypatch: pytest.MonkeyPatch, steps: list[dict[str, Any]] | None = None, **kw: Any) -> HTTPSettings:
    """Module settings as the config gives them: the password is a reference to the environment."""
    monkeypatch.setenv("API_PASSWORD", PASSWORD)
    return HTTPSettings.model_validate({"steps": FLOW if steps is None else steps,
                                        "secrets": {"password": "${API_PASSWORD}"}, **kw})  # fmt: skip


async def run(probe: HTTPProbe, port: int, module: HTTPSettings) -> ProbeResult:
    async with asyncio.timeout(5):
        return await probe.run(ProbeRequest(LOOPBACK4, None, port, 3.0), module)


def step_series(result: ProbeResult, family: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {s.labels: s.value for s in result.series if s.name == family}


# ----------------------------------------------------------------------------------------- the flow


async def test_login_token_call_flow_passes(
    api: tuple[API, int], http_probe: HTTPProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """login -> token -> call -> field: the cookie crosses steps, variables reach url, headers and body."""
    server, port = api
    result = await run(http_probe, port, settings(monkeypatch))
    assert result.ok, result.error
    login, token, call = server.seen
    assert json.loads(login[2]) == {"user": "noc", "password": PASSWORD}  # the secret, substituted into a JSON body
    assert login[1]["Content-Type"] == "application/json"
    assert "session=s-1" in token[1]["Cookie"]  # set by step 1, sent by step 2
    assert call[0] == "/items/12?req=42"  # a JSON number and a header's regexp group, in the url
    assert call[1]["Authorization"] == "Bearer t-77" and call[1]["X-Trace"] == "trace-42"
    assert result.values[http.STATUS.key] == 200
    assert step_series(result, "monitor_http_step_status_code") == {
        (("step", "login"),): 200.0, (("step", "token"),): 200.0, (("step", "call"),): 200.0}  # fmt: skip
    durations = step_series(result, "monitor_http_step_duration_seconds")
    for step in ("login", "token", "call"):
        assert {(("step", step), ("phase", p)) for p in ("connect", "processing", "transfer")} <= durations.keys()
    # the probe's phases are the steps' summed: what monitor_probe_phase_duration_seconds shows
    connect = sum(v for k, v in durations.items() if k[1] == ("phase", "connect"))
    assert result.phases["connect"] == pytest.approx(connect)


async def test_text_body_substituted(
    api: tuple[API, int], http_probe: HTTPProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A text body gets its variables too, and keeps the content type it is given."""
    server, port = api
    steps = [{"name": "login", "method": "POST", "url": f"http://{LOOPBACK4}:{port}/login",
              "headers": {"Content-Type": "application/json"},
              "body": '{"user": "noc", "password": "${password}"}'}]  # fmt: skip
    result = await run(http_probe, port, settings(monkeypatch, steps))
    assert result.ok, result.error
    assert json.loads(server.seen[0][2])["password"] == PASSWORD


# ------------------------------------------------------------------------------------ failure classes


async def test_wrong_status_names_the_step(
    api: tuple[API, int], http_probe: HTTPProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, port = api
    server.login_status = 401
    result = await run(http_probe, port, settings(monkeypatch))
    assert (result.ok, result.error) == (False, "step 1 'login': HTTP 401, expected 2xx")
    assert len(server.seen) == 1  # the transaction stops at the first failing step
    assert reason_ja(result.error) == "手順1「login」でHTTPステータス異常（401）"


async def test_valid_status_codes_per_step(
    api: tuple[API, int], http_probe: HTTPProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, port = api
    steps = [{"name": "anonymous", "url": "/token", "valid_status_codes": [401]},
             {"name": "again", "url": "/token", "valid_status_codes": [200, 204]}]  # fmt: skip
    result = await run(http_probe, port, settings(monkeypatch, steps))
    assert result.error == "step 2 'again': HTTP 401, expected [200, 204]"


async def test_json_field_wrong(api: tuple[API, int], http_probe: HTTPProbe, monkeypatch: pytest.MonkeyPatch) -> None:
    server, port = api
    server.token_status = "NG"
    result = await run(http_probe, port, settings(monkeypatch))
    assert (result.ok, result.error) == (False, "step 2 'token': status is 'NG', expected 'OK'")
    assert reason_ja(result.error) == "手順2「token」の応答内容が想定と異なる"


async def test_json_field_missing(api: tuple[API, int], http_probe: HTTPProbe, monkeypatch: pytest.MonkeyPatch) -> None:
    server, port = api
    server.item = {"count": 3}
    result = await run(http_probe, port, settings(monkeypatch))
    assert result.error == "step 3 'call': data.state is missing, expected 'green'"


async def test_json_regexp_fails(api: tuple[API, int], http_probe: HTTPProbe, monkeypatch: pytest.MonkeyPatch) -> None:
    server, port = api
    server.item = {"state": "green", "count": "many"}
    result = await run(http_probe, port, settings(monkeypatch))
    assert result.error == "step 3 'call': data.count is 'many', expected to match /^[0-9]+$/"


async def test_nothing_to_extract(api: tuple[API, int], http_probe: HTTPProbe, monkeypatch: pytest.MonkeyPatch) -> None:
    _, port = api
    steps = [*FLOW[:1], {"name": "token", "url": "/token", "extract": {"token": {"json": "access_token"}}}]
    result = await run(http_probe, port, settings(monkeypatch, steps))
    assert result.error == "step 2 'token': nothing to extract into token (json access_token)"


async def test_body_not_json(api: tuple[API, int], http_probe: HTTPProbe, monkeypatch: pytest.MonkeyPatch) -> None:
    _, port = api
    steps = [{"name": "page", "url": "/plain", "fail_if_json_not_matches": [{"path": "a", "value": 1}]}]
    result = await run(http_probe, port, settings(monkeypatch, steps))
    assert result.error == "step 1 'page': body is not JSON"


async def test_header_assertions_on_a_step(
    api: tuple[API, int], http_probe: HTTPProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, port = api
    cases = [
        ({"fail_if_header_matches": [{"header": "server", "regexp": "debug"}]}, "header server matches /debug/"),
        ({"fail_if_header_not_matches": [{"header": "X-Backend", "regexp": "^b1$"}]},
         "header X-Backend does not match /^b1$/"),
        ({"fail_if_header_not_matches": [{"header": "X-Missing", "regexp": "."}]}, "header X-Missing missing"),
        ({"fail_if_header_matches": [{"header": "X-Missing", "regexp": ".", "allow_missing": True}]}, None),
    ]  # fmt: skip
    for assertion, reason in cases:
        result = await run(http_probe, port, settings(monkeypatch, [{"name": "page", "url": "/plain", **assertion}]))
        assert result.error == (f"step 1 'page': {reason}" if reason else None), assertion


async def test_cookie_needed_across_steps_and_not_across_runs(
    api: tuple[API, int], http_probe: HTTPProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cookie of step 1 is sent by step 2; the next run starts with an empty jar (no login carried)."""
    _, port = api
    assert (await run(http_probe, port, settings(monkeypatch, FLOW[:2]))).ok
    result = await run(http_probe, port, settings(monkeypatch, [FLOW[1]]))
    assert result.error == "step 1 'token': HTTP 401, expected 2xx"


async def test_secret_used_and_never_shown(
    api: tuple[API, int], http_probe: HTTPProbe, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A server quoting the password back into a failing JSON field: the reason masks it; the settings
    never print it."""
    caplog.set_level(logging.DEBUG)
    server, port = api
    server.echo_user = True
    steps = [{**FLOW[0], "fail_if_json_not_matches": [{"path": "user", "value": "noc"}], "extract": {},
              "fail_if_header_not_matches": []}]  # fmt: skip
    module = settings(monkeypatch, steps)
    result = await run(http_probe, port, module)
    assert result.error == "step 1 'login': user is '***', expected 'noc'"
    assert json.loads(server.seen[0][2])["password"] == PASSWORD  # it was sent
    shown = [repr(module), module.model_dump_json(), repr(result), caplog.text]
    assert not any(PASSWORD in text for text in shown)


async def test_extracted_value_with_a_newline_is_refused(
    api: tuple[API, int], http_probe: HTTPProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server's value with CR LF in it never becomes a second header line: the step fails."""
    server, port = api
    server.token_status = "OK\r\nX-Injected: 1"
    steps = [*FLOW[:1], {"name": "token", "url": "/token", "extract": {"status": {"json": "status"}}},
             {"name": "call", "url": "/plain", "headers": {"X-Status": "${status}"}}]  # fmt: skip
    result = await run(http_probe, port, settings(monkeypatch, steps))
    assert result.error == "step 3 'call': invalid request: a control character in a header (from a variable?)"


async def test_connection_failure_names_the_step(
    http_probe: HTTPProbe, monkeypatch: pytest.MonkeyPatch, refused_port: int
) -> None:
    steps = [{"name": "health", "url": "/health"}]
    result = await run(http_probe, refused_port, settings(monkeypatch, steps))
    assert result.ok is False
    assert result.error is not None and result.error.startswith("step 1 'health': ")
    assert reason_ja(result.error) == "接続拒否"


async def test_timeout_names_the_step(
    peers: Any, runner: Any, check_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner's timeout says which step it cut off, and where in it."""
    release = asyncio.Event()

    async def fast(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    async def dribble(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "100"})
        await response.prepare(request)
        await response.write(b"12345")
        await release.wait()
        return response

    port = await peers.http([web.get("/fast", fast), web.get("/slow", slow), web.get("/dribble", dribble)])
    try:
        for path, where in (("/slow", "waiting for the response head"),
                            ("/dribble", "while reading the body (HTTP 200, 5 of 100 bytes)")):  # fmt: skip
            steps = [{"name": "health", "url": "/fast"},
                     {"name": "token", "url": path, "fail_if_body_matches_regexp": ["x"]}]  # fmt: skip
            check = check_factory("http", settings(monkeypatch, steps), port=port, timeout=0.5)
            result = await runner.run(check)
            assert result.error == f"timeout after 500ms in step 2 'token' {where}"
    finally:
        release.set()


# ------------------------------------------------------------------------------ single-request checks


async def test_single_request_header_and_json_assertions(api: tuple[API, int], http_probe: HTTPProbe) -> None:
    """The same assertions on the one-request fast path (probes.http1), with their reasons."""
    _, port = api

    async def error(**kw: Any) -> str | None:
        return (await run(http_probe, port, HTTPSettings.model_validate(kw))).error

    assert await error(path="/plain", fail_if_header_matches=[{"header": "Server", "regexp": "debug"}]) == (
        "header Server matches /debug/"
    )
    assert await error(path="/plain", fail_if_header_not_matches=[{"header": "x-backend", "regexp": "b2"}]) is None
    assert await error(path="/plain", fail_if_header_not_matches=[{"header": "X-None", "regexp": "."}]) == (
        "header X-None missing"
    )
    assert await error(path="/token", valid_status_codes=[401], fail_if_json_not_matches=[
        {"path": "error", "value": "no session"}]) is None  # fmt: skip
    assert await error(path="/token", valid_status_codes=[401], fail_if_json_not_matches=[
        {"path": "error", "regexp": "^token"}]) == "JSON error is 'no session', expected to match /^token/"  # fmt: skip
    assert await error(path="/plain", fail_if_json_not_matches=[{"path": "a", "value": True}]) == "body is not JSON"
    assert reason_ja("header Server matches /debug/") == "応答ヘッダが想定と異なる"
    assert reason_ja("JSON error is 'x', expected 'y'") == "応答JSONが想定と異なる"


async def test_json_true_is_not_one(
    api: tuple[API, int], http_probe: HTTPProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, port = api
    server.item = {"state": "green", "count": 1}
    steps = [*FLOW[:2], {**FLOW[2], "fail_if_json_not_matches": [{"path": "data.count", "value": True}]}]
    result = await run(http_probe, port, settings(monkeypatch, steps))
    assert result.error == "step 3 'call': data.count is 1, expected true"


# -------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ({"steps": [{"name": "a", "url": "/${nope}"}]},
         "step 1 'a' uses ${nope}, which neither `secrets` nor an earlier step's `extract` defines"),
        ({"steps": [{"name": "a", "url": "/", "headers": {"X": "${t}"}, "extract": {"t": {"json": "t"}}}]},
         "step 1 'a' uses ${t}, which neither"),
        ({"steps": [{"name": "a", "url": "/"}, {"name": "a", "url": "/"}]}, "two steps are named 'a'"),
        ({"steps": [{"name": "a", "url": "/"}], "valid_status_codes": [200]}, "with steps, set valid_status_codes on each step"),
        ({"steps": [{"name": "a", "url": "/"}], "http_version": "2"}, "steps speak HTTP/1.1"),
        ({"fail_if_json_not_matches": [{"path": "a["}]}, 'invalid JMESPath expression "a["'),
        ({"fail_if_json_not_matches": [{"path": "a"}]}, "either value or regexp"),
        ({"steps": [{"name": "a", "url": "/", "extract": {"t": {"json": "a", "header": "b"}}}]}, "not both"),
        ({"steps": [{"name": "a", "url": "/", "body": "${password}"}], "secrets": {"password": "hunter2"}},
         "secrets must be references"),
    ],
)  # fmt: skip
def test_config_errors(module: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        HTTPSettings.model_validate(module)
    assert message in str(info.value)


def test_config_error_points_at_file_line_path(tmp_path: Path) -> None:
    (tmp_path / "monitor.yml").write_text(
        "modules:\n"
        "  api:\n"
        "    kind: http\n"
        "    http:\n"
        "      steps:\n"
        "        - {name: login, url: /login}\n"
        "        - {name: call, url: /x, fail_if_json_not_matches: [{path: 'a[', value: 1}]}\n"
        "targets:\n  - {name: a, address: 127.0.0.1, modules: [api]}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "monitor.yml")
    text = str(info.value)
    assert text.endswith(
        'monitor.yml:7: modules.api.http.steps[1] "call": fail_if_json_not_matches[0].path: invalid JMESPath'
        ' expression "a[": Invalid jmespath expression: Incomplete expression'
    ), text


def test_step_families_are_declared() -> None:
    """/metrics and docs/metrics.md know the per-step families from the kind's declaration."""
    names = {f.name: f.labels for f in series()}
    assert names["monitor_http_step_duration_seconds"] == ("step", "phase")
    assert names["monitor_http_step_status_code"] == ("step",)
