"""ICMP probe: real echo requests to 127.0.0.1 and ::1, socket mode selection, and the paths that
need another network setup or fewer privileges (run in a throw-away network namespace made with
`unshare --net`, so nothing on the host changes)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import probes
from probes import icmp
from probes.base import ProbeRequest, ProbeResult
from probes.icmp import NOT_PERMITTED, ICMPProbe, ICMPSettings

# keys of ProbeResult.values, declared with the ICMP kind
JITTER, LOSS, PACKETS_SENT = icmp.JITTER.key, icmp.LOSS.key, icmp.PACKETS_SENT
RTT_AVG, RTT_MAX, RTT_MIN = icmp.RTT_AVG.key, icmp.RTT_MAX.key, icmp.RTT_MIN.key

LOOPBACK4 = "127.0.0.1"
REPO = Path(probes.__file__).resolve().parent.parent

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="raw ICMP sockets and network namespaces need root")


def icmp_settings(**kw: Any) -> ICMPSettings:
    kw.setdefault("packet_interval", 0.01)
    return ICMPSettings.model_validate(kw)


async def run(address: str, settings: ICMPSettings) -> ProbeResult:
    """Run the probe (1 s budget), bounded so that a probe bug fails the test instead of hanging it."""
    async with asyncio.timeout(3):
        return await ICMPProbe().run(ProbeRequest(address, None, None, 1.0), settings)


def assert_clean_echo(result: ProbeResult, sent: int) -> None:
    assert result.ok, result.error
    assert result.error is None
    assert result.values[PACKETS_SENT] == sent
    assert result.values[LOSS] == 0.0
    assert 0 < result.values[RTT_MIN] <= result.values[RTT_AVG] <= result.values[RTT_MAX] < 0.5
    assert result.values[JITTER] >= 0


# ------------------------------------------------------------------------------- real echo, as root


@needs_root
async def test_ipv4_loopback_raw() -> None:
    """Raw-socket echo to 127.0.0.1: ok, no loss, RTTs in seconds, socket and address reported."""
    result = await run(LOOPBACK4, icmp_settings(sockets="raw"))
    assert_clean_echo(result, 3)
    assert result.info == {"socket": "raw", "address": LOOPBACK4}


@needs_root
async def test_ipv6_loopback_raw(ipv6_loopback: str) -> None:
    """Raw-socket echo to ::1 (ICMPv6): ok, no loss."""
    result = await run(ipv6_loopback, icmp_settings(sockets="raw"))
    assert_clean_echo(result, 3)
    assert result.info == {"socket": "raw", "address": "::1"}


@needs_root
@pytest.mark.parametrize("count", [1, 5])
async def test_count_is_respected(count: int) -> None:
    """count packets are sent (packets_sent) and all answered."""
    result = await run(LOOPBACK4, icmp_settings(sockets="raw", count=count))
    assert_clean_echo(result, count)


@needs_root
async def test_packet_interval_spaces_packets() -> None:
    """packet_interval separates the packets: 4 packets 0.1 s apart take at least 0.3 s."""
    started = time.perf_counter()
    result = await run(LOOPBACK4, icmp_settings(sockets="raw", count=4, packet_interval=0.1))
    assert_clean_echo(result, 4)
    assert time.perf_counter() - started >= 0.3


@needs_root
async def test_large_payload() -> None:
    """A 1400-byte payload is echoed."""
    assert_clean_echo(await run(LOOPBACK4, icmp_settings(sockets="raw", payload_size=1400)), 3)


@needs_root
async def test_name_target_resolved_with_ip_protocol() -> None:
    """A name (localhost) is resolved with ip_protocol and the address pinged is reported."""
    result = await run("localhost", icmp_settings(sockets="raw", ip_protocol="ip4"))
    assert_clean_echo(result, 3)
    assert result.info["address"] == LOOPBACK4


@needs_root
async def test_concurrent_probes_do_not_mix_replies(ipv6_loopback: str) -> None:
    """Several probes at once on raw sockets (which all see every reply) each count only their own."""
    settings = icmp_settings(sockets="raw", count=3)
    results = await asyncio.gather(*(run(a, settings) for a in [LOOPBACK4, LOOPBACK4, ipv6_loopback, LOOPBACK4]))
    for result in results:
        assert_clean_echo(result, 3)


@needs_root
async def test_many_probes_in_flight_share_one_raw_socket() -> None:
    """1,500 probes in flight at once (the national estate's ICMP checks, several hundred at a time, with
    3 echoes each) all come back clean through one raw socket. With a raw socket per probe every socket
    was handed every reply: the replies of the others were read in every probe, timed out or were dropped
    from full buffers, and the checks went DOWN for this host's load."""
    probe = ICMPProbe()
    settings = icmp_settings(sockets="raw", count=3)
    addresses = [f"127.71.{i // 250}.{i % 250 + 1}" for i in range(1500)]
    fds_before = len(os.listdir("/proc/self/fd"))

    async def one(address: str) -> ProbeResult:
        return await probe.run(ProbeRequest(address, None, None, 2.0), settings)

    async with asyncio.timeout(20):
        tasks = [asyncio.create_task(one(a)) for a in addresses]
        await asyncio.sleep(0.05)
        fds_in_flight = len(os.listdir("/proc/self/fd"))
        results = await asyncio.gather(*tasks)
    failed = [(a, r.error) for a, r in zip(addresses, results, strict=True) if not r.ok]
    assert not failed, f"{len(failed)} of {len(addresses)} failed, e.g. {failed[:3]}"
    assert all(r.values[LOSS] == 0.0 for r in results)
    assert fds_in_flight - fds_before <= 2  # one socket per address family, not one per probe


