"""Issue 17: verdicts against misbehaving servers on loopback, each case with its exact verdict and reason.

Covered here: one response-head limit on both HTTP paths (point 2), blackbox_exporter's meaning of
body_size_limit and a body that is counted, not kept, when no check needs it (point 3), a capped body
that costs ~1x its limit (point 7), and timeouts that say where the probe was (point 5). The DNS cases
(points 1 and 4) are in test_probe_dns.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.runner import ProbeRunner
from probes import http
from probes.base import ProbeRequest, ProbeResult
from probes.http import HTTPProbe, HTTPSettings
from probes.tcp import TCPSettings

CONTENT_LENGTH, HTTP_STATUS = http.CONTENT_LENGTH.key, http.STATUS.key  # keys of ProbeResult.values

LOOPBACK4 = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


async def probe(http_probe: HTTPProbe, port: int, **settings: Any) -> ProbeResult:
    params = settings.pop("params", {})
    async with asyncio.timeout(10):
        return await http_probe.run(ProbeRequest(LOOPBACK4, None, port, 5.0, params), HTTPSettings(**settings))


def tls_settings(pki: Any, **settings: Any) -> dict[str, Any]:
    return {"scheme": "https", "tls_config": {"ca_file": pki.ca.cert_file}, **settings}


def big_header_routes(tls_port: list[int]) -> list[web.RouteDef]:
    async def cookie(request: web.Request) -> web.Response:  # a 16 KiB Set-Cookie, as the evaluator saw
        return web.Response(text="ok", headers={"Set-Cookie": "session=" + "c" * 16 * 1024})

    async def csp(request: web.Request) -> web.Response:  # a 9 KB Content-Security-Policy
        return web.Response(text="ok", headers={"Content-Security-Policy": "default-src 'self' " + "x" * 9000})

    async def many(request: web.Request) -> web.Response:  # 300 header lines, 20 KiB in all
        return web.Response(text="ok", headers={f"X-Line-{i}": "v" * 60 for i in range(300)})

    async def huge(request: web.Request) -> web.Response:  # five 15 KiB lines: each fits, the head does not
        return web.Response(text="ok", headers={f"X-Big-{i}": "h" * 15 * 1024 for i in range(5)})

    async def line_too_long(request: web.Request) -> web.Response:
        return web.Response(text="ok", headers={"X-Long": "l" * 70 * 1024})

    async def to_tls(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"https://{LOOPBACK4}:{tls_port[0]}/cookie")

    async def hop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/cookie")

    return [
        web.get("/cookie", cookie),
        web.get("/csp", csp),
        web.get("/many", many),
        web.get("/huge", huge),
        web.get("/line-too-long", line_too_long),
        web.get("/to-tls", to_tls),
        web.get("/hop", hop),
    ]


@pytest.fixture
async def header_sites(peers: Any, pki: Any) -> tuple[int, int]:
    """(plain port, TLS port) of two servers with the same big-header routes."""
    tls_port: list[int] = []
    plain = await peers.http(big_header_routes(tls_port))
    tls_port.append(await peers.http(big_header_routes(tls_port), ssl_context=pki.leaf.server_context()))
    return plain, tls_port[0]


# ------------------------------------------------------------------------- point 2: one head limit


@pytest.mark.parametrize("path", ["/cookie", "/csp", "/many", "/hop"])
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_large_headers_pass_on_both_paths(
    header_sites: tuple[int, int], http_probe: HTTPProbe, pki: Any, path: str, scheme: str
) -> None:
    """A 16 KiB header line, a 9 KB one and 300 lines pass on http, on https and after a redirect
    (aiohttp's default 8,190-byte line limit failed them on https when aiohttp did https)."""
    plain, tls = header_sites
    settings = tls_settings(pki, path=path) if scheme == "https" else {"path": path}
    result = await probe(http_probe, tls if scheme == "https" else plain, **settings)
    assert (result.ok, result.error) == (True, None)


async def test_large_header_after_a_redirect_to_https(
    header_sites: tuple[int, int], http_probe: HTTPProbe, pki: Any
) -> None:
    """A plain-http check redirected to https keeps the same limit."""
    plain, _ = header_sites
    for _ in range(2):
        result = await probe(http_probe, plain, path="/to-tls", tls_config={"ca_file": pki.ca.cert_file})
        assert (result.ok, result.error) == (True, None)
        assert result.info["final_url"].startswith("https://")


@pytest.mark.parametrize("path", ["/huge", "/line-too-long"])
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_head_over_64_kib_fails_the_same_on_both_paths(
    header_sites: tuple[int, int], http_probe: HTTPProbe, pki: Any, path: str, scheme: str
) -> None:
    """A head over 64 KiB in all, or one line over it, fails with one reason on both paths."""
    plain, tls = header_sites
    settings = tls_settings(pki, path=path) if scheme == "https" else {"path": path}
    result = await probe(http_probe, tls if scheme == "https" else plain, **settings)
    assert (result.ok, result.error) == (False, "invalid HTTP response: response head larger than 64 KiB")


# --------------------------------------------------- points 3 and 7: body_size_limit, body memory


def body_routes() -> list[web.RouteDef]:
    async def sized(request: web.Request) -> web.StreamResponse:
        size = int(request.match_info["size"])
        response = web.StreamResponse(headers={"Content-Length": str(size)})
        await response.prepare(request)
        piece = b"x" * 65536
        sent = 0
        while sent < size:
            await response.write(piece[: size - sent])
            sent += min(len(piece), size - sent)
        return response

    return [web.get("/sized/{size}", sized)]


@pytest.fixture
async def body_sites(peers: Any, pki: Any) -> dict[str, int]:
    return {
        "http": await peers.http(body_routes()),
        "https": await peers.http(body_routes(), ssl_context=pki.leaf.server_context()),
    }


def body_settings(scheme: str, pki: Any, **settings: Any) -> dict[str, Any]:
    return tls_settings(pki, **settings) if scheme == "https" else settings


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_default_reads_any_body_size_when_no_check_needs_it(
    body_sites: dict[str, int], http_probe: HTTPProbe, pki: Any, scheme: str
) -> None:
    """blackbox_exporter's default: no limit. A 24 MiB page with no body check is read, counted and
    passes (it failed at the old 1 MiB default), and none of it is kept: memory stays flat."""
    tracemalloc.start()
    try:
        result = await probe(http_probe, body_sites[scheme], **body_settings(scheme, pki, path=f"/sized/{24 * MIB}"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (result.ok, result.error) == (True, None)
    assert result.values[CONTENT_LENGTH] == 24 * MIB
    assert peak < 4 * MIB


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_body_size_limit_zero_means_no_limit(
    body_sites: dict[str, int], http_probe: HTTPProbe, pki: Any, scheme: str
) -> None:
    """`body_size_limit: 0` is "no limit" (it failed every body here before), with a body check too."""
    settings = body_settings(
        scheme, pki, path=f"/sized/{2 * MIB}", body_size_limit=0, fail_if_body_not_matches_regexp=["^x+$"]
    )
    result = await probe(http_probe, body_sites[scheme], **settings)
    assert (result.ok, result.error) == (True, None)
    assert result.values[CONTENT_LENGTH] == 2 * MIB


@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_body_over_the_limit_fails_whether_kept_or_not(
    body_sites: dict[str, int], http_probe: HTTPProbe, pki: Any, scheme: str, keep: bool
) -> None:
    """A set limit is a limit, as in blackbox_exporter: one byte over it fails, kept or only counted."""
    checks = {"fail_if_body_matches_regexp": ["nothing"]} if keep else {}
    settings = body_settings(scheme, pki, path="/sized/100001", body_size_limit=100_000, **checks)
    result = await probe(http_probe, body_sites[scheme], **settings)
    assert (result.ok, result.error) == (False, "body larger than body_size_limit (100000 bytes)")
    assert result.values[CONTENT_LENGTH] == 100_000


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_capped_kept_body_costs_about_one_limit(
    body_sites: dict[str, int], http_probe: HTTPProbe, pki: Any, scheme: str
) -> None:
    """A kept body larger than its 16 MiB limit costs ~1x the limit (it was ~3x: chunks, join, slice)."""
    limit = 16 * MIB
    settings = body_settings(
        scheme, pki, path=f"/sized/{40 * MIB}", body_size_limit=limit, fail_if_body_not_matches_regexp=["y"]
    )
    tracemalloc.start()
    try:
        result = await probe(http_probe, body_sites[scheme], **settings)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.error == f"body larger than body_size_limit ({limit} bytes)"
    assert peak < 1.3 * limit


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_body_regexp_on_a_large_body_does_not_copy_it(
    body_sites: dict[str, int], http_probe: HTTPProbe, pki: Any, scheme: str
) -> None:
    """An ASCII pattern is matched on the body's bytes: no decoded copy next to it."""
    settings = body_settings(
        scheme, pki, path=f"/sized/{16 * MIB}", body_size_limit=16 * MIB, fail_if_body_matches_regexp=["y"]
    )
    tracemalloc.start()
    try:
        result = await probe(http_probe, body_sites[scheme], **settings)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (result.ok, result.error) == (True, None)
    assert peak < 1.3 * 16 * MIB


async def test_non_ascii_pattern_is_matched_on_the_decoded_body(peers: Any, http_probe: HTTPProbe) -> None:
    """A pattern with non-ASCII characters (a Japanese page's text) is matched against the UTF-8 text."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<p>ログイン</p>")

    port = await peers.http([web.get("/", page)])
    assert (await probe(http_probe, port, fail_if_body_not_matches_regexp=["ログ.ン"])).ok
    result = await probe(http_probe, port, fail_if_body_matches_regexp=["ログイン"])
    assert result.error == "body matches /ログイン/"


# ---------------------------------------------------------- point 5: timeouts say where they were


async def dribble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A 200 promising 100 bytes that sends 5 and then nothing, the connection left open."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello")
    await writer.drain()
    await asyncio.sleep(3600)


async def dribble_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    await writer.drain()
    await asyncio.sleep(3600)


async def silent_after_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(3600)


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


async def ssh_banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
    await writer.drain()
    await asyncio.sleep(3600)


HTTP_TIMEOUTS = {
    "body dribbles": (
        dribble,
        "timeout after 500ms while reading the body (HTTP 200, 5 of 100 bytes)",
        "body",
        {"http_status": "200", "body_bytes": "5", "content_length": "100"},
    ),
    "chunked body dribbles": (
        dribble_chunked,
        "timeout after 500ms while reading the body (HTTP 200, chunked, 5 bytes so far)",
        "body",
        {"http_status": "200", "body_bytes": "5"},
    ),
    "never answers": (silent_after_request, "timeout after 500ms waiting for the response head", "head", {}),
}


@pytest.mark.parametrize("case", sorted(HTTP_TIMEOUTS))
async def test_http_timeout_says_where(peers: Any, check_factory: Any, runner: ProbeRunner, case: str) -> None:
    handler, error, phase, facts = HTTP_TIMEOUTS[case]
    port = await peers.tcp(handler)
    result = await runner.run(check_factory("http", HTTPSettings(), port=port, timeout=0.5))
    assert (result.ok, result.error, result.phase) == (False, error, phase)
    assert result.info == facts
    assert "connect" in result.phases  # the timings up to the timeout are kept


@pytest.mark.parametrize(
    ("handler", "error", "phase"),
    [
        (dribble, "timeout after 500ms while reading the body (HTTP 200, 5 of 100 bytes)", "body"),
        (silent_after_request, "timeout after 500ms waiting for the response head", "head"),
    ],
)
async def test_https_timeout_says_where(
    peers: Any, pki: Any, check_factory: Any, runner: ProbeRunner, handler: Any, error: str, phase: str
) -> None:
    """The same words over https."""
    port = await peers.tcp(handler, ssl_context=pki.leaf.server_context())
    settings = HTTPSettings(**tls_settings(pki))
    result = await runner.run(check_factory("http", settings, port=port, timeout=0.5))
    assert (result.ok, result.error, result.phase) == (False, error, phase)


async def test_https_to_a_silent_plain_port(peers: Any, pki: Any, check_factory: Any, runner: ProbeRunner) -> None:
    """TLS to a port that accepts and says nothing: the connect is done, the handshake is not."""
    port = await peers.tcp(silent)
    settings = HTTPSettings(**tls_settings(pki))
    result = await runner.run(check_factory("http", settings, port=port, timeout=0.5))
    assert (result.ok, result.phase) == (False, "tls")
    assert result.error == "timeout after 500ms in TLS handshake"
    assert "connect" in result.phases


async def test_https_has_separate_connect_and_tls_phases(peers: Any, pki: Any, http_probe: HTTPProbe) -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    port = await peers.http([web.get("/", page)], ssl_context=pki.leaf.server_context())
    result = await probe(http_probe, port, **tls_settings(pki))
    assert (result.ok, result.error) == (True, None)
    assert {"resolve", "connect", "tls", "processing", "transfer"} <= set(result.phases)
    assert result.info["tls_version"].startswith("TLS")


@pytest.mark.parametrize(("path", "error"), [("/cookie", None), ("/huge", "response head larger than 64 KiB")])
async def test_aiohttp_path_has_the_same_head_limit(
    header_sites: tuple[int, int], http_probe: HTTPProbe, path: str, error: str | None
) -> None:
    """aiohttp (URLs with credentials) applies the same 64 KiB head limit, in the same words."""
    plain, _ = header_sites
    result = await probe(http_probe, plain, params={"url": f"http://u:p@127.0.0.1:{plain}{path}"})
    assert (result.ok, result.error) == (error is None, f"invalid HTTP response: {error}" if error else None)


async def test_credentials_in_the_url_go_through_aiohttp(peers: Any, http_probe: HTTPProbe) -> None:
    """A URL with user:password@ is the one case left to aiohttp (it sends them as Basic auth)."""
    seen: list[str] = []

    async def page(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.Response(text="ok")

    port = await peers.http([web.get("/", page)])
    result = await probe(http_probe, port, params={"url": f"http://user:pw@127.0.0.1:{port}/"})
    assert (result.ok, result.error) == (True, None)
    assert seen == ["Basic dXNlcjpwdw=="]


@pytest.mark.parametrize(
    ("handler", "settings", "error", "phase", "facts"),
    [
        (
            ssh_banner,
            {"query_response": [{"expect": "^220 "}]},
            "timeout after 500ms in step 1: expected /^220 /, got 'SSH-2.0-OpenSSH_9.6\\r\\n'",
            "step 1",
            {"received": "SSH-2.0-OpenSSH_9.6\r\n"},
        ),
        (
            silent,
            {"query_response": [{"send": "EHLO x\r\n"}, {"expect": "^250"}]},
            "timeout after 500ms in step 2: expected /^250/, got nothing",
            "step 2",
            {"received": ""},
        ),
        (silent, {"tls": True}, "timeout after 500ms in TLS handshake", "tls", {}),
    ],
)
async def test_tcp_timeout_says_where(
    peers: Any,
    check_factory: Any,
    runner: ProbeRunner,
    handler: Any,
    settings: dict[str, Any],
    error: str,
    phase: str,
    facts: dict[str, str],
) -> None:
    port = await peers.tcp(handler)
    result = await runner.run(check_factory("tcp", TCPSettings(**settings), port=port, timeout=0.5))
    assert (result.ok, result.error, result.phase) == (False, error, phase)
    assert result.info == facts


async def test_ok_result_reached_done(peers: Any, check_factory: Any, runner: ProbeRunner) -> None:
    port = await peers.tcp(ssh_banner)
    result = await runner.run(check_factory("tcp", TCPSettings(query_response=[{"expect": "^SSH-2.0-"}]), port=port))
    assert (result.ok, result.phase) == (True, "done")


async def test_probe_json_has_the_phase_and_partial_facts(peers: Any, tmp_path: Path) -> None:
    """`monitor probe --json` prints the phase reached and the partial facts of a timeout."""
    port = await peers.tcp(dribble)
    config = tmp_path / "monitor.yml"
    config.write_text(
        "modules:\n  web: {kind: http, timeout: 1s}\ntargets:\n"
        f"  - {{name: slow, address: 127.0.0.1, checks: [{{module: web, port: {port}}}]}}\n",
        encoding="utf-8",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "probe", "--config", str(config), "slow/web", "--json",
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        stdout, stderr = await proc.communicate()
    assert proc.returncode == 1, stderr
    out = json.loads(stdout)
    assert out["error"] == "timeout after 1s while reading the body (HTTP 200, 5 of 100 bytes)"
    assert out["phase"] == "body"
    assert out["info"] == {"http_status": "200", "body_bytes": "5", "content_length": "100"}
    assert HTTP_STATUS not in out["values"]  # a partial fact, not a measurement: no metric from it


# --------------------------------------------------- point 4: lenient where RFC 9112 and blackbox are

LENIENT = {
    "bare LF line ends": (b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: b\n\nok", True, None, "ok"),
    "bare LF after CRLF lines": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\nok", True, None, "ok"),
    "CRLF then a bare LF line": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\n\r\nok", True, None, "ok"),
    "obs-fold": (
        b"HTTP/1.1 200 OK\r\nX-Folded: one\r\n two\r\n\tthree\r\nContent-Length: 2\r\n\r\nok",
        True,
        None,
        "ok",
    ),
    "two identical Content-Length": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
        True,
        None,
        "ok",
    ),
    "a Content-Length list of one value": (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", True, None, "ok"),
    "chunked with bare LF framing": (  # RFC 9112 7.1 wants CRLF there; blackbox_exporter refuses it too
        b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n2\nok\n0\n\n",
        False,
        "invalid HTTP body: bare LF in the chunked framing (CRLF expected)",
        None,
    ),
    "two different Content-Length": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
        False,
        "invalid HTTP response: conflicting Content-Length values '2, 3'",
        None,
    ),
    "bare LF after chunk data": (  # llhttp's bare-LF leniency is switched off for the chunked framing
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\n0\r\n\r\n",
        False,
        "invalid HTTP body: bare LF in the chunked framing (CRLF expected)",
        None,
    ),
    "spaces after the chunk size": (  # RFC 9112 7.1.1 BWS; Go trims them too
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2  \r\nok\r\n0\r\n\r\n",
        True,
        None,
        "ok",
    ),
    "obs-fold and bare LF together": (
        b"HTTP/1.1 200 OK\nX-Folded: one\n two\nContent-Length: 2\n\nok",
        True,
        None,
        "ok",
    ),
    "identical Content-Length after an interim response with a fold": (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n ; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
        True,
        None,
        "ok",
    ),
    "Content-Length list with different values": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok!",
        False,
        "invalid HTTP response: conflicting Content-Length values '2, 3'",
        None,
    ),
    "a control character in a header value": (  # llhttp's lenient_headers would pass it: not used
        b"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 2\r\n\r\nok",
        False,
        "invalid HTTP response: bad header line b'X-A: a\\x01b'",
        None,
    ),
    "a space in a header name": (
        b"HTTP/1.1 200 OK\r\nX A: b\r\nContent-Length: 2\r\n\r\nok",
        False,
        "invalid HTTP response: bad header line b'X A: b'",
        None,
    ),
    "Transfer-Encoding chunked and Content-Length": (  # RFC 9112 6.3: chunked overrides, as in Go
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        True,
        None,
        "ok",
    ),
    "an HTTP/2 status line over HTTP/1.1": (
        b"HTTP/2 200\r\n\r\n",
        False,
        "invalid HTTP response: bad status line b'HTTP/2 200'",
        None,
    ),
    "101 without an upgrade asked for": (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
        False,
        "invalid HTTP response: unexpected 101 Switching Protocols (no upgrade was asked for)",
        None,
    ),
    "not HTTP at all": (
        b"SSH-2.0-OpenSSH_9.6\r\n",
        False,
        "invalid HTTP response: not HTTP: b'SSH-2.0-OpenSSH_9.6\\r\\n'",
        None,
    ),
    "a fold before any header": (
        b"HTTP/1.1 200 OK\r\n folded\r\nContent-Length: 2\r\n\r\nok",
        False,
        "invalid HTTP response: bad header line b' folded' (a continuation before any header)",
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(LENIENT))
async def test_lenient_where_the_rfcs_allow(peers: Any, http_probe: HTTPProbe, case: str) -> None:
    """Each case's verdict on plain http, with its reason; the body is checked too (framing read right)."""
    reply, ok, error, body = LENIENT[case]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()

    port = await peers.tcp(serve)
    checks = {"fail_if_body_not_matches_regexp": [f"^{body}$"]} if body else {}
    result = await probe(http_probe, port, **checks)
    assert (result.ok, result.error) == (ok, error)


async def test_obs_fold_is_joined_with_a_space(peers: Any) -> None:
    """The folded value reads as one line with single spaces (RFC 9112 5.2)."""
    from probes import http1

    exchange = http1.Exchange(b"", None, False)
    exchange.data_received(b"HTTP/1.1 204 No Content\r\nX-Folded: one\r\n two\r\n\tthree\r\n\r\n")
    response = await exchange.done
    assert response.headers["x-folded"] == "one two three"


@pytest.mark.parametrize("case", sorted(LENIENT))
async def test_lenient_cases_byte_by_byte(case: str) -> None:
    """The same verdicts when the reply arrives one byte at a time (the head's end, a fold or a repeated
    Content-Length found in the middle of a piece, the re-parse waiting for the end of the head). llhttp
    stops at the first bad byte, so a quoted line is what had arrived by then: compared up to the quote."""
    from probes import http1

    reply, ok, error, body = LENIENT[case]
    exchange = http1.Exchange(b"", None, False)
    for i in range(len(reply)):
        exchange.data_received(reply[i : i + 1])
    exchange.connection_lost(None)
    try:
        response = await exchange.done
    except (http1.ResponseError, http1.BodyError) as exc:
        kind = "response" if isinstance(exc, http1.ResponseError) else "body"
        assert error is not None
        assert (False, f"invalid HTTP {kind}: {exc}".split(" b'")[0]) == (ok, error.split(" b'")[0])
    else:
        assert ok, error
        assert body is None or bytes(response.body) == body.encode()


def test_head_cap_is_exact_however_the_head_arrives() -> None:
    """A head of exactly 64 KiB passes, one byte more fails, in one piece or with the body in the same piece."""
    from probes import http1

    async def run(reply: bytes, pieces: int) -> str:
        exchange = http1.Exchange(b"", None, False)
        step = max(1, len(reply) // pieces)
        for i in range(0, len(reply), step):
            exchange.data_received(reply[i : i + step])
        exchange.connection_lost(None)
        try:
            return str((await exchange.done).status)
        except http1.ResponseError as exc:
            return str(exc)

    def reply(head_size: int) -> bytes:
        start = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: "
        return start + b"p" * (head_size - len(start) - 4) + b"\r\n\r\nok"

    for pieces in (1, 3, 1000):
        assert asyncio.run(run(reply(http1.MAX_HEAD), pieces)) == "200"
        assert asyncio.run(run(reply(http1.MAX_HEAD + 1), pieces)) == "response head larger than 64 KiB"


@pytest.mark.parametrize("case", sorted(LENIENT))
async def test_lenient_cases_over_https(peers: Any, pki: Any, http_probe: HTTPProbe, case: str) -> None:
    """The same replies over https: the same verdict and reason (one parser for both)."""
    reply, ok, error, body = LENIENT[case]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()

    port = await peers.tcp(serve, ssl_context=pki.leaf.server_context())
    checks = {"fail_if_body_not_matches_regexp": [f"^{body}$"]} if body else {}
    result = await probe(http_probe, port, **tls_settings(pki, **checks))
    assert (result.ok, result.error) == (ok, error)


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_gzip_bomb_with_no_limit_is_counted_in_bounded_memory(
    peers: Any, pki: Any, http_probe: HTTPProbe, scheme: str
) -> None:
    """With no limit and no body check a 64 MiB gzip bomb is inflated only to be counted: piece by
    piece, never whole (http1 inflates at most DECODE_PIECE at a time)."""
    import gzip

    bomb = gzip.compress(b"\0" * 64 * MIB, compresslevel=9)

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    ssl_context = pki.leaf.server_context() if scheme == "https" else None
    port = await peers.http([web.get("/", serve)], ssl_context=ssl_context)
    tracemalloc.start()
    try:
        result = await probe(http_probe, port, **body_settings(scheme, pki))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (result.ok, result.error) == (True, None)
    assert result.values[CONTENT_LENGTH] == 64 * MIB
    assert peak < 8 * MIB


async def test_endless_body_without_limit_runs_into_the_timeout_and_says_so(
    peers: Any, check_factory: Any, runner: ProbeRunner
) -> None:
    """No limit, no body check: an endless stream is read (counted, not kept) until the timeout, which
    says how far it got; blackbox_exporter does the same."""

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        for _ in range(100_000):  # bounded: far past the probe's timeout
            writer.write(b"x" * 4096)
            await writer.drain()
            await asyncio.sleep(0.001)

    port = await peers.tcp(endless)
    result = await runner.run(check_factory("http", HTTPSettings(), port=port, timeout=0.5))
    assert (result.ok, result.phase) == (False, "body")
    assert result.error is not None
    assert result.error.startswith("timeout after 500ms while reading the body (HTTP 200, ")
    assert result.error.endswith(" bytes so far)")
    assert int(result.info["body_bytes"]) > 4096
