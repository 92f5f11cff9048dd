"""HTTP(S) probe against real aiohttp servers on loopback: status, body, redirects, limits, broken
peers, TLS certificate facts, CRLs and credentials."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import gzip
import ssl
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from probes import http, tls
from probes.base import ProbeRequest, ProbeResult
from probes.http import HTTPProbe, HTTPSettings

# the keys of ProbeResult.values the HTTP kind measures (declared with it)
CONTENT_LENGTH, CRL_NEXT_UPDATE = http.CONTENT_LENGTH.key, http.CRL_NEXT_UPDATE.key
CRL_THIS_UPDATE = http.CRL_THIS_UPDATE.key
HTTP_REDIRECTS, HTTP_STATUS, HTTP_VERSION = http.REDIRECTS.key, http.STATUS.key, http.VERSION.key
TLS_EARLIEST_NOT_AFTER, TLS_NOT_AFTER = tls.EARLIEST_NOT_AFTER.key, tls.NOT_AFTER.key

LOOPBACK4 = "127.0.0.1"
BODY = b"hello world: status green\n"
GZIP_BOMB = gzip.compress(b"\0" * (64 * 1024 * 1024))  # 64 MiB of zeros in about 64 KiB


@dataclass
class Site:
    """A running test web server and what it saw."""

    port: int
    requests: list[web.Request] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    peers: list[tuple[str, int]] = field(default_factory=list)
    streamed: int = 0  # bytes the endless handler managed to write
    stream_done: asyncio.Event = field(default_factory=asyncio.Event)
    crls: dict[str, bytes] = field(default_factory=dict)


def routes(site: Site) -> list[web.RouteDef]:
    async def record(request: web.Request) -> None:
        site.headers.append(dict(request.headers))
        site.bodies.append(await request.read())
        peer = request.transport.get_extra_info("peername") if request.transport else None
        site.peers.append(peer[:2] if peer else ("", 0))

    async def ok(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(body=BODY, content_type="text/plain")

    async def status(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=int(request.match_info["code"]), text="status page")

    async def redirect(request: web.Request) -> web.Response:
        await record(request)
        left = int(request.match_info["n"])
        raise web.HTTPFound("/ok" if left <= 1 else f"/redirect/{left - 1}")

    async def sized(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(body=b"a" * int(request.match_info["n"]))

    async def endless(request: web.Request) -> web.StreamResponse:
        await record(request)
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"z" * 65536
        try:
            while True:
                await response.write(chunk)
                site.streamed += len(chunk)
        except ConnectionError:
            return response  # the client hung up, as it should
        finally:
            site.stream_done.set()

    async def basic(request: web.Request) -> web.Response:
        await record(request)
        expected = "Basic " + base64.b64encode(b"monitor:s3cret-basic").decode()
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401, text="who are you")
        return web.Response(text="welcome")

    async def bearer(request: web.Request) -> web.Response:
        await record(request)
        if request.headers.get("Authorization") != "Bearer tok-7f3a9c":
            return web.Response(status=401, text="who are you")
        return web.Response(text="welcome")

    async def crl(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(body=site.crls[request.match_info["name"]], content_type="application/pkix-crl")

    async def gzip_bomb(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(body=GZIP_BOMB, headers={"Content-Encoding": "gzip"})

    async def echo(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(text="ok")

    return [
        web.get("/ok", ok),
        web.get("/status/{code}", status),
        web.get("/redirect/{n}", redirect),
        web.get("/sized/{n}", sized),
        web.get("/endless", endless),
        web.get("/auth/basic", basic),
        web.get("/auth/bearer", bearer),
        web.get("/crl/{name}", crl),
        web.route("*", "/echo", echo),
        web.get("/gzip-bomb", gzip_bomb),
    ]


async def start_site(peers: Any, *, host: str = LOOPBACK4, ssl_context: Any = None) -> Site:
    site = Site(port=0)
    site.port = await peers.http(routes(site), host=host, ssl_context=ssl_context)
    return site


@pytest.fixture
async def site(peers: Any) -> Site:
    """A plain HTTP test server on 127.0.0.1."""
    return await start_site(peers)


def http_settings(**kw: Any) -> HTTPSettings:
    return HTTPSettings.model_validate(kw)


async def run(
    probe: HTTPProbe,
    port: int | None,
    settings: HTTPSettings,
    *,
    address: str = LOOPBACK4,
    hostname: str | None = None,
    params: dict[str, Any] | None = None,
) -> ProbeResult:
    """Run the probe, bounded so that a probe bug fails the test instead of hanging it."""
    async with asyncio.timeout(3):
        return await probe.run(ProbeRequest(address, hostname, port, 1.0, params or {}), settings)


# --------------------------------------------------------------------------------- status and body


async def test_ok_reports_status_length_version_and_phases(site: Site, http_probe: HTTPProbe) -> None:
    """A 200 is ok and reports status code, body length, HTTP version, redirects, final URL and phases."""
    result = await run(http_probe, site.port, http_settings(path="/ok"))
    assert result.ok, result.error
    assert result.values[HTTP_STATUS] == 200
    assert result.values[CONTENT_LENGTH] == len(BODY)
    assert result.values[HTTP_VERSION] == 1.1
    assert result.values[HTTP_REDIRECTS] == 0
    assert result.info["final_url"] == f"http://127.0.0.1:{site.port}/ok"
    assert {"connect", "processing", "transfer"} <= set(result.phases)
    assert all(0 <= seconds < 1 for seconds in result.phases.values())
    assert "tls_version" not in result.info
    assert site.headers[0]["User-Agent"].startswith("national-monitor/")


async def test_status_500_fails(site: Site, http_probe: HTTPProbe) -> None:
    """A 500 fails with 'HTTP status 500 Internal Server Error, expected 2xx' and still reports the code."""
    result = await run(http_probe, site.port, http_settings(path="/status/500"))
    assert not result.ok
    assert result.error == "HTTP status 500 Internal Server Error, expected 2xx"
    assert result.values[HTTP_STATUS] == 500


@pytest.mark.parametrize(
    ("code", "valid", "error"),
    [
        (404, [404], None),
        (204, [], None),
        (200, [204], "HTTP status 200 OK, expected [204]"),
        (301, [], "HTTP status 301 Moved Permanently, expected 2xx"),
    ],
)
async def test_valid_status_codes(
    site: Site, http_probe: HTTPProbe, code: int, valid: list[int], error: str | None
) -> None:
    """valid_status_codes replaces the 2xx default: listed codes pass, others fail with both in the error."""
    settings = http_settings(path=f"/status/{code}", valid_status_codes=valid, follow_redirects=False)
    result = await run(http_probe, site.port, settings)
    assert result.error == error
    assert result.ok is (error is None)


@pytest.mark.parametrize(
    ("rules", "error"),
    [
        ({"fail_if_body_matches_regexp": ["error|fatal"]}, None),
        ({"fail_if_body_matches_regexp": ["status \\w+"]}, "body matches /status \\w+/"),
        ({"fail_if_body_not_matches_regexp": ["^hello", "green"]}, None),
        ({"fail_if_body_not_matches_regexp": ["^hello", "red"]}, "body does not match /red/"),
    ],
)
async def test_body_regexps(site: Site, http_probe: HTTPProbe, rules: dict[str, list[str]], error: str | None) -> None:
    """fail_if_body_matches_regexp / fail_if_body_not_matches_regexp decide on the body text."""
    result = await run(http_probe, site.port, http_settings(path="/ok", **rules))
    assert result.error == error
    assert result.ok is (error is None)


def test_invalid_body_regexp_is_a_config_error() -> None:
    """A body pattern that does not compile is rejected when the settings are validated."""
    with pytest.raises(ValidationError):
        http_settings(fail_if_body_matches_regexp=["(unclosed"])


async def test_post_with_body_and_headers(site: Site, http_probe: HTTPProbe) -> None:
    """method, body and extra headers of the module reach the server."""
    settings = http_settings(path="/echo", method="POST", body="ping=1", headers={"X-Probe": "yes"})
    result = await run(http_probe, site.port, settings)
    assert result.ok, result.error
    assert site.bodies == [b"ping=1"]
    assert site.headers[0]["X-Probe"] == "yes"


async def test_url_param_overrides_address_and_path(site: Site, http_probe: HTTPProbe) -> None:
    """A url in the check's params is used as is, instead of address, port and path."""
    params = {"url": f"http://127.0.0.1:{site.port}/status/204"}
    result = await run(http_probe, None, http_settings(path="/ok"), address="127.0.0.2", params=params)
    assert result.ok, result.error
    assert result.values[HTTP_STATUS] == 204
    assert site.headers[0]["Host"] == f"127.0.0.1:{site.port}"


