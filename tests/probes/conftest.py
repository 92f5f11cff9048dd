"""Shared fixtures for the probe tests: a throw-away PKI, real loopback peers (TCP, HTTP(S), DNS) and
the daemon's ProbeRunner.

Every peer listens on a loopback address with a port the kernel picked (bind to port 0), so the tests
can run next to anything else on the host and never send a packet anywhere but loopback.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import dns.message
import pytest
import uvloop
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from monitor.clock import SystemClock
from monitor.config.model import Thresholds
from monitor.core.inventory import Check, Target
from monitor.core.state import StatePolicy
from monitor.scheduling.runner import ProbeRunner
from probes.base import ProbeRequest, ProbeResult, ProbeSettings
from probes.http import HTTPProbe
from probes.registry import close_probes, create_probes

LOOPBACK4 = "127.0.0.1"
LOOPBACK6 = "::1"
SERVER_NAME = "probe.test"  # the name in the test leaf certificate (never resolved: only used for SNI)


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK6, 0))
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def ipv6_loopback() -> str:
    """'::1', or skip the test when this host has no IPv6 loopback."""
    if not _has_ipv6_loopback():
        pytest.skip("no IPv6 loopback (::1) on this host")
    return LOOPBACK6


# --------------------------------------------------------------------------------------------- PKI


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Issued:
    """A certificate with its key, also written to PEM files."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_file: Path
    key_file: Path

    @property
    def not_after(self) -> float:
        return self.cert.not_valid_after_utc.timestamp()

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


@dataclass(frozen=True)
class PKI:
    """A test CA, a second unrelated CA, and server certificates issued by the first."""

    folder: Path
    server_name: str  # the DNS name in the leaf certificates
    ca: Issued
    other_ca: Issued
    leaf: Issued  # SAN: probe.test, localhost, 127.0.0.1, ::1; valid for 30 days
    expired: Issued  # same names, expired yesterday
    client: Issued  # a client certificate (mutual TLS) for monitor.test

    def mutual_tls_context(self) -> ssl.SSLContext:
        """A server context with the leaf certificate that requires a client certificate from the CA."""
        ctx = self.leaf.server_context()
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(self.ca.cert_file)
        return ctx

    def crl(
        self, *, next_update: dt.datetime, encoding: serialization.Encoding, last_update: dt.datetime | None = None
    ) -> bytes:
        """A CRL signed by the CA, revoking one serial number, last updated an hour ago by default."""
        revoked = (
            x509.RevokedCertificateBuilder().serial_number(4242).revocation_date(_now() - dt.timedelta(days=2)).build()
        )
        crl = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ca.cert.subject)
            .last_update(last_update or _now() - dt.timedelta(hours=1))
            .next_update(next_update)
            .add_revoked_certificate(revoked)
            .sign(self.ca.key, hashes.SHA256())
        )
        return crl.public_bytes(encoding)


