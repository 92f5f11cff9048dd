"""SNMP probe against real agents: net-snmp snmpd (v1, v2c, v3 authPriv), snmpsim recordings with
moving counters, and the demo agent. Values are held to what net-snmp's own tools read."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from typing import Any

import pytest

from monitor.demo.snmp_agent import SnmpAgents
from probes.base import ProbeRequest, ProbeResult
from probes.snmp.probe import SnmpProbe
from probes.snmp.settings import SnmpSettings
from tests.snmp.conftest import V3_AUTH, V3_PRIV, Snmpd, Snmpsim, bulkwalk, start_snmpd, stop

IF = "1.3.6.1.2.1.2.2.1"
IFX = "1.3.6.1.2.1.31.1.1.1"
os.environ.setdefault("TEST_SNMP_COMMUNITY", "public")
os.environ.setdefault("TEST_SNMP_AUTH", V3_AUTH)
os.environ.setdefault("TEST_SNMP_PRIV", V3_PRIV)


def settings(**kw: Any) -> SnmpSettings:
    kw.setdefault("community", "${TEST_SNMP_COMMUNITY}") if kw.get("version", "2c") != "3" else None
    return SnmpSettings.model_validate(kw)


def v3(user: str, auth: str, **kw: Any) -> SnmpSettings:
    creds = {"username": user, "auth_protocol": auth, "auth_key": "${TEST_SNMP_AUTH}", "priv_key": "${TEST_SNMP_PRIV}"}
    return SnmpSettings.model_validate({"version": 3, "v3": {**creds, **kw}})


async def poll(
    probe: SnmpProbe, port: int, s: SnmpSettings, check: str = "dev/snmp", budget: float = 5.0, **params: Any
) -> ProbeResult:
    async with asyncio.timeout(budget + 2):  # a probe bug fails the test instead of hanging it
        return await probe.run(ProbeRequest("127.0.0.1", None, port, budget, params, check), s)


def series(result: ProbeResult) -> dict[tuple[str, str], float]:
    """{(metric name, ifIndex or name label): value}"""
    out: dict[tuple[str, str], float] = {}
    for s in result.series:
        labels = dict(s.labels)
        key = labels.get("if_index") or labels.get("name") or ""
        if "direction" in labels:
            key += "/" + labels["direction"]
        out[(s.name, key)] = s.value
    return out


def assert_declared(result: ProbeResult) -> None:
    """Every sample is of a family the SNMP kind declares: the same help, type and label names."""
    declared = {f.name: f for f in SnmpProbe.series}
    for s in result.series:
        family = declared.get(s.name)
        assert family is not None, f"{s.name} is not in SnmpProbe.series"
        assert (s.help, s.type, tuple(k for k, _ in s.labels)) == (family.help, family.type, family.labels), s


@pytest.fixture
async def probe() -> Any:
    p = SnmpProbe()
    yield p
    await p.close()


# --------------------------------------------------------------------------------- against snmpd


async def test_v2c_series_match_snmpbulkwalk_at_the_same_moment(snmpd: Snmpd, probe: SnmpProbe) -> None:
    """Every IF-MIB series equals what snmpbulkwalk reads: gauges exactly, counters between a walk just
    before and a walk just after the poll; if_name labels are the agent's."""
    s = settings()
    await poll(probe, snmpd.port, s)  # first poll reads labels; the second is a steady-state poll
    cols = [f"{IF}.7", f"{IF}.8", f"{IF}.13", f"{IF}.14", f"{IF}.19", f"{IF}.20", f"{IFX}.6", f"{IFX}.10",
            f"{IFX}.7", f"{IFX}.11", f"{IFX}.8", f"{IFX}.12", f"{IFX}.9", f"{IFX}.13", f"{IFX}.1", f"{IFX}.15"]  # fmt: skip
    before = await bulkwalk(snmpd.address, "public", *cols)
    result = await poll(probe, snmpd.port, s)
    after = await bulkwalk(snmpd.address, "public", *cols)
    assert result.ok, result.error
    assert_declared(result)
    got = series(result)
    names = {
        dict(x.labels)["if_index"]: dict(x.labels)["if_name"]
        for x in result.series
        if x.name == "monitor_if_oper_status"
    }
    assert names and names == {k.rsplit(".", 1)[1]: v for k, v in before.items() if k.startswith(f"{IFX}.1.")}
    gauges = {"monitor_if_admin_status": f"{IF}.7", "monitor_if_oper_status": f"{IF}.8"}
    counters = {
        "monitor_if_in_discards_total": f"{IF}.13", "monitor_if_in_errors_total": f"{IF}.14",
        "monitor_if_out_discards_total": f"{IF}.19", "monitor_if_out_errors_total": f"{IF}.20",
        "monitor_if_in_octets_total": f"{IFX}.6", "monitor_if_out_octets_total": f"{IFX}.10",
        "monitor_if_in_unicast_packets_total": f"{IFX}.7", "monitor_if_out_unicast_packets_total": f"{IFX}.11",
        "monitor_if_in_multicast_packets_total": f"{IFX}.8", "monitor_if_out_multicast_packets_total": f"{IFX}.12",
        "monitor_if_in_broadcast_packets_total": f"{IFX}.9", "monitor_if_out_broadcast_packets_total": f"{IFX}.13",
    }  # fmt: skip
    for index in names:
        for metric, column in gauges.items():
            assert got[(metric, index)] == float(before[f"{column}.{index}"]) == float(after[f"{column}.{index}"])
        for metric, column in counters.items():
            low, high = int(before[f"{column}.{index}"]), int(after[f"{column}.{index}"])
            assert low <= got[(metric, index)] <= high, (metric, index)
        speed = int(before[f"{IFX}.15.{index}"])
        if speed:
            assert got[("monitor_if_speed_bytes_per_second", index)] == speed * 1e6 / 8
    assert got[("monitor_snmp_up", "")] == 1.0
    assert result.info["sys_name"] == "test-snmpd"


