"""The HTTP listener: connection caps (all sources, and per source address), a header-read timeout and an
idle keep-alive timeout, so no client can hold the file descriptors that probing needs.

Every accepted connection costs a descriptor, and the daemon shares RLIMIT_NOFILE with its probes. A
connection over a cap is aborted as soon as it is accepted (an RST, no handler, no log line) and counted
in monitor_http_connections_rejected_total{reason}; one that has not sent its first request's headers
within header_timeout is aborted the same way. aiohttp's keep-alive timer (idle_timeout, which aiohttp
also starts when a connection opens) closes the rest. Malformed request lines, which aiohttp logs at
error level with a traceback, become one warning line without it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from prometheus_client import CollectorRegistry, Counter, Gauge

from monitor.config.http_model import HttpListenerConfig

log = structlog.get_logger()
REASONS = ("global_cap", "source_cap", "header_timeout")
HEAD_ENDS = (b"\r\n\r\n", b"\n\n")


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    max_connections: int
    max_per_source: int
    header_timeout: float
    idle_timeout: float
    nofile: int  # the soft RLIMIT_NOFILE the caps were sized against


def soft_nofile() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else int(soft)


def resolve_limits(config: HttpListenerConfig, nofile: int | None = None) -> ListenerLimits:
    """Unset caps from RLIMIT_NOFILE: the listener may hold a quarter of the descriptors, the other three
    quarters stay for probes, the store, traps and logs; one address may hold a quarter of that."""
    nofile = soft_nofile() if nofile is None else nofile
    total = config.max_connections or max(16, min(10_000, nofile // 4))
    per_source = config.max_connections_per_source or max(8, min(256, total // 4))
    return ListenerLimits(total, min(per_source, total), config.header_timeout, config.idle_timeout, nofile)


class ListenerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.open = Gauge(
            "monitor_http_connections_open", "HTTP connections open now (all listeners).", registry=registry
        )
        self.rejected = Counter(
            "monitor_http_connections_rejected_total",
            "HTTP connections closed unserved: over the global or per-source cap, or no request headers in time.",
            ["reason"],
            registry=registry,
        )
        for reason in REASONS:
            self.rejected.labels(reason)
        self.limited = Counter(
            "monitor_http_requests_limited_total",
            "Expensive reads (board, status, target and service lists) answered 429: over a source's read_rate.",
            registry=registry,
        )


class ConnectionGate:
    """Counts the open connections of every listener it guards and refuses those over a cap."""

    def __init__(self, limits: ListenerLimits, metrics: ListenerMetrics) -> None:
        self.limits = limits
        self.metrics = metrics
        self.open = 0
        self.by_source: dict[str, int] = {}
        self._last_warning = 0.0

    def admit(self, source: str) -> bool:
        reason = None
        if self.open >= self.limits.max_connections:
            reason = "global_cap"
        elif self.by_source.get(source, 0) >= self.limits.max_per_source:
            reason = "source_cap"
        if reason is not None:
            self.refused(reason, source)
            return False
        self.open += 1
        self.by_source[source] = self.by_source.get(source, 0) + 1
        self.metrics.open.set(self.open)
        return True

    def release(self, source: str) -> None:
        self.open -= 1
        left = self.by_source.get(source, 1) - 1
        if left > 0:
            self.by_source[source] = left
        else:
            self.by_source.pop(source, None)
        self.metrics.open.set(self.open)

    def refused(self, reason: str, source: str) -> None:
        self.metrics.rejected.labels(reason).inc()
        now = asyncio.get_running_loop().time()
        if now - self._last_warning >= 60.0:  # one line a minute at most: a flood must not fill the log
            self._last_warning = now
            log.warning("http_connection_refused", reason=reason, source=source, open=self.open)

    def protocol(self, handler: Callable[[], asyncio.BaseProtocol]) -> GatedProtocol:
        return GatedProtocol(self, handler)


class GatedProtocol(asyncio.Protocol):
    """Stands in front of aiohttp's protocol: admits the connection (or aborts it), times out the first
    request's headers, and hands everything else through."""

    def __init__(self, gate: ConnectionGate, handler: Callable[[], asyncio.BaseProtocol]) -> None:
        self._gate = gate
        self._make_handler = handler
        self._inner: Any = None  # aiohttp's RequestHandler once admitted
        self._source = ""
        self._transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        source = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if not self._gate.admit(source):
            transport.abort()  # type: ignore[attr-defined]
            return
        self._source, self._transport = source, transport
        self._timer = asyncio.get_running_loop().call_later(self._gate.limits.header_timeout, self._too_slow)
        self._inner = self._make_handler()
        self._inner.connection_made(transport)

    def _too_slow(self) -> None:
        self._timer = None
        if self._transport is not None and self._inner is not None:
            self._gate.refused("header_timeout", self._source)
            self._transport.abort()  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self._timer is not None:
            window = self._tail + data
            if any(end in window for end in HEAD_ENDS):
                self._timer.cancel()
                self._timer, self._tail = None, b""
            else:
                self._tail = window[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        inner, self._inner, self._transport = self._inner, None, None
        self._gate.release(self._source)
        inner.connection_lost(exc)


class GatedSite(web.BaseSite):
    """A TCP site whose connections pass the gate first."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, gate: ConnectionGate) -> None:
        super().__init__(runner)
        self._host, self._port, self._gate = host, port, gate

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        limits = self._gate.limits

        def handler() -> RequestHandler:  # what server() would make, answering unparsable requests as problems
            return ProblemRequestHandler(
                server,
                loop=loop,
                keepalive_timeout=limits.idle_timeout,
                logger=server_logger(),
                access_log=None,  # type: ignore[arg-type] # None: no access log, as AppRunner allows
            )

        self._server = await loop.create_server(
            lambda: self._gate.protocol(handler), self._host, self._port, reuse_address=True, backlog=self._backlog
        )


class _OneLine(logging.Filter):
    """aiohttp logs every unparsable request at error level with a traceback; any client could fill the
    error log with them. A client's malformed request is one warning line, with no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            detail = " ".join(str(exc).split())[:300]
            record.msg = f"malformed request: {record.getMessage()}: {type(exc).__name__}: {detail}"
            record.args = ()
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def server_logger() -> logging.Logger:
    logger = logging.getLogger("monitor.http")
    if not any(isinstance(f, _OneLine) for f in logger.filters):
        logger.addFilter(_OneLine())
    return logger


class ProblemRequestHandler(RequestHandler):
    """aiohttp's protocol, answering a request it cannot parse (a bad request line, a header too long, a
    Content-Length with Transfer-Encoding) with problem+json like every other refusal, not text/plain."""

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        answer = super().handle_error(request, status, exc, message)  # logs (one line: _OneLine) and checks
        if not 400 <= status < 500:
            return answer
        detail = " ".join(str(message or "").split())[:200]
        body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
        response = web.Response(status=status, text=json.dumps(body), content_type="application/problem+json")
        response.force_close()
        return response


def make_runner(app: web.Application, limits: ListenerLimits) -> web.AppRunner:
    return web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        keepalive_timeout=limits.idle_timeout,
        logger=server_logger(),
    )


async def serve(app: web.Application, host: str, port: int, gate: ConnectionGate) -> web.AppRunner:
    """Start `app` behind the gate; the caller cleans the runner up."""
    runner = make_runner(app, gate.limits)
    await runner.setup()
    await GatedSite(runner, host, port, gate).start()
    return runner
