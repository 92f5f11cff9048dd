"""Real SNMP peers for the SNMP tests, all on loopback at free ports, stopped at the end:

- net-snmp `snmpd` (v1/v2c community `public`, SNMPv3 users with SHA-256/AES and SHA/AES authPriv);
- snmpsim agents serving recorded device data with moving counters (one process, one community per
  recording: `switch` has ifXTable 64-bit counters, `legacy` only 32-bit ones that wrap every ~8 s);
- the project's demo agent (monitor.demo.snmp_agent), whose links the tests can take down;
- the net-snmp command line (`snmpbulkwalk`, `snmptrap`, `snmpinform`) as the reference reader/sender.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.demo.snmp_agent import SimDevice, SimInterface, SnmpAgents

V3_AUTH = "monitor-auth-key-1"
V3_PRIV = "monitor-priv-key-1"
BIN = Path(sys.executable).parent


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/system-deps.sh installs them)")


def wait_udp_agent(port: int, community: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = subprocess.run(
            ["snmpget", "-v2c", "-c", community, "-t", "0.3", "-r", "0", f"127.0.0.1:{port}", "1.3.6.1.2.1.1.3.0"],
            capture_output=True,
            check=False,
        )
        if proc.returncode == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"SNMP agent on port {port} did not start")


@dataclass
class Snmpd:
    port: int
    proc: subprocess.Popen[bytes]
    directory: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_snmpd(directory: Path, port: int | None = None) -> Snmpd:
    need("snmpd", "snmpget")
    port = port or free_udp_port()
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "snmpd.conf"
    conf.write_text(
        f"agentAddress udp:127.0.0.1:{port}\n"
        "rocommunity public 127.0.0.1\n"
        "sysName test-snmpd\nsysLocation loopback\n"
        f'createUser mon256 SHA-256 "{V3_AUTH}" AES "{V3_PRIV}"\nrouser mon256 priv\n'
        f'createUser monsha SHA "{V3_AUTH}" AES "{V3_PRIV}"\nrouser monsha priv\n',
        encoding="utf-8",
    )
    env = {**os.environ, "SNMP_PERSISTENT_DIR": str(directory / "persist"), "MIBS": ""}
    log = (directory / "snmpd.log").open("ab")
    proc = subprocess.Popen(
        ["snmpd", "-f", "-Lo", "-C", "-c", str(conf), "-I", "-smux,mteTrigger,mteTriggerConf", "-p",
         str(directory / "snmpd.pid")],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    wait_udp_agent(port, "public")
    return Snmpd(port, proc, directory)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """A net-snmp snmpd on a free loopback port, for the whole session."""
    agent = start_snmpd(tmp_path_factory.mktemp("snmpd"))
    yield agent
    stop(agent.proc)


# --------------------------------------------------------------------------------------- snmpsim


def _rec(oid: str, tag: int | str, value: object) -> str:
    return f"{oid}|{tag}|{value}"


def recording(hc: bool) -> str:
    """A 4-port switch; counters move with snmpsim's numeric variation. Without `hc` it has only the
    32-bit counters, and port 1's ifInOctets runs at 2^32/8 octets/s, so it wraps every ~8 s."""
    lines = [
        _rec("1.3.6.1.2.1.1.1.0", 4, "Simulated prefecture switch" if hc else "Legacy router"),
        _rec("1.3.6.1.2.1.1.2.0", 6, "1.3.6.1.4.1.9.1.1"),
        _rec("1.3.6.1.2.1.1.3.0", "67:numeric", "rate=100,initial=360000"),
        _rec("1.3.6.1.2.1.1.5.0", 4, "sim-switch" if hc else "sim-legacy"),
    ]
    ports = range(1, 5)
    names = {1: "Gi0/1", 2: "Gi0/2", 3: "Gi0/3", 4: "Gi0/4"}
    aliases = {1: "LGWAN uplink", 2: "inter-prefecture circuit", 3: "", 4: "unused"}
    oper = {1: 1, 2: 1, 3: 2, 4: 2}
    admin = {1: 1, 2: 1, 3: 1, 4: 2}
    cols: list[tuple[tuple[int, ...], str]] = []
    base, xbase = "1.3.6.1.2.1.2.2.1", "1.3.6.1.2.1.31.1.1.1"
    for p in ports:
        rate_32 = 2**32 // 8 if p == 1 else 1000 * p
        cols += [
            ((2, 2, 1, 1, p), _rec(f"{base}.1.{p}", 2, p)),
            ((2, 2, 1, 2, p), _rec(f"{base}.2.{p}", 4, f"GigabitEthernet0/{p}")),
            ((2, 2, 1, 3, p), _rec(f"{base}.3.{p}", 2, 6)),
            ((2, 2, 1, 5, p), _rec(f"{base}.5.{p}", 66, 1_000_000_000)),
            ((2, 2, 1, 7, p), _rec(f"{base}.7.{p}", 2, admin[p])),
            ((2, 2, 1, 8, p), _rec(f"{base}.8.{p}", 2, oper[p])),
            ((2, 2, 1, 9, p), _rec(f"{base}.9.{p}", 67, 100 * p)),
            ((2, 2, 1, 10, p), _rec(f"{base}.10.{p}", "65:numeric", f"rate={rate_32},initial={p * 1000},wrap=1")),
            ((2, 2, 1, 11, p), _rec(f"{base}.11.{p}", "65:numeric", f"rate={10 * p},wrap=1")),
            ((2, 2, 1, 13, p), _rec(f"{base}.13.{p}", 65, 0)),
            ((2, 2, 1, 14, p), _rec(f"{base}.14.{p}", 65, 7 * p)),
            ((2, 2, 1, 16, p), _rec(f"{base}.16.{p}", "65:numeric", f"rate={500 * p},wrap=1")),
            ((2, 2, 1, 17, p), _rec(f"{base}.17.{p}", "65:numeric", f"rate={5 * p},wrap=1")),
            ((2, 2, 1, 19, p), _rec(f"{base}.19.{p}", 65, 0)),
            ((2, 2, 1, 20, p), _rec(f"{base}.20.{p}", 65, 3 * p)),
            ((31, 1, 1, 1, 1, p), _rec(f"{xbase}.1.{p}", 4, names[p])),
            ((31, 1, 1, 1, 15, p), _rec(f"{xbase}.15.{p}", 66, 1000)),
            ((31, 1, 1, 1, 18, p), _rec(f"{xbase}.18.{p}", 4, aliases[p])),
        ]
        if hc:
            cols += [
                ((31, 1, 1, 1, 6, p), _rec(f"{xbase}.6.{p}", "70:numeric", f"rate={1_000_000 * p},initial=5000000000")),
                ((31, 1, 1, 1, 10, p), _rec(f"{xbase}.10.{p}", "70:numeric", f"rate={400_000 * p}")),
            ] + [
                ((31, 1, 1, 1, c, p), _rec(f"{xbase}.{c}.{p}", "70:numeric", f"rate={c * p}"))
                for c in (7, 8, 9, 11, 12, 13)
            ]
    cols.sort()
    return "\n".join([*lines, *(line for _, line in cols)]) + "\n"


