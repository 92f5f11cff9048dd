"""The own SNMPv3 client against net-snmp's snmpd on loopback: one user per auth/priv combination the
config allows (createUser in a generated snmpd.conf), each read through the probe; and each failure an
operator meets, with its exact reason: wrong auth key, wrong priv key, unknown user, a level the user does
not have, a stale engineBoots (the client resynchronizes), a replaced engine (it rediscovers), and an
answer whose MAC was tampered with on the way (rejected, never accepted)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from probes.base import ProbeRequest, ProbeResult
from probes.snmp import ber, usm
from probes.snmp.probe import SnmpProbe
from probes.snmp.settings import SnmpSettings
from probes.snmp.usm_client import V3Factory
from tests.snmp.conftest import Snmpd, free_udp_port, need, stop, wait_udp_agent

AUTH_KEY = "usm-auth-key-2026"
PRIV_KEY = "usm-priv-key-2026"
os.environ.setdefault("TEST_USM_AUTH", AUTH_KEY)
os.environ.setdefault("TEST_USM_PRIV", PRIV_KEY)
os.environ.setdefault("TEST_USM_WRONG", "not-the-key-at-all")

AUTHS = ["MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"]
# our priv_protocol -> net-snmp's createUser name for the same key extension
PRIVS = {"DES": "DES", "AES": "AES", "AES-192": "AES-192-C", "AES-256": "AES-256-C",
         "AES-192-Blumenthal": "AES-192", "AES-256-Blumenthal": "AES-256"}  # fmt: skip
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)


def user_name(auth: str | None, priv: str | None) -> str:
    return "u-" + "-".join(p.lower() for p in (auth or "none", priv or "none"))


def snmpd_conf(port: int) -> str:
    lines = [f"agentAddress udp:127.0.0.1:{port}", "rocommunity public 127.0.0.1", "sysName test-usm"]
    for auth in AUTHS:
        for priv in (None, *PRIVS):
            name = user_name(auth, priv)
            create = f'createUser {name} {auth} "{AUTH_KEY}"'
            lines.append(create + (f' {PRIVS[priv]} "{PRIV_KEY}"' if priv else ""))
            lines.append(f"rouser {name} {'priv' if priv else 'auth'}")
    lines += ["createUser u-none-none", "rouser u-none-none noauth"]
    return "\n".join(lines) + "\n"


def start(directory: Path, port: int) -> subprocess.Popen[bytes]:
    """snmpd with its persistent state (engine id, engineBoots) in `directory`: a restart with the same
    directory is a reboot of the same engine, with another directory a replaced device."""
    need("snmpd", "snmpget")
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "snmpd.conf"
    conf.write_text(snmpd_conf(port), encoding="utf-8")
    # no -C: snmpd must read its persistent file (engine id, engineBoots) back; SNMPCONFPATH keeps it
    # off the system's /etc/snmp
    env = {
        **os.environ,
        "SNMP_PERSISTENT_DIR": str(directory / "persist"),
        "SNMPCONFPATH": f"{directory}:{directory / 'persist'}",
        "MIBS": "",
    }
    log = (directory / "snmpd.log").open("ab")
    proc = subprocess.Popen(
        ["snmpd", "-f", "-Lo", "-I", "-smux,mteTrigger,mteTriggerConf",
         "-p", str(directory / "snmpd.pid")],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    wait_udp_agent(port, "public")
    return proc


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    directory = tmp_path_factory.mktemp("usm-snmpd")
    port = free_udp_port()
    proc = start(directory, port)
    yield Snmpd(port, proc, directory)
    stop(proc)


@pytest.fixture
async def probe() -> AsyncIterator[SnmpProbe]:
    p = SnmpProbe()
    yield p
    await p.close()


def v3(user: str, level: str, auth: str = "SHA", priv: str = "AES", **kw: Any) -> SnmpSettings:
    creds: dict[str, Any] = {"username": user, "security_level": level, "auth_protocol": auth, "priv_protocol": priv}
    if level != "noAuthNoPriv":
        creds["auth_key"] = kw.pop("auth_key", "${TEST_USM_AUTH}")
    if level == "authPriv":
        creds["priv_key"] = kw.pop("priv_key", "${TEST_USM_PRIV}")
    return SnmpSettings.model_validate({"version": 3, "timeout": "1s", "retries": 0, "v3": creds, **kw})


async def poll(probe: SnmpProbe, port: int, s: SnmpSettings, budget: float = 4.0) -> ProbeResult:
    async with asyncio.timeout(budget + 2):
        return await probe.run(ProbeRequest("127.0.0.1", None, port, budget, {}, "dev/snmp"), s)


def up(result: ProbeResult) -> float:
    return next(s.value for s in result.series if s.name == "monitor_snmp_up")


COMBOS = [(a, p) for a in AUTHS for p in PRIVS] + [(a, None) for a in AUTHS] + [(None, None)]


@pytest.mark.parametrize(("auth", "priv"), COMBOS, ids=[user_name(a, p) for a, p in COMBOS])
async def test_every_combination_reads_the_device(agent: Snmpd, probe: SnmpProbe, auth: str | None,
                                                  priv: str | None) -> None:  # fmt: skip
    """Each auth/priv combination the config allows polls snmpd: system group and interfaces."""
    level = "authPriv" if priv else "authNoPriv" if auth else "noAuthNoPriv"
    s = v3(user_name(auth, priv), level, auth or "SHA", priv or "AES", timeout="2s", retries=1)  # margin under load
    result = await poll(probe, agent.port, s, budget=8.0)
    assert result.ok, result.error
    assert result.info["sys_name"] == "test-usm"
    assert any(s.name == "monitor_if_in_octets_total" for s in result.series)
    assert probe._v3.stats.wrong_digest == 0 and probe._v3.stats.rejected == 0


async def test_wrong_auth_key_is_named(agent: Snmpd, probe: SnmpProbe) -> None:
    s = v3(user_name("SHA-256", "AES"), "authPriv", "SHA-256", auth_key="${TEST_USM_WRONG}")
    result = await poll(probe, agent.port, s)
    assert not result.ok and up(result) == 0.0
    assert result.error == (f'SNMP error: SNMPv3 wrong digest (authentication key mismatch) for user '
                            f'"{user_name("SHA-256", "AES")}" (agent reports usmStatsWrongDigests)')  # fmt: skip


async def test_unknown_user_is_named(agent: Snmpd, probe: SnmpProbe) -> None:
    result = await poll(probe, agent.port, v3("nobody-here", "authPriv"))
    assert result.error == ('SNMP error: SNMPv3 unknown user name for user "nobody-here" '
                            "(agent reports usmStatsUnknownUserNames)")  # fmt: skip


async def test_level_the_user_lacks_is_named(agent: Snmpd, probe: SnmpProbe) -> None:
    """A user created without privacy, asked for authPriv."""
    result = await poll(probe, agent.port, v3(user_name("SHA", None), "authPriv"))
    assert result.error == ('SNMP error: SNMPv3 security level not supported for the user for user "u-sha-none" '
                            "(agent reports usmStatsUnsupportedSecLevels)")  # fmt: skip


async def test_wrong_priv_key_is_named_not_a_dead_agent(agent: Snmpd, probe: SnmpProbe) -> None:
    """net-snmp drops what it cannot decrypt without a report: the client asks at authNoPriv once and
    names the privacy key, instead of "agent not responding"."""
    result = await poll(probe, agent.port, v3(user_name("SHA", "AES"), "authPriv", priv_key="${TEST_USM_WRONG}"))
    assert result.error is not None and result.error.startswith(
        'SNMP error: SNMPv3 privacy key or protocol mismatch for user "u-sha-aes"'
    )
    # the same with the wrong extension (Reeder for a Blumenthal user: the key differs past SHA-1's 20 bytes)
    s = v3(user_name("SHA", "AES-256-Blumenthal"), "authPriv", priv="AES-256")
    result = await poll(probe, agent.port, s)
    assert result.error is not None and "privacy key or protocol mismatch" in result.error


async def test_stale_engine_boots_resynchronize(agent: Snmpd, probe: SnmpProbe) -> None:
    """A wrong engineBoots is answered with an authenticated notInTimeWindow report: the client takes
    the agent's clock from it and the poll succeeds; the report itself reads as the exact reason."""
    s = v3(user_name("SHA-512", "AES"), "authPriv", "SHA-512")
    assert (await poll(probe, agent.port, s)).ok
    engine = probe._v3.engines[("127.0.0.1", agent.port)]
    real = engine.boots
    engine.boots += 7  # our notion is wrong (as after the agent's reboot, the other way round)
    result = await poll(probe, agent.port, s)
    assert result.ok, result.error
    assert engine.boots == real

    # the report, as the agent sends it, named
    factory = V3Factory()
    try:
        session = await factory.session("127.0.0.1", agent.port, s)
        found = await factory.engine(session.address, 1.0, 0, time.monotonic() + 3)
        keys = factory.keys(session._cid, found.engine_id)
        raw = usm.encode(keys, 4242, found.engine_id, found.boots + 7, 5,
                         usm.encode_scoped(found.engine_id, b"", ber.encode_pdu(ber.GET, 4242, [SYS_NAME])), 1)  # fmt: skip
        reply = await udp_exchange(agent.port, raw)
        message = usm.decode(reply)
        assert message.flags & usm.FLAG_AUTH and usm.authentic(message, keys)  # authenticated: safe to resync to
        scoped = usm.open_scoped(message, keys)
        from probes.snmp.usm_client import report_reason

        assert report_reason(scoped, "u-sha-512-aes") == (
            'SNMPv3 not in time window for user "u-sha-512-aes" (agent reports usmStatsNotInTimeWindows)'
        )
    finally:
        factory.close()


