"""HTTP(S) probe: status, body checks, redirects, timing phases, TLS certificate facts, CRL freshness.

http and https go through the small client in probes.http1 (TLS through asyncio's ssl transport),
following redirects between them; only URLs with credentials in them (user:password@host), and a
check whose redirects lead to one, go through aiohttp. So every common probe has one parser, one head
limit, one body cap and separate connect and TLS phases. With `http_version` "2" or "auto" the same
client speaks HTTP/2 (probes.http2: ALPN h2 over TLS, prior-knowledge h2c on plain http), with the
same limits.

Each probe uses a fresh connection (like blackbox_exporter), so connect and TLS time are real every
time. ``body_size_limit`` keeps blackbox_exporter's meaning: 0 (the default) is no limit, a body longer
than a limit fails the probe. The body is kept only when a check needs it (a body regexp, ``crl``);
otherwise it is read to its end (or the limit) and counted, never buffered. A kept body stops at the
limit, and with no limit at MAX_KEPT_BODY: a target sending an endless or huge body costs bounded memory
(~1x the limit per probe in flight). Both paths apply one response-head limit, http1.MAX_HEAD (64 KiB):
aiohttp's per-line limits are raised to it and the whole head is checked against it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import ssl
import time
from functools import cached_property, lru_cache
from types import SimpleNamespace
from typing import Any, Literal

import aiohttp
from cryptography import x509
from pydantic import Field, model_validator
from yarl import URL

from probes import base, http1, http2, http_steps, tls
from probes.base import Family, Limit, Measure, PhaseTimer, ProbeRequest, ProbeResult, ProbeSettings, Progress, Regex
from probes.http_steps import Document, HeaderAssertion, JSONAssertion, Step
from probes.net import IPProtocol, ResolveError, is_ip_literal, resolve
from probes.secret import Secret

USER_AGENT = "national-monitor/0.1 (+probe)"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_OWN_SCHEMES = frozenset({"http", "https"})  # what probes.http1 speaks
MAX_KEPT_BODY = 64 * 1024 * 1024  # the most of a body kept for a body check when body_size_limit is 0 (no limit)
# aiohttp counts header lines, not bytes: enough lines for any honest head, and with 64 KiB each a bound
# on what a hostile head costs before the whole-head check (MAX_HEAD) refuses it
MAX_HEADER_LINES = 512


def _crl_due(next_update: float, limit: float, now: float) -> str | None:
    left = next_update - now
    return f"CRL nextUpdate in {left / 3600:.1f} hours" if left < limit else None


STATUS = Measure("monitor_http_status_code", "HTTP status code of the last probe.", "http_status_code")
REDIRECTS = Measure("monitor_http_redirects", "Redirects followed in the last probe.", "http_redirects")
VERSION = Measure("monitor_http_version", "HTTP version of the last response.", "http_version")
CONTENT_LENGTH = Measure("monitor_http_content_length_bytes", "Body bytes read in the last probe.",
                         "content_length_bytes")  # fmt: skip
CRL_NEXT_UPDATE = Measure("monitor_crl_next_update_timestamp_seconds", "nextUpdate of the CRL served.",
                          "crl_next_update_timestamp_seconds", limit=Limit("crl_remaining", _crl_due))  # fmt: skip
CRL_THIS_UPDATE = Measure("monitor_crl_this_update_timestamp_seconds", "thisUpdate of the CRL served.",
                          "crl_this_update_timestamp_seconds")  # fmt: skip
# A transaction's steps are named in the config, so their timings are a labelled family, not phases:
# the exported phases are a fixed set every kind declares (registry.phases()), and phases named per step
# ("login_connect") would be dropped by /metrics and could not be summed by step or by phase in PromQL.
STEP_DURATION = Family("monitor_http_step_duration_seconds", "Duration of each phase of each step of the last "
                       "HTTP transaction (steps:).", "gauge", ("step", "phase"))  # fmt: skip
STEP_STATUS = Family("monitor_http_step_status_code", "HTTP status code of each step of the last HTTP "
                     "transaction (steps:) that got a response.", "gauge", ("step",))  # fmt: skip
# with steps, the request and its checks are each step's: these module keys would be ignored, so they are refused
_NOT_WITH_STEPS = ("method", "body", "valid_status_codes", "fail_if_body_matches_regexp",
                   "fail_if_body_not_matches_regexp", "fail_if_header_matches", "fail_if_header_not_matches",
                   "fail_if_json_not_matches", "crl", "valid_http_versions")  # fmt: skip


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
    body_size_limit: int = Field(default=0, ge=0, le=MAX_KEPT_BODY)  # bytes; 0: no limit (blackbox_exporter's meaning)
    tls_config: tls.TLSSettings = tls.TLSSettings()
    fail_if_not_ssl: bool = False
    ip_protocol: IPProtocol = "auto"
    basic_auth: BasicAuth | None = None
    bearer_token: Secret | None = None
    crl: bool = False  # the body is a CRL (DER or PEM): report and check its nextUpdate
    # what to ask: "1.1" (as before), "2" (https: ALPN h2 only; http: h2c with prior knowledge), "auto"
    # (https: ALPN h2 or http/1.1, the server chooses; http: HTTP/1.1). See probes/http2.py
    http_version: Literal["1.1", "2", "auto"] = "1.1"
    # blackbox_exporter's: the versions a response may have; empty: any. "HTTP/2" is HTTP/2.0's other spelling
    valid_http_versions: list[Literal["HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/2"]] = []
    # blackbox_exporter's: list of {header, regexp, allow_missing}
    fail_if_header_matches: list[HeaderAssertion] = []
    fail_if_header_not_matches: list[HeaderAssertion] = []
    fail_if_json_not_matches: list[JSONAssertion] = []  # {path: JMESPath, value | regexp}
    # a transaction: ordered requests sharing a cookie jar (probes/http_steps.py); empty: one request
    steps: list[Step] = []
    secrets: dict[http_steps.VariableName, Secret] = {}  # the steps' ${name}s that are secrets (references only)

    @model_validator(mode="after")
    def _steps_valid(self) -> HTTPSettings:
        if self.steps:
            refused = [key for key in _NOT_WITH_STEPS if key in self.model_fields_set]
            if refused:
                raise ValueError(f"with steps, set {refused[0]} on each step, not on the module")
            if self.http_version != "1.1":
                raise ValueError("steps speak HTTP/1.1: http_version must be 1.1")
            clash = sorted(self.secrets.keys() & {name for step in self.steps for name in step.extract})
            if clash:
                raise ValueError(f"{clash[0]} is both a secret and extracted by a step")
            http_steps.check_variables(self.steps, self.secrets)
        return self

    @cached_property  # settings are frozen: computed once, not per probe
    def keeps_body(self) -> bool:
        """Whether a check looks at the body; otherwise it is only counted."""
        return bool(
            self.fail_if_body_matches_regexp or self.fail_if_body_not_matches_regexp or self.crl
            or self.fail_if_json_not_matches
        )  # fmt: skip

    @cached_property
    def checks_headers(self) -> bool:
        return bool(self.fail_if_header_matches or self.fail_if_header_not_matches)

    @cached_property
    def body_limit(self) -> int | None:
        """Bytes of body read before failing: the configured limit; with none (0), MAX_KEPT_BODY when
        the body is kept, else no limit at all (it is only counted)."""
        if self.body_size_limit:
            return self.body_size_limit
        return MAX_KEPT_BODY if self.keeps_body else None


class _TraceContext:
    """What travels in aiohttp's trace_request_ctx: the phase timer, the run's progress, and in a
    transaction the step (so that a timeout says which: "in step 2 'token' while connecting")."""

    __slots__ = ("progress", "step", "timer")

    def __init__(self, timer: PhaseTimer, progress: Progress, step: str = "") -> None:
        self.timer = timer
        self.progress = progress
        self.step = step


def _trace_config() -> aiohttp.TraceConfig:
    """Phase timing through aiohttp's tracing signals; the PhaseTimer travels in the request ctx."""

    async def mark(phase: str, ctx: SimpleNamespace, now: str = "", where: str = "") -> None:
        trace = ctx.trace_request_ctx
        if isinstance(trace, _TraceContext):
            trace.timer.mark(phase)
            if now:
                trace.progress.enter(now, f"in {trace.step} {where}" if trace.step else where)

    async def dns_start(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
        await mark("setup", ctx, "resolve", "while resolving the host name")

    async def dns_end(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
        await mark("resolve", ctx)

    async def conn_start(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
        # aiohttp does TCP connect and TLS handshake in one step: the reason cannot tell them apart
        await mark("setup", ctx, "connect", "while connecting (TCP connect and TLS handshake)")

    async def conn_end(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
        await mark("connect", ctx, "head", "waiting for the response head")

    config = aiohttp.TraceConfig()
    config.on_dns_resolvehost_start.append(dns_start)
    config.on_dns_resolvehost_end.append(dns_end)
    config.on_connection_create_start.append(conn_start)
    config.on_connection_create_end.append(conn_end)
    return config


class _HeadTooLarge(Exception):
    """The response head is over http1.MAX_HEAD bytes."""


class _Response(aiohttp.ClientResponse):
    """Keeps the TLS object of its connection: aiohttp releases the connection as soon as the body
    has arrived, which for a small body is before the probe looks at the response. Refuses a head
    over MAX_HEAD in all, as the plain-http client does (aiohttp only limits each line)."""

    ssl_object: Any = None

    async def start(self, connection: aiohttp.connector.Connection) -> aiohttp.ClientResponse:
        transport = connection.transport
        self.ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        response = await super().start(connection)
        size = sum(len(name) + len(value) + 4 for name, value in self.raw_headers)  # "name: value\r\n"
        if size > http1.MAX_HEAD:
            raise _HeadTooLarge()
        return response


_VERSION_NAMES = {1.0: "HTTP/1.0", 1.1: "HTTP/1.1", 2.0: "HTTP/2.0"}


def _version_ok(version: float | None, settings: HTTPSettings) -> bool:
    if not settings.valid_http_versions or version is None:
        return True
    allowed = {"HTTP/2.0" if v == "HTTP/2" else v for v in settings.valid_http_versions}
    return _VERSION_NAMES.get(version, f"HTTP/{version}") in allowed


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


async def _read_body(
    response: aiohttp.ClientResponse, limit: int | None, keep: bool, progress: Progress, step: str = ""
) -> tuple[bytearray, int, bool]:
    """(body kept, bytes read, whether there was more than `limit`). The body is kept only when
    `keep`, in one bytearray that never grows past the limit: ~1x the limit, no join, no slice."""
    body = bytearray()
    size = 0
    length = response.content_length

    def where() -> str:
        progress.facts["http_status"] = str(response.status)
        progress.facts["body_bytes"] = str(size)
        read = f"{size} of {length} bytes" if length is not None else f"{size} bytes so far"
        return f"{f'in {step} ' if step else ''}while reading the body (HTTP {response.status}, {read})"

    progress.enter("body", where)
    async for chunk in response.content.iter_chunked(65536):
        if limit is not None and size + len(chunk) > limit:
            if keep:
                body += chunk[: limit - size]
            return body, limit, True
        if keep:
            body += chunk
        size += len(chunk)
    return body, size, False


@lru_cache(maxsize=1024)
def _body_pattern(pattern: str) -> re.Pattern[bytes] | re.Pattern[str]:
    """An ASCII pattern is matched against the body's bytes: no decoded copy of a large body (and
    \\w, \\d, \\s are ASCII, as in blackbox_exporter's Go regexps). A pattern with other characters
    is matched against the body decoded as UTF-8."""
    if pattern.isascii():
        try:
            return re.compile(pattern.encode())
        except re.error:  # a construct only str patterns have
            pass
    return re.compile(pattern)


def _search(pattern: str, body: bytes | bytearray, text: list[str]) -> bool:
    regex = _body_pattern(pattern)
    if isinstance(regex.pattern, bytes):
        return regex.search(body) is not None
    if not text:  # decoded once, for all the patterns that need it
        text.append(body.decode("utf-8", "replace"))
    return regex.search(text[0]) is not None


def _regexp_error(body: bytes | bytearray, matches: list[str], not_matches: list[str]) -> str | None:
    text: list[str] = []
    for pattern in matches:
        if _search(pattern, body, text):
            return f"body matches /{pattern}/"
    for pattern in not_matches:
        if not _search(pattern, body, text):
            return f"body does not match /{pattern}/"
    return None


def _header_getter(response: aiohttp.ClientResponse) -> http_steps.HeaderGetter:
    headers = response.headers

    def get(name: str) -> str | None:
        values = headers.getall(name, [])  # case-insensitive; a repeated header is one value, as in http1
        return ", ".join(values) if values else None

    return get


def _aiohttp_error(exc: BaseException, max_redirects: int) -> str:
    """The reason for an exception of an aiohttp request (raises LocalFailure for this host's own failures)."""
    if isinstance(exc, _HeadTooLarge):
        return f"invalid HTTP response: response head larger than {http1.MAX_HEAD // 1024} KiB"
    if isinstance(exc, aiohttp.TooManyRedirects):
        return f"more than {max_redirects} redirects"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return tls.describe_ssl_error(exc.certificate_error)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return tls.describe_ssl_error(exc.os_error)
    if isinstance(exc, aiohttp.ClientResponseError):
        # one line over MAX_HEAD: aiohttp turns its LineTooLong into a generic error with this text
        if str(exc.message).startswith("Got more than "):
            return f"invalid HTTP response: response head larger than {http1.MAX_HEAD // 1024} KiB"
        return f"invalid HTTP response: {exc.message}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server closed the connection without a response"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"invalid HTTP body: {exc}"
    base.raise_if_local(exc)  # EMFILE, ENOBUFS on a write: this host's failure, not the server's
    return f"http error: {exc or type(exc).__name__}"


def check_crl(body: bytes | bytearray, result: ProbeResult, now: float) -> None:
    body = bytes(body)  # cryptography takes bytes
    try:
        crl = x509.load_pem_x509_crl(body) if body.lstrip().startswith(b"-----") else x509.load_der_x509_crl(body)
    except ValueError:
        result.ok, result.error = False, "body is not a valid CRL (DER or PEM)"
        return
    result.values[CRL_THIS_UPDATE.key] = crl.last_update_utc.timestamp()
    next_update = crl.next_update_utc
    if next_update is None:
        result.ok, result.error = False, "CRL has no nextUpdate"
        return
    result.values[CRL_NEXT_UPDATE.key] = next_update.timestamp()
    result.info["crl_issuer"] = crl.issuer.rfc4514_string()
    if next_update.timestamp() < now:
        result.ok, result.error = False, f"CRL is stale: nextUpdate {next_update.isoformat()} has passed"


class HTTPProbe:
    name = "http"
    settings_model = HTTPSettings
    measures: tuple[Measure, ...] = (STATUS, REDIRECTS, VERSION, CONTENT_LENGTH, *tls.MEASURES,
                                     CRL_NEXT_UPDATE, CRL_THIS_UPDATE)  # fmt: skip
    series: tuple[Family, ...] = (STEP_DURATION, STEP_STATUS)
    phases: tuple[str, ...] = ("resolve", "connect", "tls", "processing", "transfer")
    polls_agent = False

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
                max_line_size=http1.MAX_HEAD,  # one head limit on both paths (aiohttp's default is 8,190 bytes)
                max_field_size=http1.MAX_HEAD,
                max_headers=MAX_HEADER_LINES,
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
        if settings.steps:
            return await self._run_steps(request, settings)
        url = _url(request, settings)
        parsed = self._parsed(url)
        headers = self._headers(request, settings)
        if parsed.scheme in _OWN_SCHEMES and parsed.user is None and url not in self._redirecting:
            # SNI and the name verified: the module's, else the target's hostname (a check's url names its own)
            server_name = settings.tls_config.server_name or (None if "url" in request.params else request.hostname)
            result = await self._run_plain(parsed, headers, settings, request.progress, server_name)
            if result is not None:
                return result
            # it redirected to a URL with credentials: aiohttp follows redirects for this URL from now on
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

    async def _run_plain(
        self,
        url: URL,
        headers: dict[str, str],
        settings: HTTPSettings,
        progress: Progress,
        server_name: str | None,
    ) -> ProbeResult | None:
        """http and https through the small client, following redirects. None when one leads to a URL
        with credentials (or another scheme): the caller then runs the probe through aiohttp."""
        timer = PhaseTimer(progress)
        method = settings.method
        body = settings.body.encode() if settings.body is not None else None
        redirects = 0
        while True:
            try:
                response = await self._exchange(url, method, headers, body, settings, timer, progress, server_name)
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
            if target.scheme not in _OWN_SCHEMES or target.user is not None:
                return None
            if target.origin() != url.origin():  # another host: what was meant for this one stays here
                headers = {k: v for k, v in headers.items() if k.lower() not in ("host", "authorization")}
                server_name = settings.tls_config.server_name  # else the new host's name
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = "GET", None  # as browsers and aiohttp do
            url = target
        result = ProbeResult(ok=True, phases=timer.phases)
        version = float(f"{response.version[0]}.{response.version[1]}")
        self._inspect_response(
            response.status, response.reason, version, redirects, str(url), response.ssl_object, settings, result
        )
        if result.ok and settings.checks_headers:
            names = response.headers  # lower-case names
            self._check_headers(lambda name: names.get(name.lower()), settings, result)
        return self._judge_body(response.body, response.body_size, response.truncated, settings, result)

    async def _exchange(
        self,
        url: URL,
        method: str,
        headers: dict[str, str],
        body: bytes | None,
        settings: HTTPSettings,
        timer: PhaseTimer,
        progress: Progress,
        server_name: str | None,
    ) -> http1.Response:
        """One request and its response on a fresh connection; phases add up over redirects."""
        host = url.raw_host or ""
        secure = url.scheme == "https"
        default_port = 443 if secure else 80
        port = url.port or default_port
        progress.enter("resolve", f"while resolving {host}")
        try:
            ip = await resolve(host, settings.ip_protocol)
        except ResolveError as exc:
            raise _PlainFailure(str(exc)) from None
        timer.mark("resolve")
        authority = f"[{host}]" if ":" in host else host
        host_header = headers.get("Host") or (authority if port == default_port else f"{authority}:{port}")
        others = {k: v for k, v in headers.items() if k != "Host"}
        version = settings.http_version
        readers: list[http1.ResponseReader] = []  # the exchanges made: each one's `done` is settled at the end
        protocol: asyncio.Protocol
        negotiated: http2.Negotiated | None = None
        if version != "2":
            request = http1.build_request(method, url.raw_path_qs, host_header, others, body)
            protocol = exchange = http1.Exchange(
                request,
                settings.body_limit,
                method == "HEAD",
                lambda: timer.mark("processing"),
                keep_body=settings.keeps_body,
                progress=progress,
            )
            readers.append(exchange)
        if version == "2" or (version == "auto" and secure):
            protocol = exchange2 = http2.Exchange2(
                method,
                url.scheme,
                host_header,
                url.raw_path_qs,
                others,
                body,
                settings.body_limit,
                lambda: timer.mark("processing"),
                keep_body=settings.keeps_body,
                progress=progress,
                require_alpn=secure,
            )
            readers.append(exchange2)
            if version == "auto":
                protocol = negotiated = http2.Negotiated(exchange, exchange2)
        alpn = http2.ALPN_H2 if version == "2" else http2.ALPN_AUTO if version == "auto" else ()
        transport = None
        progress.enter("connect", "while connecting")
        loop = asyncio.get_running_loop()
        try:
            if secure:
                transport = await self._connect_tls(
                    protocol, ip, port, server_name or host, settings, timer, progress, alpn
                )
            else:
                transport, _ = await loop.create_connection(lambda: protocol, ip, port)
                timer.mark("connect")
            reader = negotiated.chosen if negotiated is not None else readers[0]
            response = await reader.done
            timer.mark("transfer")
            response.ssl_object = transport.get_extra_info("ssl_object") if secure else None
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
            for made in readers:
                made.done.cancel()  # no-op when settled; else nobody is left to read its outcome
            if transport is None:
                pass
            elif secure:  # no TLS close_notify exchange: a peer that never answers it would hold the socket 30 s
                transport.abort()
            else:
                transport.close()  # also when the runner's timeout cancels the probe

    async def _connect_tls(
        self,
        protocol: asyncio.Protocol,
        ip: str,
        port: int,
        server_name: str,
        settings: HTTPSettings,
        timer: PhaseTimer,
        progress: Progress,
        alpn: tuple[str, ...] = (),
    ) -> asyncio.Transport:
        """TCP connect, then the TLS handshake on that socket: two phases, so that a timeout (and the
        phase timings) tell a port that does not accept from one that does not speak TLS."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, (ip, port))
            timer.mark("connect")
            progress.enter("tls", "in TLS handshake")
            try:
                transport, _ = await loop.create_connection(
                    lambda: protocol,
                    sock=sock,
                    ssl=self._tls.get(settings.tls_config, alpn),
                    server_hostname=server_name,
                )
            except (ssl.SSLEOFError, ConnectionError) as exc:  # closed or reset: the server said no more than that
                raise _PlainFailure(await self._handshake_cut(exc, ip, port, server_name, settings)) from None
        except BaseException:
            sock.close()  # a no-op once a transport owns (and has closed) it
            raise
        timer.mark("tls")
        return transport

    @staticmethod
    async def _handshake_cut(exc: OSError, ip: str, port: int, server_name: str, settings: HTTPSettings) -> str:
        """Why the server cut the handshake off. Many close or reset on a ClientHello whose versions they
        do not speak instead of sending the protocol_version alert: one more handshake offering every
        version tells that case ("protocol version", the fix being tls_config min_version/max_version)."""
        version = await tls.server_version(ip, port, server_name)
        if version is not None and tls.outside_range(version, settings.tls_config):
            return "TLS handshake failed: protocol version"
        if isinstance(exc, ssl.SSLError):
            return tls.describe_ssl_error(exc)
        return f"TLS handshake failed: {base.describe_os_error(exc)}"

    async def _run_aiohttp(
        self, request: ProbeRequest, url: URL, headers: dict[str, str], settings: HTTPSettings
    ) -> ProbeResult:
        server_hostname = settings.tls_config.server_name or (None if "url" in request.params else request.hostname)
        progress = request.progress
        timer = PhaseTimer(progress)
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
                trace_request_ctx=_TraceContext(timer, progress),
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
                if result.ok and settings.checks_headers:
                    self._check_headers(_header_getter(response), settings, result)
                body, size, truncated = await _read_body(response, settings.body_limit, settings.keeps_body, progress)
                timer.mark("transfer")
        except (_HeadTooLarge, aiohttp.ClientError, OSError) as exc:
            return ProbeResult.failure(_aiohttp_error(exc, settings.max_redirects), phases=timer.phases)
        return self._judge_body(body, size, truncated, settings, result)

    async def _run_steps(self, request: ProbeRequest, settings: HTTPSettings) -> ProbeResult:
        """A transaction: the steps in order, sharing a cookie jar and variables; the first step that fails
        is the reason, naming it ("step 2 'token': status is 'NG', expected 'OK'"). Each step gets a fresh
        connection from the module's connector (so its connect and TLS time are real) through a session
        of this run: the jar holds this run's cookies only, so a run never rides on the last one's login.
        Through aiohttp (HTTP/1.1): its cookie jar is RFC 6265's, and a transaction is not the fast path."""
        base_url = self._parsed(_url(request, settings))
        common = self._headers(request, settings)  # User-Agent, the module's headers and credentials
        host = common.pop("Host", None)  # the target's name: only for steps to the target's own origin
        server_name = settings.tls_config.server_name or (None if "url" in request.params else request.hostname)
        variables = {name: secret.get_secret_value() for name, secret in settings.secrets.items()}
        secrets = [value for value in variables.values() if value]
        result = ProbeResult(ok=True)
        session = aiohttp.ClientSession(
            connector=self._session(settings).connector,
            connector_owner=False,  # the module's connector outlives this run's session
            max_line_size=http1.MAX_HEAD,
            max_field_size=http1.MAX_HEAD,
            max_headers=MAX_HEADER_LINES,
            trace_configs=[self._trace],
            auto_decompress=True,
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # unsafe: also cookies of IP-address hosts
            response_class=_Response,
        )
        try:
            for number, step in enumerate(settings.steps, 1):
                label = f"step {number} '{step.name}'"
                request.progress.enter(f"step {number}", f"in {label}")
                timer = PhaseTimer(request.progress)
                try:
                    error = await self._step(session, step, label, base_url, common, host, server_name,
                                             variables, settings, timer, request.progress, result)  # fmt: skip
                except (_HeadTooLarge, aiohttp.ClientError, OSError) as exc:
                    error = _aiohttp_error(exc, settings.max_redirects)
                except http_steps.UnknownVariable as exc:
                    error = f"unknown variable ${{{exc}}}"
                except ValueError as exc:  # aiohttp refuses CR, LF in a header: an extracted value can carry them
                    if "control character" not in str(exc):
                        raise  # a bug: the runner reports it as one
                    error = "invalid request: a control character in a header (from a variable?)"
                finally:
                    for phase, seconds in timer.phases.items():
                        result.phases[phase] = result.phases.get(phase, 0.0) + seconds
                        result.series.append(STEP_DURATION.sample((("step", step.name), ("phase", phase)), seconds))
                if error is not None:
                    result.ok = False
                    result.error = http_steps.redact(f"{label}: {error}", secrets)
                    break
        finally:
            await session.close()
        return result

    async def _step(
        self,
        session: aiohttp.ClientSession,
        step: Step,
        label: str,
        base_url: URL,
        common: dict[str, str],
        host: str | None,
        server_name: str | None,
        variables: dict[str, str],
        settings: HTTPSettings,
        timer: PhaseTimer,
        progress: Progress,
        result: ProbeResult,
    ) -> str | None:
        """One step: why it failed, or None (its extracts then are in `variables`)."""
        try:
            url = base_url.join(URL(http_steps.substitute(step.url, variables)))
        except ValueError:
            return "invalid url"  # not quoted: it may hold a variable's value
        same_origin = url.origin() == base_url.origin()
        headers = dict(common)
        if host is not None and same_origin:
            headers["Host"] = host
        for name, value in step.headers.items():
            headers[name] = http_steps.substitute(value, variables)
        data: bytes | None = None
        if isinstance(step.body, str):
            data = http_steps.substitute(step.body, variables).encode()
        elif step.body is not None:
            data = json.dumps(http_steps.substitute_json(step.body, variables), ensure_ascii=False).encode()
            if not any(name.lower() == "content-type" for name in headers):
                headers["Content-Type"] = "application/json"
        async with session.request(
            step.method,
            url,
            headers=headers,
            data=data,
            allow_redirects=settings.follow_redirects,
            max_redirects=settings.max_redirects,
            server_hostname=server_name if same_origin else None,
            trace_request_ctx=_TraceContext(timer, progress, label),
        ) as response:
            timer.mark("processing")
            status = response.status
            result.values[STATUS.key] = float(status)
            result.series.append(STEP_STATUS.sample((("step", step.name),), float(status)))
            ssl_object = response.ssl_object if isinstance(response, _Response) else None  # the session's class
            tls.certificate_facts(ssl_object, result)
            if settings.fail_if_not_ssl and ssl_object is None:
                return "connection is not TLS (fail_if_not_ssl)"
            if not (status in step.valid_status_codes if step.valid_status_codes else 200 <= status < 300):
                return f"HTTP {status}, expected {step.valid_status_codes or '2xx'}"
            header = _header_getter(response)
            error = http_steps.check_headers(header, step.fail_if_header_matches, step.fail_if_header_not_matches)
            if error is not None:
                return error
            limit = settings.body_size_limit or (MAX_KEPT_BODY if step.keeps_body else None)
            body, size, truncated = await _read_body(response, limit, step.keeps_body, progress, label)
            timer.mark("transfer")
        result.values[CONTENT_LENGTH.key] = float(size)
        if truncated:
            return f"body larger than {limit} bytes"
        error = _regexp_error(body, step.fail_if_body_matches_regexp, step.fail_if_body_not_matches_regexp)
        document = Document(body)
        if error is None and step.fail_if_json_not_matches:
            error = http_steps.check_json(document, step.fail_if_json_not_matches)
        if error is not None:
            return error
        for name, source in step.extract.items():
            extracted = http_steps.extract(source, header, body, document)
            if extracted is None:
                return f"nothing to extract into {name} ({source.describe()})"
            variables[name] = extracted
        return None

    def _judge_body(
        self, body: bytes | bytearray, size: int, truncated: bool, settings: HTTPSettings, result: ProbeResult
    ) -> ProbeResult:
        result.values[CONTENT_LENGTH.key] = float(size)
        if truncated:
            if settings.body_size_limit:
                return self._fail(result, f"body larger than body_size_limit ({settings.body_size_limit} bytes)")
            return self._fail(
                result,
                f"body larger than {MAX_KEPT_BODY // (1024 * 1024)} MiB, the most kept for a body check"
                " (body_size_limit: 0 reads any size only when no body check is configured)",
            )
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
        result.values[STATUS.key] = float(status)
        result.values[REDIRECTS.key] = float(redirects)
        if version is not None:
            result.values[VERSION.key] = version
        result.info["final_url"] = final_url
        tls.certificate_facts(ssl_object, result)
        if settings.fail_if_not_ssl and ssl_object is None:
            self._fail(result, "connection is not TLS (fail_if_not_ssl)")
        elif not _status_ok(status, settings):
            wanted = settings.valid_status_codes or "2xx"
            self._fail(result, f"HTTP status {status} {reason}".rstrip() + f", expected {wanted}")
        elif not _version_ok(version, settings):
            name = _VERSION_NAMES.get(version or 0.0, f"HTTP/{version}")
            self._fail(result, f"HTTP version {name}, expected one of {', '.join(settings.valid_http_versions)}")

    def _check_body(self, body: bytes | bytearray, settings: HTTPSettings, result: ProbeResult) -> None:
        error = _regexp_error(body, settings.fail_if_body_matches_regexp, settings.fail_if_body_not_matches_regexp)
        if error is not None:
            self._fail(result, error)
            return
        if settings.fail_if_json_not_matches:
            error = http_steps.check_json(Document(body), settings.fail_if_json_not_matches)
            if error is not None:
                self._fail(result, error if error == "body is not JSON" else f"JSON {error}")

    def _check_headers(self, header: http_steps.HeaderGetter, settings: HTTPSettings, result: ProbeResult) -> None:
        error = http_steps.check_headers(header, settings.fail_if_header_matches, settings.fail_if_header_not_matches)
        if error is not None:
            self._fail(result, error)

    @staticmethod
    def _fail(result: ProbeResult, error: str) -> ProbeResult:
        result.ok = False
        result.error = error
        return result
