"""The plain-http client (probes/http1.py) against peers that write exact bytes: framing (chunked,
Content-Length, until close), encodings, interim responses, malformed heads and bodies, and
redirects that cross hosts or lead to https. On the asyncio loop and on uvloop."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from typing import Any

import pytest

from probes import http
from probes.base import ProbeRequest, ProbeResult
from probes.http import HTTPProbe, HTTPSettings

# keys of ProbeResult.values
CONTENT_LENGTH, HTTP_REDIRECTS = http.CONTENT_LENGTH.key, http.REDIRECTS.key
HTTP_STATUS, HTTP_VERSION = http.STATUS.key, http.VERSION.key

LOOPBACK4 = "127.0.0.1"


async def serve(
    peers: Any, reply: bytes, *, chunks: int = 1, seen: list[bytes] | None = None, host: str = LOOPBACK4
) -> int:
    """A peer that reads one request head and writes `reply`, split in `chunks` writes, then closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if seen is not None:
            seen.append(head)
        step = max(1, len(reply) // chunks)
        for start in range(0, len(reply), step):
            writer.write(reply[start : start + step])
            await writer.drain()
            await asyncio.sleep(0)

    return await peers.tcp(handler, host)


async def probe(http_probe: HTTPProbe, port: int, **settings: Any) -> ProbeResult:
    request = ProbeRequest(LOOPBACK4, None, port, 1.0, settings.pop("params", {}))
    async with asyncio.timeout(3):
        return await http_probe.run(request, HTTPSettings.model_validate(settings))


@pytest.mark.parametrize("chunks", [1, 7, 1000])
async def test_chunked_body_in_any_split(peers: Any, http_probe: HTTPProbe, chunks: int) -> None:
    """A chunked body (with an extension and trailers) is reassembled however the bytes arrive."""
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    port = await serve(peers, reply, chunks=chunks)
    result = await probe(http_probe, port, fail_if_body_not_matches_regexp=["^hello, world$"])
    assert result.ok, result.error
    assert result.values[CONTENT_LENGTH] == len(b"hello, world")


async def test_body_until_close_http10(peers: Any, http_probe: HTTPProbe) -> None:
    """An HTTP/1.0 reply without Content-Length ends with the connection; the version is reported."""
    port = await serve(peers, b"HTTP/1.0 200 OK\r\n\r\nold school", chunks=3)
    result = await probe(http_probe, port)
    assert result.ok, result.error
    assert result.values[HTTP_VERSION] == 1.0
    assert result.values[CONTENT_LENGTH] == len(b"old school")


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", lambda b: zlib.compress(b, wbits=-15))],
)
async def test_compressed_bodies_are_decoded(peers: Any, http_probe: HTTPProbe, encoding: str, encode: Any) -> None:
    """gzip, zlib deflate and raw deflate bodies are decoded before the body checks."""
    data = encode(b"status: green " * 100)
    reply = f"HTTP/1.1 200 OK\r\nContent-Encoding: {encoding}\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data
    port = await serve(peers, reply)
    result = await probe(http_probe, port, fail_if_body_not_matches_regexp=["green"])
    assert result.ok, result.error
    assert result.values[CONTENT_LENGTH] == 1400


async def test_interim_response_is_skipped(peers: Any, http_probe: HTTPProbe) -> None:
    """A 103 Early Hints before the real response does not count as the response."""
    reply = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
    port = await serve(peers, reply)
    result = await probe(http_probe, port)
    assert result.ok, result.error
    assert result.values[HTTP_STATUS] == 204


async def test_head_request_reads_no_body(peers: Any, http_probe: HTTPProbe) -> None:
    """HEAD: the Content-Length describes a body that is not sent, and the probe does not wait for it."""
    port = await serve(peers, b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")
    result = await probe(http_probe, port, method="HEAD")
    assert result.ok, result.error
    assert result.values[CONTENT_LENGTH] == 0


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"HTTP/1.1 2000 OK\r\n\r\n", "invalid HTTP response: bad status line b'HTTP/1.1 2000 OK'"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "invalid HTTP response: bad header line b'no colon here'"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid HTTP response: bad Content-Length '-1'"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000, "invalid HTTP response: response head larger than 64 KiB"),
        (b"HTTP/1.1 200 OK\r\nX: y", "invalid HTTP response: connection closed inside the response head"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid HTTP body: bad chunk size"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
            "invalid HTTP body: chunk data longer than its size",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            "invalid HTTP body: connection closed before the end of the body",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!",
            "invalid HTTP body: cannot decompress the body",
        ),
    ],
)
async def test_malformed_replies_fail_clearly(peers: Any, http_probe: HTTPProbe, reply: bytes, error: str) -> None:
    """Each way of breaking HTTP/1.1 framing is a failure that says what was wrong."""
    port = await serve(peers, reply)
    result = await probe(http_probe, port)
    assert not result.ok
    assert result.error == error


async def test_redirect_to_another_host_drops_credentials(
    peers: Any, http_probe: HTTPProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A redirect to another origin is followed, without the Authorization meant for the first one."""
    monkeypatch.setenv("WIRE_TOKEN", "s3cret")
    seen_second: list[bytes] = []
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    second = await serve(peers, ok, seen=seen_second, host="127.0.0.2")
    redirect = f"HTTP/1.1 301 Moved\r\nLocation: http://127.0.0.2:{second}/there\r\nContent-Length: 0\r\n\r\n"
    seen_first: list[bytes] = []
    first = await serve(peers, redirect.encode(), seen=seen_first)
    result = await probe(http_probe, first, bearer_token="${WIRE_TOKEN}")
    assert result.ok, result.error
    assert result.values[HTTP_REDIRECTS] == 1
    assert result.info["final_url"] == f"http://127.0.0.2:{second}/there"
    assert b"Authorization: Bearer s3cret" in seen_first[0]
    assert b"Authorization" not in seen_second[0]
    assert f"Host: 127.0.0.2:{second}".encode() in seen_second[0]


async def test_post_redirected_by_303_becomes_get(peers: Any, http_probe: HTTPProbe) -> None:
    """303 See Other turns a POST into a GET without the body."""
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        if head.startswith(b"POST"):
            await reader.readexactly(4)
            writer.write(b"HTTP/1.1 303 See Other\r\nLocation: /done\r\nContent-Length: 0\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    port = await peers.tcp(handler)
    result = await probe(http_probe, port, method="POST", body="data")
    assert result.ok, result.error
    assert [h.split(b" ", 2)[:2] for h in seen] == [[b"POST", b"/"], [b"GET", b"/done"]]
    assert b"Content-Length" not in seen[1]


async def test_redirect_to_https_goes_through_the_full_client(peers: Any, http_probe: HTTPProbe) -> None:
    """http -> https is followed (TLS); here the https side is refused, which is reported."""
    redirect = b"HTTP/1.1 301 Moved\r\nLocation: https://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n"
    port = await serve(peers, redirect)
    result = await probe(http_probe, port)
    assert not result.ok
    assert result.error == "connection refused"
