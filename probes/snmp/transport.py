"""SNMP request/response transports: GET, GETNEXT and GETBULK with a bounded cost per device.

Two sessions behind one small interface (`Session`):

- v1/v2c (`UdpDispatcher` + `CommunitySession`): one UDP socket per probe instance, shared by every
  device, with the fast BER codec (probes.snmp.ber). Responses are matched by request id *and*
  source address; garbage, stray and late datagrams are counted and dropped, so an agent that answers
  malformed BER or wrong request ids costs exactly its timeout. A semaphore caps requests in flight
  and the receive buffer is enlarged: at a few hundred requests in flight the default buffer drops
  answers, which then look like timeouts (false DOWNs).
- v3 (probes.snmp.usm_client): the same socket handling (a UdpDispatcher subclass) with the project's
  own USM on the same codec.

Timeout and retries are the module's (pysnmp's defaults of 1 s x 6 tries make a dead device cost 6 s).
A deadline from the caller bounds every request, so no poll outlives the check's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from probes import base
from probes.snmp import ber
from probes.snmp.ber import OID, VarBind

RECEIVE_BUFFER = 8 * 1024 * 1024  # bytes; a burst of responses must fit while the loop is busy
V1_ERRORS = {1: "tooBig", 2: "noSuchName", 3: "badValue", 4: "readOnly", 5: "genErr", 6: "noAccess"}


class SnmpError(Exception):
    """The agent did not give a usable answer; the message is what an operator reads."""


class SnmpTimeout(SnmpError):
    pass


class SnmpErrorStatus(SnmpError):
    def __init__(self, status: int, index: int) -> None:
        self.status, self.index = status, index
        super().__init__(f"agent error {V1_ERRORS.get(status, status)} at varbind {index}")


class Session(Protocol):
    """One device's SNMP conversation (credentials, address, timeout, retries)."""

    version: str

    async def get(self, oids: Sequence[OID], deadline: float) -> list[VarBind]: ...

    async def get_next(self, oids: Sequence[OID], deadline: float) -> list[VarBind]: ...

    async def get_bulk(self, oids: Sequence[OID], max_repetitions: int, deadline: float) -> list[VarBind]: ...


def enlarge_receive_buffer(sock: socket.socket, size: int = RECEIVE_BUFFER) -> int:
    """SO_RCVBUFFORCE when privileged (ignores net.core.rmem_max), else SO_RCVBUF; returns the size got."""
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    if force is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, force, size)
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < size:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[ber.Message]
    address: tuple[str, int]


