"""The lab's fault pieces on their own: the API's parsing, simulated counters, real drops in the kernel."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from monitor.demo import kernel_faults
from monitor.demo.estate import build_estate
from monitor.demo.faults import Fault, FaultError, FaultInjector, fault_from_json, parse_when
from monitor.demo.network import SimNetwork
from monitor.demo.pki import DemoPKI
from monitor.demo.snmp_agent import SimDevice, demo_interfaces


def test_when_a_fault_applies() -> None:
    assert parse_when(None) is None
    assert parse_when(1795746827) == 1795746827.0
    assert abs(parse_when("+30") - (time.time() + 30)) < 1  # type: ignore[operator]
    assert parse_when("2026-11-27T12:00:00+09:00") == 1795748400.0
    with pytest.raises(FaultError, match="offset"):
        parse_when("2026-11-27T12:00:00")
    with pytest.raises(FaultError, match="ISO 8601"):
        parse_when("tomorrow")


def test_malformed_faults_are_refused_clearly() -> None:
    with pytest.raises(FaultError, match="required"):
        fault_from_json({"target": "pref01-edge"})
    with pytest.raises(FaultError, match="numbers"):
        fault_from_json({"target": "pref01-edge", "mode": "degrade", "loss": "lots"})
    fault, at = fault_from_json({"target": "pref01-edge", "mode": "cut", "for": 30, "at": "+5"})
    assert (fault.mode, fault.duration) == ("cut", 30.0) and at is not None


def _octets(device: SimDevice, index: int) -> int:
    return int(device._octets(device.interface(index), out=False))


def test_fill_raises_the_rate_without_rewriting_the_counter_and_reboot_starts_from_zero() -> None:
    device = SimDevice("pref01-edge", "127.0.0.1", b"public", demo_interfaces("pref01-edge", "edge-router"))
    time.sleep(0.2)
    before = _octets(device, 1)
    device.set_fill(1, 40.0)
    assert _octets(device, 1) - before < before  # no jump: the past is not recounted at the new rate
    time.sleep(0.2)
    assert (_octets(device, 1) - before) > 10 * before  # the link now carries 40x its traffic
    device.reboot()
    assert _octets(device, 1) < before and device.uptime_ticks() < 10


@pytest.mark.skipif(not kernel_faults.available(), reason="needs root and nft")
def test_kernel_cut_and_loss_act_on_exactly_one_address() -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.77.0.1", 0))
    server.listen(64)
    port = server.getsockname()[1]

    def accept() -> None:
        try:
            while True:
                server.accept()[0].close()
        except OSError:  # closed at the end of the test
            pass

    threading.Thread(target=accept, daemon=True).start()

    def connects(address: str = "127.77.0.1") -> bool:
        try:
            socket.create_connection((address, port), timeout=0.5).close()
            return True
        except OSError:
            return False

    faults = kernel_faults.KernelFaults()
    try:
        assert connects()
        faults.apply({"127.77.0.1": 100.0})
        assert not connects()  # dropped: a timeout, as on a cut link
        faults.apply({"127.77.0.1": 50.0})
        results = [connects() for _ in range(20)]  # SYNs lost at random; the 1 s retransmit is past 0.5 s
        assert any(results) and not all(results), results
        faults.apply({})
        assert connects()
    finally:
        faults.close()
        server.close()
    listed = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert kernel_faults.TABLE not in listed


@pytest.mark.skipif(not kernel_faults.available(), reason="needs root and nft")
def test_a_kernel_cut_drops_on_the_far_side_so_a_udp_send_succeeds_and_times_out() -> None:
    """A drop in the output hook refused the send at once (EPERM: a local failure of the monitor, which
    a real cut is not); on the far side the datagram leaves and nothing answers, as on a cut fibre."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.77.0.3", 0))

    def echo() -> None:
        try:
            while True:
                data, addr = server.recvfrom(512)
                server.sendto(data, addr)
        except OSError:  # closed at the end of the test
            pass

    threading.Thread(target=echo, daemon=True).start()

    def answered() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(0.5)
            client.connect(server.getsockname())
            client.send(b"ping")  # raises PermissionError if the kernel refuses it here
            try:
                return client.recv(512) == b"ping"
            except TimeoutError:
                return False

    faults = kernel_faults.KernelFaults()
    try:
        assert answered()
        faults.apply({"127.77.0.3": 100.0})
        assert not answered()
        faults.apply({})
        assert answered()
    finally:
        faults.close()
        server.close()


