"""A small HTTP/1.1 client for the common probe: http or https, one request and one response.

aiohttp is a general client (sessions, connection pools, cookies, tracing, redirects); a probe that
opens one fresh connection, sends one request and reads one capped response needs none of that, and
at thousands of checks aiohttp's per-request machinery was the largest cost of an HTTP probe. This
is one asyncio.Protocol that parses the response as it arrives. It is strict where the RFCs are
(garbage is an error with a clear message) and lenient where RFC 9112 lets a client be, as Go's
net/http (blackbox_exporter) is: bare LF line ends in the head (9112 section 2.2; not in the chunked
framing, where 7.1 wants CRLF and Go refuses it too), obs-folded header lines joined with a space
(section 5.2), a Content-Length repeated with the same value (RFC 9110 section 8.6). It is bounded:
the response head at most MAX_HEAD (64 KiB, the limit the aiohttp path applies too), the body cut at
the caller's limit. The caller (probes.http) connects, over TLS for https, and follows redirects.

Memory: a body nobody looks at is counted, not kept. A kept body goes into one bytearray that stops
at the limit (the piece that crosses it is cut, never appended), so a capped body costs ~1x the limit;
a compressed body is inflated in pieces of at most DECODE_PIECE bytes, so a bomb costs no more.
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from probes.base import Progress

MAX_HEAD = 65536  # the response head (status line and header lines), on both HTTP paths
DECODE_PIECE = 256 * 1024  # inflated bytes per step: a gzip bomb costs this much at a time, not 1000x its chunk
_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: ([^\r\n]*))?")
_CHUNK_SIZE = re.compile(rb"([0-9a-fA-F]{1,16})(?:;[^\r\n]*)?")


class ResponseError(Exception):
    """The peer's bytes are not a valid HTTP/1.x response."""


class BodyError(Exception):
    """The head was valid but the body broke off or is malformed."""


class NoResponse(Exception):
    """The connection closed before any byte of a response."""


@dataclass
class Response:
    status: int = 0
    reason: str = ""
    version: tuple[int, int] = (1, 1)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names; repeated names joined by ", "
    body: bytes | bytearray = b""  # empty unless the caller keeps the body
    body_size: int = 0  # decoded bytes of the body read (all of it, or up to the limit), kept or not
    truncated: bool = False  # the body went on past the limit
    ssl_object: Any = None  # the TLS connection's ssl.SSLObject (https), for the certificate facts


