"""A small HTTP/1.1 client for the common probe: http or https, one request and one response.

aiohttp is a general client (sessions, connection pools, cookies, tracing, redirects); a probe that
opens one fresh connection, sends one request and reads one capped response needs none of that, and
at thousands of checks aiohttp's per-request machinery was the largest cost of an HTTP probe. This
is one asyncio.Protocol that feeds the response to llhttp (Node.js's parser, through httptools, the
uvloop authors' binding) as it arrives. It is strict where the RFCs are (garbage is an error with a
clear message) and lenient where RFC 9112 lets a client be, as Go's net/http (blackbox_exporter) is:
bare LF line ends in the head (9112 section 2.2, llhttp's lenient_optional_cr_before_lf; not in the
chunked framing, where 7.1 wants CRLF and Go refuses it too), obs-folded header lines joined with a
space (section 5.2), a Content-Length repeated with the same value (RFC 9110 section 8.6). llhttp has
no flag for the last two (its lenient_headers would also accept control characters in values): a head
it refuses for one of them is normalised (_normalise) and parsed again, which costs the common case
nothing. It is bounded: the response head at most MAX_HEAD (64 KiB, the limit the aiohttp path
applies too), the body cut at the caller's limit. The caller (probes.http) connects, over TLS for
https, and follows redirects.

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

import httptools

from probes.base import Progress

MAX_HEAD = 65536  # the response head (status line and header lines), on both HTTP paths
DECODE_PIECE = 256 * 1024  # inflated bytes per step: a gzip bomb costs this much at a time, not 1000x its chunk
_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: ([^\r\n]*))?")


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


class _Stop(Exception):
    """Raised from a parser callback to stop llhttp: the exchange has what it needs (a HEAD response's
    head, a body at its limit)."""


def _parser(protocol: object) -> httptools.HttpResponseParser:
    parser = httptools.HttpResponseParser(protocol)
    # RFC 9112 2.2: a recipient MAY take a bare LF as a line end in the head (switched off for the chunked
    # framing: on_headers_complete). 7.1.1: BWS may precede a chunk extension, and Go trims trailing spaces
    # after the size. 6.3: Transfer-Encoding overrides a Content-Length beside it (as the hand-written parser
    # and Go read it; the smuggling it can signal needs a reused connection, and a probe's is fresh and
    # closed after one response). Nothing else: lenient_headers would also pass control characters in values.
    parser.set_dangerous_leniencies(
        lenient_optional_cr_before_lf=True, lenient_spaces_after_chunk_size=True, lenient_chunked_length=True
    )
    return parser


# llhttp's reasons that a normalised head may not hit (obs-fold, a repeated Content-Length): llhttp has no
# leniency flag for either, so the head is parsed again after _normalise (RFC 9112 5.2, RFC 9110 8.6)
_RESCUABLE = frozenset(
    {
        "Unexpected whitespace after header value",  # an obs-fold line
        "Unexpected space after start line",  # an obs-fold line before any header
        "Duplicate Content-Length",
        "Invalid character in Content-Length",  # "2, 2"
    }
)
# llhttp's body reasons in the words the probe used before it (tests/probes hold them)
_BODY_ERRORS = {
    "Expected LF after chunk data": "chunk data longer than its size",
    "Missing expected CR after chunk data": "bare LF in the chunked framing (CRLF expected)",
    "Missing expected CR after chunk size": "bare LF in the chunked framing (CRLF expected)",
    "Invalid character in chunk size": "bad chunk size",
    "Chunk size overflow": "bad chunk size (overflow)",
}
_HEADER_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\x00-\x08\x0a-\x1f\x7f]*")


class ResponseReader(asyncio.Protocol):
    """What both HTTP versions' exchanges share: the body counted, decoded and kept up to its limit,
    where a timeout finds the body, and `done`, resolved with the Response or an error."""

    def __init__(
        self,
        body_limit: int | None,
        head_only: bool,
        on_head: Callable[[], None] | None = None,
        *,
        keep_body: bool = True,
        progress: Progress | None = None,
    ) -> None:
        self._limit = body_limit  # None: no limit (the body is counted to its end)
        self._keep = keep_body  # False: count the body, keep none of it (no body check needs it)
        self._head_only = head_only
        self._on_head = on_head  # called once when the head has arrived (phase timing)
        self._progress = progress  # where a timeout finds us: the runner words it
        self._response: Response | None = None
        self._body = bytearray()
        self._body_size = 0
        self._wire_size = 0  # body bytes as framed, before any decoding
        self._length: int | None = None  # Content-Length; None: chunked, or until close
        self._chunked = False
        self._decoder: _Decoder | None = None
        self._got_bytes = False
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

    def _begin_body(self, response: Response) -> None:
        """The head has arrived: time it, say so, and set up the body's decoding."""
        self._response = response
        if self._on_head is not None:
            self._on_head()
        if self._progress is not None:
            self._progress.enter("body", self._body_where)
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding and encoding != "identity" and not self._head_only:
            self._decoder = _Decoder(encoding)

    def _body_where(self) -> str:
        response = self._response
        assert response is not None and self._progress is not None
        facts = self._progress.facts
        facts["http_status"] = str(response.status)
        if self._length is not None:
            total, got = self._length, self._wire_size
            facts["body_bytes"], facts["content_length"] = str(got), str(total)
            return f"while reading the body (HTTP {response.status}, {got} of {total} bytes)"
        facts["body_bytes"] = str(self._body_size)
        framing = "chunked, " if self._chunked else ""
        return f"while reading the body (HTTP {response.status}, {framing}{self._body_size} bytes so far)"

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