# --------------------------------------------------------------------------------- mode selection


@pytest.mark.parametrize(
    ("preference", "datagram", "raw", "expected"),
    [
        ("auto", True, True, "datagram"),
        ("auto", False, True, "raw"),
        ("auto", True, False, "datagram"),
        ("auto", False, False, None),
        ("datagram", False, True, None),
        ("datagram", True, False, "datagram"),
        ("raw", True, False, None),
        ("raw", False, True, "raw"),
    ],
)
def test_socket_mode(
    monkeypatch: pytest.MonkeyPatch, preference: str, datagram: bool, raw: bool, expected: str | None
) -> None:
    """socket_mode prefers datagram sockets, falls back to raw, honours a forced mode, else None."""
    monkeypatch.setattr(icmp, "_ping_group_allows", lambda: datagram)
    monkeypatch.setattr(icmp, "_has_net_raw", lambda: raw)
    assert icmp.socket_mode(preference) == expected


async def test_not_permitted_without_any_socket_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """With neither datagram sockets nor raw sockets allowed the probe fails with NOT_PERMITTED."""
    monkeypatch.setattr(icmp, "_ping_group_allows", lambda: False)
    monkeypatch.setattr(icmp, "_has_net_raw", lambda: False)
    result = await run(LOOPBACK4, icmp_settings())
    assert not result.ok
    assert result.error == NOT_PERMITTED
    assert result.values == {}