async def test_hostname_sets_host_header(site: Site, http_probe: HTTPProbe) -> None:
    """ProbeRequest.hostname becomes the Host header (with the port, as the URL's authority has it)."""
    result = await run(http_probe, site.port, http_settings(path="/ok"), hostname="intranet.test")
    assert result.ok, result.error
    assert site.headers[0]["Host"] == f"intranet.test:{site.port}"
    assert result.info["final_url"] == f"http://127.0.0.1:{site.port}/ok"


async def test_each_probe_uses_a_fresh_connection(site: Site, http_probe: HTTPProbe) -> None:
    """Two probes of one check use two TCP connections, so connect time is measured every time."""
    settings = http_settings(path="/ok")
    for _ in range(2):
        result = await run(http_probe, site.port, settings)
        assert result.ok, result.error
        assert result.phases["connect"] > 0
    assert len(set(site.peers)) == 2


async def test_ipv6_loopback(peers: Any, http_probe: HTTPProbe, ipv6_loopback: str) -> None:
    """An IPv6 literal target is put in brackets in the URL and reached over ::1."""
    site6 = await start_site(peers, host=ipv6_loopback)
    result = await run(http_probe, site6.port, http_settings(path="/ok"), address=ipv6_loopback)
    assert result.ok, result.error
    assert result.info["final_url"] == f"http://[::1]:{site6.port}/ok"
    assert site6.peers[0][0] == "::1"


