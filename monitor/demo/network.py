"""The simulated network: real listeners on 127.x loopback addresses, one set per simulated host.

Every host has a mode the fault injector changes:
  up    - answers normally
  down  - its listeners are closed (connection refused), like a dead device or a cut link; every
          host behind it in the topology is cut off too
  slow  - HTTP answers and TCP banners come after SLOW_SECONDS (over the demo's 1 s latency
          thresholds: DEGRADED)
  error - HTTP answers 503 (the check fails)
  ocsp-* - a JPKI OCSP responder answers wrongly (ocsp_responder.py: tryLater, stale, wrong signer,
          unknown); its other HTTP paths answer normally
  api-*  - the intermediate-server platform's API fails (national_api.py: status NG, login refused) while
          its /health answers ok
Loopback always answers ICMP, so these modes act on TCP/HTTP/DNS listeners; as root the lab adds real
packet loss and cuts in the kernel on top (`kernel_faults.py`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import ssl
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

import dns.message
import dns.rcode
import dns.rrset
import structlog
from aiohttp import web

from monitor.demo import ocsp_responder
from monitor.demo.estate import API_PASSWORD_FILE, Estate, SimServer
from monitor.demo.national_api import NationalApi
from monitor.demo.pki import DemoPKI
from monitor.demo.snmp_agent import SimDevice, SnmpAgents, demo_interfaces

log = structlog.get_logger()
Mode = Literal["up", "down", "slow", "error", "ocsp-trylater", "ocsp-stale", "ocsp-wrong-signer", "ocsp-unknown"]
SLOW_SECONDS = 1.6  # over the 1 s latency thresholds, well inside the 3-5 s timeouts
BANNER = b"SSH-2.0-OpenSSH_9.2p1 national-backbone-demo\r\n"


@dataclass
class SimHost:
    name: str
    servers: list[SimServer]
    mode: Mode = "up"
    listeners: list[Any] = field(default_factory=list)  # running asyncio servers / aiohttp sites / transports


class _DNSProtocol(asyncio.DatagramProtocol):
    def __init__(self, zone: dict[str, str]) -> None:
        self.zone = zone
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:  # garbage in: no answer, like a real server
            return
        response = dns.message.make_response(query)
        question = query.question[0] if query.question else None
        name = question.name.to_text() if question is not None else ""  # an RRset of a question is empty: falsy
        address = self.zone.get(name.rstrip("."))
        if address is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question is not None and question.rdtype == 1:  # A
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", address))
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


class SimNetwork:
    def __init__(self, estate: Estate, pki: DemoPKI, short_cert_hosts: frozenset[str] = frozenset()) -> None:
        self.estate = estate
        self.pki = pki
        self.short_cert_hosts = short_cert_hosts  # hostnames whose certificate expires in 10 days
        self.hosts: dict[str, SimHost] = {}
        by_target: dict[str, list[SimServer]] = defaultdict(list)
        for server in estate.servers:
            by_target[server.target].append(server)
        for name, servers in by_target.items():
            self.hosts[name] = SimHost(name, servers)
        self._by_address = {s.address: self.hosts[s.target] for s in estate.servers}
        self._tls: dict[str, ssl.SSLContext] = {}
        self._crl = b""
        self._api = NationalApi(estate.files.get(API_PASSWORD_FILE, "").strip())
        self._app_runner: web.AppRunner | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open every listener; OSError (e.g. an address in use by another demo) says which one."""
        self._crl = self.pki.crl()
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/crl/jpki.crl", self._crl_handler)
        app.router.add_post("/api/v1/login", self._api_login)
        app.router.add_get("/api/v1/status", self._api_status)
        # OCSP (RFC 6960 A.1): POST to the responder's URL, or GET with the request after it
        app.router.add_post("/", self._ocsp_post)
        app.router.add_get("/{request:.+}", self._ocsp_get)
        self._app_runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._app_runner.setup()
        for host in self.hosts.values():
            try:
                await self._open(host)
            except OSError as exc:
                addresses = ", ".join(f"{s.address}:{s.port}" for s in host.servers)
                raise OSError(exc.errno, f"cannot listen on {addresses} for {host.name}: {exc.strerror}") from exc
        log.info("demo_network_started", hosts=len(self.hosts), listeners=len(self.estate.servers))

    async def stop(self) -> None:
        for host in self.hosts.values():
            await self._close(host)
        if self._app_runner is not None:
            await self._app_runner.cleanup()

    def subtree(self, name: str) -> list[str]:
        """The host and every host behind it in the topology."""
        return [other for other in self.hosts if self._behind(other, name)]

    def _behind(self, name: str, ancestor: str) -> bool:
        while name:
            if name == ancestor:
                return True
            name = self.estate.parents.get(name, "")
        return False

    def addresses(self, names: list[str]) -> list[str]:
        return sorted({server.address for name in names for server in self.hosts[name].servers})

    def reachable(self, name: str) -> bool:
        """Up itself, and every device upstream of it up."""
        while name in self.hosts:
            if self.hosts[name].mode == "down":
                return False
            name = self.estate.parents.get(name, "")
        return True

    async def set_mode(self, target: str, mode: Mode) -> None:
        before = {name: self.reachable(name) for name in self.hosts}
        self.hosts[target].mode = mode
        for name, host in self.hosts.items():
            now = self.reachable(name)
            if before[name] and not now:
                await self._close(host)
            elif now and not before[name]:
                await self._open(host)

    # --- listeners -------------------------------------------------------------------------

    async def _open(self, host: SimHost) -> None:
        loop = asyncio.get_running_loop()
        for server in host.servers:
            if server.proto == "tcp":
                host.listeners.append(await asyncio.start_server(self._banner, server.address, server.port))
            elif server.proto == "dns":
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _DNSProtocol(self.estate.dns_zone), local_addr=(server.address, server.port)
                )
                host.listeners.append(transport)
            else:
                assert self._app_runner is not None
                site = web.TCPSite(
                    self._app_runner, server.address, server.port, ssl_context=self._context(server),
                    reuse_address=True,
                )  # fmt: skip
                await site.start()
                host.listeners.append(site)

    async def _close(self, host: SimHost) -> None:
        for listener in host.listeners:
            if isinstance(listener, web.TCPSite):
                await listener.stop()
            elif isinstance(listener, asyncio.Server):
                listener.close()
                await listener.wait_closed()
            else:  # a datagram transport (uvloop's is not an asyncio.DatagramTransport)
                listener.close()
        host.listeners.clear()

    def _context(self, server: SimServer) -> ssl.SSLContext | None:
        if server.proto != "https" or server.hostname is None:
            return None
        ctx = self._tls.get(server.hostname)
        if ctx is None:
            days = 10 if server.hostname in self.short_cert_hosts else 365
            ctx = self._tls[server.hostname] = self.pki.server_context(server.hostname, server.address, days)
        return ctx

    # --- behaviour -------------------------------------------------------------------------

    async def _banner(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sockname = writer.get_extra_info("sockname")
        host = self._by_address.get(sockname[0]) if sockname else None
        try:
            if host is not None and host.mode == "slow":
                await asyncio.sleep(SLOW_SECONDS)
            writer.write(BANNER)
            await writer.drain()
            await asyncio.wait_for(reader.read(256), timeout=2.0)
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()

    def _host_of(self, request: web.Request) -> SimHost | None:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        return self._by_address.get(sockname[0]) if sockname else None

    async def _behave(self, request: web.Request) -> web.Response | None:
        host = self._host_of(request)
        if host is not None and host.mode == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        if host is not None and host.mode == "error":
            return web.Response(status=503, text="service unavailable (simulated)\n")
        return None

    async def _health(self, request: web.Request) -> web.Response:
        return await self._behave(request) or web.Response(text="ok\n")

    async def _crl_handler(self, request: web.Request) -> web.Response:
        return await self._behave(request) or web.Response(body=self._crl, content_type="application/pkix-crl")

    def _api_host(self, request: web.Request) -> SimHost:
        host = self._host_of(request)
        if host is None or host.name not in self.estate.api_hosts:
            raise web.HTTPNotFound()
        return host

    async def _api_login(self, request: web.Request) -> web.Response:
        host = self._api_host(request)
        refused = await self._behave(request)
        if refused is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "invalid_request"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "invalid_request"}, status=400)
        return self._api.login(body.get("user"), body.get("password"), host.mode)

    async def _api_status(self, request: web.Request) -> web.Response:
        host = self._api_host(request)
        return await self._behave(request) or self._api.status(request.headers.get("Authorization", ""), host.mode)

    async def _ocsp_post(self, request: web.Request) -> web.Response:
        host = self._host_of(request)
        if host is None or host.name not in self.estate.ocsp_hosts:
            raise web.HTTPNotFound()
        return await self._behave(request) or self._ocsp(host, await request.read())

    async def _ocsp_get(self, request: web.Request) -> web.Response:
        host = self._host_of(request)
        if host is None or host.name not in self.estate.ocsp_hosts:
            raise web.HTTPNotFound()
        # the raw path: the base64 of the request may hold "/" (sent as %2F), which the router decodes
        encoded = request.raw_path.split("?", 1)[0].lstrip("/")
        try:
            der = base64.b64decode(unquote(encoded), validate=True)
        except (binascii.Error, ValueError):
            der = b""  # answered malformedRequest, as a responder does
        return await self._behave(request) or self._ocsp(host, der)

    def _ocsp(self, host: SimHost, der: bytes) -> web.Response:
        body = ocsp_responder.answer(self.pki.jpki, der, host.mode, dt.datetime.now(dt.UTC))
        return web.Response(body=body, content_type="application/ocsp-response")


async def start_simulation(network: SimNetwork, snmp: SnmpAgents, estate: Estate) -> None:
    """Open every simulated host's listeners and start an SNMP agent on every device (OSError: in use)."""
    await network.start()
    for name, address, role in estate.snmp_devices:
        await snmp.add(SimDevice(name, address, b"public", demo_interfaces(name, role)))
