"""The expensive reads (the console's board, /status.json, target and service lists) under a flood: served
from a short-lived cache, computed once however many ask at the same moment, and limited per source
address, so that a `wrk` on /api/v1/board cannot take the event loop from the probes.

An entry is dropped as soon as anything it shows may have changed (a state change, an incident, a
write through the API: EventHub.version) and after `read_cache_ttl` in any case; what a cached answer
can miss is the latest probe's timings, for at most that long.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from monitor.access.auth import ProblemError
from monitor.config.http_model import HttpListenerConfig

MAX_ENTRIES = 256  # distinct (path, query) answers kept
MAX_SOURCES = 10_000  # token buckets kept, least recently used dropped first
SET_BY_RESPONSE = ("content-type", "content-length")
TARPIT = 1.0  # seconds a request over the rate waits for its 429


@dataclass(frozen=True, slots=True)
class _Entry:
    at: float
    version: int
    status: int
    body: bytes
    content_type: str | None
    charset: str | None
    headers: tuple[tuple[str, str], ...]

    def response(self) -> web.Response:
        return web.Response(
            status=self.status,
            body=self.body,
            content_type=self.content_type,
            charset=self.charset,
            headers=dict(self.headers),
        )


class TokenBuckets:
    """`rate` requests a second per key, bursts up to `burst`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str, rate: float, burst: int) -> float:
        """0 when allowed (one token taken), else the seconds until the next token."""
        now = self._clock()
        tokens, at = self._buckets.pop(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - at) * rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > MAX_SOURCES:
            self._buckets.popitem(last=False)
        return wait


class ReadShield:
    def __init__(
        self,
        settings: Callable[[], HttpListenerConfig],
        version: Callable[[], int],
        limited: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._limited = limited  # counts a 429 (monitor_http_requests_limited_total)
        self._version = version
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._pending: dict[tuple[str, str], asyncio.Future[_Entry]] = {}
        self.buckets = TokenBuckets(clock)

    async def respond(self, request: web.Request, build: Callable[[], Awaitable[web.Response]]) -> web.Response:
        """The answer `build` gives, from the cache when it is fresh; 429 over the source's rate."""
        settings = self._settings()
        wait = self.buckets.take(request.remote or "unknown", settings.read_rate, settings.read_burst)
        if wait > 0:
            self._limited()
            # Answer late: a client over its rate holds a parked connection instead of the event loop
            # (a keep-alive flood gets at most one answer per connection per TARPIT seconds).
            await asyncio.sleep(TARPIT)
            error = ProblemError(429, "too many requests", f"at most {settings.read_rate:g}/s; retry in {wait:.1f} s")
            error.response.headers["Retry-After"] = str(int(wait) + 1)
            raise error
        key = (request.path, request.query_string)
        version = self._version()
        entry = self._entries.get(key)
        if entry is not None and entry.version == version and self._clock() - entry.at <= settings.read_cache_ttl:
            return entry.response()
        pending = self._pending.get(key)
        if pending is not None:  # being computed for someone else: share it
            return (await asyncio.shield(pending)).response()
        future: asyncio.Future[_Entry] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # waiters, if any, see the error
        self._pending[key] = future
        try:
            response = await build()
            entry = _Entry(
                self._clock(),
                version,
                response.status,
                bytes(response.body) if isinstance(response.body, bytes | bytearray) else b"",
                response.content_type,
                response.charset,
                tuple((k, v) for k, v in response.headers.items() if k.lower() not in SET_BY_RESPONSE),
            )
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            raise
        finally:
            self._pending.pop(key, None)
        future.set_result(entry)
        if entry.status == 200 and settings.read_cache_ttl > 0:
            self._entries.pop(key, None)
            self._entries[key] = entry
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)
        return response
