"""Issue 17 point 8: protocol reach. HTTP/2 (ALPN h2 over TLS, prior-knowledge h2c over plain http)
against an h2-only server written with the h2 library, `valid_http_versions`, and TLS version ranges
(`min_version`/`max_version`, TLS10 to TLS13) against ssl servers that speak only one version, with
"TLS handshake failed: protocol version" when no version is shared. Real servers on loopback."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import struct
import warnings
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest

from monitor.config.loader import ConfigError
from probes import http
from probes.base import ProbeRequest, ProbeResult
from probes.http import HTTPProbe, HTTPSettings
from probes.tls import TLSSettings
from tests.conftest import Loader

CONTENT_LENGTH, HTTP_STATUS, HTTP_VERSION = http.CONTENT_LENGTH.key, http.STATUS.key, http.VERSION.key

LOOPBACK4 = "127.0.0.1"


class H2Server(asyncio.Protocol):
    """An HTTP/2-only server (h2, server side): answers every request on its stream with `status`,
    `headers` and `body`. A client that does not open with the HTTP/2 preface gets the HTTP/1.1 answer
    such servers give, 505 HTTP Version Not Supported, and the connection closed."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes, seen: list[dict[str, str]]) -> None:
        self._status, self._headers, self._body, self._seen = status, headers, body, seen
        self._conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        self._transport: asyncio.Transport | None = None
        self._first = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        if self._first and not data.startswith(b"PRI * HTTP/2.0"):
            self._transport.write(b"HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Length: 0\r\n\r\n")
            self._transport.close()
            return
        if self._first:
            self._conn.initiate_connection()
        self._first = False
        try:
            events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self._seen.append(dict(event.headers))  # type: ignore[arg-type]
            if isinstance(event, h2.events.StreamEnded):
                sid = event.stream_id
                fields = [(":status", str(self._status)), ("content-length", str(len(self._body))), *self._headers]
                self._conn.send_headers(sid, fields, end_stream=not self._body)
                if self._body:
                    self._send_body(sid)
        self._transport.write(self._conn.data_to_send())

    def _send_body(self, sid: int) -> None:
        """The body in frames that fit the client's windows (a large body needs its WINDOW_UPDATEs)."""
        body = self._body
        while body:
            room = min(self._conn.local_flow_control_window(sid), self._conn.max_outbound_frame_size)
            if room <= 0:
                break  # the rest waits for WINDOW_UPDATE: not needed by these tests' sizes
            self._conn.send_data(sid, body[:room], end_stream=len(body) <= room)
            body = body[room:]


async def h2_server(
    peers: Any,
    tls: ssl.SSLContext | None,
    status: int = 200,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"ok",
    seen: list[dict[str, str]] | None = None,
) -> int:
    loop = asyncio.get_running_loop()
    sock = peers.bind(LOOPBACK4)
    seen = seen if seen is not None else []
    server = await loop.create_server(lambda: H2Server(status, headers or [], body, seen), sock=sock, ssl=tls)
    peers._servers.append(server)  # stopped with the test's other peers
    return int(sock.getsockname()[1])


def h2_only_context(pki: Any) -> ssl.SSLContext:
    ctx = pki.leaf.server_context()
    ctx.set_alpn_protocols(["h2"])  # an h2-only server: a client offering no ALPN falls through to 505
    return ctx


async def probe(http_probe: HTTPProbe, port: int, **settings: Any) -> ProbeResult:
    async with asyncio.timeout(10):
        return await http_probe.run(ProbeRequest(LOOPBACK4, None, port, 5.0), HTTPSettings(**settings))


def tls(pki: Any, **settings: Any) -> dict[str, Any]:
    return {"scheme": "https", "tls_config": {"ca_file": pki.ca.cert_file}, **settings}


# ------------------------------------------------------------------------------------------- HTTP/2


@pytest.mark.parametrize(
    ("version", "ok", "error", "reported"),
    [
        ("1.1", False, "HTTP status 505 HTTP Version Not Supported, expected 2xx", 1.1),
        ("2", True, None, 2.0),
        ("auto", True, None, 2.0),
    ],
)
async def test_h2_only_server_over_tls(
    peers: Any, pki: Any, http_probe: HTTPProbe, version: str, ok: bool, error: str | None, reported: float
) -> None:
    """An h2-only https server: HTTP/1.1 gets its 505; http_version 2 or auto passes over ALPN h2."""
    seen: list[dict[str, str]] = []
    port = await h2_server(peers, h2_only_context(pki), seen=seen)
    result = await probe(http_probe, port, **tls(pki, http_version=version, fail_if_body_not_matches_regexp=["^ok$"]))
    assert (result.ok, result.error) == (ok, error)
    assert result.values[HTTP_VERSION] == reported
    if ok:
        assert result.values[HTTP_STATUS] == 200
        assert result.values[CONTENT_LENGTH] == 2
        assert result.info["tls_version"] == "TLSv1.3"
        assert seen[0][":authority"] == f"{LOOPBACK4}:{port}" and seen[0][":path"] == "/"
        assert seen[0][":scheme"] == "https" and seen[0]["user-agent"].startswith("national-monitor/")