@needs_root
async def test_socket_mode_decided_once_per_preference(monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe instance works out the socket mode once per preference, not on every probe."""
    calls: list[str] = []
    real = icmp.socket_mode

    def counting(preference: str = "auto") -> str | None:
        calls.append(preference)
        return real(preference)

    monkeypatch.setattr(icmp, "socket_mode", counting)
    probe = ICMPProbe()
    for _ in range(3):
        await probe.run(ProbeRequest(LOOPBACK4, None, None, 1.0), icmp_settings(sockets="raw", count=1))
    assert calls == ["raw"]


@pytest.mark.parametrize(
    ("content", "groups", "expected"),
    [
        ("0\t2147483647\n", [], True),  # everyone
        ("1\t0\n", [], False),  # the kernel default: nobody
        ("{gid}\t{gid}\n", [], True),  # exactly our group
        ("{above}\t{far}\n", [], False),  # a range above our group
        ("4242 4242\n", [4242], True),  # a supplementary group in range
        ("garbage\n", [], False),
        ("5\n", [], False),
        ("", [], False),
    ],
)
def test_ping_group_allows_parses_range_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, groups: list[int], expected: bool
) -> None:
    """_ping_group_allows reads 'low high' and admits our effective or supplementary groups in range."""
    gid = os.getegid()
    monkeypatch.setattr(os, "getgroups", lambda: groups)
    range_file = tmp_path / "ping_group_range"
    range_file.write_text(content.format(gid=gid, above=gid + 1, far=gid + 100))
    assert icmp._ping_group_allows(range_file) is expected


def test_ping_group_allows_missing_file(tmp_path: Path) -> None:
    """A missing range file (no such sysctl) means datagram sockets are not allowed."""
    assert icmp._ping_group_allows(tmp_path / "absent") is False


@pytest.mark.parametrize(("cap_eff", "expected"), [("0000000000002000", True), ("000001ffffffdfff", False)])
def test_has_net_raw_reads_capeff(monkeypatch: pytest.MonkeyPatch, cap_eff: str, expected: bool) -> None:
    """For a non-root user, CAP_NET_RAW (bit 13) in CapEff of /proc/self/status decides."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    real_read_text = Path.read_text

    def fake_read_text(self: Path, *args: Any, **kw: Any) -> str:
        if str(self) == "/proc/self/status":
            return f"Name:\tpython\nCapInh:\t0000000000000000\nCapEff:\t{cap_eff}\n"
        return real_read_text(self, *args, **kw)

    monkeypatch.setattr(Path, "read_text", fake_read_text)
    assert icmp._has_net_raw() is expected


# -------------------------------------------------------------- isolated network namespace (child)

CHILD = r"""
import asyncio, dataclasses, json, os, subprocess, sys, time

config = json.loads(sys.argv[1])
if config.get("lo_up", True):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
if config.get("ping_group_range"):
    with open("/proc/sys/net/ipv4/ping_group_range", "w") as f:
        f.write(config["ping_group_range"])
if config.get("drop_echo_replies"):
    rules = (
        "table inet nmtest {\n chain input {\n type filter hook input priority 0;\n"
        " icmp type echo-reply drop\n icmpv6 type echo-reply drop\n }\n}\n"
    )
    subprocess.run(["nft", "-f", "-"], input=rules.encode(), check=True)

from probes import icmp
from probes.base import ProbeRequest
from probes.icmp import ICMPProbe, ICMPSettings

out = {}
if config.get("drop_privileges"):
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    out["euid"] = os.geteuid()
    out["has_net_raw"] = icmp._has_net_raw()
    out["ping_group_allows"] = icmp._ping_group_allows()
if config.get("pretend_net_raw"):
    icmp._has_net_raw = lambda: True
    out["mode"] = icmp.socket_mode("raw")

async def main():
    results = []
    for item in config["probes"]:
        started = time.perf_counter()
        result = await ICMPProbe().run(
            ProbeRequest(item["address"], None, None, item.get("timeout", 1.0)),
            ICMPSettings.model_validate(item["settings"]),
        )
        results.append({"elapsed": time.perf_counter() - started, **dataclasses.asdict(result)})
    return results

out["results"] = asyncio.run(main())
print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def netns() -> None:
    """Skip unless we can make a private network namespace (root, unshare and ip present)."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces and their sysctls need root")
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    probe = subprocess.run(["unshare", "--net", "--", "true"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {probe.stderr.decode().strip()}")


def in_netns(tmp_path: Path, **config: Any) -> dict[str, Any]:
    """Run the child script in a new network namespace (its own loopback and sysctls) and return its output."""
    script = tmp_path / "icmp_child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        ["unshare", "--net", "--", sys.executable, str(script), json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_datagram_sockets_when_ping_group_range_allows(netns: None, tmp_path: Path, ipv6_loopback: str) -> None:
    """With ping_group_range admitting us, datagram sockets ping 127.0.0.1 and ::1; auto picks them."""
    settings = {"count": 2, "packet_interval": 0.01}
    out = in_netns(
        tmp_path,
        ping_group_range="0 2147483647",
        probes=[
            {"address": LOOPBACK4, "settings": {**settings, "sockets": "datagram"}},
            {"address": ipv6_loopback, "settings": {**settings, "sockets": "datagram"}},
            {"address": LOOPBACK4, "settings": settings},
        ],
    )
    for result in out["results"]:
        assert result["ok"], result["error"]
        assert result["info"]["socket"] == "datagram"
        assert result["values"][PACKETS_SENT] == 2
        assert result["values"][LOSS] == 0.0


def test_datagram_forced_but_not_allowed(netns: None, tmp_path: Path) -> None:
    """sockets: datagram where ping_group_range is the kernel default ('1 0') fails with NOT_PERMITTED."""
    out = in_netns(tmp_path, probes=[{"address": LOOPBACK4, "settings": {"sockets": "datagram", "count": 1}}])
    [result] = out["results"]
    assert result["error"] == NOT_PERMITTED


def test_total_loss_reported_within_timeout(netns: None, tmp_path: Path, ipv6_loopback: str) -> None:
    """With echo replies dropped (nftables, own netns): 100% loss, no RTTs, done inside the timeout."""
    if shutil.which("nft") is None:
        pytest.skip("nft is not installed")
    settings = {"count": 3, "packet_interval": 0.05, "sockets": "raw"}
    out = in_netns(
        tmp_path,
        drop_echo_replies=True,
        probes=[
            {"address": LOOPBACK4, "settings": settings, "timeout": 0.5},
            {"address": ipv6_loopback, "settings": settings, "timeout": 0.5},
        ],
    )
    for result in out["results"]:
        assert not result["ok"]
        assert result["error"] == "100% packet loss (3 sent)"
        assert result["values"] == {PACKETS_SENT: 3.0, LOSS: 1.0}
        assert 0.3 < result["elapsed"] < 0.5


def test_unprivileged_user_is_not_permitted(netns: None, tmp_path: Path) -> None:
    """As nobody (no CAP_NET_RAW, default ping_group_range): NOT_PERMITTED, also if raw is forced."""
    out = in_netns(
        tmp_path,
        drop_privileges=True,
        probes=[{"address": LOOPBACK4, "settings": {"count": 1}}],
    )
    assert out["euid"] == 65534
    assert out["has_net_raw"] is False
    assert out["ping_group_allows"] is False
    assert [r["error"] for r in out["results"]] == [NOT_PERMITTED]

    forced = in_netns(
        tmp_path,
        drop_privileges=True,
        pretend_net_raw=True,
        probes=[{"address": LOOPBACK4, "settings": {"count": 1, "sockets": "raw"}}],
    )
    assert forced["mode"] == "raw"  # so the failure below comes from the kernel refusing the raw socket
    [result] = forced["results"]
    assert not result["ok"]
    assert result["error"] == NOT_PERMITTED


def test_the_echo_payload_is_a_fixed_pattern_of_the_configured_size() -> None:
    """As iputils ping: no random bytes drawn per echo (6 % of the loop at the national estate's rate)."""
    from probes.icmp import payload

    assert len(payload(56)) == 56 and len(payload(0)) == 0 and len(payload(1400)) == 1400
    assert payload(56) is payload(56)
    assert payload(4) == b"\x10\x11\x12\x13"
