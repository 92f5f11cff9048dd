"""Malformed and hostile export through the collector: each is a clear counter, nothing raises, and what
was valid in the same datagram or after it is still decoded. Sampling, withdrawal, expiry and sequence
accounting are checked here too, on datagrams whose every byte the test spells out (RFC 7011 / 3954)."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from ipaddress import IPv4Address

import pytest
from prometheus_client import CollectorRegistry

from monitor.config.flows import FlowsConfig
from monitor.flows.collector import FlowCollector, FlowMetrics
from monitor.flows.records import FlowRecord
from tests.snmp.conftest import free_udp_port

EXPORTER = "127.0.0.1"
NOW = 1_800_000_000.0
V4 = [(8, 4), (12, 4), (4, 1), (7, 2), (11, 2), (1, 4), (2, 4)]  # src, dst, proto, ports, octets, packets


class Recorder:
    def __init__(self) -> None:
        self.records: list[FlowRecord] = []

    def on_flows(self, records: list[FlowRecord]) -> None:
        self.records.extend(records)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def ipfix(sets: list[bytes], sequence: int = 0, domain: int = 1) -> bytes:
    body = b"".join(sets)
    return struct.pack(">HHIII", 10, 16 + len(body), int(NOW), sequence, domain) + body


def v9(sets: list[bytes], sequence: int = 0, domain: int = 1, uptime: int = 60_000) -> bytes:
    return struct.pack(">HHIIII", 9, len(sets), uptime, int(NOW), sequence, domain) + b"".join(sets)


def flowset(set_id: int, body: bytes) -> bytes:
    return struct.pack(">HH", set_id, 4 + len(body)) + body


def template(template_id: int, fields: list[tuple[int, int]]) -> bytes:
    return struct.pack(">HH", template_id, len(fields)) + b"".join(struct.pack(">HH", t, n) for t, n in fields)


def record(src: str, dst: str, dport: int, octets: int = 1000, packets: int = 10) -> bytes:
    return IPv4Address(src).packed + IPv4Address(dst).packed + struct.pack(">BHHII", 6, 40000, dport, octets, packets)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def setup(clock: Clock) -> AsyncIterator[tuple[FlowCollector, Recorder, CollectorRegistry]]:
    registry = CollectorRegistry()
    sink = Recorder()
    config = FlowsConfig(
        listen=f"127.0.0.1:{free_udp_port()}", exporters=[{"address": EXPORTER}], template_timeout=600,
        rate_limit={"per_second": 5, "burst": 5},
    )  # fmt: skip
    collector = FlowCollector(config, FlowMetrics(registry), [sink], clock=clock)
    await collector.start()
    yield collector, sink, registry
    collector.close()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


Setup = tuple[FlowCollector, Recorder, CollectorRegistry]


def test_data_before_its_template_is_counted_not_guessed(setup: Setup) -> None:
    collector, sink, registry = setup
    data = flowset(256, record("10.1.0.5", "10.2.0.1", 445))
    collector.datagram(ipfix([data]), EXPORTER)
    assert sink.records == []
    assert value(registry, "monitor_flow_missing_template_total", exporter=EXPORTER) == 1
    collector.datagram(ipfix([flowset(2, template(256, V4)), data], sequence=0), EXPORTER)
    assert [str(r.dst) for r in sink.records] == ["10.2.0.1"]


def test_truncated_set_keeps_the_complete_records_and_the_sets_before(setup: Setup) -> None:
    collector, sink, registry = setup
    records = b"".join(record("10.1.0.5", f"10.2.0.{h}", 445) for h in range(1, 4))
    whole = ipfix([flowset(2, template(256, V4)), flowset(256, records)])
    collector.datagram(whole[:-10], EXPORTER)  # the third record is cut
    assert [str(r.dst) for r in sink.records] == ["10.2.0.1", "10.2.0.2"]
    assert value(registry, "monitor_flow_malformed_total", exporter=EXPORTER, reason="truncated_message") == 1
    assert value(registry, "monitor_flow_malformed_total", exporter=EXPORTER, reason="truncated_set") == 1


def test_a_set_length_below_its_header_stops_the_message_not_the_collector(setup: Setup) -> None:
    collector, sink, registry = setup
    good = flowset(256, record("10.1.0.5", "10.2.0.1", 445))
    collector.datagram(ipfix([flowset(2, template(256, V4)), good, struct.pack(">HH", 256, 2), good]), EXPORTER)
    assert len(sink.records) == 1
    assert value(registry, "monitor_flow_malformed_total", exporter=EXPORTER, reason="bad_set_length") == 1


def test_a_template_that_redefines_its_id_replaces_the_layout(setup: Setup) -> None:
    collector, sink, registry = setup
    collector.datagram(ipfix([flowset(2, template(256, V4))]), EXPORTER)
    swapped = [(12, 4), (8, 4), *V4[2:]]  # the same id, destination first now
    collector.datagram(ipfix([flowset(2, template(256, swapped)), flowset(256, record("10.2.0.1", "10.1.0.5", 80))]),
                       EXPORTER)  # fmt: skip
    assert (str(sink.records[0].src), str(sink.records[0].dst)) == ("10.1.0.5", "10.2.0.1")
    assert value(registry, "monitor_flow_template_events_total", exporter=EXPORTER, event="replaced") == 1
    # a field named twice is read at its first occurrence (RFC 7011 3.4.1: in the order of its treatment)
    twice = [*V4, (8, 4)]
    data = record("10.1.0.5", "10.2.0.1", 80) + IPv4Address("192.0.2.99").packed
    collector.datagram(ipfix([flowset(2, template(257, twice)), flowset(257, data)]), EXPORTER)
    assert str(sink.records[1].src) == "10.1.0.5"


def test_zero_length_fields_and_zero_length_templates(setup: Setup) -> None:
    collector, sink, registry = setup
    with_empty = [(5, 0), *V4, (61, 0)]  # fields of no bytes: present, empty, skipped
    data = flowset(256, record("10.1.0.5", "10.2.0.1", 443))
    collector.datagram(ipfix([flowset(2, template(256, with_empty)), data]), EXPORTER)
    assert len(sink.records) == 1
    # a template whose records have no bytes at all would make a data set endless: refused
    collector.datagram(ipfix([flowset(2, template(300, [(5, 0)])), flowset(300, b"\x00" * 8)]), EXPORTER)
    assert value(registry, "monitor_flow_malformed_total", exporter=EXPORTER, reason="invalid_template") == 1
    assert value(registry, "monitor_flow_missing_template_total", exporter=EXPORTER) == 1
    # an address of 3 bytes is no address
    collector.datagram(ipfix([flowset(2, template(301, [(8, 3), (12, 4)]))]), EXPORTER)
    assert value(registry, "monitor_flow_malformed_total", exporter=EXPORTER, reason="invalid_template") == 2


def test_variable_length_and_enterprise_fields_are_stepped_over(setup: Setup) -> None:
    collector, sink, _registry = setup
    fields = struct.pack(">HH", 0x8000 | 12, 4) + struct.pack(">I", 9999)  # an enterprise's own element
    fields += struct.pack(">HH", 82, 65535)  # interfaceName, variable length
    fields += b"".join(struct.pack(">HH", t, n) for t, n in V4)
    tmpl = struct.pack(">HH", 256, 2 + len(V4)) + fields
    short = b"\xde\xad\xbe\xef" + b"\x04eth0" + record("10.1.0.5", "10.2.0.1", 443)
    long = b"\xde\xad\xbe\xef" + b"\xff\x01\x00" + b"x" * 256 + record("10.1.0.5", "10.2.0.2", 443)  # 3-byte length
    collector.datagram(ipfix([flowset(2, tmpl), flowset(256, short + long)]), EXPORTER)
    assert [(str(r.dst), r.dst_port, r.octets) for r in sink.records] == [
        ("10.2.0.1", 443, 1000),
        ("10.2.0.2", 443, 1000),
    ]


async def test_a_flood_from_an_unknown_exporter_is_counted_and_dropped_unread(setup: Setup) -> None:
    collector, sink, registry = setup
    host, port = collector.address
    flood = ipfix([flowset(2, template(256, V4)), flowset(256, record("10.1.0.5", "10.2.0.1", 445))])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.bind(("127.0.0.2", 0))  # not in flows.exporters
        for _ in range(2000):
            stranger.sendto(flood, (host, port))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as known:
        known.bind((EXPORTER, 0))
        known.sendto(flood, (host, port))
        for _ in range(200):
            if sink.records:
                break
            await asyncio.sleep(0.05)
    unknown = value(registry, "monitor_flow_datagrams_total", exporter="unknown", outcome="unknown_exporter")
    kernel = value(registry, "monitor_flow_dropped_total", reason="kernel")
    assert unknown + kernel == 2000
    assert len(sink.records) == 1  # the real exporter's flow, and none of the stranger's
    assert "127.0.0.2" not in collector.decoder.domains


def test_over_the_rate_limit_flows_are_counted_and_templates_still_learned(setup: Setup) -> None:
    collector, sink, registry = setup
    data = flowset(256, record("10.1.0.5", "10.2.0.1", 445))
    for sequence in range(5):  # the burst: decoded
        collector.datagram(ipfix([data], sequence=sequence), EXPORTER)
    collector.datagram(ipfix([flowset(2, template(256, V4)), data], sequence=5), EXPORTER)  # over it
    assert sink.records == []
    assert value(registry, "monitor_flow_datagrams_total", exporter=EXPORTER, outcome="rate_limited") == 1
    assert value(registry, "monitor_flow_records_total", exporter=EXPORTER, outcome="rate_limited") == 1
    assert collector.decoder.template_count(EXPORTER) == 1  # learned all the same


def test_sampling_from_options_scales_counts_per_sampler(setup: Setup) -> None:
    collector, sink, _registry = setup
    # IPFIX options template: scope selectorId, then samplingPacketInterval / samplingPacketSpace (1 in 100)
    options = struct.pack(">HHH", 400, 3, 1) + struct.pack(">HHHHHH", 302, 4, 305, 4, 306, 4)
    sampler_record = struct.pack(">III", 7, 1, 99)
    with_sampler = [*V4, (302, 4)]
    data = flowset(256, record("10.1.0.5", "10.2.0.1", 443) + struct.pack(">I", 7))
    plain = flowset(257, record("10.1.0.5", "10.2.0.2", 443))
    collector.datagram(
        ipfix([flowset(3, options), flowset(400, sampler_record), flowset(2, template(256, with_sampler)),
               flowset(2, template(257, V4)), data, plain]),
        EXPORTER,
    )  # fmt: skip
    sampled, unsampled = sink.records
    assert (sampled.octets, sampled.packets, sampled.sampling) == (100_000, 1000, 100)
    assert (unsampled.octets, unsampled.sampling) == (1000, 1)  # no sampler named, none announced for the domain
    # NetFlow v9: SAMPLING_INTERVAL in an options record scoped to the system applies to the whole domain
    v9_options = struct.pack(">HHH", 300, 4, 4) + struct.pack(">HHHH", 1, 4, 34, 4)
    collector.datagram(
        v9([flowset(1, v9_options + b"\x00\x00"), flowset(300, struct.pack(">II", 0, 10)),
            flowset(0, template(256, V4)), flowset(256, record("10.1.0.5", "10.2.0.3", 443))]),
        EXPORTER,
    )  # fmt: skip
    assert (sink.records[-1].octets, sink.records[-1].sampling) == (10_000, 10)


def test_withdrawal_and_expiry_forget_templates(setup: Setup, clock: Clock) -> None:
    collector, sink, registry = setup
    data = flowset(256, record("10.1.0.5", "10.2.0.1", 443))
    collector.datagram(ipfix([flowset(2, template(256, V4))]), EXPORTER)
    collector.datagram(ipfix([flowset(2, struct.pack(">HH", 256, 0)), data]), EXPORTER)  # withdrawn, then data
    assert sink.records == []
    assert value(registry, "monitor_flow_template_events_total", exporter=EXPORTER, event="withdrawn") == 1
    assert value(registry, "monitor_flow_templates", exporter=EXPORTER) == 0
    collector.datagram(ipfix([flowset(2, template(256, V4))]), EXPORTER)  # re-learned
    clock.now += 601
    collector.sweep()
    assert value(registry, "monitor_flow_template_events_total", exporter=EXPORTER, event="expired") == 1
    assert value(registry, "monitor_flow_templates", exporter=EXPORTER) == 0
    collector.datagram(ipfix([data]), EXPORTER)
    assert sink.records == []  # an expired template is not used


def test_sequence_gaps_count_packets_for_v9_and_records_for_ipfix(setup: Setup) -> None:
    collector, _sink, registry = setup
    two = flowset(256, record("10.1.0.5", "10.2.0.1", 443) + record("10.1.0.5", "10.2.0.2", 443))
    collector.datagram(ipfix([flowset(2, template(256, V4)), two], sequence=100), EXPORTER)
    collector.datagram(ipfix([two], sequence=102), EXPORTER)  # 100 + 2 records: no gap
    collector.datagram(ipfix([two], sequence=110), EXPORTER)  # 6 records lost
    assert value(registry, "monitor_flow_sequence_gaps_total", exporter=EXPORTER, domain="1") == 1
    assert value(registry, "monitor_flow_sequence_lost_total", exporter=EXPORTER, domain="1") == 6
    collector.datagram(v9([flowset(0, template(256, V4)), two], sequence=7, domain=2), EXPORTER)
    collector.datagram(v9([two], sequence=8, domain=2), EXPORTER)
    collector.datagram(v9([two], sequence=11, domain=2), EXPORTER)  # packets 9 and 10 lost
    assert value(registry, "monitor_flow_sequence_lost_total", exporter=EXPORTER, domain="2") == 2
    collector.datagram(v9([two], sequence=0, domain=2), EXPORTER)  # the exporter restarted
    assert value(registry, "monitor_flow_sequence_resets_total", exporter=EXPORTER, domain="2") == 1
    assert value(registry, "monitor_flow_sequence_gaps_total", exporter=EXPORTER, domain="2") == 1


def test_garbage_is_undecodable_and_a_bad_sink_stops_nobody(setup: Setup) -> None:
    collector, sink, registry = setup

    class Broken:
        def on_flows(self, records: list[FlowRecord]) -> None:
            raise RuntimeError("a consumer's bug")

    collector.sinks = [Broken(), sink]
    collector.datagram(b"\x00\x05garbage", EXPORTER)
    assert value(registry, "monitor_flow_datagrams_total", exporter=EXPORTER, outcome="undecodable") == 1
    collector.datagram(ipfix([flowset(2, template(256, V4)), flowset(256, record("10.1.0.5", "10.2.0.1", 1))]),
                       EXPORTER)  # fmt: skip
    assert len(sink.records) == 1
