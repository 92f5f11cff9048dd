"""HTTP(S) probe: status, body checks, redirects, timing phases, TLS certificate facts, CRL freshness.

Each probe uses a fresh connection (like blackbox_exporter), so connect and TLS time are real every
time. The body is read up to ``body_size_limit`` and no further: a target sending an endless or huge
body costs bounded memory. aiohttp's own limits bound header sizes.
"""

from __future__ import annotations

import base64
import re
import socket
import time
from types import SimpleNamespace
from typing import Any, Literal

import aiohttp
from cryptography import x509
from pydantic import Field
from yarl import URL

from probes import base, tls
from probes.base import PhaseTimer, ProbeRequest, ProbeResult, ProbeSettings, Regex
from probes.net import IPProtocol, is_ip_literal
from probes.secret import Secret

USER_AGENT = "national-monitor/0.1 (+probe)"


class BasicAuth(ProbeSettings):
    username: str
    password: Secret


class HTTPSettings(ProbeSettings):
    scheme: Literal["http", "https"] = "http"
    port: int | None = Field(default=None, ge=1, le=65535)
    path: str = "/"
    method: Literal["GET", "HEAD", "POST", "PUT", "OPTIONS"] = "GET"
    headers: dict[str, str] = {}
    body: str | None = None
    valid_status_codes: list[int] = []  # empty: any 2xx
    fail_if_body_matches_regexp: list[Regex] = []
    fail_if_body_not_matches_regexp: list[Regex] = []
    follow_redirects: bool = True
    max_redirects: int = Field(default=10, ge=0, le=30)
    body_size_limit: int = Field(default=1024 * 1024, ge=0, le=64 * 1024 * 1024)
    tls_config: tls.TLSSettings = tls.TLSSettings()
    fail_if_not_ssl: bool = False
    ip_protocol: IPProtocol = "auto"
    basic_auth: BasicAuth | None = None
    bearer_token: Secret | None = None
    crl: bool = False  # the body is a CRL (DER or PEM): report and check its nextUpdate