async def test_h2c_prior_knowledge_over_plain_http(peers: Any, http_probe: HTTPProbe) -> None:
    """http_version 2 on plain http speaks h2c with prior knowledge (RFC 9113 3.3); 1.1 gets the 505."""
    port = await h2_server(peers, None, body=b"plain h2")
    result = await probe(http_probe, port, http_version="2", fail_if_body_not_matches_regexp=["^plain h2$"])
    assert result.ok, result.error
    assert result.values[HTTP_VERSION] == 2.0
    old = await probe(http_probe, port)
    assert (old.ok, old.error) == (False, "HTTP status 505 HTTP Version Not Supported, expected 2xx")


async def test_auto_on_an_http11_server_uses_http11(peers: Any, pki: Any, http_probe: HTTPProbe) -> None:
    """auto: a server that does not choose h2 in ALPN is spoken to in HTTP/1.1 on the same connection."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    ctx = pki.leaf.server_context()
    ctx.set_alpn_protocols(["http/1.1"])
    port = await peers.tcp(serve, ssl_context=ctx)
    result = await probe(http_probe, port, **tls(pki, http_version="auto"))
    assert result.ok, result.error
    assert result.values[HTTP_VERSION] == 1.1
    assert peers.connections == 1


async def test_http2_required_but_server_speaks_only_http11(peers: Any, pki: Any, http_probe: HTTPProbe) -> None:
    """http_version 2: a server that does not choose h2 fails with a reason, over TLS and over h2c."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    ctx = pki.leaf.server_context()
    ctx.set_alpn_protocols(["http/1.1"])
    tls_port = await peers.tcp(serve, ssl_context=ctx)
    result = await probe(http_probe, tls_port, **tls(pki, http_version="2"))
    assert (result.ok, result.error) == (
        False,
        "invalid HTTP response: server does not speak HTTP/2 over TLS (ALPN h2 offered, the server chose none)",
    )
    plain_port = await peers.tcp(serve)
    result = await probe(http_probe, plain_port, http_version="2")
    assert (result.ok, result.error) == (
        False,
        "invalid HTTP response: server does not speak HTTP/2 (h2c prior knowledge):"
        " it answered b'HTTP/1.1 400 Bad Request'",
    )


async def test_http2_status_headers_and_gzip_body(peers: Any, pki: Any, http_probe: HTTPProbe) -> None:
    """Over HTTP/2 the same checks apply: status codes, a gzip body decoded before the body check."""
    body = gzip.compress(b"status: green " * 1000)
    port = await h2_server(peers, h2_only_context(pki), status=503, headers=[("content-encoding", "gzip")], body=body)
    down = await probe(http_probe, port, **tls(pki, http_version="2"))
    assert (down.ok, down.error) == (False, "HTTP status 503, expected 2xx")
    up = await probe(
        http_probe,
        port,
        **tls(pki, http_version="2", valid_status_codes=[503], fail_if_body_not_matches_regexp=["green"]),
    )
    assert up.ok, up.error
    assert up.values[CONTENT_LENGTH] == 14000


async def test_http2_body_over_the_limit_and_a_large_body(peers: Any, pki: Any, http_probe: HTTPProbe) -> None:
    """body_size_limit holds over HTTP/2; a body larger than the initial 64 KiB window is read to its end."""
    port = await h2_server(peers, h2_only_context(pki), body=b"x" * 60000)
    capped = await probe(http_probe, port, **tls(pki, http_version="2", body_size_limit=1000))
    assert (capped.ok, capped.error) == (False, "body larger than body_size_limit (1000 bytes)")
    whole = await probe(http_probe, port, **tls(pki, http_version="2"))
    assert whole.ok, whole.error
    assert whole.values[CONTENT_LENGTH] == 60000


async def test_http2_head_over_64_kib_fails(peers: Any, pki: Any, http_probe: HTTPProbe) -> None:
    """One head limit on every path: an HTTP/2 header block over 64 KiB fails as HTTP/1.1's does."""
    port = await h2_server(peers, h2_only_context(pki), headers=[(f"x-pad-{i}", "p" * 15000) for i in range(5)])
    result = await probe(http_probe, port, **tls(pki, http_version="2"))
    assert (result.ok, result.error) == (False, "invalid HTTP response: response head larger than 64 KiB")


