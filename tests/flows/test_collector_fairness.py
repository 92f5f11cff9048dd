"""The collector shares the event loop with the probes, whose timers' lateness is their measured latency:
a burst of export must be read in slices, not in one turn that holds every probe back."""

from __future__ import annotations

import asyncio
import socket
import time

from prometheus_client import CollectorRegistry

from monitor.config.flows import FlowsConfig
from monitor.flows.collector import READ_BUDGET, FlowCollector, FlowMetrics
from monitor.flows.records import FlowRecord
from tests.flows.test_hostile import V4, flowset, ipfix, record, template
from tests.snmp.conftest import free_udp_port

SLOW = 0.002  # each datagram's flows cost this much in the sink: 80 of them would be one 160 ms turn


class SlowSink:
    def __init__(self) -> None:
        self.records: list[FlowRecord] = []

    def on_flows(self, records: list[FlowRecord]) -> None:
        until = time.perf_counter() + SLOW
        while time.perf_counter() < until:  # CPU, as decoding and policy are: sleeping would yield
            pass
        self.records.extend(records)


async def test_a_burst_of_export_does_not_hold_the_loop_beyond_the_read_budget() -> None:
    config = FlowsConfig(
        listen=f"127.0.0.1:{free_udp_port()}", exporters=[{"address": "127.0.0.1"}], template_timeout=600,
        rate_limit={"per_second": 100_000, "burst": 100_000}, receive_buffer=4 * 1024 * 1024,
    )  # fmt: skip
    sink = SlowSink()
    collector = FlowCollector(config, FlowMetrics(CollectorRegistry()), [sink])
    await collector.start()
    host, port = collector.address
    burst = 80
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(ipfix([flowset(2, template(256, V4))]), (host, port))
        await asyncio.sleep(0.05)
        for n in range(burst):  # all queued before the loop looks: one wake-up finds the whole burst
            sender.sendto(ipfix([flowset(256, record("10.1.0.5", f"10.2.{n // 250}.{n % 250 + 1}", 445))],
                                sequence=n), (host, port))  # fmt: skip
    gaps: list[float] = []
    last = time.perf_counter()
    try:
        async with asyncio.timeout(10):
            while len(sink.records) < burst:
                await asyncio.sleep(0)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now
    finally:
        collector.close()
    assert len(sink.records) == burst  # nothing lost by reading in slices
    # one turn is the budget (5 ms) plus the datagram that crossed it; the whole burst in one turn: 160 ms
    assert READ_BUDGET <= 0.01
    assert max(gaps) < 0.06, f"the loop was held {max(gaps) * 1000:.0f} ms"