def _trace_config() -> aiohttp.TraceConfig:
    """Phase timing through aiohttp's tracing signals; the PhaseTimer travels in the request ctx."""

    async def mark(phase: str, ctx: SimpleNamespace) -> None:
        timer = ctx.trace_request_ctx
        if timer is not None:
            timer.mark(phase)

    async def dns_start(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
        await mark("setup", ctx)

    async def dns_end(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
        await mark("resolve", ctx)

    async def conn_start(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
        await mark("setup", ctx)

    async def conn_end(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
        await mark("connect", ctx)

    config = aiohttp.TraceConfig()
    config.on_dns_resolvehost_start.append(dns_start)
    config.on_dns_resolvehost_end.append(dns_end)
    config.on_connection_create_start.append(conn_start)
    config.on_connection_create_end.append(conn_end)
    return config


class _Response(aiohttp.ClientResponse):
    """Keeps the TLS object of its connection: aiohttp releases the connection as soon as the body
    has arrived, which for a small body is before the probe looks at the response."""

    ssl_object: Any = None

    async def start(self, connection: aiohttp.connector.Connection) -> aiohttp.ClientResponse:
        transport = connection.transport
        self.ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        return await super().start(connection)


def _status_ok(status: int, settings: HTTPSettings) -> bool:
    if settings.valid_status_codes:
        return status in settings.valid_status_codes
    return 200 <= status < 300


def _url(request: ProbeRequest, settings: HTTPSettings) -> str:
    url = request.params.get("url")
    if url:
        return str(url)
    host = request.address
    if ":" in host and is_ip_literal(host):
        host = f"[{host}]"
    port = request.port or settings.port
    authority = f"{host}:{port}" if port else host
    return f"{settings.scheme}://{authority}{settings.path}"


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Read at most `limit` bytes of the body; the flag says whether there was more."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


def check_crl(body: bytes, result: ProbeResult, now: float) -> None:
    try:
        crl = x509.load_pem_x509_crl(body) if body.lstrip().startswith(b"-----") else x509.load_der_x509_crl(body)
    except ValueError:
        result.ok, result.error = False, "body is not a valid CRL (DER or PEM)"
        return
    result.values[base.CRL_THIS_UPDATE] = crl.last_update_utc.timestamp()
    next_update = crl.next_update_utc
    if next_update is None:
        result.ok, result.error = False, "CRL has no nextUpdate"
        return
    result.values[base.CRL_NEXT_UPDATE] = next_update.timestamp()
    result.info["crl_issuer"] = crl.issuer.rfc4514_string()
    if next_update.timestamp() < now:
        result.ok, result.error = False, f"CRL is stale: nextUpdate {next_update.isoformat()} has passed"


class HTTPProbe:
    name = "http"
    settings_model = HTTPSettings

    def __init__(self) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._trace = _trace_config()
        self._tls = tls.ContextCache()
        self._urls: dict[str, URL] = {}

    def _parsed(self, url: str) -> URL:
        """The same few URLs are probed over and over: parse (and IDNA-encode) each once."""
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) > 100_000:  # bounded: URLs built from ever-changing params cannot grow it forever
                self._urls.clear()
            parsed = self._urls[url] = URL(url)
        return parsed

    def _session(self, settings: HTTPSettings) -> aiohttp.ClientSession:
        session = self._sessions.get(settings.cache_key)
        if session is None or session.closed:
            family = {"auto": socket.AF_UNSPEC, "ip4": socket.AF_INET, "ip6": socket.AF_INET6}[settings.ip_protocol]
            connector = aiohttp.TCPConnector(
                force_close=True,  # a fresh connection per probe: connect and TLS are measured every time
                limit=0,  # the scheduler bounds concurrency
                ssl=self._tls.get(settings.tls_config),
                family=family,
                ttl_dns_cache=None,
                happy_eyeballs_delay=None,  # one connect attempt at a time: a probe measures one path
            )
            session = aiohttp.ClientSession(
                connector=connector,
                trace_configs=[self._trace],
                headers={"User-Agent": USER_AGENT},
                auto_decompress=True,
                cookie_jar=aiohttp.DummyCookieJar(),
                response_class=_Response,
            )
            self._sessions[settings.cache_key] = session
        return session

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

    async def run(self, request: ProbeRequest, settings: HTTPSettings) -> ProbeResult:
        url = _url(request, settings)
        headers = dict(settings.headers)
        # a check's url names its own host: then neither SNI nor Host come from the target's hostname
        own_url = "url" in request.params
        server_hostname = settings.tls_config.server_name or (None if own_url else request.hostname)
        if request.hostname and not own_url:
            port = request.port or settings.port
            default_port = 443 if settings.scheme == "https" else 80
            host = request.hostname if port in (None, default_port) else f"{request.hostname}:{port}"
            headers.setdefault("Host", host)  # RFC 9110 7.2: the URL's authority, port included
        if settings.bearer_token is not None:
            headers["Authorization"] = f"Bearer {settings.bearer_token.get_secret_value()}"
        if settings.basic_auth is not None:
            credentials = f"{settings.basic_auth.username}:{settings.basic_auth.password.get_secret_value()}"
            headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        timer = PhaseTimer()
        result = ProbeResult(ok=True, phases=timer.phases)
        try:
            async with self._session(settings).request(
                settings.method,
                self._parsed(url),
                headers=headers,
                data=settings.body,
                allow_redirects=settings.follow_redirects,
                max_redirects=settings.max_redirects,
                server_hostname=server_hostname,
                trace_request_ctx=timer,
            ) as response:
                timer.mark("processing")
                self._inspect_response(response, settings, result)
                body, truncated = await _read_capped(response, settings.body_size_limit)
                timer.mark("transfer")
        except aiohttp.TooManyRedirects:
            return ProbeResult.failure(f"more than {settings.max_redirects} redirects", phases=timer.phases)
        except aiohttp.ClientConnectorCertificateError as exc:
            return ProbeResult.failure(tls.describe_ssl_error(exc.certificate_error), phases=timer.phases)
        except aiohttp.ClientConnectorError as exc:
            return ProbeResult.failure(tls.describe_ssl_error(exc.os_error), phases=timer.phases)
        except aiohttp.ClientResponseError as exc:
            return ProbeResult.failure(f"invalid HTTP response: {exc.message}", phases=timer.phases)
        except aiohttp.ServerDisconnectedError:
            return ProbeResult.failure("server closed the connection without a response", phases=timer.phases)
        except aiohttp.ClientPayloadError as exc:
            return ProbeResult.failure(f"invalid HTTP body: {exc}", phases=timer.phases)
        except (aiohttp.ClientError, OSError) as exc:
            return ProbeResult.failure(f"http error: {exc or type(exc).__name__}", phases=timer.phases)
        result.values[base.CONTENT_LENGTH] = float(len(body))
        if truncated:
            return self._fail(result, f"body larger than body_size_limit ({settings.body_size_limit} bytes)")
        if result.ok:
            self._check_body(body, settings, result)
        if result.ok and settings.crl:
            check_crl(body, result, time.time())
        return result

    def _inspect_response(self, response: aiohttp.ClientResponse, settings: HTTPSettings, result: ProbeResult) -> None:
        status = response.status
        result.values[base.HTTP_STATUS] = float(status)
        result.values[base.HTTP_REDIRECTS] = float(len(response.history))
        if response.version is not None:
            result.values[base.HTTP_VERSION] = float(f"{response.version.major}.{response.version.minor}")
        result.info["final_url"] = str(response.url)
        ssl_object = getattr(response, "ssl_object", None)
        tls.certificate_facts(ssl_object, result)
        if settings.fail_if_not_ssl and ssl_object is None:
            self._fail(result, "connection is not TLS (fail_if_not_ssl)")
        elif not _status_ok(status, settings):
            wanted = settings.valid_status_codes or "2xx"
            self._fail(result, f"HTTP status {status} {response.reason or ''}".rstrip() + f", expected {wanted}")

    def _check_body(self, body: bytes, settings: HTTPSettings, result: ProbeResult) -> None:
        text = body.decode("utf-8", "replace")
        for pattern in settings.fail_if_body_matches_regexp:
            if re.search(pattern, text):
                self._fail(result, f"body matches /{pattern}/")
                return
        for pattern in settings.fail_if_body_not_matches_regexp:
            if not re.search(pattern, text):
                self._fail(result, f"body does not match /{pattern}/")
                return

    @staticmethod
    def _fail(result: ProbeResult, error: str) -> ProbeResult:
        result.ok = False
        result.error = error
        return result
