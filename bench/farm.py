"""The target farm: one process serving many loopback listeners of one kind.

`tcp` listeners accept and close; `http` listeners answer any request with `HTTP/1.1 200 OK`, a
3-byte body and `Connection: close`; `dns` listeners (UDP) answer any query with its question and
one A record, 127.0.0.1 (a query they cannot parse is dropped, as a real server would).
Listener i is bound to `address(i)` (127.50.x.y) on the given port, so every target of the
benchmark has an address of its own. Each listener is one file descriptor: keep `count` well
under the open-file limit (20,000 here) to leave room for the connections in flight.

Prints `ready <count>` on stdout once every listener is bound. On SIGUSR1 it writes the number of
connections (DNS: queries) served so far to `--stats FILE` as `<sequence> <connections>`;
SIGTERM/SIGINT stop it.

    python -m bench.farm --kind http --count 5000 --port 18080 --stats /tmp/farm-http.stats
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import ssl
import sys
from typing import cast

FIRST_OCTETS = "127.50"
HOSTS_PER_SUBNET = 254  # 127.50.x.1 .. 127.50.x.254
MAX_LISTENERS = 256 * HOSTS_PER_SUBNET
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
MAX_REQUEST = 16384  # a request head larger than this is cut off


def address(index: int) -> str:
    """The loopback address of target `index` (0-based): 127.50.0.1, 127.50.0.2, ... 127.50.255.254."""
    if not 0 <= index < MAX_LISTENERS:
        raise ValueError(f"target index {index} outside 0..{MAX_LISTENERS - 1}")
    return f"{FIRST_OCTETS}.{index // HOSTS_PER_SUBNET}.{index % HOSTS_PER_SUBNET + 1}"


class Stats:
    connections = 0


class AcceptClose(asyncio.Protocol):
    """TCP target: the connect succeeds, then the farm closes at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        Stats.connections += 1
        transport.close()


class TinyHTTP(asyncio.Protocol):
    """HTTP target: read the request head, answer 200 and close."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.head += data
        if b"\r\n\r\n" in self.head or len(self.head) > MAX_REQUEST:
            Stats.connections += 1
            self.transport.write(RESPONSE)
            self.transport.close()


class TinyDNS(asyncio.DatagramProtocol):
    """DNS target: copy the query's id and question, answer NOERROR with one A record."""

    ANSWER = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x01"  # -> name, A, IN, TTL 60

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        end = data.find(b"\x00", 12)  # the question's name ends at the first zero octet
        if len(data) < 17 or data[4:6] != b"\x00\x01" or end < 0 or len(data) < end + 5:
            return
        Stats.connections += 1
        question = data[12 : end + 5]
        header = data[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"  # QR RD RA, 1 question, 1 answer
        self.transport.sendto(header + question + self.ANSWER, addr)


def _write_stats(path: str, sequence: int) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write(f"{sequence} {Stats.connections}\n")
    os.replace(tmp, path)


async def serve(kind: str, count: int, port: int, stats_path: str | None, tls: ssl.SSLContext | None = None) -> None:
    loop = asyncio.get_running_loop()
    servers: list[asyncio.AbstractServer | asyncio.BaseTransport] = []
    for index in range(count):
        if kind == "dns":
            transport, _ = await loop.create_datagram_endpoint(TinyDNS, local_addr=(address(index), port))
            servers.append(transport)
        else:
            factory = AcceptClose if kind == "tcp" else TinyHTTP
            servers.append(
                await loop.create_server(factory, address(index), port, backlog=256, reuse_address=True, ssl=tls)
            )
    stop = asyncio.Event()
    sequence = 0

    def on_usr1() -> None:
        nonlocal sequence
        sequence += 1
        if stats_path:
            _write_stats(stats_path, sequence)

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, on_usr1)
    print(f"ready {count}", flush=True)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["tcp", "http", "dns"], required=True)
    parser.add_argument("--count", type=int, required=True, help="listeners, one per address")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stats", help="file written on SIGUSR1: '<sequence> <connections served>'")
    parser.add_argument("--tls-cert", help="http listeners speak https with this certificate (PEM)")
    parser.add_argument("--tls-key", help="and this key (PEM)")
    args = parser.parse_args(argv)
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        try:
            runner.run(serve(args.kind, args.count, args.port, args.stats, tls))
        except OSError as exc:
            print(f"farm: cannot listen: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