async def test_v1_uses_32_bit_counters(snmpd: Snmpd, probe: SnmpProbe) -> None:
    """SNMP v1 (no Counter64, no GETBULK) polls with GETNEXT and reports ifInOctets (32-bit) values."""
    s = settings(version=1)
    before = await bulkwalk(snmpd.address, "public", f"{IF}.10", version="1")
    result = await poll(probe, snmpd.port, s)
    after = await bulkwalk(snmpd.address, "public", f"{IF}.10", version="1")
    assert result.ok, result.error
    got = series(result)
    assert probe.states["dev/snmp"].hc is False
    for oid, low in before.items():
        index = oid.rsplit(".", 1)[1]
        assert int(low) <= got[("monitor_if_in_octets_total", index)] <= int(after[oid])


@pytest.mark.parametrize(("user", "auth"), [("mon256", "SHA-256"), ("monsha", "SHA")])
async def test_v3_auth_priv(snmpd: Snmpd, probe: SnmpProbe, user: str, auth: str) -> None:
    """SNMPv3 authPriv with SHA-2 or SHA and AES reads the system group and the interfaces."""
    result = await poll(probe, snmpd.port, v3(user, auth))
    assert result.ok, result.error
    assert result.info["sys_name"] == "test-snmpd"
    assert any(s.name == "monitor_if_in_octets_total" for s in result.series)


async def test_v3_wrong_key_is_an_snmp_failure(snmpd: Snmpd, probe: SnmpProbe) -> None:
    """Wrong v3 credentials fail the check with monitor_snmp_up 0, within the check's timeout."""
    os.environ["TEST_SNMP_BAD"] = "not-the-right-key"
    s = SnmpSettings.model_validate({"version": 3, "timeout": "500ms", "retries": 0, "v3": {
        "username": "mon256", "auth_protocol": "SHA-256", "auth_key": "${TEST_SNMP_BAD}", "priv_key": "${TEST_SNMP_PRIV}"}})  # fmt: skip
    start = time.monotonic()
    result = await poll(probe, snmpd.port, s, budget=2.0)
    assert not result.ok and result.error
    assert series(result)[("monitor_snmp_up", "")] == 0.0
    assert time.monotonic() - start < 2.5


