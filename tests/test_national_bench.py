"""The national estate as bench.national_bench runs it: it loads, every check it polls over TCP, HTTP(S),
OCSP or DNS has a simulated listener at its address and port, every SNMP check's device is among the
simulated agents, and nothing it sends (probes, notifications) leaves loopback."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bench import national_bench
from monitor.config.loader import load_config
from monitor.core.inventory import Inventory


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Inventory]:
    directory = tmp_path_factory.mktemp("national-bench")
    config = national_bench.write_estate(directory)
    return directory, load_config(config).inventory


def test_the_estate_loads_at_its_size(written: tuple[Path, Inventory]) -> None:
    _, inventory = written
    assert len(inventory.targets) == 6842
    assert len(inventory.checks) == 8078


def test_every_polled_check_has_its_simulated_peer(written: tuple[Path, Inventory]) -> None:
    directory, inventory = written
    listening = {(s.address, s.port) for s in national_bench.simulated(directory).servers}
    snmp_devices = {
        row["address"]
        for row in national_bench._rows(directory)
        if national_bench._modules_of(row) & set(national_bench.SNMP_MODULES)
    }
    missing = []
    for check in inventory.checks.values():
        address = check.request.address
        assert ipaddress.ip_address(address).is_loopback, check.id
        if check.kind == "snmp":
            if address not in snmp_devices:
                missing.append(check.id)
        elif check.kind != "icmp":
            # the module's port, or the check's own (an OCSP check's responder URL is http://address:port/)
            port = check.request.port or getattr(check.settings, "port", None) or national_bench.OCSP_PORT
            if (address, port) not in listening:
                missing.append(check.id)
    assert not missing, missing[:10]


def test_notifications_stay_on_this_machine(written: tuple[Path, Inventory]) -> None:
    directory, _ = written
    import yaml

    config = yaml.safe_load((directory / "monitor.yml").read_text(encoding="utf-8"))
    for name, notifier in config["notifiers"].items():
        hosts = [urlsplit(u).hostname for u in notifier.get("urls", [])] + (
            [notifier["host"]] if "host" in notifier else []
        )
        assert hosts, name
        assert all(h is not None and ipaddress.ip_address(h).is_loopback for h in hosts), (name, hosts)