def _write(folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    cert_file, key_file = folder / f"{stem}.crt", folder / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Issued(cert, key, cert_file, key_file)


def _make_ca(folder: Path, stem: str, common_name: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(days=1))
        .not_valid_after(_now() + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write(folder, stem, cert, key)


def _make_leaf(
    folder: Path,
    stem: str,
    ca: Issued,
    not_before: dt.datetime,
    not_after: dt.datetime,
    *,
    common_name: str = SERVER_NAME,
    usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.SERVER_AUTH,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [
        x509.DNSName(common_name),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address(LOOPBACK4)),
        x509.IPAddress(ipaddress.ip_address(LOOPBACK6)),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return _write(folder, stem, cert, key)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """The test PKI, made once per session (EC keys: milliseconds)."""
    folder = tmp_path_factory.mktemp("pki")
    ca = _make_ca(folder, "ca", "Probe Test CA")
    other_ca = _make_ca(folder, "other-ca", "Unrelated CA")
    now = _now()
    leaf = _make_leaf(folder, "leaf", ca, now - dt.timedelta(days=1), now + dt.timedelta(days=30))
    expired = _make_leaf(folder, "expired", ca, now - dt.timedelta(days=60), now - dt.timedelta(days=1))
    client = _make_leaf(
        folder,
        "client",
        ca,
        now - dt.timedelta(days=1),
        now + dt.timedelta(days=30),
        common_name="monitor.test",
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    return PKI(folder, SERVER_NAME, ca, other_ca, leaf, expired, client)


# --------------------------------------------------------------------------------------- TCP peers

StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Peers:
    """Starts loopback servers for one test and stops them (and their connections) afterwards."""

    def __init__(self) -> None:
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._runners: list[web.BaseRunner] = []
        self._transports: list[asyncio.BaseTransport] = []
        self.connections = 0  # accepted TCP connections over all stream servers (not DNS)
        self._accepted = asyncio.Condition()

    @staticmethod
    def bind(host: str, kind: int = socket.SOCK_STREAM) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, kind)
        sock.bind((host, 0))
        return sock

    async def tcp(
        self, handler: StreamHandler, host: str = LOOPBACK4, ssl_context: ssl.SSLContext | None = None
    ) -> int:
        """Serve `handler` on host:<free port>; returns the port. Connection errors in the handler
        (the probe hung up) are the normal end of a connection, not a test failure."""

        async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            self._writers.add(writer)
            self.connections += 1
            async with self._accepted:
                self._accepted.notify_all()
            try:
                await handler(reader, writer)
            except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.CancelledError):
                pass  # the probe hung up, or the test is over
            finally:
                self._tasks.discard(task)
                writer.close()

        sock = self.bind(host)
        server = await asyncio.start_server(wrapped, sock=sock, ssl=ssl_context)
        self._servers.append(server)
        return int(sock.getsockname()[1])

    async def http(
        self,
        routes: list[web.RouteDef],
        host: str = LOOPBACK4,
        ssl_context: ssl.SSLContext | None = None,
    ) -> int:
        """A real aiohttp server with these routes on host:<free port>; returns the port."""
        app = web.Application()
        app.add_routes(routes)
        runner = web.AppRunner(app, shutdown_timeout=0.2, access_log=None)
        await runner.setup()
        self._runners.append(runner)
        sock = self.bind(host)
        await web.SockSite(runner, sock, ssl_context=ssl_context).start()
        return int(sock.getsockname()[1])

    async def dns(self, answer: DNSAnswer, host: str = LOOPBACK4) -> DNSServer:
        """A DNS server on UDP and TCP host:<same free port>; `answer` decides each reply."""
        server = DNSServer(answer)
        loop = asyncio.get_running_loop()
        for _ in range(20):  # the UDP port's TCP twin may be taken; try another port
            udp = self.bind(host, socket.SOCK_DGRAM)
            tcp = socket.socket(udp.family, socket.SOCK_STREAM)
            try:
                tcp.bind((host, udp.getsockname()[1]))
            except OSError:
                udp.close()
                tcp.close()
                continue
            break
        else:
            raise RuntimeError("no free UDP+TCP port pair on loopback")
        transport, _ = await loop.create_datagram_endpoint(lambda: _DNSUDP(server), sock=udp)
        self._transports.append(transport)
        await self.tcp_on_socket(server.handle_tcp, tcp)
        server.port = int(udp.getsockname()[1])
        return server

    async def tcp_on_socket(self, handler: StreamHandler, sock: socket.socket) -> None:
        async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                await handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
                pass  # the probe hung up, or the test is over
            finally:
                self._tasks.discard(task)
                writer.close()

        self._servers.append(await asyncio.start_server(wrapped, sock=sock))

    async def wait_connections(self, count: int) -> None:
        """Wait (at most a second) until the stream servers have accepted `count` connections in all."""
        async with asyncio.timeout(1.0), self._accepted:
            await self._accepted.wait_for(lambda: self.connections >= count)

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for writer in self._writers:
            writer.close()
        for transport in self._transports:
            transport.close()
        for runner in self._runners:
            await runner.cleanup()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1)


@pytest.fixture
async def http_probe() -> AsyncIterator[HTTPProbe]:
    """An HTTPProbe whose sessions are closed after the test."""
    probe = HTTPProbe()
    try:
        yield probe
    finally:
        await probe.close()


@pytest.fixture
async def peers() -> AsyncIterator[Peers]:
    """Loopback servers for this test, stopped at its end."""
    p = Peers()
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it) but not listening."""
    sock = Peers.bind(LOOPBACK4)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


# --------------------------------------------------------------------------------------- DNS peer

# answer(query, transport) -> a reply Message, raw bytes to send, a list of datagrams to send one
# after the other (a stray one before the answer), or None for no reply at all
DNSAnswer = Callable[[dns.message.Message, str], "dns.message.Message | bytes | list[bytes] | None"]


@dataclass
class DNSServer:
    answer: DNSAnswer
    port: int = 0
    queries: list[tuple[str, dns.message.Message]] = field(default_factory=list)  # (transport, query)

    def reply(self, wire: bytes, transport: str) -> list[bytes]:
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # a test server ignores what it cannot parse
            return []
        self.queries.append((transport, query))
        out = self.answer(query, transport)
        if out is None:
            return []
        if isinstance(out, bytes):
            return [out]
        if isinstance(out, list):
            return out
        return [out.to_wire()]

    async def handle_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            size = int.from_bytes(await reader.readexactly(2), "big")
            messages = self.reply(await reader.readexactly(size), "tcp")
            if not messages:
                await asyncio.sleep(3600)  # never answer
                return
            for data in messages:
                writer.write(len(data).to_bytes(2, "big") + data)
            await writer.drain()


class _DNSUDP(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # 3.11's is not a DatagramTransport subclass

    def datagram_received(self, data: bytes, addr: Any) -> None:
        for out in self.server.reply(data, "udp"):
            if self.transport is not None:
                self.transport.sendto(out, addr)


# ------------------------------------------------------------------------------------------ runner


@pytest.fixture
async def runner() -> AsyncIterator[ProbeRunner]:
    """The daemon's ProbeRunner with fresh probes of every registered kind."""
    probes = create_probes()
    try:
        yield ProbeRunner(probes, SystemClock())
    finally:
        await close_probes(probes)


