"""Traps and informs through the running daemon: net-snmp's snmptrap/snmpinform (v1, v2c, v3) trigger an
immediate re-poll that changes the interface check's state within seconds; every trap is counted;
unknown agents and OIDs are counted and logged; a burst of 2,000 traps loses no linkDown."""

from __future__ import annotations

import asyncio
import socket
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from monitor.config.loader import load_config
from monitor.daemon import Daemon
from monitor.demo.snmp_agent import SimDevice, SimInterface, SnmpAgents
from monitor.state import State
from probes.snmp import ber
from tests.snmp.conftest import V3_AUTH, V3_PRIV, free_tcp_port, free_udp_port, need

ENGINE_ID = "8000000001020304"
INTERFACES = 24
LINK_DOWN = (1, 3, 6, 1, 6, 3, 1, 1, 5, 3)
LINK_UP = (1, 3, 6, 1, 6, 3, 1, 1, 5, 4)
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
IF_INDEX = (1, 3, 6, 1, 2, 1, 2, 2, 1, 1)


def config(agent_port: int, trap_port: int, secrets: Path) -> str:
    (secrets / "community").write_text("public\n")
    (secrets / "auth").write_text(V3_AUTH + "\n")
    (secrets / "priv").write_text(V3_PRIV + "\n")
    checks = "\n".join(
        f"      - {{module: snmp_if, name: port{i}, interface: Gi0/{i}}}" for i in range(1, INTERFACES + 1)
    )
    return (
        textwrap.dedent(f"""\
        defaults: {{interval: 60s, timeout: 3s, retry_interval: 300ms, failures_to_down: 2, successes_to_up: 1}}
        modules:
          snmp_if:
            kind: snmp
            snmp: {{community: {{file: community}}, port: {agent_port}, timeout: 1s, retries: 1}}
        targets:
          - name: edge
            address: 127.0.0.1
            checks:
              - {{module: snmp_if, name: device}}
        """)
        + checks
        + textwrap.dedent(f"""
        traps:
          listen: 127.0.0.1:{trap_port}
          communities: [{{file: community}}]
          coalesce: 200ms
          rate_limit: {{per_second: 20, burst: 50}}
          v3_users:
            - {{username: trapper, auth_protocol: SHA-256, auth_key: {{file: auth}}, priv_key: {{file: priv}},
                engine_id: "{ENGINE_ID}"}}
            - {{username: informer, auth_protocol: SHA, auth_key: {{file: auth}}, priv_key: {{file: priv}}}}
          mappings:
            - {{oid: 1.3.6.1.4.1.99999.2.0.1, name: fwSecurityAlert, event: security}}
        """)
    )


class Running:
    def __init__(self, daemon: Daemon, agents: SnmpAgents, trap_port: int) -> None:
        self.daemon, self.agents, self.trap_port = daemon, agents, trap_port
        self.device = agents.devices["edge"]

    def state(self, check: str) -> State:
        return self.daemon.engine.checks[f"edge/{check}"].state

    def traps(self, trap: str, outcome: str = "accepted", agent: str = "127.0.0.1") -> float:
        labels = {"agent": agent, "trap": trap, "outcome": outcome}
        return self.daemon.registry.get_sample_value("monitor_snmp_traps_total", labels) or 0.0

    async def wait_state(self, check: str, state: State, within: float) -> float:
        start = time.monotonic()
        while time.monotonic() - start < within:
            if self.state(check) == state:
                return time.monotonic() - start
            await asyncio.sleep(0.05)
        raise AssertionError(f"{check} is {self.state(check)}, not {state}, after {within}s")


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    """The daemon (in-process) watching the demo agent's device `edge`, with its trap listener on."""
    need("snmptrap", "snmpinform")
    agents = SnmpAgents(0)
    interfaces = [SimInterface(i, f"Gi0/{i}", f"circuit {i}", 1000, 1e6) for i in range(1, INTERFACES + 1)]
    await agents.add(SimDevice("edge", "127.0.0.1", b"public", interfaces))
    trap_port = free_udp_port()
    (tmp_path / "monitor.yml").write_text(config(agents.port, trap_port, tmp_path), encoding="utf-8")
    loaded = load_config(tmp_path / "monitor.yml")
    daemon = Daemon(loaded, listen=f"127.0.0.1:{free_tcp_port()}", data_dir=tmp_path / "data")
    await daemon.start()
    assert daemon._scheduler is not None
    daemon._scheduler.probe_soon(loaded.inventory.checks)  # first results now, not within the startup spread
    run = Running(daemon, agents, trap_port)
    try:
        for i in range(1, INTERFACES + 1):
            await run.wait_state(f"port{i}", State.UP, 10)
        yield run
    finally:
        await daemon.shutdown()
        agents.close()


