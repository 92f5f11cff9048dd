"""SNMPv3 for the benchmark's simulated devices (not part of the daemon): an authoritative USM engine in
front of monitor.demo.snmp_agent.SimDevice, on the same socket as its v1/v2c community.

The agent side of RFC 3414 on probes.snmp.usm: answers discovery with its engine id, boots and time
(usmStatsUnknownEngineIDs), unknown users and wrong digests with their reports, and everything else by
decrypting the scoped PDU, letting the device answer it as v2c would and sending that PDU back
encrypted and authenticated. Enough for a poller's benchmark and for snmp_exporter as a peer; it keeps
no replay cache and no time window of its own.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from monitor.demo.snmp_agent import SimDevice
from probes.snmp import ber, usm

UNKNOWN_ENGINE_IDS = (1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0)
UNKNOWN_USER_NAMES = (1, 3, 6, 1, 6, 3, 15, 1, 1, 3, 0)
WRONG_DIGESTS = (1, 3, 6, 1, 6, 3, 15, 1, 1, 5, 0)


class UsmAgent:
    """One device's SNMPv3 engine: a user table localized to its engine id."""

    def __init__(self, device: SimDevice, index: int, users: dict[bytes, tuple[str, bytes, str, bytes]]) -> None:
        self.device = device
        self.engine_id = b"\x80\x00\x1f\x88\x04" + b"bench" + index.to_bytes(4, "big")
        self.boots = 1
        self.started = time.monotonic()
        self.keys = {
            name: usm.localize_user(name, "authPriv", self.engine_id, a, ak, p, pk)
            for name, (a, ak, p, pk) in users.items()
        }
        self._salt = random.getrandbits(64)
        self.reports = 0

    def _clock(self) -> int:
        return int(time.monotonic() - self.started)

    def _report(self, message: usm.Message, oid: tuple[int, ...], keys: usm.UserKeys | None, request_id: int) -> bytes:
        self.reports += 1
        pdu = ber.encode_pdu(ber.REPORT, request_id, [(oid, (ber.COUNTER32, self.reports))])
        scoped = usm.encode_scoped(self.engine_id, b"", pdu)
        sender = keys or usm.UserKeys(message.user, "noAuthNoPriv")
        return usm.encode(
            sender, message.msg_id, self.engine_id, self.boots, self._clock(), scoped, reportable=False, flags=0
        )

    def answer(self, data: bytes) -> bytes | None:
        message = usm.decode(data)
        if not message.engine_id:  # discovery (RFC 3414 4)
            rid = usm.decode_scoped(message.scoped).request_id if message.scoped is not None else 0
            return self._report(message, UNKNOWN_ENGINE_IDS, None, rid)
        keys = self.keys.get(message.user)
        if keys is None:
            return self._report(message, UNKNOWN_USER_NAMES, None, 0)
        if not usm.authentic(message, keys):
            return self._report(message, WRONG_DIGESTS, None, 0)
        scoped = usm.open_scoped(message, keys)
        request = ber.Message(ber.V2C, self.device.community, scoped.pdu, scoped.request_id, scoped.error_status,
                              scoped.error_index, scoped.varbinds)  # fmt: skip
        reply = self.device.answer(request)
        if reply is None:
            return None
        # the v2c answer's PDU, as it is: past the message header, the version and the community
        _, i, stop = ber.header(reply, 0, len(reply))
        _, _, i = ber.header(reply, i, stop)
        _, _, i = ber.header(reply, i, stop)
        salt, self._salt = self._salt, (self._salt + 1) & 0xFFFFFFFFFFFFFFFF
        out = usm.encode_scoped(self.engine_id, scoped.context_name, reply[i:stop])
        return usm.encode(keys, message.msg_id, self.engine_id, self.boots, self._clock(), out, salt, reportable=False)


class DualProtocol(asyncio.DatagramProtocol):
    """One device's socket: v1/v2c to the device, v3 through its USM engine."""

    def __init__(self, device: SimDevice, agent: UsmAgent) -> None:
        self.device, self.agent = device, agent
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            _, i, stop = ber.header(data, 0, len(data))
            tag, s, e = ber.header(data, i, stop)
            if ber.read_int(data, tag, s, e) == usm.VERSION_3:
                reply = self.agent.answer(data)
            else:
                reply = self.device.answer(ber.decode(data))
        except ber.BerError:
            return
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)
