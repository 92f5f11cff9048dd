"""Capacity from a real SNMP agent (the demo's, on loopback): the SNMP probe polls a device whose two ports'
octet counters the test sets, and the capacity recorder turns the probe's own results into 5-minute slots of
the circuit made of those ports: the sum of their rates, against the sum of the speeds the agent reports
(ifSpeed). Only the clock is scripted (each result's time): a month of 5-minute slots is not waited for."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.availability.capacity import SLOT
from monitor.availability.capacity_recorder import CapacityRecorder
from monitor.availability.periods import month_span
from monitor.demo.snmp_agent import SimDevice, SimInterface, SnmpAgents
from monitor.store.sqlite import SQLiteStore
from probes.base import ProbeRequest
from probes.snmp.probe import SnmpProbe
from probes.snmp.settings import SnmpSettings
from tests.conftest import Loader

os.environ.setdefault("TEST_SNMP_COMMUNITY", "public")
CONFIG = """
modules:
  sw: {kind: snmp, snmp: {community: "${TEST_SNMP_COMMUNITY}"}}
targets:
  - {name: pref13-edge, address: 127.0.0.1, labels: {prefecture: "13"}, modules: [sw]}
capacity:
  circuits:
    - name: lgwan-13-bundle
      ports: [{check: pref13-edge/sw, interface: Gi0/13}, {check: pref13-edge/sw, interface: "circuit 26"}]
"""
RATES = {13: 10e6, 26: 30e6}  # bits per second the test counts on each port


async def test_slots_from_a_real_agent_sum_the_ports(load_yaml_config: Loader, tmp_path: Path) -> None:
    # ifIndex 13 and 26: the demo agent's per-port "wobble" factor is 1 for them, so in-octets = bits / 8
    # exactly (out-octets are 0.6 of that: its traffic is asymmetric)
    interfaces = [SimInterface(i, f"Gi0/{i}", f"circuit {i}", 100, 0.0) for i in (1, 13, 26)]
    agents = SnmpAgents(0)
    device = SimDevice("pref13-edge", "127.0.0.1", b"public", interfaces)
    await agents.add(device)
    probe = SnmpProbe()
    inventory = load_yaml_config(CONFIG).inventory
    store = SQLiteStore(tmp_path / "m.db")
    t0 = month_span(2026, 11)[0] + 30.0
    store.open(now=t0)
    clock = [t0]
    recorder = CapacityRecorder(store, lambda: inventory, lambda: clock[0])
    settings = SnmpSettings.model_validate({"community": "${TEST_SNMP_COMMUNITY}"})
    try:
        for i in range(12):
            for iface in interfaces:
                iface.counted = RATES.get(iface.index, 0.0) * 60 * i  # bits so far (rate 0: the counter holds)
            result = await probe.run(ProbeRequest("127.0.0.1", None, agents.port, 5.0, {}, "pref13-edge/sw"), settings)
            assert result.ok, result.error
            clock[0] = result.finished_at = t0 + 60 * i
            recorder.on_result("pref13-edge/sw", result)
        await recorder.flush()
        samples = await store.capacity_samples(t0 - 60, t0 + 3600, "lgwan-13-bundle")
    finally:
        await probe.close()
        agents.close()
        await store.close(clock[0])
    assert sorted({s.start for s in samples}) == [t0 - 30, t0 - 30 + SLOT]
    for s in samples:
        assert s.capacity_bps == 200e6  # 2 x ifSpeed 100 Mb/s, as the agent reports it
        expected = 40e6 if s.direction == "in" else 0.6 * 40e6
        assert s.bits_per_second == pytest.approx(expected, rel=1e-6)  # (out-octets are rounded down to whole octets)
