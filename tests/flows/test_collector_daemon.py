"""The `flows:` section (strict, clear errors) and the collector inside the daemon: started from the
config, its records handed to the daemon's flow sinks, its counters on /metrics, a reload applying a
new exporter list at once."""

from __future__ import annotations

import asyncio
import socket
import struct
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from monitor.config.loader import ConfigError, load_config
from monitor.daemon import Daemon
from monitor.flows.records import FlowRecord
from tests.conftest import Loader
from tests.snmp.conftest import free_tcp_port, free_udp_port

BASE = """\
modules:
  tcp: {kind: tcp}
targets:
  - name: edge
    address: 127.0.0.1
    checks: [{module: tcp, port: 9}]
"""


def test_flows_section_is_strict(load_yaml_config: Loader) -> None:
    loaded = load_yaml_config(BASE + "flows:\n  listen: 127.0.0.1:2055\n  exporters: [{address: 192.0.2.1}]\n")
    assert loaded.inventory.flows is not None
    assert loaded.inventory.flows.template_timeout == 1800.0
    cases = {
        "flows:\n  exporters: []\n": "at least 1 item",
        "flows:\n  exporters: [{address: 192.0.2.300}]\n": "exporter address must be an IP address or prefix",
        "flows:\n  exporters: [{address: 192.0.2.1}, {address: 192.0.2.1}]\n": "listed twice",
        "flows:\n  exporters: [{address: 192.0.2.1}]\n  port: 2055\n": "port",
        "flows:\n  exporters: [{address: 192.0.2.1, sampling: 0}]\n": "sampling",
        "flows:\n  exporters: [{address: 10.0.0.0/8}]\n  template_timeout: 1s\n": "template_timeout",
    }
    for text, message in cases.items():
        with pytest.raises(ConfigError) as info:
            load_yaml_config(BASE + text)
        assert any(message in m for m in info.value.messages), (text, info.value.messages)


class Recorder:
    def __init__(self) -> None:
        self.records: list[FlowRecord] = []

    def on_flows(self, records: list[FlowRecord]) -> None:
        self.records.extend(records)


def export() -> bytes:
    fields = [(8, 4), (12, 4), (4, 1), (7, 2), (11, 2), (1, 4), (2, 4), (10, 2), (14, 2)]
    template = struct.pack(">HH", 256, len(fields)) + b"".join(struct.pack(">HH", t, n) for t, n in fields)
    record = IPv4Address("10.1.0.5").packed + IPv4Address("10.2.0.1").packed
    record += struct.pack(">BHHIIHH", 6, 51000, 445, 40, 1, 3, 7)
    sets = struct.pack(">HH", 2, 4 + len(template)) + template + struct.pack(">HH", 256, 4 + len(record)) + record
    return struct.pack(">HHIII", 10, 16 + len(sets), 1_800_000_000, 0, 5) + sets


async def test_the_daemon_collects_flows_for_its_sinks(tmp_path: Path) -> None:
    port = free_udp_port()
    path = tmp_path / "monitor.yml"
    path.write_text(
        f"daemon: {{listen: 127.0.0.1:{free_tcp_port()}}}\n" + BASE
        + f"flows:\n  listen: 127.0.0.1:{port}\n  exporters: [{{address: 127.0.0.1}}]\n"
    )  # fmt: skip
    daemon = Daemon(load_config(path), data_dir=tmp_path / "data")
    sink = Recorder()
    daemon.flow_sinks.append(sink)  # what the flow policy does
    await daemon.start()
    try:
        assert daemon.flows is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as exporter:
            exporter.sendto(export(), ("127.0.0.1", port))
        for _ in range(200):
            if sink.records:
                break
            await asyncio.sleep(0.02)
        (flow,) = sink.records
        assert (str(flow.src), str(flow.dst), flow.dst_port, flow.input_if, flow.output_if) == (
            "10.1.0.5", "10.2.0.1", 445, 3, 7,
        )  # fmt: skip
        assert (flow.exporter, flow.observation_domain, flow.version) == ("127.0.0.1", 5, 10)
        labels = {"exporter": "127.0.0.1", "outcome": "decoded"}
        assert daemon.registry.get_sample_value("monitor_flow_records_total", labels) == 1
        # a reload that drops the exporter: its export is refused from then on
        path.write_text(path.read_text().replace("{address: 127.0.0.1}", "{address: 192.0.2.1}"))
        ok, errors = await daemon.reload()
        assert ok, errors
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as exporter:
            exporter.sendto(export(), ("127.0.0.1", port))
        unknown = {"exporter": "unknown", "outcome": "unknown_exporter"}
        for _ in range(200):
            if daemon.registry.get_sample_value("monitor_flow_datagrams_total", unknown):
                break
            await asyncio.sleep(0.02)
        assert daemon.registry.get_sample_value("monitor_flow_datagrams_total", unknown) == 1
        assert len(sink.records) == 1
    finally:
        daemon.stop()
        await daemon.shutdown()


async def test_a_second_daemon_on_the_same_addresses_fails_to_bind_and_the_first_keeps_its_datagrams(
    tmp_path: Path,
) -> None:
    """With SO_REUSEADDR both would bind, and Linux hands each datagram to one of them only (the last
    bound): a second daemon on the host (another shard, a test run) silently took the first's traps and
    flows. Now the second one's bind fails, says so in monitor_*_up, and the first receives everything."""
    flow_port, trap_port = free_udp_port(), free_udp_port()
    path = tmp_path / "monitor.yml"
    path.write_text(BASE + f"flows:\n  listen: 127.0.0.1:{flow_port}\n  exporters: [{{address: 127.0.0.1}}]\n")
    daemons = [
        Daemon(
            load_config(path),
            listen=f"127.0.0.1:{free_tcp_port()}",
            data_dir=tmp_path / f"data{i}",
            trap_listen=f"127.0.0.1:{trap_port}",
        )
        for i in range(2)
    ]
    first, second = daemons
    sink = Recorder()
    first.flow_sinks.append(sink)
    await first.start()
    await second.start()
    try:
        listen = {"listen": f"127.0.0.1:{flow_port}"}
        assert first.flows is not None and second.flows is None
        assert first.registry.get_sample_value("monitor_flow_collector_up", listen) == 1
        assert second.registry.get_sample_value("monitor_flow_collector_up", listen) == 0
        traps = {"listen": f"127.0.0.1:{trap_port}"}
        assert first.traps is not None and second.traps is None
        assert first.registry.get_sample_value("monitor_trap_listener_up", traps) == 1
        assert second.registry.get_sample_value("monitor_trap_listener_up", traps) == 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as exporter:
            for _ in range(3):
                exporter.sendto(export(), ("127.0.0.1", flow_port))
        for _ in range(200):
            if len(sink.records) == 3:
                break
            await asyncio.sleep(0.02)
        assert len(sink.records) == 3
    finally:
        for daemon in daemons:
            daemon.stop()
            await daemon.shutdown()


async def test_flow_listen_overrides_the_config(tmp_path: Path) -> None:
    port = free_udp_port()
    path = tmp_path / "monitor.yml"
    path.write_text(BASE + "flows:\n  listen: 127.0.0.1:1\n  exporters: [{address: 127.0.0.1}]\n")
    daemon = Daemon(load_config(path), listen=f"127.0.0.1:{free_tcp_port()}", data_dir=tmp_path / "data",
                    flow_listen=f"127.0.0.1:{port}")  # fmt: skip
    await daemon.start()
    try:
        assert daemon.flows is not None and daemon.flows.address == ("127.0.0.1", port)
    finally:
        daemon.stop()
        await daemon.shutdown()