async def test_h2_stream_reset_is_explained(peers: Any, pki: Any, http_probe: HTTPProbe) -> None:
    """A server that resets the request's stream: the reason says so, with the error code."""

    class Refusing(H2Server):
        def data_received(self, data: bytes) -> None:
            assert self._transport is not None
            for event in self._conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    self._conn.reset_stream(event.stream_id, error_code=7)  # REFUSED_STREAM
            self._transport.write(self._conn.data_to_send())

    loop = asyncio.get_running_loop()
    sock = peers.bind(LOOPBACK4)
    server = await loop.create_server(lambda: Refusing(200, [], b"", []), sock=sock, ssl=h2_only_context(pki))
    peers._servers.append(server)
    result = await probe(http_probe, int(sock.getsockname()[1]), **tls(pki, http_version="2"))
    assert (result.ok, result.error) == (
        False,
        "invalid HTTP response: HTTP/2 stream reset by the server (REFUSED_STREAM)",
    )


# -------------------------------------------------------------------------------- valid_http_versions


@pytest.mark.parametrize(
    ("version", "valid", "ok", "error"),
    [
        ("2", ["HTTP/2.0"], True, None),
        ("2", ["HTTP/2"], True, None),
        ("2", ["HTTP/1.1"], False, "HTTP version HTTP/2.0, expected one of HTTP/1.1"),
        ("auto", ["HTTP/1.1", "HTTP/2.0"], True, None),
        ("1.1", ["HTTP/2.0"], False, "HTTP status 505 HTTP Version Not Supported, expected 2xx"),
    ],
)
async def test_valid_http_versions_on_an_h2_server(
    peers: Any, pki: Any, http_probe: HTTPProbe, version: str, valid: list[str], ok: bool, error: str | None
) -> None:
    """blackbox_exporter's valid_http_versions: the response's version must be one of them."""
    port = await h2_server(peers, h2_only_context(pki))
    result = await probe(http_probe, port, **tls(pki, http_version=version, valid_http_versions=valid))
    assert (result.ok, result.error) == (ok, error)