class _Decoder:
    """Content-Encoding gzip/deflate, inflated in pieces of at most DECODE_PIECE bytes."""

    def __init__(self, encoding: str) -> None:
        wbits = 16 + zlib.MAX_WBITS if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self._z = zlib.decompressobj(wbits) if encoding in ("gzip", "x-gzip", "deflate") else None
        self._deflate_raw_tried = encoding != "deflate"

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of `data`; the caller stops iterating once it has enough (a bomb is
        then never inflated further)."""
        if self._z is None:
            yield data
            return
        first = True
        while data:
            try:
                piece = self._z.decompress(data, DECODE_PIECE)
            except zlib.error:
                if self._deflate_raw_tried or not first:
                    raise BodyError("cannot decompress the body") from None
                # some servers send raw deflate without the zlib header
                self._deflate_raw_tried = True
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            first = False
            data = self._z.unconsumed_tail
            if piece:
                yield piece


class Exchange(asyncio.Protocol):
    """Writes the request when connected; `done` resolves with the Response or an error."""

    def __init__(
        self,
        request: bytes,
        body_limit: int | None,
        head_only: bool,
        on_head: Callable[[], None] | None = None,
        *,
        keep_body: bool = True,
        progress: Progress | None = None,
    ) -> None:
        self._request = request
        self._limit = body_limit  # None: no limit (the body is counted to its end)
        self._keep = keep_body  # False: count the body, keep none of it (no body check needs it)
        self._head_only = head_only
        self._on_head = on_head  # called once when the head has arrived (phase timing)
        self._progress = progress  # where a timeout finds us: the runner words it
        self._buf = bytearray()
        self._response: Response | None = None
        self._body = bytearray()
        self._body_size = 0
        self._remaining: int | None = None  # Content-Length left, None: until close
        self._chunked = False
        self._chunk_state = "size"  # size, data, crlf, trailers, end
        self._chunk_left = 0  # data bytes left in the current chunk
        self._decoder: _Decoder | None = None
        self._got_bytes = False
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

    # --- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        self.transport.write(self._request)
        if self._progress is not None:
            self._progress.enter("head", self._head_where)

    # --- where a timeout finds the exchange (read only then) -----------------------------------------

    def _head_where(self) -> str:
        if not self._got_bytes:
            return "waiting for the response head"
        return f"inside the response head ({len(self._buf)} bytes so far, no end of head yet)"

    def _body_where(self) -> str:
        response = self._response
        assert response is not None and self._progress is not None
        facts = self._progress.facts
        facts["http_status"] = str(response.status)
        if "content-length" in response.headers and not self._chunked and self._remaining is not None:
            total = int(response.headers["content-length"])
            facts["body_bytes"], facts["content_length"] = str(total - self._remaining), str(total)
            return f"while reading the body (HTTP {response.status}, {total - self._remaining} of {total} bytes)"
        facts["body_bytes"] = str(self._body_size)
        framing = "chunked, " if self._chunked else ""
        return f"while reading the body (HTTP {response.status}, {framing}{self._body_size} bytes so far)"

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        self._got_bytes = True
        try:
            if self._response is None:
                self._buf += data
                self._parse_head()
            else:
                self._feed_body(data)
        except (ResponseError, BodyError) as exc:
            self._finish(exc)

    def eof_received(self) -> bool:
        self._closed()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed()

    # --- parsing -----------------------------------------------------------------------------------

    @staticmethod
    def _head_end(buf: bytearray) -> tuple[int, int]:
        """(end of the head, start of what follows), or (-1, -1): the first empty line, CRLF or bare LF."""
        end = buf.find(b"\r\n\r\n")  # the common case, one scan
        bare = buf.find(b"\n\n", 0, end if end >= 0 else len(buf))
        mixed = buf.find(b"\n\r\n", 0, end if end >= 0 else len(buf))
        if bare < 0 and mixed < 0:
            return (end, end + 4) if end >= 0 else (-1, -1)
        if mixed < 0 or 0 <= bare < mixed:
            return bare, bare + 2
        return mixed, mixed + 3

    def _parse_head(self) -> None:
        while self._response is None:
            end, after = self._head_end(self._buf)
            if end < 0:
                if len(self._buf) > MAX_HEAD:
                    raise ResponseError(f"response head larger than {MAX_HEAD // 1024} KiB")
                if self._buf and not b"HTTP/".startswith(bytes(self._buf[:5])):
                    raise ResponseError(f"not HTTP: {bytes(self._buf[:40])!r}")
                return
            if end > MAX_HEAD:
                raise ResponseError(f"response head larger than {MAX_HEAD // 1024} KiB")
            head = bytes(self._buf[:end])
            rest = bytes(self._buf[after:])
            self._buf.clear()
            response = self._head(head)
            if 100 <= response.status < 200:  # interim (100 Continue, 103 Early Hints): the real one follows
                self._buf += rest
                continue
            self._response = response
            if self._on_head is not None:
                self._on_head()
            if self._progress is not None:
                self._progress.enter("body", self._body_where)
            self._start_body(response)
            if rest or self._complete():
                self._feed_body(rest)

    @staticmethod
    def _head(head: bytes) -> Response:
        lines = head.split(b"\r\n") if head.count(b"\n") == head.count(b"\r\n") else _lines(head)
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise ResponseError(f"bad status line {lines[0][:80]!r}")
        major, minor, status, reason = match.groups()
        response = Response(status=int(status), reason=(reason or b"").decode("latin-1"))
        response.version = (int(major), int(minor))
        headers = response.headers
        key = ""
        for line in lines[1:]:
            if line[:1] in (b" ", b"\t"):  # obs-fold: the previous header goes on (RFC 9112 5.2: one SP)
                if not key:
                    raise ResponseError(f"bad header line {line[:80]!r} (a continuation before any header)")
                text = line.strip().decode("latin-1")
                headers[key] = f"{headers[key]} {text}" if text else headers[key]
                continue
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip() or b" " in name:
                raise ResponseError(f"bad header line {line[:80]!r}")
            key = name.decode("latin-1").lower()
            text = value.strip().decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        return response

    def _start_body(self, response: Response) -> None:
        headers = response.headers
        if self._head_only or response.status in (204, 304):
            self._remaining = 0
            return
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked = True
        elif "content-length" in headers:
            self._remaining = _content_length(headers["content-length"])
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding and encoding != "identity":
            self._decoder = _Decoder(encoding)

    def _complete(self) -> bool:
        return self._chunk_state == "end" if self._chunked else self._remaining == 0

    def _feed_body(self, data: bytes) -> None:
        if self._chunked:
            self._buf += data
            self._parse_chunks()
        else:
            if self._remaining is not None:
                data = data[: self._remaining]
                self._remaining -= len(data)
            self._take(data)
        if self._complete():
            self._finish(None)

    def _parse_chunks(self) -> None:
        """Chunked transfer coding: size line, data, CRLF, ... a zero size, trailers, an empty line."""
        buf = self._buf
        while self._chunk_state != "end" and not self.done.done():
            if self._chunk_state == "data":
                if not buf:
                    return
                piece = bytes(buf[: self._chunk_left])
                del buf[: len(piece)]
                self._chunk_left -= len(piece)
                if self._chunk_left == 0:
                    self._chunk_state = "crlf"
                self._take(piece)
                continue
            end = buf.find(b"\n")
            if end < 0:
                if len(buf) > 4096:
                    raise BodyError(f"no line end in chunked framing after {len(buf)} bytes")
                return
            if end == 0 or buf[end - 1] != 0x0D:  # RFC 9112 7.1 wants CRLF here; Go and llhttp refuse it too
                raise BodyError("bare LF in the chunked framing (CRLF expected)")
            line = bytes(buf[: end - 1])
            del buf[: end + 1]
            if self._chunk_state == "crlf":
                if line:
                    raise BodyError("chunk data longer than its size")
                self._chunk_state = "size"
            elif self._chunk_state == "size":
                match = _CHUNK_SIZE.fullmatch(line.strip())
                if match is None:
                    raise BodyError(f"bad chunk size {line[:40]!r}")
                self._chunk_left = int(match.group(1), 16)
                self._chunk_state = "data" if self._chunk_left else "trailers"
            elif not line:  # the empty line after the trailers
                self._chunk_state = "end"

    def _take(self, data: bytes) -> None:
        if not data or self.done.done():
            return
        if self._decoder is None:
            self._keep_piece(data)
            return
        for piece in self._decoder.feed(data):
            if self._keep_piece(piece):
                return  # over the limit: the rest is never inflated

    def _keep_piece(self, data: bytes) -> bool:
        """Count (and keep, up to the limit) one piece of the decoded body; True once over the limit."""
        limit = self._limit
        if limit is not None and self._body_size + len(data) > limit:
            if self._keep:
                self._body += data[: limit - self._body_size]  # only what fits: never more than the limit
            self._body_size = limit
            assert self._response is not None
            self._response.truncated = True
            self._finish(None)
            return True
        if self._keep:
            self._body += data
        self._body_size += len(data)
        return False

    def _closed(self) -> None:
        if self.done.done():
            return
        if self._response is None:
            if self._got_bytes:
                self._finish(ResponseError("connection closed inside the response head"))
            else:
                self._finish(NoResponse())
        elif self._chunked or self._remaining:
            self._finish(BodyError("connection closed before the end of the body"))
        else:
            self._finish(None)  # body until close: the close ends it

    def _finish(self, error: Exception | None) -> None:
        if self.done.done():
            return
        if error is not None:
            self.done.set_exception(error)
        else:
            response = self._response
            assert response is not None
            response.body = self._body  # no copy: the bytearray never grew past the limit
            response.body_size = self._body_size
            self.done.set_result(response)
        if self.transport is not None:
            self.transport.close()


def _lines(head: bytes) -> list[bytes]:
    """The head's lines when some end in a bare LF: split at LF, drop the CR of those that have one."""
    return [line[:-1] if line.endswith(b"\r") else line for line in head.split(b"\n")]


def _content_length(value: str) -> int:
    """Content-Length, also as a list of one repeated value ("42, 42": two identical headers, which
    RFC 9110 8.6 lets a recipient take as one); different values are an error (a framing attack)."""
    values = {part.strip() for part in value.split(",")}
    if len(values) != 1:
        raise ResponseError(f"conflicting Content-Length values {value[:40]!r}")
    single = values.pop()
    if not single.isdigit():
        raise ResponseError(f"bad Content-Length {value[:40]!r}")
    return int(single)


def build_request(method: str, target: str, host: str, headers: dict[str, str], body: bytes | None) -> bytes:
    """The request bytes. Header values come from config, so CR/LF in them is refused there."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lowered = {k.lower() for k in headers}
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "host"]
    if "accept" not in lowered:
        lines.append("Accept: */*")
    if "accept-encoding" not in lowered:
        lines.append("Accept-Encoding: gzip, deflate")
    lines.append("Connection: close")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
