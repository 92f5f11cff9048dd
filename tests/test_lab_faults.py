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
from monitor.demo.faults import FaultError, fault_from_json, parse_when
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


def test_the_unauthenticated_fault_api_listens_on_loopback_only(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "lab", "run", "--listen", "0.0.0.0:9320", "--config-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "lab_listen_not_loopback" in done.stderr