async def test_valid_http_versions_on_http11(peers: Any, http_probe: HTTPProbe) -> None:
    """HTTP/1.0 and HTTP/1.1 responses against valid_http_versions; the status is judged first."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    port = await peers.tcp(serve)
    bad = await probe(http_probe, port, valid_http_versions=["HTTP/1.1", "HTTP/2.0"])
    assert (bad.ok, bad.error) == (False, "HTTP version HTTP/1.0, expected one of HTTP/1.1, HTTP/2.0")
    good = await probe(http_probe, port, valid_http_versions=["HTTP/1.0"])
    assert good.ok, good.error


def test_http_version_keys_are_validated() -> None:
    """Unknown values are refused when the config is loaded, not at 3 a.m."""
    with pytest.raises(ValueError, match="http_version"):
        HTTPSettings.model_validate({"http_version": "3"})
    with pytest.raises(ValueError, match="valid_http_versions"):
        HTTPSettings.model_validate({"valid_http_versions": ["HTTP/3.0"]})


# -------------------------------------------------------------------------------------- TLS versions


def only(pki: Any, version: ssl.TLSVersion) -> ssl.SSLContext:
    """A server speaking one TLS version (1.0 and 1.1 need OpenSSL's security level 0, as old appliances)."""
    ctx = pki.leaf.server_context()
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


V = ssl.TLSVersion
PROTOCOL_VERSION = "TLS handshake failed: protocol version"


@pytest.mark.parametrize(
    ("server", "tls_config", "error", "negotiated"),
    [
        (V.TLSv1, {}, PROTOCOL_VERSION, None),  # the default (TLS 1.2-1.3) refuses a legacy appliance
        (V.TLSv1, {"min_version": "TLS10"}, None, "TLSv1"),  # the explicit opt-in
        (V.TLSv1_1, {}, PROTOCOL_VERSION, None),
        (V.TLSv1_1, {"min_version": "TLS11"}, None, "TLSv1.1"),
        (V.TLSv1_1, {"min_version": "TLS10", "max_version": "TLS10"}, PROTOCOL_VERSION, None),
        (V.TLSv1_2, {"min_version": "TLS10"}, None, "TLSv1.2"),  # the opt-in still takes the best version
        (V.TLSv1_2, {"min_version": "TLS13"}, PROTOCOL_VERSION, None),
        (V.TLSv1_2, {"min_version": "TLS1.3"}, PROTOCOL_VERSION, None),  # the older spelling
        (V.TLSv1_3, {"max_version": "TLS12"}, PROTOCOL_VERSION, None),
        (V.TLSv1_3, {"min_version": "TLS12", "max_version": "TLS13"}, None, "TLSv1.3"),
        (V.TLSv1, {"max_version": "TLS10"}, None, "TLSv1"),  # a max below 1.2 alone brings the min down
    ],
)
async def test_tls_version_ranges(
    peers: Any,
    pki: Any,
    http_probe: HTTPProbe,
    server: ssl.TLSVersion,
    tls_config: dict[str, str],
    error: str | None,
    negotiated: str | None,
) -> None:
    """A server that speaks one version, and the probe's range: the shared version, or a clear
    "protocol version" (Python's ssl server resets the connection instead of sending the alert)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    port = await peers.tcp(serve, ssl_context=only(pki, server))
    config = {"ca_file": pki.ca.cert_file, **tls_config}
    result = await probe(http_probe, port, scheme="https", tls_config=config)
    assert (result.ok, result.error) == (error is None, error)
    assert result.info.get("tls_version") == negotiated


async def test_a_reset_that_is_not_about_versions_says_so(peers: Any, http_probe: HTTPProbe) -> None:
    """A server that resets every handshake: the reason names the phase, not a version mismatch."""

    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        writer.transport.abort()

    port = await peers.tcp(reset)
    result = await probe(http_probe, port, scheme="https", tls_config={"insecure_skip_verify": True})
    assert (result.ok, result.error) == (False, "TLS handshake failed: connection reset by peer")


def test_tls_version_keys() -> None:
    """blackbox_exporter's names TLS10..TLS13 (and the older TLS1.2/TLS1.3); min above max is refused."""
    assert TLSSettings(min_version="TLS10", max_version="TLS13").min_version == "TLS10"
    with pytest.raises(ValueError, match="min_version TLS13 is above max_version TLS12"):
        TLSSettings(min_version="TLS13", max_version="TLS12")
    with pytest.raises(ValueError, match="min_version"):
        TLSSettings.model_validate({"min_version": "SSL3"})


def test_new_keys_in_a_config_file(load_yaml_config: Loader) -> None:
    """The new module keys load from YAML; a wrong value is a config error with its place and key."""
    loaded = load_yaml_config(
        """
        modules:
          h2: {kind: http, http: {scheme: https, http_version: auto, valid_http_versions: [HTTP/1.1, HTTP/2.0]}}
          legacy: {kind: http, http: {scheme: https, tls_config: {min_version: TLS10, max_version: TLS12}}}
        targets:
          - {name: a, address: 127.0.0.1, modules: [h2, legacy]}
        """
    )
    assert len(loaded.inventory.checks) == 2
    with pytest.raises(ConfigError) as info:
        load_yaml_config(
            """
            modules:
              web: {kind: http, http: {http_version: "3"}}
            targets:
              - {name: a, address: 127.0.0.1, modules: [web]}
            """
        )
    assert "modules.web.http.http_version" in str(info.value)


async def test_a_pushed_stream_is_not_the_body(peers: Any, pki: Any, http_probe: HTTPProbe) -> None:
    """A server push (PUSH_PROMISE, stream 2) before the response: only stream 1 is the response's body."""

    class Pushing(H2Server):
        def data_received(self, data: bytes) -> None:
            assert self._transport is not None
            if self._first:
                self._conn.initiate_connection()
                self._first = False
            for event in self._conn.receive_data(data):
                if isinstance(event, h2.events.StreamEnded):
                    promised = [(":method", "GET"), (":scheme", "https"), (":authority", "x"), (":path", "/p")]
                    self._conn.push_stream(1, 2, promised)
                    self._conn.send_headers(2, [(":status", "200"), ("content-length", "6")])
                    self._conn.send_data(2, b"pushed", end_stream=True)
                    self._conn.send_headers(1, [(":status", "200"), ("content-length", "2")])
                    self._conn.send_data(1, b"ok", end_stream=True)
            self._transport.write(self._conn.data_to_send())

    loop = asyncio.get_running_loop()
    sock = peers.bind(LOOPBACK4)
    server = await loop.create_server(lambda: Pushing(200, [], b"", []), sock=sock, ssl=h2_only_context(pki))
    peers._servers.append(server)
    port = int(sock.getsockname()[1])
    result = await probe(http_probe, port, **tls(pki, http_version="2", fail_if_body_not_matches_regexp=["^ok$"]))
    assert result.ok, result.error
    assert result.values[CONTENT_LENGTH] == 2