async def test_reboot_is_counted_and_counters_restart(tmp_path: Any, probe: SnmpProbe) -> None:
    """Restarting snmpd (sysUpTime back to zero) counts one reboot, not a counter wrap."""
    agent = start_snmpd(tmp_path / "a")
    try:
        await asyncio.sleep(1.5)  # an uptime visibly larger than right after the restart
        first = await poll(probe, agent.port, settings())
        assert series(first)[("monitor_device_reboots_total", "")] == 0.0
        stop(agent.proc)
        agent = start_snmpd(tmp_path / "a", agent.port)
        second = await poll(probe, agent.port, settings())
        assert second.ok, second.error
        got = series(second)
        assert got[("monitor_device_reboots_total", "")] == 1.0
        assert got[("monitor_device_uptime_seconds", "")] < series(first)[("monitor_device_uptime_seconds", "")] + 1
        assert "last_reboot_timestamp_seconds" in second.values
        third = await poll(probe, agent.port, settings())
        assert series(third)[("monitor_device_reboots_total", "")] == 1.0  # counted once
    finally:
        stop(agent.proc)


async def test_oid_thresholds(snmpd: Snmpd, probe: SnmpProbe) -> None:
    """Configured OIDs become monitor_snmp_value series; max/min/ok_values violations fail the check or
    (severity degraded) make it DEGRADED; a missing OID fails unless missing: ignore."""
    load = "1.3.6.1.4.1.2021.10.1.5"  # UCD-SNMP laLoadInt: load average x 100, one row per 1/5/15 min
    fine = settings(oids=[
        {"name": "load", "oid": load, "table": True, "max": 1_000_000},
        {"name": "sysname", "oid": "1.3.6.1.2.1.1.5.0", "ok_values": ["test-snmpd"]},
        {"name": "gone", "oid": "1.3.6.1.4.1.99999.1.0", "missing": "ignore"},
    ])  # fmt: skip
    result = await poll(probe, snmpd.port, fine)
    assert result.ok and result.degraded is None, result.error
    assert_declared(result)
    assert {k for k in series(result) if k[0] == "monitor_snmp_value"} == {("monitor_snmp_value", "load")}
    assert sum(1 for s in result.series if s.name == "monitor_snmp_value") == 3
    bad = settings(oids=[{"name": "load", "description": "CPU load", "oid": load, "table": True, "min": 1e9}])
    result = await poll(probe, snmpd.port, bad)
    assert not result.ok and result.error and "CPU load[1]" in result.error and "below min" in result.error
    warn = settings(oids=[{"name": "sysname", "oid": "1.3.6.1.2.1.1.5.0", "ok_values": ["x"], "severity": "degraded"}])
    result = await poll(probe, snmpd.port, warn)
    assert result.ok and result.degraded == "sysname is test-snmpd, expected one of x"
    missing = settings(oids=[{"name": "psu", "oid": "1.3.6.1.4.1.99999.1.0"}])
    result = await poll(probe, snmpd.port, missing)
    assert not result.ok and result.error == "psu: OID 1.3.6.1.4.1.99999.1.0 not found on the agent"


# ------------------------------------------------------------------------------- against snmpsim