async def test_connection_refused(refused_port: int, http_probe: HTTPProbe) -> None:
    """A closed port fails with 'connection refused'."""
    result = await run(http_probe, refused_port, http_settings())
    assert not result.ok
    assert result.error == "connection refused"


# --------------------------------------------------------------------------------------- redirects


async def test_redirects_followed_and_counted(site: Site, http_probe: HTTPProbe) -> None:
    """Redirects are followed; their number and the final URL are reported."""
    result = await run(http_probe, site.port, http_settings(path="/redirect/3"))
    assert result.ok, result.error
    assert result.values[HTTP_REDIRECTS] == 3
    assert result.values[HTTP_STATUS] == 200
    assert result.info["final_url"] == f"http://127.0.0.1:{site.port}/ok"
    assert len(site.headers) == 4


async def test_max_redirects_exceeded(site: Site, http_probe: HTTPProbe) -> None:
    """More redirects than max_redirects fail with 'more than N redirects'."""
    result = await run(http_probe, site.port, http_settings(path="/redirect/5", max_redirects=2))
    assert not result.ok
    assert result.error == "more than 2 redirects"


async def test_redirect_not_followed(site: Site, http_probe: HTTPProbe) -> None:
    """With follow_redirects false the 302 itself is judged (ok only if listed as valid)."""
    plain = await run(http_probe, site.port, http_settings(path="/redirect/1", follow_redirects=False))
    assert plain.error == "HTTP status 302 Found, expected 2xx"
    allowed = http_settings(path="/redirect/1", follow_redirects=False, valid_status_codes=[302])
    result = await run(http_probe, site.port, allowed)
    assert result.ok, result.error
    assert result.values[HTTP_REDIRECTS] == 0


# ----------------------------------------------------------------------------------- size limits


async def test_endless_body_is_cut_at_body_size_limit(site: Site, http_probe: HTTPProbe) -> None:
    """An endless body fails at body_size_limit without being read to the end, and the connection is dropped."""
    limit = 100_000
    started = time.perf_counter()
    result = await run(http_probe, site.port, http_settings(path="/endless", body_size_limit=limit))
    assert time.perf_counter() - started < 1.0
    assert not result.ok
    assert result.error == f"body larger than body_size_limit ({limit} bytes)"
    assert result.values[CONTENT_LENGTH] == limit
    async with asyncio.timeout(1):
        await site.stream_done.wait()  # the server's write failed: the probe hung up


