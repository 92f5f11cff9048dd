"""Real exporters into the collector, with nfdump as the oracle of what was sent: softflowd (v9, IPFIX,
sampled and not) and pmacct's nfprobe (other templates: 8-byte counters, epoch-millisecond times)
export to nfcapd, which mirrors every datagram to our collector; what we decode must be what nfdump
reads from its own copy, flow for flow."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.config.flows import FlowsConfig
from monitor.flows.collector import FlowCollector, FlowMetrics
from monitor.flows.records import FlowRecord
from tests.flows.peers import CLIENT, SCANNED, Nfcapd, make_pcap, need, pmacctd, softflowd
from tests.snmp.conftest import free_udp_port

os.environ.setdefault("TZ", "UTC")  # nfdump prints local time


class Recorder:
    def __init__(self) -> None:
        self.records: list[FlowRecord] = []

    def on_flows(self, records: list[FlowRecord]) -> None:
        self.records.extend(records)


@pytest.fixture
async def collector() -> AsyncIterator[tuple[FlowCollector, Recorder, CollectorRegistry]]:
    registry = CollectorRegistry()
    sink = Recorder()
    config = FlowsConfig(listen=f"127.0.0.1:{free_udp_port()}", exporters=[{"address": "127.0.0.1"}])
    receiver = FlowCollector(config, FlowMetrics(registry), [sink])
    await receiver.start()
    yield receiver, sink, registry
    receiver.close()


async def until(condition: Callable[[], bool], within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


def _ms(text: object) -> int:
    stamp = datetime.fromisoformat(str(text)).replace(tzinfo=UTC)
    return round(stamp.timestamp() * 1000)


def oracle(flows: list[dict[str, object]]) -> set[tuple[object, ...]]:
    """nfdump's flows as comparable tuples. First and last are taken as a pair in either order: nfdump
    1.7.1 swaps them for softflowd's IPFIX (flowStartSysUpTime is element 22, flowEndSysUpTime 21)."""
    out: set[tuple[object, ...]] = set()
    for f in flows:
        if f.get("type") != "FLOW":
            continue
        src = f.get("src4_addr") or f.get("src6_addr")
        dst = f.get("dst4_addr") or f.get("dst6_addr")
        times = tuple(sorted((_ms(f["first"]), _ms(f["last"]))))
        out.add((src, dst, f["proto"], f["src_port"], f["dst_port"], f["in_bytes"], f["in_packets"], times))
    return out


def ours(records: list[FlowRecord], unscale: bool = False) -> set[tuple[object, ...]]:
    out: set[tuple[object, ...]] = set()
    for r in records:
        s = r.sampling if unscale else 1
        times = tuple(sorted((round(r.first_seen * 1000), round(r.last_seen * 1000))))
        out.add((str(r.src), str(r.dst), r.protocol, r.src_port, r.dst_port, r.octets // s, r.packets // s, times))
    return out


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("version", [9, 10])
async def test_softflowd_export_is_decoded_as_nfdump_reads_it(
    version: int, collector: tuple[FlowCollector, Recorder, CollectorRegistry], tmp_path: Path
) -> None:
    need("softflowd", "nfcapd", "nfdump")
    receiver, sink, registry = collector
    pcap = make_pcap(tmp_path / "t.pcap")
    nfcapd = Nfcapd(free_udp_port(), tmp_path / "nfcapd", mirror=receiver.address[1])
    port = nfcapd.port
    try:
        await asyncio.to_thread(softflowd, pcap, port, version)
        await until(lambda: len(sink.records) >= 24)  # 3 HTTPS + 20 SMB probes + 1 DNS over IPv6
        reference = await asyncio.to_thread(nfcapd.stop)
    finally:
        nfcapd.kill()
    assert ours(sink.records) == oracle(reference)
    assert len(sink.records) == 24
    scanned = {str(r.dst) for r in sink.records if r.dst_port == 445 and str(r.src) == CLIENT}
    assert scanned == set(SCANNED)
    assert {r.version for r in sink.records} == {version}
    assert value(registry, "monitor_flow_records_total", exporter="127.0.0.1", outcome="decoded") == 24
    assert value(registry, "monitor_flow_records_total", exporter="127.0.0.1", outcome="options") >= 1
    assert value(registry, "monitor_flow_missing_template_total", exporter="127.0.0.1") == 0
    assert value(registry, "monitor_flow_sequence_gaps_total", exporter="127.0.0.1", domain="0") == 0
    assert value(registry, "monitor_flow_templates", exporter="127.0.0.1") == 5  # v4, v4 ICMP, v6, v6 ICMP, options


@pytest.mark.parametrize("version", [9, 10])
async def test_sampled_export_is_scaled_by_the_announced_interval(
    version: int, collector: tuple[FlowCollector, Recorder, CollectorRegistry], tmp_path: Path
) -> None:
    """softflowd -s 4 samples 1 packet in 4 and says so in an options record (v9 SAMPLING_INTERVAL,
    IPFIX samplingPacketInterval/Space): counts are scaled by 4, and unscaled they are nfdump's."""
    need("softflowd", "nfcapd", "nfdump")
    receiver, sink, registry = collector
    pcap = make_pcap(tmp_path / "t.pcap")
    nfcapd = Nfcapd(free_udp_port(), tmp_path / "nfcapd", mirror=receiver.address[1])
    port = nfcapd.port
    try:
        await asyncio.to_thread(softflowd, pcap, port, version, 4)
        await until(
            lambda: value(registry, "monitor_flow_datagrams_total", exporter="127.0.0.1", outcome="accepted") >= 1
        )
        await asyncio.sleep(0.5)
        reference = await asyncio.to_thread(nfcapd.stop)
    finally:
        nfcapd.kill()
    assert sink.records
    assert {r.sampling for r in sink.records} == {4}
    assert ours(sink.records, unscale=True) == oracle(reference)


async def test_pmacct_nfprobe_templates_are_decoded_as_nfdump_reads_them(
    collector: tuple[FlowCollector, Recorder, CollectorRegistry], tmp_path: Path
) -> None:
    need("pmacctd", "nfcapd", "nfdump")
    receiver, sink, registry = collector
    pcap = make_pcap(tmp_path / "t.pcap", keepalive=True)
    nfcapd = Nfcapd(free_udp_port(), tmp_path / "nfcapd", mirror=receiver.address[1])
    port = nfcapd.port
    try:
        with pmacctd(pcap, port, 10, tmp_path):
            await until(lambda: len(sink.records) >= 1, within=30)
            await asyncio.sleep(1.0)
        reference = await asyncio.to_thread(nfcapd.stop)
    finally:
        nfcapd.kill()
    assert ours(sink.records) == oracle(reference)
    templates = receiver.decoder.domains["127.0.0.1"]
    layouts = {t.fields for domain in templates.values() for t, _seen in domain.templates.values()}
    assert any(f.type == 152 and f.length == 8 for layout in layouts for f in layout)  # epoch ms, not uptime
    decoded = value(registry, "monitor_flow_records_total", exporter="127.0.0.1", outcome="decoded")
    assert decoded == len(sink.records)


def test_the_tools_are_the_ones_the_system_deps_install() -> None:
    need("softflowd", "nfcapd", "pmacctd")
    deps = (Path(__file__).resolve().parents[2] / "scripts" / "system-deps.sh").read_text()
    for package in ("softflowd", "nfdump", "pmacct"):
        assert package in deps
    assert subprocess.run(["nfdump", "-V"], capture_output=True, check=True).returncode == 0