async def test_reboot_and_replacement(tmp_path: Path, probe: SnmpProbe) -> None:
    """snmpd restarted with its state (same engine id, engineBoots + 1): polls go on; restarted as a new
    device (new engine id): the unknownEngineID report makes the client rediscover and poll on."""
    port = free_udp_port()
    proc = start(tmp_path / "a", port)
    s = v3(user_name("SHA-256", "AES-256-Blumenthal"), "authPriv", "SHA-256", "AES-256-Blumenthal")
    try:
        assert (await poll(probe, port, s)).ok
        first = probe._v3.engines[("127.0.0.1", port)]
        engine_id, boots = first.engine_id, first.boots
        stop(proc)
        proc = start(tmp_path / "a", port)
        result = await poll(probe, port, s)
        assert result.ok, result.error
        now = probe._v3.engines[("127.0.0.1", port)]
        assert now.engine_id == engine_id and now.boots == boots + 1
        stop(proc)
        proc = start(tmp_path / "b", port)  # another device on the same address
        result = await poll(probe, port, s)
        assert result.ok, result.error
        assert probe._v3.engines[("127.0.0.1", port)].engine_id != engine_id
    finally:
        stop(proc)


class Tamper(asyncio.DatagramProtocol):
    """A UDP relay in front of snmpd that flips one bit of every authenticated answer's MAC."""

    def __init__(self, upstream: int, tamper: bool = True) -> None:
        self.upstream = ("127.0.0.1", upstream)
        self.client: Any = None
        self.transport: asyncio.DatagramTransport | None = None
        self.tamper = tamper
        self.drop = False  # the agent "dies": nothing passes
        self.tampered = 0
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        if self.drop:
            self.requests += addr[1] != self.upstream[1]
            return
        if addr[1] != self.upstream[1]:
            self.client = addr
            self.transport.sendto(data, self.upstream)
            return
        message = usm.decode(data)
        if self.tamper and message.flags & usm.FLAG_AUTH:
            raw = bytearray(data)
            raw[message.auth_offset] ^= 0x01
            data = bytes(raw)
            self.tampered += 1
        self.transport.sendto(data, self.client)