async def net_snmp(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()


async def test_link_down_trap_changes_state_within_seconds(running: Running) -> None:
    """A link that goes down is not seen until the next cycle (60 s); a linkDown trap (v2c, snmptrap)
    re-polls the interface at once and the check is DOWN within seconds."""
    running.device.set_link(3, up=False)
    await asyncio.sleep(1.0)
    assert running.state("port3") == State.UP  # no poll is due: without the trap nobody would know yet
    await net_snmp("snmptrap", "-v2c", "-c", "public", f"127.0.0.1:{running.trap_port}", "", "1.3.6.1.6.3.1.1.5.3",
                   "1.3.6.1.2.1.2.2.1.1.3", "i", "3", "1.3.6.1.2.1.2.2.1.8.3", "i", "2")  # fmt: skip
    took = await running.wait_state("port3", State.DOWN, 5)
    assert took < 3
    assert (
        running.daemon.engine.checks["edge/port3"].reason
        == "Gi0/3 (circuit 3) [ifIndex 3]: link down: admin up, oper down"
    )
    assert running.traps("linkDown") == 1
    assert running.state("port4") == State.UP


async def test_every_version_and_informs_are_received(running: Running) -> None:
    """v1 trap, v3 authPriv trap (SHA-256/AES, sender engine id), v3 and v2c informs: each counted, and
    the link traps each bring their interface DOWN; a mapped enterprise trap reaches the listeners."""
    events: list[Any] = []
    running.daemon.trap_listeners.append(events.append)
    port = running.trap_port
    v3 = ["-l", "authPriv", "-A", V3_AUTH, "-x", "AES", "-X", V3_PRIV]
    for i in (5, 6, 7):
        running.device.set_link(i, up=False)
    await net_snmp("snmptrap", "-v1", "-c", "public", f"127.0.0.1:{port}", "1.3.6.1.4.1.8072", "127.0.0.1", "2", "0",
                   "", "1.3.6.1.2.1.2.2.1.1.5", "i", "5")  # fmt: skip
    await net_snmp("snmptrap", "-v3", "-e", ENGINE_ID, "-u", "trapper", "-a", "SHA-256", *v3, f"127.0.0.1:{port}", "",
                   "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.6", "i", "6")  # fmt: skip
    await net_snmp("snmpinform", "-v3", "-u", "informer", "-a", "SHA", *v3, f"127.0.0.1:{port}", "",
                   "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.7", "i", "7")  # fmt: skip
    await net_snmp("snmpinform", "-v2c", "-c", "public", f"127.0.0.1:{port}", "", "1.3.6.1.4.1.99999.2.0.1",
                   "1.3.6.1.4.1.99999.2.1.1.0", "s", "blocked 10.1.2.3")  # fmt: skip
    for i in (5, 6, 7):
        await running.wait_state(f"port{i}", State.DOWN, 5)
    assert running.traps("linkDown") == 3
    assert running.traps("fwSecurityAlert") == 1
    security = [e for e in events if e.event == "security"]
    assert len(security) == 1 and security[0].agent == "127.0.0.1"
    assert ("1.3.6.1.4.1.99999.2.1.1.0", "blocked 10.1.2.3") in security[0].varbinds


async def test_unknown_agents_oids_and_bad_credentials_are_counted(running: Running) -> None:
    """Traps from an address that is no target, with an OID nobody mapped, or with a wrong community are
    counted (agent "unknown" where the agent is unknown), not dropped silently."""
    port = running.trap_port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.9", 0))
        sock.sendto(v2c_trap(1, LINK_DOWN, 1), ("127.0.0.1", port))
    await net_snmp("snmptrap", "-v2c", "-c", "public", f"127.0.0.1:{port}", "", "1.3.6.1.4.1.12345.9.9")
    await net_snmp("snmptrap", "-v2c", "-c", "not-the-community", f"127.0.0.1:{port}", "", "1.3.6.1.6.3.1.1.5.3")
    await asyncio.sleep(0.3)
    assert running.traps("linkDown", "unknown_agent", agent="unknown") == 1
    assert running.traps("unknown", "unknown_trap") == 1
    assert running.daemon.traps is not None
    running.daemon.traps.count_rejected()
    assert running.traps("unknown", "auth_failed", agent="unknown") == 1


def v2c_trap(request_id: int, trap: tuple[int, ...], if_index: int) -> bytes:
    varbinds: list[ber.VarBind] = [
        (SYS_UPTIME, (ber.TIMETICKS, 12345)),
        (TRAP_OID, (ber.OBJECT_IDENTIFIER, trap)),
        ((*IF_INDEX, if_index), (ber.INTEGER, if_index)),
    ]
    return ber.encode(ber.V2C, b"public", ber.TRAP_V2, request_id, varbinds)


async def test_burst_of_2000_traps_loses_no_link_down(running: Running) -> None:
    """2,000 traps at once (mostly linkUp noise for port 1, ten linkDowns for ports 11-20 in between):
    every trap is counted (most rate-limited) and all ten interfaces go DOWN."""
    down = list(range(11, 21))
    for i in down:
        running.device.set_link(i, up=False)
    datagrams = [v2c_trap(n, LINK_UP, 1) for n in range(1990)]
    for k, i in enumerate(down):
        datagrams.insert(150 + k * 190, v2c_trap(5000 + i, LINK_DOWN, i))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in datagrams:
            sock.sendto(datagram, ("127.0.0.1", running.trap_port))
    deadline = time.monotonic() + 20
    counted = 0.0
    while time.monotonic() < deadline:
        counted = sum(running.traps(t, o) for t in ("linkUp", "linkDown") for o in ("accepted", "rate_limited"))
        if counted >= 2000:
            break
        await asyncio.sleep(0.1)
    assert counted == 2000
    assert running.traps("linkDown", "accepted") + running.traps("linkDown", "rate_limited") == 10
    assert running.traps("linkUp", "rate_limited") > 1000
    for i in down:
        await running.wait_state(f"port{i}", State.DOWN, 10)
    assert running.state("port1") == State.UP