async def test_interface_checks_follow_link_state(snmpsim: Snmpsim, probe: SnmpProbe) -> None:
    """An interface check by name, alias or index is ok when up; admin up + oper down is a link down;
    admin down fails unless admin_down: ok; an unknown interface is reported as such."""
    os.environ["TEST_SIM_COMMUNITY"] = "switch"
    s = SnmpSettings.model_validate({"community": "${TEST_SIM_COMMUNITY}"})
    ok = await poll(probe, snmpsim.port, s, check="sw/uplink", interface="Gi0/1")
    assert ok.ok, ok.error
    assert ok.info["interface"] == "Gi0/1 (LGWAN uplink) [ifIndex 1]"
    by_alias = await poll(probe, snmpsim.port, s, check="sw/circuit", interface="inter-prefecture circuit")
    assert by_alias.ok and by_alias.info["interface"].startswith("Gi0/2")
    down = await poll(probe, snmpsim.port, s, check="sw/p3", interface="3")
    assert not down.ok and down.error == "Gi0/3 [ifIndex 3]: link down: admin up, oper down"
    assert series(down)[("monitor_snmp_up", "")] == 1.0  # the agent answered: this is not an SNMP problem
    shut = await poll(probe, snmpsim.port, s, check="sw/p4", interface="Gi0/4")
    assert not shut.ok and shut.error == "Gi0/4 (unused) [ifIndex 4]: administratively down"
    relaxed = SnmpSettings.model_validate({"community": "${TEST_SIM_COMMUNITY}", "admin_down": "ok"})
    assert (await poll(probe, snmpsim.port, relaxed, check="sw/p4b", interface="Gi0/4")).ok
    missing = await poll(probe, snmpsim.port, s, check="sw/x", interface="Te9/9")
    assert not missing.ok and missing.error == 'interface "Te9/9" not found on the device'


async def test_interface_selection(snmpsim: Snmpsim, probe: SnmpProbe) -> None:
    """Only selected interfaces (name/alias regex, index, minus exclusions) become series."""
    os.environ["TEST_SIM_COMMUNITY"] = "switch"

    async def indexes(selection: dict[str, Any]) -> set[str]:
        s = SnmpSettings.model_validate({"community": "${TEST_SIM_COMMUNITY}", "interfaces": selection})
        result = await poll(probe, snmpsim.port, s, check=f"sw/{len(probe.states)}")
        assert result.ok, result.error
        return {dict(x.labels)["if_index"] for x in result.series if x.name == "monitor_if_oper_status"}

    assert await indexes({}) == {"1", "2", "3", "4"}
    assert await indexes({"names": ["^Gi0/[12]$"]}) == {"1", "2"}
    assert await indexes({"aliases": ["LGWAN"], "indexes": [4]}) == {"1", "4"}
    assert await indexes({"exclude": ["Gi0/4"]}) == {"1", "2", "3"}


async def test_64_bit_counters_and_utilisation(snmpsim: Snmpsim, probe: SnmpProbe) -> None:
    """ifHC* counters are used where present and utilisation = octets x 8 / seconds / speed."""
    os.environ["TEST_SIM_COMMUNITY"] = "switch"
    s = SnmpSettings.model_validate({"community": "${TEST_SIM_COMMUNITY}", "interfaces": {"indexes": [2]}})
    await poll(probe, snmpsim.port, s, check="sw/util")
    await asyncio.sleep(1.0)
    result = await poll(probe, snmpsim.port, s, check="sw/util")
    got = series(result)
    assert_declared(result)  # utilisation too (its direction label)
    assert probe.states["sw/util"].hc is True
    assert got[("monitor_if_in_octets_total", "2")] > 5_000_000_000  # a 64-bit value (initial 5e9)
    # port 2 receives 2,000,000 octets/s on a 1 Gb/s port: 1.6% utilisation
    assert got[("monitor_if_utilization_ratio", "2/in")] == pytest.approx(0.016, rel=0.2)
    assert got[("monitor_if_utilization_ratio", "2/out")] == pytest.approx(0.0064, rel=0.2)