async def test_tampered_answer_is_rejected_not_accepted(agent: Snmpd, probe: SnmpProbe) -> None:
    loop = asyncio.get_running_loop()
    transport, relay = await loop.create_datagram_endpoint(lambda: Tamper(agent.port), local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        result = await poll(probe, port, v3(user_name("SHA", "AES"), "authPriv"), budget=2.5)
        assert not result.ok and up(result) == 0.0
        assert relay.tampered >= 1
        assert probe._v3.stats.wrong_digest == relay.tampered  # every tampered answer counted and dropped
        assert result.error is not None and "not responding" in result.error
    finally:
        transport.close()


async def test_a_dead_agent_is_not_taken_for_a_wrong_key(agent: Snmpd, probe: SnmpProbe) -> None:
    """Once the user has had an authPriv answer from the engine, a silence is the agent's: "not
    responding", with no extra authNoPriv request to tell a privacy key mismatch apart."""
    loop = asyncio.get_running_loop()
    transport, relay = await loop.create_datagram_endpoint(
        lambda: Tamper(agent.port, tamper=False), local_addr=("127.0.0.1", 0)
    )
    try:
        port = transport.get_extra_info("sockname")[1]
        s = v3(user_name("SHA-384", "AES-192"), "authPriv", "SHA-384", "AES-192")
        assert (await poll(probe, port, s)).ok
        relay.drop = True
        result = await poll(probe, port, s, budget=2.5)
        assert result.error is not None and result.error.startswith("SNMP agent not responding"), result.error
        assert relay.requests == 1  # the one try (retries 0): no diagnostic request after it
    finally:
        transport.close()


async def udp_exchange(port: int, payload: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class One(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            if not got.done():
                got.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(One, remote_addr=("127.0.0.1", port))
    try:
        transport.sendto(payload)
        async with asyncio.timeout(3):
            return await got
    finally:
        transport.close()