async def test_compressed_body_limit_applies_after_decompression(site: Site, http_probe: HTTPProbe) -> None:
    """A gzip bomb (64 MiB unpacked) is cut at body_size_limit of decoded bytes, with bounded memory."""
    tracemalloc.start()
    try:
        result = await run(http_probe, site.port, http_settings(path="/gzip-bomb", body_size_limit=100_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.error == "body larger than body_size_limit (100000 bytes)"
    assert result.values[CONTENT_LENGTH] == 100_000
    assert peak < 8 * 1024 * 1024


@pytest.mark.parametrize(("size", "ok"), [(5000, True), (5001, False)])
async def test_body_size_limit_boundary(site: Site, http_probe: HTTPProbe, size: int, ok: bool) -> None:
    """A body of exactly body_size_limit bytes passes; one byte more fails."""
    result = await run(http_probe, site.port, http_settings(path=f"/sized/{size}", body_size_limit=5000))
    assert result.ok is ok
    assert result.values[CONTENT_LENGTH] == min(size, 5000)


# ------------------------------------------------------------------------------ broken HTTP peers


async def test_garbage_instead_of_http(peers: Any, http_probe: HTTPProbe) -> None:
    """A peer answering with non-HTTP bytes gives an 'invalid HTTP response' failure, not an exception."""

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"\x00\xff SSH-2.0-notHTTP garbage\r\n\r\n")
        await writer.drain()

    port = await peers.tcp(garbage)
    result = await run(http_probe, port, http_settings())
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("invalid HTTP response: ")


async def test_close_without_response(peers: Any, http_probe: HTTPProbe) -> None:
    """A peer that reads the request and closes gives 'server closed the connection without a response'."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")

    port = await peers.tcp(hang_up)
    result = await run(http_probe, port, http_settings())
    assert not result.ok
    assert result.error == "server closed the connection without a response"


async def test_truncated_body(peers: Any, http_probe: HTTPProbe) -> None:
    """A body shorter than its Content-Length fails as an invalid HTTP body."""

    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly this")
        await writer.drain()

    port = await peers.tcp(short)
    result = await run(http_probe, port, http_settings())
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("invalid HTTP body: ")


async def test_slowloris_headers_bounded_by_timeout(peers: Any, site: Site, check_factory: Any, race: Any) -> None:
    """A server trickling header lines forever costs the check's timeout; a concurrent probe is not delayed."""

    async def slowloris(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(10_000):
            writer.write(f"X-Drip-{i}: x\r\n".encode())
            await writer.drain()
            await asyncio.sleep(0.05)

    port = await peers.tcp(slowloris)
    hung = check_factory("http", http_settings(), port=port, timeout=0.6)
    fast = check_factory("http", http_settings(path="/ok"), port=site.port, timeout=0.6, name="fast")
    outcome = await race(hung, fast)
    assert outcome.hung.error.startswith("timeout after 600ms inside the response head (")  # N bytes so far
    assert outcome.hung.phase == "head"
    assert 0.55 <= outcome.hung_elapsed < 0.9
    assert outcome.fast.ok, outcome.fast.error
    assert outcome.fast_elapsed < 0.3


# --------------------------------------------------------------------------------------------- TLS


@pytest.fixture
async def tls_site(peers: Any, pki: Any) -> tuple[Site, list[str | None]]:
    """An HTTPS server with the test leaf certificate; the list collects the SNI names it saw."""
    names: list[str | None] = []
    ctx = pki.leaf.server_context()
    ctx.sni_callback = lambda _sock, name, _ctx: names.append(name)
    return await start_site(peers, ssl_context=ctx), names


async def test_https_with_ca_file_and_hostname(tls_site: Any, http_probe: HTTPProbe, pki: Any) -> None:
    """HTTPS to an IP with a hostname: SNI/Host carry it, ca_file verifies, certificate facts reported."""
    site, sni = tls_site
    settings = http_settings(scheme="https", path="/ok", tls_config={"ca_file": str(pki.ca.cert_file)})
    result = await run(http_probe, site.port, settings, hostname=pki.server_name)
    assert result.ok, result.error
    assert sni == [pki.server_name]
    assert site.headers[0]["Host"] == f"{pki.server_name}:{site.port}"
    assert result.values[TLS_NOT_AFTER] == pki.leaf.cert.not_valid_after_utc.timestamp()
    assert result.values[TLS_EARLIEST_NOT_AFTER] == min(pki.leaf.not_after, pki.ca.not_after)
    assert result.info["tls_subject"] == pki.server_name
    assert result.info["tls_issuer"] == "Probe Test CA"
    assert result.info["tls_dns_names"] == f"{pki.server_name},localhost"
    assert result.info["tls_serial"] == format(pki.leaf.cert.serial_number, "x")
    assert result.info["tls_version"].startswith("TLSv1.")
    assert result.info["final_url"] == f"https://127.0.0.1:{site.port}/ok"


@pytest.mark.parametrize(("method", "path"), [("GET", "/status/204"), ("HEAD", "/ok"), ("GET", "/sized/1")])
async def test_https_certificate_facts_without_a_body(
    tls_site: Any, http_probe: HTTPProbe, pki: Any, method: str, path: str
) -> None:
    """Certificate facts are reported even for responses complete on arrival (204, HEAD, 1 byte)."""
    site, _ = tls_site
    settings = http_settings(scheme="https", method=method, path=path, tls_config={"ca_file": str(pki.ca.cert_file)})
    result = await run(http_probe, site.port, settings)
    assert result.ok, result.error
    assert result.values[TLS_NOT_AFTER] == pki.leaf.not_after
    assert result.info["tls_subject"] == pki.server_name


async def test_https_tls_config_server_name_wins(tls_site: Any, http_probe: HTTPProbe, pki: Any) -> None:
    """tls_config.server_name is used for SNI and verification instead of the request's hostname."""
    site, sni = tls_site
    tls_config = {"ca_file": str(pki.ca.cert_file), "server_name": "localhost"}
    result = await run(
        http_probe, site.port, http_settings(scheme="https", path="/ok", tls_config=tls_config), hostname="wrong.test"
    )
    assert result.ok, result.error
    assert sni == ["localhost"]
    assert site.headers[0]["Host"] == f"wrong.test:{site.port}"  # only TLS uses server_name
    assert result.values[TLS_NOT_AFTER] == pki.leaf.not_after


async def test_https_wrong_hostname_fails(tls_site: Any, http_probe: HTTPProbe, pki: Any) -> None:
    """A hostname the certificate does not name fails verification, naming the hostname."""
    site, _ = tls_site
    settings = http_settings(scheme="https", tls_config={"ca_file": str(pki.ca.cert_file)})
    result = await run(http_probe, site.port, settings, hostname="wrong.test")
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("tls certificate verification failed: ")
    assert "wrong.test" in result.error


async def test_https_untrusted_ca_fails(tls_site: Any, http_probe: HTTPProbe) -> None:
    """Without ca_file the private CA is unknown and verification fails."""
    site, _ = tls_site
    result = await run(http_probe, site.port, http_settings(scheme="https"))
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("tls certificate verification failed: ")


async def test_https_expired_certificate_fails(peers: Any, http_probe: HTTPProbe, pki: Any) -> None:
    """An expired server certificate fails with 'certificate has expired'."""
    site = await start_site(peers, ssl_context=pki.expired.server_context())
    settings = http_settings(scheme="https", tls_config={"ca_file": str(pki.ca.cert_file)})
    result = await run(http_probe, site.port, settings)
    assert not result.ok
    assert result.error == "tls certificate verification failed: certificate has expired"


async def test_https_insecure_skip_verify_reports_expired_certificate(
    peers: Any, http_probe: HTTPProbe, pki: Any
) -> None:
    """insecure_skip_verify accepts an expired self-signed chain and reports its notAfter."""
    site = await start_site(peers, ssl_context=pki.expired.server_context())
    settings = http_settings(scheme="https", path="/ok", tls_config={"insecure_skip_verify": True})
    result = await run(http_probe, site.port, settings)
    assert result.ok, result.error
    assert result.values[TLS_NOT_AFTER] == pki.expired.not_after
    assert result.values[TLS_NOT_AFTER] < time.time()


async def test_url_param_host_is_used_for_sni(tls_site: Any, http_probe: HTTPProbe, pki: Any) -> None:
    """With a url on the check, SNI and verification use the URL's host, not the target's hostname."""
    site, sni = tls_site
    settings = http_settings(scheme="https", tls_config={"ca_file": str(pki.ca.cert_file)})
    params = {"url": f"https://localhost:{site.port}/ok"}
    result = await run(http_probe, None, settings, hostname="wrong.test", params=params)
    assert result.ok, result.error
    assert sni == ["localhost"]
    assert site.headers[0]["Host"] == f"localhost:{site.port}"


async def test_min_version(peers: Any, http_probe: HTTPProbe, pki: Any) -> None:
    """min_version TLS1.3 refuses a server that only speaks TLS 1.2; without it TLSv1.2 is reported."""
    ctx = pki.leaf.server_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    site12 = await start_site(peers, ssl_context=ctx)
    tls_config: dict[str, Any] = {"ca_file": str(pki.ca.cert_file)}
    plain = await run(http_probe, site12.port, http_settings(scheme="https", path="/ok", tls_config=tls_config))
    assert plain.ok, plain.error
    assert plain.info["tls_version"] == "TLSv1.2"
    strict = http_settings(scheme="https", path="/ok", tls_config={**tls_config, "min_version": "TLS1.3"})
    result = await run(http_probe, site12.port, strict)
    assert not result.ok
    assert len(site12.headers) == 1  # the refused probe never got a request through


async def test_mutual_tls(peers: Any, http_probe: HTTPProbe, pki: Any) -> None:
    """A server requiring a client certificate accepts the probe with cert_file/key_file, and refuses it without."""
    site = await start_site(peers, ssl_context=pki.mutual_tls_context())
    tls_config: dict[str, Any] = {"ca_file": str(pki.ca.cert_file)}
    without = await run(http_probe, site.port, http_settings(scheme="https", path="/ok", tls_config=tls_config))
    assert not without.ok
    assert site.headers == []
    with_cert = {**tls_config, "cert_file": str(pki.client.cert_file), "key_file": str(pki.client.key_file)}
    result = await run(http_probe, site.port, http_settings(scheme="https", path="/ok", tls_config=with_cert))
    assert result.ok, result.error
    assert len(site.headers) == 1


async def test_fail_if_not_ssl(site: Site, tls_site: Any, http_probe: HTTPProbe, pki: Any) -> None:
    """fail_if_not_ssl fails a plain-HTTP answer and passes an HTTPS one."""
    plain = await run(http_probe, site.port, http_settings(path="/ok", fail_if_not_ssl=True))
    assert plain.error == "connection is not TLS (fail_if_not_ssl)"
    secure_site, _ = tls_site
    settings = http_settings(
        scheme="https", path="/ok", fail_if_not_ssl=True, tls_config={"ca_file": str(pki.ca.cert_file)}
    )
    result = await run(http_probe, secure_site.port, settings)
    assert result.ok, result.error


# --------------------------------------------------------------------------------------------- CRL


def _crl_result_case(pki: Any, name: str) -> tuple[bytes, dt.datetime | None]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    if name == "fresh-der":
        when = now + dt.timedelta(days=7)
        return pki.crl(next_update=when, encoding=serialization.Encoding.DER), when
    if name == "fresh-pem":
        when = now + dt.timedelta(days=7)
        return pki.crl(next_update=when, encoding=serialization.Encoding.PEM), when
    if name == "stale":
        when = now - dt.timedelta(hours=2)
        crl = pki.crl(next_update=when, encoding=serialization.Encoding.DER, last_update=now - dt.timedelta(days=2))
        return crl, when
    return b"<html>this is not a CRL</html>", None


@pytest.mark.parametrize("name", ["fresh-der", "fresh-pem"])
async def test_crl_fresh(site: Site, http_probe: HTTPProbe, pki: Any, name: str) -> None:
    """A fresh CRL (DER or PEM) is ok and reports its nextUpdate, thisUpdate and issuer."""
    body, next_update = _crl_result_case(pki, name)
    assert next_update is not None
    site.crls[name] = body
    result = await run(http_probe, site.port, http_settings(path=f"/crl/{name}", crl=True))
    assert result.ok, result.error
    assert result.values[CRL_NEXT_UPDATE] == next_update.timestamp()
    assert time.time() - 3700 < result.values[CRL_THIS_UPDATE] < time.time() - 3500
    assert "Probe Test CA" in result.info["crl_issuer"]


async def test_crl_stale(site: Site, http_probe: HTTPProbe, pki: Any) -> None:
    """A CRL whose nextUpdate has passed fails with 'CRL is stale: nextUpdate ... has passed'."""
    body, next_update = _crl_result_case(pki, "stale")
    assert next_update is not None
    site.crls["stale"] = body
    result = await run(http_probe, site.port, http_settings(path="/crl/stale", crl=True))
    assert not result.ok
    assert result.error == f"CRL is stale: nextUpdate {next_update.isoformat()} has passed"
    assert result.values[CRL_NEXT_UPDATE] == next_update.timestamp()


async def test_crl_not_a_crl(site: Site, http_probe: HTTPProbe, pki: Any) -> None:
    """A body that is not a CRL fails with 'body is not a valid CRL (DER or PEM)'."""
    site.crls["html"] = _crl_result_case(pki, "html")[0]
    result = await run(http_probe, site.port, http_settings(path="/crl/html", crl=True))
    assert not result.ok
    assert result.error == "body is not a valid CRL (DER or PEM)"
    assert CRL_NEXT_UPDATE not in result.values


async def test_crl_check_off_ignores_body(site: Site, http_probe: HTTPProbe, pki: Any) -> None:
    """Without crl: true a non-CRL body is not checked as a CRL."""
    site.crls["html"] = _crl_result_case(pki, "html")[0]
    result = await run(http_probe, site.port, http_settings(path="/crl/html"))
    assert result.ok, result.error


# ------------------------------------------------------------------------------------- credentials


async def test_basic_auth_from_env_reaches_server(
    site: Site, http_probe: HTTPProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """basic_auth with a ${ENV} password authenticates, and the password never shows in repr or JSON."""
    monkeypatch.setenv("NM_TEST_BASIC_PASSWORD", "s3cret-basic")
    settings = HTTPSettings.model_validate(
        {"path": "/auth/basic", "basic_auth": {"username": "monitor", "password": "${NM_TEST_BASIC_PASSWORD}"}}
    )
    result = await run(http_probe, site.port, settings)
    assert result.ok, result.error
    assert site.headers[0]["Authorization"] == "Basic " + base64.b64encode(b"monitor:s3cret-basic").decode()
    for text in (repr(settings), str(settings), settings.model_dump_json(), settings.cache_key, repr(result)):
        assert "s3cret-basic" not in text


async def test_basic_auth_wrong_password_fails(
    site: Site, http_probe: HTTPProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong basic_auth password gets the server's 401 as a failure."""
    monkeypatch.setenv("NM_TEST_BASIC_PASSWORD", "not-it")
    settings = HTTPSettings.model_validate(
        {"path": "/auth/basic", "basic_auth": {"username": "monitor", "password": "${NM_TEST_BASIC_PASSWORD}"}}
    )
    result = await run(http_probe, site.port, settings)
    assert result.error == "HTTP status 401 Unauthorized, expected 2xx"


async def test_bearer_token_from_env_reaches_server(
    site: Site, http_probe: HTTPProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bearer_token from ${ENV} is sent as 'Authorization: Bearer', and never shows in repr or JSON."""
    monkeypatch.setenv("NM_TEST_BEARER", "tok-7f3a9c")
    settings = HTTPSettings.model_validate({"path": "/auth/bearer", "bearer_token": "${NM_TEST_BEARER}"})
    result = await run(http_probe, site.port, settings)
    assert result.ok, result.error
    assert site.headers[0]["Authorization"] == "Bearer tok-7f3a9c"
    for text in (repr(settings), str(settings), settings.model_dump_json(), settings.cache_key, repr(result)):
        assert "tok-7f3a9c" not in text


async def test_bearer_token_from_file(
    site: Site, http_probe: HTTPProbe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bearer_token {file: path} is read relative to base_dir, without its trailing newline."""
    (tmp_path / "token").write_text("tok-7f3a9c\n", encoding="utf-8")
    settings = HTTPSettings.model_validate(
        {"path": "/auth/bearer", "bearer_token": {"file": "token"}}, context={"base_dir": str(tmp_path)}
    )
    result = await run(http_probe, site.port, settings)
    assert result.ok, result.error
    assert site.headers[0]["Authorization"] == "Bearer tok-7f3a9c"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tok-7f3a9c", "secrets must be references"),
        ("${NM_TEST_SURELY_UNSET_VARIABLE}", "environment variable NM_TEST_SURELY_UNSET_VARIABLE is not set"),
        ({"file": "/nonexistent/token"}, "cannot read secret file"),
    ],
)
def test_bearer_token_must_be_a_resolvable_reference(monkeypatch: pytest.MonkeyPatch, value: Any, message: str) -> None:
    """A literal secret, an unset variable or an unreadable file is a config error."""
    monkeypatch.delenv("NM_TEST_SURELY_UNSET_VARIABLE", raising=False)
    with pytest.raises(ValidationError, match=message):
        HTTPSettings.model_validate({"bearer_token": value})
