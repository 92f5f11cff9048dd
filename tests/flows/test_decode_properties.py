"""The decoder against an independent encoder: whatever template layout (field order, widths, fields we
do not read) and whatever flows scapy encodes as NetFlow v9 or IPFIX, we read back exactly those flows;
and cut anywhere, a datagram never raises and never yields a record that was not in it."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import replace
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.flows.decode import FlowDecoder
from monitor.flows.records import FlowRecord
from tests.flows.export import Flow, data, message, template
from tests.flows.peers import Nfcapd, need
from tests.snmp.conftest import free_udp_port

EXPORT_TIME = 1_800_000_000
UPTIME = 3_600_000
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def layouts(draw: st.DrawFn, ipfix: bool, v6: bool) -> list[tuple[int, int]]:
    fields = [(27, 16), (28, 16)] if v6 else [(8, 4), (12, 4)]
    fields += [(4, 1), (7, 2), (11, 2), (6, 1)]
    fields += [(1, draw(st.sampled_from([4, 8]))), (2, draw(st.sampled_from([4, 8])))]
    fields += [(10, draw(st.sampled_from([2, 4]))), (14, draw(st.sampled_from([2, 4])))]
    fields += [(152, 8), (153, 8)] if ipfix else [(22, 4), (21, 4)]
    fields += draw(st.lists(st.sampled_from([(5, 1), (60, 1), (61, 1)]), unique=True))  # read by nobody
    return draw(st.permutations(fields))


def _v4(value: int) -> IPv4Address | IPv6Address:
    return IPv4Address(value)


def _v6(value: int) -> IPv4Address | IPv6Address:
    return IPv6Address(value)


@st.composite
def flows(draw: st.DrawFn, layout: list[tuple[int, int]], ipfix: bool) -> Flow:
    width = dict(layout)
    v6 = 27 in width
    address = st.integers(0, 2**128 - 1 if v6 else 2**32 - 1).map(_v6 if v6 else _v4)
    if ipfix:
        start = draw(st.integers(1_500_000_000_000, 1_900_000_000_000))
        end = start + draw(st.integers(0, 3_600_000))
    else:
        start = draw(st.integers(0, UPTIME))
        end = draw(st.integers(start, UPTIME))
    return Flow(
        src=draw(address),
        dst=draw(address),
        protocol=draw(st.integers(0, 255)),
        src_port=draw(st.integers(0, 65535)),
        dst_port=draw(st.integers(0, 65535)),
        octets=draw(st.integers(0, 2 ** (8 * width[1]) - 1)),
        packets=draw(st.integers(0, 2 ** (8 * width[2]) - 1)),
        input_if=draw(st.integers(0, 2 ** (8 * width[10]) - 1)),
        output_if=draw(st.integers(0, 2 ** (8 * width[14]) - 1)),
        tcp_flags=draw(st.integers(0, 255)),
        start_ms=start,
        end_ms=end,
    )


@st.composite
def exports(draw: st.DrawFn) -> tuple[bool, list[tuple[int, int]], list[Flow], int]:
    ipfix = draw(st.booleans())
    layout = draw(layouts(ipfix, draw(st.booleans())))
    batch = draw(st.lists(flows(layout, ipfix), min_size=1, max_size=25))
    return ipfix, layout, batch, draw(st.integers(256, 65535))


def expected(flow: Flow, ipfix: bool, domain: int) -> FlowRecord:
    if ipfix:
        first, last = flow.start_ms / 1000.0, flow.end_ms / 1000.0
    else:
        first = EXPORT_TIME - (UPTIME - flow.start_ms) / 1000.0
        last = EXPORT_TIME - (UPTIME - flow.end_ms) / 1000.0
    return FlowRecord(
        "192.0.2.1", domain, 10 if ipfix else 9, flow.src, flow.dst, flow.protocol, flow.src_port,
        flow.dst_port, flow.octets, flow.packets, first, last, flow.input_if, flow.output_if, flow.tcp_flags, 1,
    )  # fmt: skip


@SETTINGS
@given(exports(), st.integers(0, 2**32 - 1))
def test_what_scapy_encodes_is_what_we_decode(export: tuple[bool, list[tuple[int, int]], list[Flow], int],
                                              domain: int) -> None:  # fmt: skip
    ipfix, layout, batch, template_id = export
    sets = [template(template_id, layout, ipfix), data(template_id, layout, batch, ipfix)]
    datagram = message(sets, ipfix, domain=domain, export_time=EXPORT_TIME, uptime=UPTIME)
    outcome = FlowDecoder(1800).decode(datagram, "192.0.2.1", EXPORT_TIME)
    assert outcome.malformed == []
    assert outcome.templates == ["learned"]
    assert outcome.records == [expected(f, ipfix, domain) for f in batch]


@SETTINGS
@given(exports(), st.data())
def test_a_cut_datagram_keeps_the_complete_records_and_invents_none(
    export: tuple[bool, list[tuple[int, int]], list[Flow], int], draw: st.DataObject
) -> None:
    ipfix, layout, batch, template_id = export
    decoder = FlowDecoder(1800)
    decoder.decode(message([template(template_id, layout, ipfix)], ipfix), "192.0.2.1", EXPORT_TIME)
    datagram = message([data(template_id, layout, batch, ipfix)], ipfix, export_time=EXPORT_TIME, uptime=UPTIME)
    cut = draw.draw(st.integers(0, len(datagram) - 1))
    outcome = decoder.decode(datagram[:cut], "192.0.2.1", EXPORT_TIME)
    every = [expected(f, ipfix, 0) for f in batch]
    assert outcome.records == every[: len(outcome.records)]  # a prefix: nothing made up, nothing reordered
    header = 16 if ipfix else 20
    record_length = sum(n for _t, n in layout)
    complete = max(0, (cut - header - 4) // record_length)
    assert len(outcome.records) == min(complete, len(batch))
    if cut >= header + 4:  # the data set header was there, its length says more than arrived
        assert "truncated_set" in outcome.malformed or "truncated_message" in outcome.malformed


@SETTINGS
@given(st.binary(max_size=600), st.sampled_from([b"\x00\x09", b"\x00\x0a"]))
def test_garbage_never_raises(payload: bytes, version: bytes) -> None:
    decoder = FlowDecoder(1800)
    assert decoder.decode(payload, "192.0.2.1", EXPORT_TIME).version in (0, 9, 10)
    outcome = decoder.decode(version + payload, "192.0.2.1", EXPORT_TIME)
    header = 20 if version == b"\x00\x09" else 16
    assert outcome.version == (0 if len(payload) + 2 < header else int.from_bytes(version, "big")) or (
        version == b"\x00\x0a" and outcome.version == 0  # an IPFIX length shorter than its header
    )


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=st.lists(exports(), min_size=10, max_size=20))
def test_nfdump_reads_the_same_packets_as_we_do(batch: list[tuple[bool, list[tuple[int, int]], list[Flow], int]],
                                                tmp_path_factory: pytest.TempPathFactory) -> None:  # fmt: skip
    """The same scapy-made datagrams to nfcapd and to our decoder: nfdump -r reads the flows we read."""
    need("nfcapd", "nfdump")
    os.environ["TZ"] = "UTC"  # nfdump prints local time
    nfcapd = Nfcapd(free_udp_port(), tmp_path_factory.mktemp("nfcapd"))
    decoder = FlowDecoder(1800)
    ours: list[tuple[object, ...]] = []
    sent = 0
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for domain, (ipfix, layout, drawn, template_id) in enumerate(batch, start=1):  # a domain each
                # what nfdump reads its own way is left out: a FIRST_SWITCHED of 0 (its "no time"), and the
                # ports of protocols other than TCP and UDP (it shows ICMP type/code, or nothing)
                flows = [
                    replace(f, protocol=6 if f.protocol % 2 else 17, start_ms=max(f.start_ms, 1),
                            end_ms=max(f.end_ms, 1))
                    for f in drawn
                ]  # fmt: skip
                sets = [template(template_id, layout, ipfix), data(template_id, layout, flows, ipfix)]
                datagram = message(sets, ipfix, domain=domain, export_time=EXPORT_TIME, uptime=UPTIME)
                sender.sendto(datagram, ("127.0.0.1", nfcapd.port))
                sent += len(flows)
                for r in decoder.decode(datagram, "127.0.0.1", EXPORT_TIME).records:
                    ours.append((str(r.src), str(r.dst), r.protocol, r.src_port, r.dst_port, r.octets, r.packets,
                              round(r.first_seen * 1000), round(r.last_seen * 1000)))  # fmt: skip
                time.sleep(0.002)
        time.sleep(0.5)
        reference = nfcapd.stop()
    finally:
        nfcapd.kill()
    theirs = [
        (str(ip_address(str(f.get("src4_addr") or f.get("src6_addr")))),
         str(ip_address(str(f.get("dst4_addr") or f.get("dst6_addr")))), f["proto"],
         f["src_port"], f["dst_port"], f["in_bytes"], f["in_packets"], _ms(f["first"]), _ms(f["last"]))
        for f in reference if f.get("type") == "FLOW"
    ]  # fmt: skip
    assert len(ours) == sent
    assert sorted(map(str, ours)) == sorted(map(str, theirs))


def _ms(text: object) -> int:
    return round(datetime.fromisoformat(str(text)).replace(tzinfo=UTC).timestamp() * 1000)