@pytest.mark.skipif(not kernel_faults.available(), reason="needs root and nft")
async def test_degrade_with_loss_is_pure_loss_without_added_latency(tmp_path: Path) -> None:
    """`degrade --loss N` as root: the kernel drops N % and the host answers at once (it used to answer
    1.6 s late as well, so pure loss could not be injected); `degrade` alone still makes it answer late."""
    estate = build_estate(1, "demo", icmp=False)
    network = SimNetwork(estate, DemoPKI.create(tmp_path / "certs"))
    target = next(name for name in network.hosts if name.startswith("lgwan-") and name.endswith("-primary"))
    [address] = network.addresses([target])
    kernel = kernel_faults.KernelFaults()
    injector = FaultInjector(network, kernel=kernel)
    try:
        await injector.set(Fault(target, "degrade", loss=10.0))
        assert network.hosts[target].mode == "up"
        assert kernel.loss == {address: 10.0}
        await injector.set(Fault(target, "degrade"))
        assert network.hosts[target].mode == "slow"
        assert kernel.loss == {}
        await injector.set(Fault(target, "up"))
        assert network.hosts[target].mode == "up"
    finally:
        kernel.close()
    without_kernel = FaultInjector(network)  # no root: loss cannot be real, the host answers late instead
    await without_kernel.set(Fault(target, "degrade", loss=10.0))
    assert network.hosts[target].mode == "slow"


def test_the_unauthenticated_fault_api_listens_on_loopback_only(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "lab", "run", "--listen", "0.0.0.0:9320", "--config-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "lab_listen_not_loopback" in done.stderr


def test_the_lab_config_pages_its_receiver_through_three_levels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of the box the lab's generated config pages somebody: a webhook notifier and a three-level playbook."""
    from monitor.config.loader import load_config
    from monitor.demo.estate import build_estate
    from monitor.demo.pages import SECRET_ENV, lab_paging
    from monitor.demo.pki import DemoPKI

    estate = build_estate(1, "demo", icmp=False)
    estate.config.update(lab_paging("http://127.0.0.1:9320/lab/pages"))
    path = estate.write(tmp_path)
    DemoPKI.create(tmp_path / "certs")  # as `monitor lab run` does: the config names its CA
    monkeypatch.setenv(SECRET_ENV, "s3cret")
    for env in ("MONITOR_DEMO_OPERATOR_TOKEN", "MONITOR_DEMO_ADMIN_TOKEN", "MONITOR_DEMO_ALERTMANAGER_TOKEN"):
        monkeypatch.setenv(env, "t")
    response = load_config(path).inventory.response
    assert response is not None
    playbook = response.playbooks["default"]
    assert len(playbook.levels) == 3 and [lv.ack_timeout for lv in playbook.levels] == [20.0, 20.0, None]
    assert {n.via[0] for lv in playbook.levels for n in lv.notify} == {"lab-pager"}


async def test_the_lab_pager_keeps_signed_pages_and_refuses_forged_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's webhook notifier, against the lab's receiver on loopback: a signed page is kept, a retry
    of it is marked a duplicate, a page signed with another secret is refused."""
    import aiohttp
    from aiohttp import web

    from monitor.demo.pages import PageLog
    from monitor.notifiers.base import NotifyError
    from monitor.notifiers.webhook import Webhook, WebhookNotifier

    monkeypatch.setenv("LAB_T_GOOD", "right")
    monkeypatch.setenv("LAB_T_BAD", "wrong")
    log = PageLog("right")
    app = web.Application()
    log.routes(app, "/lab/pages")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/lab/pages"
    good = Webhook("p", WebhookNotifier.model_validate({"kind": "webhook", "url": url, "secret": "${LAB_T_GOOD}"}))
    bad = Webhook("p", WebhookNotifier.model_validate({"kind": "webhook", "url": url, "secret": "${LAB_T_BAD}"}))
    try:
        await good.send({"event": "firing", "level": 1}, "1:1:p:noc:firing")
        await good.send({"event": "firing", "level": 1}, "1:1:p:noc:firing")
        with pytest.raises(NotifyError, match="401"):
            await bad.send({"event": "firing", "level": 1}, "2:1:p:noc:firing")
        async with aiohttp.ClientSession() as session, session.get(url) as answer:
            pages = (await answer.json())["pages"]
        assert [(p["page"]["level"], p["duplicate"]) for p in pages] == [(1, False), (1, True)]
    finally:
        await good.close()
        await bad.close()
        await runner.cleanup()
