"""HTTP/2 for the http probe (h2, the python-hyper sans-I/O library): one request on stream 1 of a
fresh connection, as the HTTP/1.1 client does, with the same head limit, body caps and decoding.

The version is the module's `http_version`: "1.1" (the default, as before), "2" (https: ALPN offers
only h2 and a server that does not choose it fails; http: prior-knowledge h2c, RFC 9113 section 3.3)
or "auto" (https: ALPN offers h2 and http/1.1 and the server chooses; http stays HTTP/1.1, as h2c by
Upgrade is gone from RFC 9113). `Negotiated` is the protocol for "auto": it learns the server's
choice when the TLS handshake completes and hands the connection to the exchange for that version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from probes.base import Progress
from probes.http1 import MAX_HEAD, BodyError, Exchange, NoResponse, Response, ResponseError, ResponseReader

ALPN_H2 = ("h2",)
ALPN_AUTO = ("h2", "http/1.1")


class Exchange2(ResponseReader):
    """HTTP/2: the connection preface, SETTINGS and one request when connected; `done` resolves with
    the Response (version (2, 0)) or an error."""

    def __init__(
        self,
        method: str,
        scheme: str,
        authority: str,
        path: str,
        headers: dict[str, str],
        body: bytes | None,
        body_limit: int | None,
        on_head: Callable[[], None] | None = None,
        *,
        keep_body: bool = True,
        progress: Progress | None = None,
        require_alpn: bool = False,
    ) -> None:
        super().__init__(body_limit, method == "HEAD", on_head, keep_body=keep_body, progress=progress)
        # the request's header fields: lower-case names (RFC 9113 8.2.1); no connection-specific ones (8.2.2)
        fields = [(":method", method), (":scheme", scheme), (":authority", authority), (":path", path)]
        lowered = {k.lower() for k in headers}
        fields += [(k.lower(), v) for k, v in headers.items() if k.lower() not in _CONNECTION_SPECIFIC]
        if "accept" not in lowered:
            fields.append(("accept", "*/*"))
        if "accept-encoding" not in lowered:
            fields.append(("accept-encoding", "gzip, deflate"))
        if body is not None:
            fields.append(("content-length", str(len(body))))
        self._fields = fields
        self._request_body = body
        self._require_alpn = require_alpn  # over TLS: the server must have chosen h2
        self._conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None, validate_inbound_headers=True)
        )
        self._conn.decoder.max_header_list_size = MAX_HEAD  # the same head limit as HTTP/1.1 (64 KiB)

    # --- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self._progress is not None:
            self._progress.enter("head", self._head_where)
        if self._require_alpn:
            ssl_object = transport.get_extra_info("ssl_object")
            chosen = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
            if chosen != "h2":
                answer = f"the server chose {chosen}" if chosen else "the server chose none"
                self._finish(ResponseError(f"server does not speak HTTP/2 over TLS (ALPN h2 offered, {answer})"))
                return
        conn = self._conn
        conn.initiate_connection()
        end = self._request_body is None
        conn.send_headers(1, self._fields, end_stream=end)
        if self._request_body is not None:
            conn.send_data(1, self._request_body, end_stream=True)  # probe bodies are small: one frame
        self.transport.write(conn.data_to_send())

    def _head_where(self) -> str:
        if not self._got_bytes:
            return "waiting for the response head (HTTP/2)"
        return "waiting for the response head (HTTP/2, connection set up)"

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        if not self._got_bytes and data.startswith(b"HTTP/"):  # an HTTP/1.x server, asked with prior knowledge
            line = data.split(b"\n", 1)[0].rstrip(b"\r")
            self._finish(
                ResponseError(f"server does not speak HTTP/2 (h2c prior knowledge): it answered {line[:60]!r}")
            )
            return
        self._got_bytes = True
        conn = self._conn
        try:
            events = conn.receive_data(data)
        except h2.exceptions.DenialOfServiceError as exc:
            oversized = "Oversized header block" in str(exc)
            message = f"response head larger than {MAX_HEAD // 1024} KiB" if oversized else f"HTTP/2: {exc}"
            self._finish(ResponseError(message))
            return
        except h2.exceptions.ProtocolError as exc:
            self._fail(f"HTTP/2 protocol error: {exc}")
            return
        for event in events:
            self._event(event)
            if self.done.done():
                return
        outgoing = conn.data_to_send()
        if outgoing and self.transport is not None:
            self.transport.write(outgoing)

    def eof_received(self) -> bool:
        self._closed()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed()

    # --- events ------------------------------------------------------------------------------------

    def _event(self, event: h2.events.Event) -> None:
        # only stream 1 is the request's: a pushed stream (PUSH_PROMISE) is read past, its data acknowledged
        if isinstance(event, h2.events.ResponseReceived) and event.stream_id == 1:
            self._head(event.headers or [])
        elif isinstance(event, h2.events.DataReceived):
            if event.flow_controlled_length:  # keep the windows open: the body is read to its end
                self._conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if event.stream_id == 1:
                self._wire_size += len(event.data or b"")
                self._take(event.data or b"")
        elif isinstance(event, h2.events.StreamEnded) and event.stream_id == 1:
            if self._response is not None:
                self._finish(None)
        elif isinstance(event, h2.events.StreamReset) and event.stream_id == 1:
            code = _error_name(event.error_code)
            self._fail(f"HTTP/2 stream reset by the server ({code})")
        elif isinstance(event, h2.events.ConnectionTerminated):
            code = _error_name(event.error_code)
            extra = f": {event.additional_data[:80]!r}" if event.additional_data else ""
            self._fail(f"HTTP/2 connection closed by the server (GOAWAY {code}{extra})")

    def _head(self, fields: list[tuple[bytes, bytes]] | list[tuple[str, str]]) -> None:
        headers: dict[str, str] = {}
        status = 0
        for raw_name, raw_value in fields:
            name = raw_name.decode("latin-1") if isinstance(raw_name, bytes) else raw_name
            value = raw_value.decode("latin-1") if isinstance(raw_value, bytes) else raw_value
            if name == ":status":
                status = int(value)
            elif not name.startswith(":"):
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
        response = Response(status=status, reason="", version=(2, 0), headers=headers)
        if "content-length" in headers and headers["content-length"].isdigit():
            self._length = int(headers["content-length"])
        self._begin_body(response)
        if self._head_only:
            self._finish(None)

    def _fail(self, message: str) -> None:
        if self._response is None:
            self._finish(ResponseError(message))
        else:
            self._finish(BodyError(message))

    def _closed(self) -> None:
        if self.done.done():
            return
        if self._response is None:
            self._finish(
                ResponseError("HTTP/2 connection closed before a response") if self._got_bytes else NoResponse()
            )
        else:
            self._finish(BodyError("connection closed before the end of the body"))


class Negotiated(asyncio.Protocol):
    """http_version "auto" over TLS: hands the connection to the HTTP/2 or the HTTP/1.1 exchange, as
    the server chose in ALPN (asyncio calls connection_made once the handshake is done)."""

    def __init__(self, h1: Exchange, h2: Exchange2) -> None:
        self._h1, self._h2 = h1, h2
        self.chosen: ResponseReader = h1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            self.chosen = self._h2
        else:
            self._h2.done.cancel()  # never used: nobody will read its outcome
        self.chosen.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.chosen.data_received(data)

    def eof_received(self) -> bool | None:
        return self.chosen.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.chosen.connection_lost(exc)


_CONNECTION_SPECIFIC = frozenset(
    {"host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}
)


def _error_name(code: h2.errors.ErrorCodes | int | None) -> str:
    """h2 gives an ErrorCodes member, or a plain int for a code it does not know."""
    return code.name if isinstance(code, h2.errors.ErrorCodes) else f"error code {code}"