async def test_32_bit_counter_wrap_is_extended(snmpsim: Snmpsim, probe: SnmpProbe) -> None:
    """A 32-bit ifInOctets that wraps (every ~8 s here) keeps counting up: the exported value grows by
    the real increase and stays congruent to the agent's value modulo 2^32."""
    os.environ["TEST_LEGACY_COMMUNITY"] = "legacy"
    s = SnmpSettings.model_validate({"community": "${TEST_LEGACY_COMMUNITY}", "interfaces": {"indexes": [1]}})
    values: list[tuple[float, int, int]] = []  # (time, exported, raw)
    wrapped = False
    for _ in range(8):
        result = await poll(probe, snmpsim.port, s, check="legacy/dev")
        assert result.ok, result.error
        track = probe.states["legacy/dev"].counters[(1, "in_octets")]
        exported = int(series(result)[("monitor_if_in_octets_total", "1")])
        if values and track.raw < values[-1][2]:
            wrapped = True
        values.append((time.monotonic(), exported, track.raw))
        if wrapped and len(values) >= 3:
            break
        await asyncio.sleep(2.5)
    assert probe.states["legacy/dev"].hc is False
    assert wrapped, "the recording's counter did not wrap during the test"
    rate = 2**32 / 8
    for (t0, v0, _), (t1, v1, raw1) in itertools.pairwise(values):
        assert v1 > v0
        assert (v1 - v0) == pytest.approx(rate * (t1 - t0), rel=0.25)
        assert v1 % 2**32 == raw1


# ---------------------------------------------------------------------------- against the demo agent


async def test_labels_are_cached_not_walked_every_poll(demo_agents: SnmpAgents, probe: SnmpProbe) -> None:
    """ifName/ifAlias are walked on the first poll, then every label_refresh_cycles polls or after a
    reboot; the polls between cost fewer requests."""
    s = settings(label_refresh_cycles=3, max_repetitions=10)
    costs = []
    for _ in range(5):
        before = demo_agents.requests("edge")
        assert (await poll(probe, demo_agents.port, s, check="edge/snmp")).ok
        costs.append(demo_agents.requests("edge") - before)
    assert costs[0] == costs[3] > costs[1] == costs[2] == costs[4]
    demo_agents.devices["edge"].reboot()
    before = demo_agents.requests("edge")
    result = await poll(probe, demo_agents.port, s, check="edge/snmp")
    assert series(result)[("monitor_device_reboots_total", "")] == 1.0
    await poll(probe, demo_agents.port, s, check="edge/snmp")  # the reboot marked labels stale: re-read now
    assert demo_agents.requests("edge") - before > 2 * costs[1]


async def test_reload_keeps_counters_and_reboot_detection(demo_agents: SnmpAgents) -> None:
    """A new probe instance that inherits the old one's state continues counters and still sees a
    reboot that happened across the reload."""
    s = settings()
    old = SnmpProbe()
    await asyncio.sleep(0.3)  # an uptime larger than right after the reboot
    await poll(old, demo_agents.port, s, check="edge/snmp")
    demo_agents.devices["edge"].reboot()
    new = SnmpProbe()
    new.inherit(old)
    await old.close()
    try:
        result = await poll(new, demo_agents.port, s, check="edge/snmp")
        assert series(result)[("monitor_device_reboots_total", "")] == 1.0
    finally:
        await new.close()


async def test_registry_hands_snmp_state_to_the_next_instance() -> None:
    """create_probes(previous) — what the daemon does on a config reload — gives the new SNMP probe the old
    one's per-check state (counters, uptime, label cache) instead of starting from nothing."""
    from probes.registry import close_probes, create_probes

    first = create_probes()
    snmp: Any = first["snmp"]
    snmp.states["edge/snmp"] = marker = probe_state_with_reboots(3)
    second = create_probes(first)
    try:
        assert second["snmp"] is not snmp
        assert getattr(second["snmp"], "states")["edge/snmp"] is marker  # noqa: B009
    finally:
        await close_probes(first)
        await close_probes(second)


def probe_state_with_reboots(reboots: int) -> Any:
    from probes.snmp.counters import DeviceState

    return DeviceState(reboots=reboots)


async def test_ipv6_agent(probe: SnmpProbe, ipv6_agent: SnmpAgents) -> None:
    """An agent on ::1 is polled over IPv6 (the shared dispatcher opens an IPv6 socket for it)."""
    request = ProbeRequest("::1", None, ipv6_agent.port, 5.0, {}, "v6/snmp")
    result = await probe.run(request, settings())
    assert result.ok, result.error
    assert result.info["sys_name"] == "v6"