class UdpDispatcher(asyncio.DatagramProtocol):
    """The v1/v2c socket of a probe instance: sends requests, matches answers, counts the rest."""

    def __init__(self, max_in_flight: int = 200) -> None:
        self._pending: dict[int, _Pending] = {}
        self._next_id = random.randrange(1, 0x3FFFFFFF)
        self._transports: dict[int, asyncio.DatagramTransport] = {}
        self._opening: dict[int, asyncio.Lock] = {}
        self.slots = asyncio.Semaphore(max_in_flight)
        self.malformed = 0  # datagrams that were not SNMP
        self.unmatched = 0  # answers with an unknown request id or from the wrong address
        self.receive_buffer = 0
        self._sending = False  # inside transport.sendto(): an error reported now is that send's
        self._send_error: Exception | None = None

    # --- socket ----------------------------------------------------------------------------

    async def _transport(self, family: int) -> asyncio.DatagramTransport:
        transport = self._transports.get(family)
        if transport is not None:
            return transport
        lock = self._opening.setdefault(family, asyncio.Lock())
        async with lock:
            if family not in self._transports:
                sock = socket.socket(family, socket.SOCK_DGRAM)
                sock.setblocking(False)
                self.receive_buffer = enlarge_receive_buffer(sock)
                sock.bind(("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0))
                loop = asyncio.get_running_loop()
                transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
                self._transports[family] = transport
        return self._transports[family]

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.cancel()
        self._pending.clear()

    # --- protocol --------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            message = ber.decode(data)
        except ber.BerError:
            self.malformed += 1
            return
        pending = self._pending.get(message.request_id)
        if (
            pending is None
            or message.pdu != ber.RESPONSE
            or pending.address[0] != addr[0]
            or pending.address[1] != addr[1]
            or pending.future.done()
        ):
            self.unmatched += 1
            return
        pending.future.set_result(message)

    def error_received(self, exc: Exception) -> None:
        """asyncio (and uvloop) report a failed sendto() here, from inside sendto(): keep it for the
        request to judge (EPERM from the local firewall is not the agent's silence). Anything else
        (ICMP port unreachable on a read): the timeout decides."""
        if self._sending:
            self._send_error = exc

    # --- requests --------------------------------------------------------------------------

    def _request_id(self) -> int:
        rid = self._next_id
        self._next_id = rid + 1 if rid < 0x7FFFFFFF else 1
        return rid

    async def request(
        self, address: tuple[str, int], build: Any, per_try: float, retries: int, deadline: float
    ) -> ber.Message:
        """Send build(request_id) up to 1 + retries times; the answer with that id from `address`."""
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        transport = await self._transport(family)
        loop = asyncio.get_running_loop()
        async with self.slots:
            rid = self._request_id()
            payload = build(rid)
            try:
                for _attempt in range(retries + 1):
                    wait = min(per_try, deadline - time.monotonic())
                    if wait <= 0:
                        break
                    future: asyncio.Future[ber.Message] = loop.create_future()
                    self._pending[rid] = _Pending(future, address)
                    self._send(transport, payload, address)
                    timer = loop.call_later(wait, _expire, future)
                    try:
                        return await future
                    except TimeoutError:
                        continue
                    finally:
                        timer.cancel()
            finally:
                self._pending.pop(rid, None)
        raise SnmpTimeout(f"no SNMP response from {address[0]}:{address[1]} after {retries + 1} tries")

    def _send(self, transport: asyncio.DatagramTransport, payload: bytes, address: tuple[str, int]) -> None:
        """Send one datagram; a send this host refused raises LocalFailure, another one SnmpError."""
        self._sending, self._send_error = True, None
        try:
            transport.sendto(payload, address)
        finally:
            self._sending = False
        error, self._send_error = self._send_error, None
        if error is not None:
            raise SnmpError(f"send to {address[0]}:{address[1]} failed: {base.describe_os_error(error)}")


def _expire(future: asyncio.Future[ber.Message]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class CommunitySession:
    """SNMP v1/v2c with a community, over the shared dispatcher."""

    def __init__(
        self,
        dispatcher: UdpDispatcher,
        address: tuple[str, int],
        version: str,
        community: bytes,
        timeout: float,
        retries: int,
    ) -> None:
        self.dispatcher = dispatcher
        self.address = address
        self.version = version
        self._msg_version = ber.V1 if version == "1" else ber.V2C
        self._community = community
        self._timeout = timeout
        self._retries = retries

    async def _call(self, pdu: int, oids: Sequence[OID], deadline: float, f2: int = 0, f3: int = 0) -> list[VarBind]:
        version, community = self._msg_version, self._community
        oid_list = list(oids)

        def build(rid: int) -> bytes:
            return ber.encode(version, community, pdu, rid, oid_list, f2, f3)

        message = await self.dispatcher.request(self.address, build, self._timeout, self._retries, deadline)
        if message.error_status:
            raise SnmpErrorStatus(message.error_status, message.error_index)
        return message.varbinds

    async def get(self, oids: Sequence[OID], deadline: float) -> list[VarBind]:
        return await self._call(ber.GET, oids, deadline)

    async def get_next(self, oids: Sequence[OID], deadline: float) -> list[VarBind]:
        return await self._call(ber.GET_NEXT, oids, deadline)

    async def get_bulk(self, oids: Sequence[OID], max_repetitions: int, deadline: float) -> list[VarBind]:
        if self.version == "1":
            raise SnmpError("GETBULK does not exist in SNMP v1")
        return await self._call(ber.GET_BULK, oids, deadline, 0, max_repetitions)
