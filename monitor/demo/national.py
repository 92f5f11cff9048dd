"""The national estate at its real size, for the lab and the benchmarks (issue 23): what a production
deployment watches, generated, not hand-written.

- 1,788 connected governments (the 47 prefectures and 1,741 municipalities, by the real count of each
  prefecture) with a primary and a backup LGWAN circuit each: 3,576 circuit targets, one service per
  government (rule any: DEGRADED with one circuit down, DOWN with both);
- 47 prefecture networks of 5 to 50 devices (more where there are more municipalities), every one polled
  over SNMPv3 authPriv (SHA-256/AES, the example config's `snmp_device` module: the interface table of
  ~48 interfaces each), with its management port and ICMP;
- ~2,400 LGWAN-ASP services, each a target of its own with an HTTPS check;
- the two national centers' servers and VIPs (a few hundred), by system.

It starts from the example estate (`estate.build_estate(47, "example")`: the modules, the centers'
servers, the response and status sections) and replaces its inventories with the national ones.
`loopback=True` moves every 10.a.b.c address to 127.a.b.c, so a benchmark or the lab can run the
estate's peers on this machine.

    python -m monitor.demo.national DIR [--loopback]   # writes DIR/monitor.yml and its CSV inventories
"""

from __future__ import annotations

import re
from typing import Any

from monitor.config.prefectures import all_prefectures
from monitor.demo.estate import NATIONAL_SYSTEMS, Estate, build_estate, placeholder_certs

# 市区町村 per prefecture (総務省, 2024: 1,741 in all, Tokyo's 23 special wards included)
MUNICIPALITIES = (179, 40, 33, 35, 25, 35, 59, 44, 25, 35, 63, 54, 62, 33, 30, 15, 19, 17, 27, 77, 42, 35,
                  54, 29, 19, 26, 43, 41, 39, 30, 19, 19, 27, 23, 19, 24, 17, 20, 34, 60, 20, 21, 45, 18,
                  26, 43, 41)  # fmt: skip
ASP_SERVICES = 2400
SERVERS_PER_SYSTEM = 20  # per system and center, behind...
VIPS_PER_SYSTEM = 4  # ... the VIPs the governments reach
INTERFACES_PER_DEVICE = 48
DEVICE_ROLES = ("edge-router", "core-switch", "firewall", "distribution-switch", "access-switch")


def devices_in(municipalities: int) -> int:
    """5 devices for the smallest prefecture network, 50 for Hokkaido's 179 municipalities."""
    low, high = min(MUNICIPALITIES), max(MUNICIPALITIES)
    return 5 + round(45 * (municipalities - low) / (high - low))


def build_national(loopback: bool = False) -> Estate:
    estate = build_estate(47, "example")
    config = estate.config
    prefs = all_prefectures()
    devices: list[dict[str, str]] = []
    circuits: list[dict[str, str]] = []
    snmp = "icmp;mgmt_ssh;snmp_device"
    for pref, municipalities in zip(prefs, MUNICIPALITIES, strict=True):
        p = int(pref.code)
        code = pref.code
        center = "east" if p <= 23 else "west"
        edge = f"pref{code}-edge"
        for d in range(devices_in(municipalities)):
            role = DEVICE_ROLES[min(d, len(DEVICE_ROLES) - 1)]
            name = edge if d == 0 else f"pref{code}-{role}-{d:02d}"
            parent = f"{center}-core" if d == 0 else edge if d < 4 else f"pref{code}-distribution-switch-03"
            devices.append({"name": name, "address": f"10.100.{p}.{10 + d}", "site": f"pref-{code}",
                            "tier": "prefecture", "prefecture": code, "system": "pref-net", "role": role,
                            "parent": parent, "modules": snmp})  # fmt: skip
        governments = [("pref", f"{code}-00")] + [("muni", f"{code}-{m:03d}") for m in range(1, municipalities + 1)]
        for g, (kind, gov) in enumerate(governments):
            for index, role in enumerate(("primary", "backup")):
                circuits.append({"name": f"lgwan-{gov}-{role}", "address": f"10.{128 + p}.{g}.{index + 1}",
                                 "site": f"pref-{code}", "tier": "municipality" if kind == "muni" else "prefecture",
                                 "prefecture": code, "system": "lgwan", "role": f"circuit-{role}",
                                 "parent": f"pref{code}-lgwan-ap", "modules": "icmp",
                                 "service": f"lgwan-link-{gov}", "service_rule": "any"})  # fmt: skip
    asp = [
        {"name": f"asp-{i:04d}", "address": f"10.50.{i // 250}.{i % 250 + 1}", "site": "asp", "tier": "asp",
         "prefecture": "", "system": f"asp-{i % 40:02d}", "role": "asp-service", "parent": "",
         "modules": "https", "service": f"asp-svc-{i:04d}", "service_rule": "all"}
        for i in range(ASP_SERVICES)
    ]  # fmt: skip
    national: list[dict[str, str]] = []
    for c, center in enumerate(("east", "west"), start=1):
        for s, (suffix, system, module, *_names) in enumerate(NATIONAL_SYSTEMS):
            for n in range(SERVERS_PER_SYSTEM + VIPS_PER_SYSTEM):
                role = "server" if n < SERVERS_PER_SYSTEM else "vip"
                national.append({"name": f"{suffix}-{center}-{role}-{n:02d}", "address": f"10.{c}.{s}.{n + 1}",
                                 "site": f"center-{center}", "tier": "national", "prefecture": "", "system": system,
                                 "role": role, "parent": f"{center}-core", "modules": module,
                                 "service": "", "service_rule": ""})  # fmt: skip
    sites: list[dict[str, Any]] = config["sites"]
    sites.append({"id": "asp", "kind": "asp", "name": "LGWAN-ASP", "name_en": "LGWAN-ASP"})
    # the access point rows the example keeps as YAML targets (their uplinks are interface checks) stay
    estate.csv_files = {
        "inventory/prefecture-devices.csv": devices,
        "inventory/lgwan-circuits.csv": circuits,
        "inventory/asp-services.csv": asp,
        "inventory/national-servers.csv": national,
    }
    config["inventories"] = [{"csv": name} for name in estate.csv_files]
    # the example's own prefecture device rows are replaced above; its hand-written example connection
    # (security) and contacts name targets of the small estate, so they go
    config.pop("security", None)
    if loopback:
        _to_loopback(estate)
    return estate


_TEN = re.compile(r"^10\.(\d+\.\d+\.\d+)$")


def _to_loopback(estate: Estate) -> None:
    """Every 10.a.b.c address (targets, rows, module URLs) as 127.a.b.c: all of 127/8 is this machine's."""

    def move(value: Any) -> Any:
        if isinstance(value, str):
            return _TEN.sub(r"127.\1", value)
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, list):
            return [move(v) for v in value]
        return value

    estate.config = move(estate.config)
    estate.csv_files = {name: move(rows) for name, rows in estate.csv_files.items()}


if __name__ == "__main__":
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(description="write the national estate's config (monitor.yml + CSVs)")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--loopback", action="store_true", help="127.x addresses instead of 10.x")
    args = parser.parse_args()
    print(build_national(args.loopback).write(args.directory, "# The national estate, by monitor.demo.national\n"))
    placeholder_certs(args.directory)