def make_check(
    kind: str,
    settings: ProbeSettings,
    *,
    address: str = LOOPBACK4,
    hostname: str | None = None,
    port: int | None = None,
    timeout: float = 1.0,
    params: dict[str, Any] | None = None,
    name: str = "check",
) -> Check:
    """A Check as the inventory builds it, for the runner."""
    target = Target(name, address, hostname, None, None, {}, None)
    return Check(
        id=f"{name}/{kind}",
        target=target,
        name=kind,
        module=kind,
        kind=kind,
        settings=settings,
        request=ProbeRequest(address, hostname, port, timeout, params or {}),
        interval=60.0,
        retry_interval=10.0,
        timeout=timeout,
        policy=StatePolicy(),
        degraded=Thresholds(),
        reachability=False,
    )


@pytest.fixture
def check_factory() -> Callable[..., Check]:
    """make_check as a fixture (test modules do not import conftest)."""
    return make_check


@dataclass(frozen=True)
class RaceOutcome:
    hung: ProbeResult
    fast: ProbeResult
    hung_elapsed: float  # seconds from the start until each result was back
    fast_elapsed: float


@pytest.fixture
def race(runner: ProbeRunner) -> Callable[[Check, Check], Awaitable[RaceOutcome]]:
    """Run a hanging check and a fast one at the same time through the runner and time both."""

    async def run(hung: Check, fast: Check) -> RaceOutcome:
        start = time.perf_counter()
        elapsed: dict[str, float] = {}

        async def timed(key: str, check: Check) -> ProbeResult:
            result = await runner.run(check)
            elapsed[key] = time.perf_counter() - start
            return result

        hung_result, fast_result = await asyncio.gather(timed("hung", hung), timed("fast", fast))
        return RaceOutcome(hung_result, fast_result, elapsed["hung"], elapsed["fast"])

    return run


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:
    """Every probe test runs on the asyncio loop and on uvloop, which the daemon uses: their
    transports, timers and error paths differ."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