@dataclass
class Snmpsim:
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def snmpsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpsim]:
    """snmpsim serving two recordings: community `switch` (64-bit counters) and `legacy` (32-bit only)."""
    responder = BIN / "snmpsim-command-responder"
    if not responder.exists():
        pytest.skip("snmpsim is not installed (pip install -e '.[dev]')")
    need("snmpget")
    data = tmp_path_factory.mktemp("snmpsim")
    (data / "switch.snmprec").write_text(recording(hc=True), encoding="utf-8")
    (data / "legacy.snmprec").write_text(recording(hc=False), encoding="utf-8")
    port = free_udp_port()
    env = {**os.environ, "SNMPSIM_ALLOW_ROOT": "true"}  # tests run as root in CI; nothing here needs privileges
    log = (data / "snmpsim.log").open("ab")
    proc = subprocess.Popen(
        [str(responder), f"--data-dir={data}", f"--agent-udpv4-endpoint=127.0.0.1:{port}",
         f"--cache-dir={data / 'cache'}"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        wait_udp_agent(port, "switch", timeout=30)
        yield Snmpsim(port)
    finally:
        stop(proc)


# ------------------------------------------------------------------------------------ demo agents


@pytest.fixture
async def demo_agents() -> AsyncIterator[SnmpAgents]:
    """The demo's SNMP agent with two devices on 127.0.0.1 and 127.0.0.2 (community `public`)."""
    agents = SnmpAgents(0)
    for name, address in (("edge", "127.0.0.1"), ("core", "127.0.0.2")):
        interfaces = [SimInterface(i, f"Gi0/{i}", f"circuit {i}", 1000, 1e6 * i) for i in range(1, 11)]
        await agents.add(SimDevice(name, address, b"public", interfaces))
    yield agents
    agents.close()


# ------------------------------------------------------------------------------------------ net-snmp


def parse_walk(text: str) -> dict[str, str]:
    """snmpbulkwalk -On -Oqv style output "OID VALUE" lines into {oid: value}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if " " in line:
            oid, value = line.split(" ", 1)
            out[oid.lstrip(".")] = value.strip().strip('"')
    return out


async def bulkwalk(address: str, community: str, *oids: str, version: str = "2c") -> dict[str, str]:
    """Values as net-snmp reads them (numeric OIDs, bare values)."""
    cmd = ["snmpbulkwalk", "-Cr25"] if version != "1" else ["snmpwalk"]
    out: dict[str, str] = {}
    for oid in oids:
        proc = await asyncio.create_subprocess_exec(
            *cmd, f"-v{version}", "-c", community, "-On", "-Oqe", "-Ot", address, oid,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await proc.communicate()
        assert proc.returncode == 0, stderr.decode()
        out.update(parse_walk(stdout.decode()))
    return out


@pytest.fixture
async def ipv6_agent() -> AsyncIterator[SnmpAgents]:
    """The demo agent on the IPv6 loopback (skipped where there is none)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback (::1) on this host")
    agents = SnmpAgents(0)
    await agents.add(SimDevice("v6", "::1", b"public", [SimInterface(1, "Gi0/1", "uplink", 1000, 1e6)]))
    yield agents
    agents.close()