class Exchange(ResponseReader):
    """HTTP/1.1: writes the request when connected; `done` resolves with the Response or an error. The
    response is parsed by llhttp (httptools) as it arrives; this class holds the caps and the errors."""

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
        super().__init__(body_limit, head_only, on_head, keep_body=keep_body, progress=progress)
        self._request = request
        self._parser = _parser(self)
        self._head = bytearray()  # the bytes before the end of the head: its cap, error messages, a re-parse
        self._rescue = False  # the head is being parsed again, normalised (see _RESCUABLE)
        self._headers: dict[str, str] = {}
        self._reason = b""
        self._complete = False  # the response has ended (llhttp's message end, or HEAD's head)

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
        return f"inside the response head ({len(self._head)} bytes so far, no end of head yet)"

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        self._got_bytes = True
        try:
            try:
                self._feed(data)
            except httptools.HttpParserError as exc:
                if self._response is not None or self._rescue or str(exc) not in _RESCUABLE:
                    raise
                self._rescue = True
                self._reparse()
        except httptools.HttpParserUpgrade:
            self._finish(ResponseError("unexpected 101 Switching Protocols (no upgrade was asked for)"))
        except httptools.HttpParserError as exc:
            if not self._complete and not self.done.done():
                self._finish(self._error(exc))
        except (ResponseError, BodyError) as exc:
            self._finish(exc)
        if self._complete:
            self._finish(None)

    def eof_received(self) -> bool:
        self._closed()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed()

    # --- llhttp's callbacks (httptools finds them by name) -------------------------------------------

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._response is not None:
            return  # a trailer after a chunked body, not a header of the response
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1").strip()
        headers = self._headers
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
        if 100 <= status < 200:  # interim (100 Continue, 103 Early Hints): the real one follows
            self._headers, self._reason = {}, b""
            return
        major, _, minor = parser.get_http_version().partition(".")
        response = Response(status, self._reason.decode("latin-1").strip(), (int(major), int(minor)), self._headers)
        self._start_body(response)
        if self._chunked:  # RFC 9112 7.1 wants CRLF in the chunked framing (Go refuses a bare LF there too)
            parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=False)
        if self._head_only or self.done.done():
            self._complete = True
            raise _Stop()  # HEAD: the Content-Length describes a body that is not sent

    def on_body(self, body: bytes) -> None:
        self._wire_size += len(body)
        self._take(body)
        if self.done.done():
            raise _Stop()  # at the limit: parse no further

    def on_message_complete(self) -> None:
        if self._response is not None:
            self._complete = True

    # --- parsing -----------------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        if self._response is not None:
            self._parser.feed_data(data)
            return
        if self._rescue:  # waiting for the end of a head to normalise
            self._head += data
            self._reparse()
            return
        room = MAX_HEAD - len(self._head)
        piece = data if len(data) <= room else data[:room]
        self._head += piece
        self._parser.feed_data(piece)
        if self._response is None:
            if len(self._head) >= MAX_HEAD:
                raise ResponseError(f"response head larger than {MAX_HEAD // 1024} KiB")
            return
        self._head = bytearray()  # the head is parsed: its bytes are no longer needed
        if len(piece) < len(data) and not self._complete and not self.done.done():
            self._parser.feed_data(data[len(piece) :])

    def _reparse(self) -> None:
        """Parse the heads (interim ones, then the response's) again, normalised by _normalise, with a
        fresh parser; waits for the end of the head if it has not arrived yet."""
        buf = self._head
        normalised = bytearray()
        start = 0
        while True:
            end, after = _head_end(buf, start)
            if end < 0:
                if len(buf) >= MAX_HEAD:
                    raise ResponseError(f"response head larger than {MAX_HEAD // 1024} KiB")
                return
            head = bytes(buf[start:end])
            normalised += _normalise(head) + b"\r\n\r\n"
            start = after
            if not head.startswith(b"HTTP/1.1 1") and not head.startswith(b"HTTP/1.0 1"):
                break
        rest = bytes(buf[start:])
        self._head = normalised  # for the messages, if llhttp still refuses it
        self._headers, self._reason = {}, b""
        self._parser = _parser(self)
        self._parser.feed_data(bytes(normalised) + rest)
        if self._response is None:  # (a head _normalise let through but llhttp did not finish)
            raise ResponseError("malformed response head")

    def _error(self, exc: httptools.HttpParserError) -> Exception:
        """llhttp's error as a ResponseError or BodyError that says what was wrong."""
        context = exc.__context__
        if isinstance(exc, httptools.HttpParserCallbackError) and isinstance(context, (ResponseError, BodyError)):
            return context  # raised by one of our callbacks (a body that cannot be decoded)
        reason = str(exc)
        if self._response is not None:
            known = _BODY_ERRORS.get(reason)
            if known is None and reason.startswith("Invalid header"):  # after the last chunk
                known = f"bad trailer line ({reason.lower()})"
            return BodyError(known or reason[:1].lower() + reason[1:])
        head = bytes(self._head)
        if reason.startswith("Expected HTTP/"):
            if len(head) >= 9 and head[3] == 0x04 and head[4] in (0, 1):  # an HTTP/2 frame header: SETTINGS
                return ResponseError('not HTTP/1.x: the server speaks HTTP/2 (http_version "2" or "auto" asks for it)')
            return ResponseError(f"not HTTP: {head[:40]!r}")
        lines = _lines(head.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0])
        if not _STATUS_LINE.fullmatch(lines[0]):
            return ResponseError(f"bad status line {lines[0][:80]!r}")
        if reason == "Invalid character in Content-Length":
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    return ResponseError(f"bad Content-Length {value.strip().decode('latin-1')[:40]!r}")
        for line in lines[1:]:
            if line and not _HEADER_LINE.fullmatch(line):
                return ResponseError(f"bad header line {line[:80]!r}")
        return ResponseError(reason[:1].lower() + reason[1:])

    def _start_body(self, response: Response) -> None:
        headers = response.headers
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked = True
        elif "content-length" in headers:
            self._length = int(headers["content-length"])  # llhttp has checked it: digits, one value
        self._begin_body(response)

    def _closed(self) -> None:
        if self.done.done():
            return
        if self._response is None:
            if self._got_bytes:
                self._finish(ResponseError("connection closed inside the response head"))
            else:
                self._finish(NoResponse())
        elif self._complete or (not self._chunked and self._length is None):
            self._finish(None)  # body until close: the close ends it
        else:
            self._finish(BodyError("connection closed before the end of the body"))


