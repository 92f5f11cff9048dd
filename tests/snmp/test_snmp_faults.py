"""Agents that hang, speak garbage, answer with wrong request ids or loop cost only their timeout, and
never slow down a healthy agent polled at the same time."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from probes.base import ProbeRequest, ProbeResult
from probes.snmp import ber
from probes.snmp.probe import SnmpProbe
from probes.snmp.settings import SnmpSettings
from tests.snmp.conftest import Snmpd

os.environ.setdefault("TEST_SNMP_COMMUNITY", "public")
Reply = Callable[[bytes], list[bytes]]


class _Peer(asyncio.DatagramProtocol):
    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.received = 0
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received += 1
        for answer in self.reply(data):
            self.transport.sendto(answer, addr)


@pytest.fixture
async def udp_peer() -> AsyncIterator[Callable[[Reply], Any]]:
    """Start UDP servers on 127.0.0.1 that answer requests with reply(request)."""
    started: list[Any] = []

    async def start(reply: Reply) -> tuple[int, _Peer]:
        loop = asyncio.get_running_loop()
        transport, peer = await loop.create_datagram_endpoint(lambda: _Peer(reply), local_addr=("127.0.0.1", 0))
        started.append(transport)
        return transport.get_extra_info("sockname")[1], peer

    yield start
    for transport in started:
        transport.close()


def silent(_: bytes) -> list[bytes]:
    return []


def garbage(request: bytes) -> list[bytes]:
    """Malformed BER: truncated messages, a length beyond the datagram, random bytes."""
    return [request[:7], b"\x30\x84\xff\xff\xff\xff\x02\x01", bytes(range(256)), b"\x30\x03\x02\x01"]


def wrong_ids(request: bytes) -> list[bytes]:
    msg = ber.decode(request)
    wrong = [(oid, (ber.INTEGER, 1)) for oid, _ in msg.varbinds]
    return [ber.encode(msg.version, msg.community, ber.RESPONSE, (msg.request_id + k) % 2**31, wrong) for k in (1, 7)]


def stuck(request: bytes) -> list[bytes]:
    """Answers every request with the OID it was asked for: a walk that never advances."""
    msg = ber.decode(request)
    same = [(oid, (ber.INTEGER, 1)) for oid, _ in msg.varbinds]
    if msg.pdu == ber.GET:
        same = [(oid, (ber.TIMETICKS, 4242)) for oid, _ in msg.varbinds]
    return [ber.encode(msg.version, msg.community, ber.RESPONSE, msg.request_id, same)]


async def timed_poll(probe: SnmpProbe, port: int, settings: SnmpSettings, check: str) -> tuple[ProbeResult, float]:
    start = time.monotonic()
    async with asyncio.timeout(10):
        result = await probe.run(ProbeRequest("127.0.0.1", None, port, 4.0, {}, check), settings)
    return result, time.monotonic() - start


@pytest.mark.parametrize("behaviour", [silent, garbage, wrong_ids], ids=["silent", "garbage", "wrong-request-id"])
async def test_bad_agent_costs_only_its_timeout(behaviour: Reply, udp_peer: Any, snmpd: Snmpd) -> None:
    """With timeout 0.4 s and 1 retry a bad agent fails after ~0.8 s (two tries, then "not responding"),
    while a healthy agent polled at the same time answers as fast as ever."""
    port, peer = await udp_peer(behaviour)
    settings = SnmpSettings.model_validate({"community": "${TEST_SNMP_COMMUNITY}", "timeout": "400ms", "retries": 1})
    probe = SnmpProbe()
    try:
        (bad, bad_s), (good, good_s) = await asyncio.gather(
            timed_poll(probe, port, settings, "bad/snmp"), timed_poll(probe, snmpd.port, settings, "good/snmp")
        )
        stats = probe.dispatcher_stats
    finally:
        await probe.close()
    assert not bad.ok and bad.error and bad.error.startswith("SNMP agent not responding")
    assert 0.75 <= bad_s < 1.3
    assert peer.received == 2
    assert good.ok, good.error
    assert good_s < 0.75
    if behaviour is garbage:
        assert stats["malformed"] == 8
    if behaviour is wrong_ids:
        assert stats["unmatched"] == 4


async def test_walk_that_never_advances_terminates(udp_peer: Any) -> None:
    """An agent that answers every GETBULK with the OID asked for ends the walk at once, not in a loop."""
    port, peer = await udp_peer(stuck)
    settings = SnmpSettings.model_validate({"community": "${TEST_SNMP_COMMUNITY}", "timeout": "400ms"})
    probe = SnmpProbe()
    try:
        result, seconds = await timed_poll(probe, port, settings, "stuck/snmp")
    finally:
        await probe.close()
    assert result.ok, result.error
    assert result.info["interfaces"] == "0 of 0 selected"
    assert seconds < 0.5 and peer.received <= 3


async def test_endless_walk_is_capped(udp_peer: Any) -> None:
    """An agent that invents rows forever stops at max_walk_varbinds with a clear error."""
    counter = iter(range(10**9))

    def endless(request: bytes) -> list[bytes]:
        msg = ber.decode(request)
        if msg.pdu == ber.GET:
            return [ber.encode(msg.version, msg.community, ber.RESPONSE, msg.request_id,
                               [(oid, (ber.TIMETICKS, 100)) for oid, _ in msg.varbinds])]  # fmt: skip
        rows = []
        for _ in range(msg.error_index):
            n = next(counter) + 1
            rows += [((*oid[:10], n), (ber.OCTET_STRING, b"x")) for oid, _ in msg.varbinds]
        return [ber.encode(msg.version, msg.community, ber.RESPONSE, msg.request_id, rows)]

    port, _ = await udp_peer(endless)
    settings = SnmpSettings.model_validate({"community": "${TEST_SNMP_COMMUNITY}", "max_walk_varbinds": 500})
    probe = SnmpProbe()
    try:
        result, _ = await timed_poll(probe, port, settings, "endless/snmp")
    finally:
        await probe.close()
    assert not result.ok and result.error and "walk stopped after" in result.error
