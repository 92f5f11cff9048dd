"""HTTP(S) probe: status, body checks, redirects, timing phases, TLS certificate facts, CRL freshness.

Plain http goes through the small client in probes.http1; https and redirects through aiohttp.

Each probe uses a fresh connection (like blackbox_exporter), so connect and TLS time are real every
time. The body is read up to ``body_size_limit`` and no further: a target sending an endless or huge
body costs bounded memory. aiohttp's own limits bound header sizes.
"""

from __future__ import annotations

import asyncio
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

from probes import base, http1, tls
from probes.base import PhaseTimer, ProbeRequest, ProbeResult, ProbeSettings, Regex
from probes.net import IPProtocol, ResolveError, is_ip_literal, resolve
from probes.secret import Secret

USER_AGENT = "national-monitor/0.1 (+probe)"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class _PlainFailure(Exception):
    """Why a plain-http exchange failed, in the words the probe reports."""


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
        self._redirecting: set[str] = set()  # plain-http URLs that answered with a redirect to follow

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
        parsed = self._parsed(url)
        headers = self._headers(request, settings)
        if parsed.scheme == "http" and parsed.user is None and url not in self._redirecting:
            result = await self._run_plain(parsed, headers, settings)
            if result is not None:
                return result
            # it redirected: aiohttp follows redirects for this URL from now on (this time included)
            if len(self._redirecting) > 100_000:
                self._redirecting.clear()
            self._redirecting.add(url)
        return await self._run_aiohttp(request, parsed, headers, settings)

    @staticmethod
    def _headers(request: ProbeRequest, settings: HTTPSettings) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, **settings.headers}
        # a check's url names its own host: then Host does not come from the target's hostname
        if request.hostname and "url" not in request.params:
            port = request.port or settings.port
            default_port = 443 if settings.scheme == "https" else 80
            host = request.hostname if port in (None, default_port) else f"{request.hostname}:{port}"
            headers.setdefault("Host", host)  # RFC 9110 7.2: the URL's authority, port included
        if settings.bearer_token is not None:
            headers["Authorization"] = f"Bearer {settings.bearer_token.get_secret_value()}"
        if settings.basic_auth is not None:
            credentials = f"{settings.basic_auth.username}:{settings.basic_auth.password.get_secret_value()}"
            headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        return headers

    async def _run_plain(self, url: URL, headers: dict[str, str], settings: HTTPSettings) -> ProbeResult | None:
        """Plain http through the small client, following redirects that stay on plain http. None when
        one leads to https: the caller then runs the probe through aiohttp."""
        timer = PhaseTimer()
        method = settings.method
        body = settings.body.encode() if settings.body is not None else None
        redirects = 0
        while True:
            try:
                response = await self._exchange(url, method, headers, body, settings, timer)
            except _PlainFailure as failure:
                return ProbeResult.failure(str(failure), phases=timer.phases)
            location = response.headers.get("location")
            if not (settings.follow_redirects and response.status in _REDIRECTS and location):
                break
            if redirects >= settings.max_redirects:
                return ProbeResult.failure(f"more than {settings.max_redirects} redirects", phases=timer.phases)
            redirects += 1
            try:
                target = url.join(URL(location))
            except ValueError:
                return ProbeResult.failure(f"invalid redirect location {location[:80]!r}", phases=timer.phases)
            if target.scheme != "http" or target.user is not None:
                return None
            if target.origin() != url.origin():  # another host: what was meant for this one stays here
                headers = {k: v for k, v in headers.items() if k.lower() not in ("host", "authorization")}
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = "GET", None  # as browsers and aiohttp do
            url = target
        result = ProbeResult(ok=True, phases=timer.phases)
        version = float(f"{response.version[0]}.{response.version[1]}")
        self._inspect_response(response.status, response.reason, version, redirects, str(url), None, settings, result)
        return self._judge_body(response.body, response.truncated, settings, result)

    @staticmethod
    async def _exchange(
        url: URL, method: str, headers: dict[str, str], body: bytes | None, settings: HTTPSettings, timer: PhaseTimer
    ) -> http1.Response:
        """One request and its response on a fresh connection; phases add up over redirects."""
        host = url.raw_host or ""
        port = url.port or 80
        try:
            ip = await resolve(host, settings.ip_protocol)
        except ResolveError as exc:
            raise _PlainFailure(str(exc)) from None
        timer.mark("resolve")
        authority = f"[{host}]" if ":" in host else host
        host_header = headers.get("Host") or (authority if port == 80 else f"{authority}:{port}")
        others = {k: v for k, v in headers.items() if k != "Host"}
        request = http1.build_request(method, url.raw_path_qs, host_header, others, body)
        exchange = http1.Exchange(request, settings.body_size_limit, method == "HEAD", lambda: timer.mark("processing"))
        transport = None
        try:
            transport, _ = await asyncio.get_running_loop().create_connection(lambda: exchange, ip, port)
            timer.mark("connect")
            response = await exchange.done
            timer.mark("transfer")
            return response
        except OSError as exc:
            raise _PlainFailure(tls.describe_ssl_error(exc)) from None
        except http1.NoResponse:
            raise _PlainFailure("server closed the connection without a response") from None
        except http1.ResponseError as exc:
            raise _PlainFailure(f"invalid HTTP response: {exc}") from None
        except http1.BodyError as exc:
            raise _PlainFailure(f"invalid HTTP body: {exc}") from None
        finally:
            exchange.done.cancel()  # no-op when settled; else nobody is left to read its outcome
            if transport is not None:
                transport.close()  # also when the runner's timeout cancels the probe

    async def _run_aiohttp(
        self, request: ProbeRequest, url: URL, headers: dict[str, str], settings: HTTPSettings
    ) -> ProbeResult:
        server_hostname = settings.tls_config.server_name or (None if "url" in request.params else request.hostname)
        timer = PhaseTimer()
        result = ProbeResult(ok=True, phases=timer.phases)
        try:
            async with self._session(settings).request(
                settings.method,
                url,
                headers=headers,
                data=settings.body,
                allow_redirects=settings.follow_redirects,
                max_redirects=settings.max_redirects,
                server_hostname=server_hostname,
                trace_request_ctx=timer,
            ) as response:
                timer.mark("processing")
                version = response.version
                self._inspect_response(
                    response.status,
                    response.reason or "",
                    float(f"{version.major}.{version.minor}") if version is not None else None,
                    len(response.history),
                    str(response.url),
                    getattr(response, "ssl_object", None),
                    settings,
                    result,
                )
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
            base.raise_if_local(exc)  # EMFILE, ENOBUFS on a write: this host's failure, not the server's
            return ProbeResult.failure(f"http error: {exc or type(exc).__name__}", phases=timer.phases)
        return self._judge_body(body, truncated, settings, result)

    def _judge_body(self, body: bytes, truncated: bool, settings: HTTPSettings, result: ProbeResult) -> ProbeResult:
        result.values[base.CONTENT_LENGTH] = float(len(body))
        if truncated:
            return self._fail(result, f"body larger than body_size_limit ({settings.body_size_limit} bytes)")
        if result.ok:
            self._check_body(body, settings, result)
        if result.ok and settings.crl:
            check_crl(body, result, time.time())
        return result

    def _inspect_response(
        self,
        status: int,
        reason: str,
        version: float | None,
        redirects: int,
        final_url: str,
        ssl_object: Any,
        settings: HTTPSettings,
        result: ProbeResult,
    ) -> None:
        result.values[base.HTTP_STATUS] = float(status)
        result.values[base.HTTP_REDIRECTS] = float(redirects)
        if version is not None:
            result.values[base.HTTP_VERSION] = version
        result.info["final_url"] = final_url
        tls.certificate_facts(ssl_object, result)
        if settings.fail_if_not_ssl and ssl_object is None:
            self._fail(result, "connection is not TLS (fail_if_not_ssl)")
        elif not _status_ok(status, settings):
            wanted = settings.valid_status_codes or "2xx"
            self._fail(result, f"HTTP status {status} {reason}".rstrip() + f", expected {wanted}")

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