def _head_end(buf: bytearray, start: int) -> tuple[int, int]:
    """(end of the head, start of what follows) from `start`, or (-1, -1): the first empty line, CRLF or bare LF."""
    end = buf.find(b"\r\n\r\n", start)
    bare = buf.find(b"\n\n", start, end if end >= 0 else len(buf))
    mixed = buf.find(b"\n\r\n", start, end if end >= 0 else len(buf))
    if bare < 0 and mixed < 0:
        return (end, end + 4) if end >= 0 else (-1, -1)
    if mixed < 0 or 0 <= bare < mixed:
        return bare, bare + 2
    return mixed, mixed + 3


def _normalise(head: bytes) -> bytes:
    """The head with CRLF line ends, each obs-fold replaced by one SP (RFC 9112 5.2) and a Content-Length
    repeated with one value as one header (RFC 9110 8.6); different values are an error (a framing attack)."""
    lines = _lines(head)
    out = [lines[0]]
    lengths: list[bytes] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            if len(out) == 1:
                raise ResponseError(f"bad header line {line[:80]!r} (a continuation before any header)")
            text = line.strip()
            if text:
                out[-1] = out[-1].rstrip() + b" " + text
            continue
        name, sep, value = line.partition(b":")
        if sep and name.lower() == b"content-length":
            lengths += [part.strip() for part in value.split(b",")]
            continue
        out.append(line)
    if lengths:
        if len(set(lengths)) != 1:
            values = b", ".join(lengths).decode("latin-1")
            raise ResponseError(f"conflicting Content-Length values {values[:40]!r}")
        out.append(b"Content-Length: " + lengths[0])
    return b"\r\n".join(out)


def _lines(head: bytes) -> list[bytes]:
    """The head's lines, CRLF or bare LF: split at LF, drop the CR of those that have one."""
    return [line[:-1] if line.endswith(b"\r") else line for line in head.split(b"\n")]


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
