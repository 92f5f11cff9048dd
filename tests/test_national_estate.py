"""The generated national estate (issue 23) has the real estate's size and shape, and loads: 1,788
governments with a primary and a backup circuit each, ~2,400 LGWAN-ASP services, 47 prefecture networks of
5 to 50 devices polled over SNMPv3 authPriv, the national centers' servers and VIPs."""

from __future__ import annotations

import ipaddress
from collections import Counter
from pathlib import Path

import pytest

from monitor.config.loader import load_config
from monitor.demo.estate import placeholder_certs
from monitor.demo.national import ASP_SERVICES, MUNICIPALITIES, build_national, devices_in


@pytest.fixture(scope="module")
def national(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("national")
    build_national(loopback=True).write(directory)
    placeholder_certs(directory)
    return directory / "monitor.yml"


def test_the_estate_has_the_real_counts(national: Path) -> None:
    inventory = load_config(national).inventory
    assert sum(MUNICIPALITIES) == 1741 and len(MUNICIPALITIES) == 47
    links = [s for s in inventory.services if s.startswith("lgwan-link-")]
    assert len(links) == 1788  # every prefecture's own government and its municipalities
    circuits = [
        t
        for t in inventory.targets.values()
        if t.labels.get("system") == "lgwan" and "circuit" in t.labels.get("role", "")
    ]
    assert len(circuits) == 2 * 1788
    assert Counter(t.labels["role"] for t in circuits) == {"circuit-primary": 1788, "circuit-backup": 1788}
    assert len([s for s in inventory.services if s.startswith("asp-svc-")]) == ASP_SERVICES
    per_prefecture = Counter(
        t.labels["prefecture"] for t in inventory.targets.values() if t.labels.get("system") == "pref-net"
    )
    assert len(per_prefecture) == 47 and min(per_prefecture.values()) == 5 and max(per_prefecture.values()) == 50
    assert per_prefecture["01"] == devices_in(179) == 50
    national_servers = [t for t in inventory.targets.values() if t.labels.get("tier") == "national"]
    assert 200 <= len(national_servers) <= 500


def test_every_device_is_polled_over_snmpv3_authpriv_and_every_address_is_loopback(national: Path) -> None:
    inventory = load_config(national).inventory
    snmp = [c for c in inventory.checks.values() if c.kind == "snmp"]
    assert len(snmp) >= sum(devices_in(m) for m in MUNICIPALITIES)
    for check in snmp:
        settings = check.settings
        assert settings.version == "3", check.id
        assert settings.v3.security_level == "authPriv", check.id
    for target in inventory.targets.values():
        assert ipaddress.ip_address(target.address).is_loopback, (target.name, target.address)
