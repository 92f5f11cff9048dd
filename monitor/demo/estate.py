"""The simulated national estate: two national centers with their national servers, the prefecture
networks (edge router, core switch, firewall, LGWAN access point) and municipal LGWAN connections
over primary and backup circuits. Produces the config (YAML + CSV inventories) and the list of
servers the simulator must run.

Two address plans: "demo" puts everything on 127.x loopback addresses with unprivileged ports (what
`monitor demo` runs); "example" uses private 10.x addresses and standard ports (the shipped
config/monitor.yml, a starting point for a real deployment).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from monitor.config.prefectures import Prefecture, all_prefectures
from monitor.demo import estate_snmp
from monitor.demo.pki import CANARY_GOOD_FILE, CANARY_REVOKED_FILE, JPKI_CA_FILE
from monitor.demo.response_config import demo_response, example_response, status_sections

Plan = Literal["demo", "example"]
MUNICIPALITIES_PER_PREFECTURE = 2
DOMAIN = "lgwan.example"

CENTERS = (
    ("east", 1, "東日本全国センター", "East national center"),
    ("west", 2, "西日本全国センター", "West national center"),
)
# (target suffix, system, module, Japanese service name, English service name, service rule)
NATIONAL_SYSTEMS = (
    ("juki", "juki-net", "https", "住基ネット全国サーバ", "Resident registry network national servers", "all"),
    ("card", "card-mgmt", "https", "カード管理システム", "My Number card management system", "any"),
    ("ocsp", "jpki-ocsp", "jpki_ocsp", "公的個人認証 OCSPレスポンダ", "JPKI OCSP responder", "any"),
    ("crl", "jpki-crl", "crl", "公的個人認証 CRL配布", "JPKI CRL distribution", "any"),
    ("chukan", "chukan", "chukan_api", "自治体中間サーバー・プラットフォーム", "Intermediate server platform", "any"),
    ("dns", "national-dns", "dns", "全国DNS", "National DNS", "any"),
)
PORTS = {
    "demo": {"https": 8443, "http": 8080, "ssh": 2222, "dns": 5353},  # unprivileged: the demo runs as anyone
    "example": {"https": 443, "http": 80, "ssh": 22, "dns": 53},
}
# The national API's monitoring account (module chukan_api): the password is a secret file like every key
API_USER = "noc-monitor"
API_PASSWORD_FILE = "secrets/chukan-api-password"
API_PASSWORD = {"demo": "demo-chukan-api-password\n", "example": "CHANGE-ME-chukan-api-password\n"}
BLOCKS = {"demo": {"center": 10, "pref": 20, "muni": 30}, "example": {"center": 0, "pref": 100, "muni": 200}}
DEFAULTS = {
    "demo": {"interval": "10s", "timeout": "3s", "retry_interval": "2s", "failures_to_down": 2, "successes_to_up": 2},
    "example": {
        "interval": "30s",
        "timeout": "5s",
        "retry_interval": "5s",
        "failures_to_down": 3,
        "successes_to_up": 2,
    },
}


@dataclass(frozen=True, slots=True)
class SimServer:
    """One listener the simulator runs for a target."""

    target: str
    address: str
    port: int
    proto: Literal["tcp", "http", "https", "dns"]
    hostname: str | None = None


@dataclass
class Estate:
    config: dict[str, Any]
    csv_files: dict[str, list[dict[str, str]]]
    servers: list[SimServer] = field(default_factory=list)
    dns_zone: dict[str, str] = field(default_factory=dict)  # name -> address
    parents: dict[str, str] = field(default_factory=dict)  # target -> its upstream device
    snmp_devices: list[tuple[str, str, str]] = field(default_factory=list)  # (target, address, role)
    files: dict[str, str] = field(default_factory=dict)  # other files the config refers to (secrets)
    ocsp_hosts: set[str] = field(default_factory=set)  # targets that are JPKI OCSP responders
    api_hosts: set[str] = field(default_factory=set)  # targets that serve the national API (national_api.py)

    def write(self, directory: Path, header: str = "") -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in self.files.items():
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():  # an operator's real secret is never overwritten
                path.write_text(text, encoding="utf-8")
                path.chmod(0o600)
            else:  # ... and the simulated servers then check what the daemon will send
                self.files[name] = path.read_text(encoding="utf-8")
        for name, rows in self.csv_files.items():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            with (directory / name).open("w", encoding="utf-8", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        path = directory / "monitor.yml"
        text = yaml.safe_dump(self.config, allow_unicode=True, sort_keys=False, width=120)
        path.write_text(header + text, encoding="utf-8")
        return path


def _modules(plan: Plan, icmp: bool) -> dict[str, Any]:
    ports = PORTS[plan]
    tls: dict[str, Any] = {"ca_file": "certs/demo-ca.pem"} if plan == "demo" else {}
    # by address in the demo (its names resolve only in the demo's own DNS), by name in the example
    crl_host = f"{_address(plan, 'center', 1, 14)}:{ports['http']}" if plan == "demo" else f"crl.east.{DOMAIN}"
    modules: dict[str, Any] = {
        "mgmt_ssh": {
            "kind": "tcp",
            "timeout": "3s",
            "reachability": True,
            "degraded": {"latency": "1s"},  # a management port this slow: a lossy or congested path
            "tcp": {"port": ports["ssh"], "query_response": [{"expect": "^SSH-2\\.0-"}]},
        },
        "https": {
            "kind": "http",
            "timeout": "5s",
            "degraded": {"latency": "1s", "cert_expiry": "14d"},
            "http": {
                "scheme": "https",
                "port": ports["https"],
                "path": "/health",
                "fail_if_body_not_matches_regexp": ["ok"],
                "tls_config": tls,
            },
        },
        "http": {
            "kind": "http",
            "timeout": "5s",
            "degraded": {"latency": "1s"},
            "http": {"port": ports["http"], "path": "/health"},
        },
        "crl": {
            "kind": "http",
            "timeout": "5s",
            "degraded": {"crl_remaining": "2h"},
            "http": {"port": ports["http"], "path": "/crl/jpki.crl", "crl": True},
        },
        "jpki_ocsp": {
            "kind": "ocsp",
            "timeout": "5s",
            "ocsp": {
                # the demo's PKI writes these (monitor/demo/pki.py); in the example, placeholders to replace
                "issuer": f"certs/{JPKI_CA_FILE}",
                "canaries": [
                    {"cert": f"certs/{CANARY_GOOD_FILE}", "expect": "good"},
                    {"cert": f"certs/{CANARY_REVOKED_FILE}", "expect": "revoked"},
                ],
                "min_remaining": "30m",
                "degraded_within": "2h",
                # the east center's CRL: the canaries' status there must be OCSP's
                "crl": f"http://{crl_host}/crl/jpki.crl",
            },
        },
        # the platform's API as a client uses it (authenticate -> token -> call -> check a field): a 200 from
        # /health does not prove the API answers (monitor/demo/national_api.py simulates it in the demo)
        "chukan_api": {
            "kind": "http",
            "timeout": "5s",
            "degraded": {"latency": "2s", "cert_expiry": "14d"},  # two requests: twice the single check's
            "http": {
                "scheme": "https",
                "port": ports["https"],
                "tls_config": tls,
                "secrets": {"password": {"file": API_PASSWORD_FILE}},
                "steps": [
                    {
                        "name": "login",
                        "method": "POST",
                        "url": "/api/v1/login",
                        "body": {"user": API_USER, "password": "${password}"},
                        "extract": {"token": {"json": "access_token"}},
                    },
                    {
                        "name": "status",
                        "url": "/api/v1/status",
                        "headers": {"Authorization": "Bearer ${token}"},
                        "fail_if_json_not_matches": [{"path": "status", "value": "OK"}],
                    },
                ],
            },
        },
        "dns": {
            "kind": "dns",
            "timeout": "3s",
            "dns": {"port": ports["dns"], "query_name": f"juki.east.{DOMAIN}", "min_answers": 1},
        },
    }
    modules.update(estate_snmp.snmp_modules(plan))
    if icmp:
        modules["icmp"] = {
            "kind": "icmp",
            "timeout": "2s",
            "degraded": {"rtt": "200ms", "loss_ratio": 0.34},
            "icmp": {"count": 3, "packet_interval": 0.1},
        }
    return modules


def _address(plan: Plan, block: str, a: int, b: int) -> str:
    """demo: 127.<10|20|30>.a.b; example: 10.<0|100|200>.a.b (center, prefecture, municipal blocks)."""
    first = BLOCKS[plan][block]
    return f"127.{first}.{a}.{b}" if plan == "demo" else f"10.{first}.{a}.{b}"


def build_estate(
    prefecture_count: int = 47,
    plan: Plan = "demo",
    icmp: bool = True,
    listen: str = "127.0.0.1:9310",
    alertmanager_url: str | None = None,
) -> Estate:
    prefs = all_prefectures()[: max(1, min(prefecture_count, 47))]
    ports = PORTS[plan]
    estate = Estate(config={}, csv_files={})
    sites: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    for center, number, name_ja, name_en in CENTERS:
        sites.append({"id": f"center-{center}", "kind": "national_center", "name": name_ja, "name_en": name_en})
        core = f"{center}-core"
        core_addr = _address(plan, "center", number, 1)
        targets.append(
            {
                "name": core,
                "address": core_addr,
                "site": f"center-{center}",
                "labels": {"system": "backbone", "role": "core-router"},
                "modules": ["mgmt_ssh", *(["icmp"] if icmp else [])],
            }
        )
        estate.servers.append(SimServer(core, core_addr, ports["ssh"], "tcp"))
        for index, (suffix, system, module, *_rest) in enumerate(NATIONAL_SYSTEMS, start=11):
            name = f"{suffix}-{center}"
            address = _address(plan, "center", number, index)
            hostname = f"{suffix}.{center}.{DOMAIN}"
            estate.dns_zone[hostname] = address
            proto = {"https": "https", "chukan_api": "https", "http": "http", "crl": "http", "jpki_ocsp": "http",
                     "dns": "dns"}[module]  # fmt: skip
            port = ports["https" if proto == "https" else "dns" if proto == "dns" else "http"]
            estate.servers.append(SimServer(name, address, port, proto, hostname))  # type: ignore[arg-type]
            target: dict[str, Any] = {
                "name": name,
                "address": address,
                "hostname": hostname,
                "site": f"center-{center}",
                "parent": core,
                "labels": {"system": system, "role": "server"},
                "modules": [module, *(["icmp"] if icmp else [])],
            }
            if module == "chukan_api":
                estate.api_hosts.add(name)
            if module == "jpki_ocsp":
                estate.ocsp_hosts.add(name)
                if port != 80:  # an ocsp module has no port of its own: the check's (http://address:port/)
                    target["modules"].remove(module)
                    target["checks"] = [{"module": module, "port": port}]
            targets.append(target)
    for _suffix, system, module, svc_ja, svc_en, rule in NATIONAL_SYSTEMS:
        services.append(
            {
                "name": system,
                "display_name": svc_ja,
                "display_name_en": svc_en,
                "labels": {"tier": "national", "system": system},
                "rule": rule,
                "select": {"labels": {"system": system}, "modules": [module]},
            }
        )
    devices, circuits = _prefecture_rows(plan, prefs, estate)
    access_points = [row for row in devices if row["role"] == "access-point"]
    devices = [row for row in devices if row["role"] != "access-point"]
    for row in access_points:  # YAML targets: their uplinks are interface checks, which CSV rows cannot carry
        labels = {k: row[k] for k in ("tier", "prefecture", "system", "role")}
        modules = row["modules"].split(";")
        targets.append({"name": row["name"], "address": row["address"], "site": row["site"], "parent": row["parent"],
                        "labels": labels, "modules": modules, "checks": estate_snmp.uplink_checks()})  # fmt: skip
    for pref in prefs:
        sites.append({"id": f"pref-{pref.code}", "kind": "prefecture", "prefecture": pref.code})
        services.append(
            {
                "name": f"pref-net-{pref.code}",
                "display_name": f"都道府県ネットワーク（{pref.name_ja}）",
                "display_name_en": f"Prefecture network ({pref.name_en})",
                "labels": {"tier": "prefecture", "prefecture": pref.code, "system": "pref-net"},
                "rule": "all",
                # reachability of the devices; an SNMP agent problem is not an outage of the network
                "select": {"labels": {"prefecture": pref.code, "system": "pref-net"}, "kinds": ["icmp", "tcp"]},
            }
        )
        services.append(estate_snmp.uplink_service(pref.code, pref.name_ja, pref.name_en))
    estate.csv_files = {"inventory/prefecture-devices.csv": devices, "inventory/lgwan-circuits.csv": circuits}
    for row in (*targets, *devices, *circuits):
        if row.get("parent"):
            estate.parents[row["name"]] = row["parent"]
    estate.config = {
        "daemon": {"listen": "127.0.0.1:9310", "data_dir": "data", "max_concurrent_probes": 1000},
        "defaults": DEFAULTS[plan],
        "modules": _modules(plan, icmp),
        "sites": sites,
        "targets": targets,
        "inventories": [{"csv": name} for name in estate.csv_files],
        "services": services,
        "traps": estate_snmp.traps(plan),
    }
    estate.config.update(demo_response(listen, alertmanager_url) if plan == "demo" else example_response())
    estate.config.update(status_sections())
    estate.files = dict(estate_snmp.SECRET_FILES[plan])
    estate.files[API_PASSWORD_FILE] = API_PASSWORD[plan]
    return estate


def _prefecture_rows(
    plan: Plan, prefs: tuple[Prefecture, ...], estate: Estate
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    ssh = PORTS[plan]["ssh"]
    # On a real network ICMP tells a dead device from a dead management port; loopback always answers ICMP,
    # so the demo watches devices through their management port only.
    modules = "mgmt_ssh;snmp_device" if plan == "demo" else "icmp;mgmt_ssh;snmp_device"
    circuit_modules = "mgmt_ssh" if plan == "demo" else "icmp"  # a circuit is up when its far end answers
    devices: list[dict[str, str]] = []
    circuits: list[dict[str, str]] = []
    for pref in prefs:
        p = int(pref.code)
        center = "east" if p <= 23 else "west"
        edge = f"pref{pref.code}-edge"
        rows = (
            (edge, 1, "prefecture", "pref-net", "edge-router", f"{center}-core"),
            (f"pref{pref.code}-core", 2, "prefecture", "pref-net", "core-switch", edge),
            (f"pref{pref.code}-fw", 3, "prefecture", "pref-net", "firewall", f"pref{pref.code}-core"),
            (f"pref{pref.code}-lgwan-ap", 4, "lgwan", "lgwan", "access-point", edge),
        )
        for name, host, tier, system, role, parent in rows:
            address = _address(plan, "pref", p, host)
            devices.append(
                {"name": name, "address": address, "site": f"pref-{pref.code}", "tier": tier, "prefecture": pref.code,
                 "system": system, "role": role, "parent": parent, "modules": modules}
            )  # fmt: skip
            estate.servers.append(SimServer(name, address, ssh, "tcp"))
            estate.snmp_devices.append((name, address, role))
        for m in range(1, MUNICIPALITIES_PER_PREFECTURE + 1):
            for index, role in enumerate(("primary", "backup")):
                name = f"lgwan-{pref.code}-{m:02d}-{role}"
                address = _address(plan, "muni", p, m * 2 - 1 + index)
                circuits.append(
                    {"name": name, "address": address, "site": f"pref-{pref.code}", "tier": "municipality",
                     "prefecture": pref.code, "system": "lgwan", "role": f"circuit-{role}",
                     "parent": f"pref{pref.code}-lgwan-ap", "modules": circuit_modules,
                     "service": f"lgwan-link-{pref.code}-{m:02d}", "service_rule": "any"}
                )  # fmt: skip
                estate.servers.append(SimServer(name, address, ssh, "tcp"))
    return devices, circuits


EXAMPLE_HEADER = """\
# Example inventory of the national backbone monitor (config/monitor.yml).
#
# Two national centers with their national servers (resident-registry network, card management, JPKI OCSP
# and CRL distribution, intermediate-server platform, DNS), the 47 prefecture networks (edge router, core
# switch, firewall, LGWAN access point; inventory/prefecture-devices.csv) and municipal LGWAN connections
# over primary and backup circuits (inventory/lgwan-circuits.csv; each pair is one service, rule "any":
# DEGRADED with one circuit down, DOWN with both).
# Prefecture devices are polled over SNMPv3 (authPriv SHA-256/AES; module snmp_device: system group,
# interfaces, CPU/temperature/fan/power/BGP); each LGWAN access point's two uplinks are interface checks
# (service lgwan-uplink-NN, rule "any"); the trap listener takes linkDown/linkUp and security traps.
# The files under secrets/ are placeholders: put the real keys there (or use ${ENV_VAR} references).
# The certificates under certs/ (JPKI CA and the OCSP check's canaries, module jpki_ocsp) are placeholders too:
# put the real CA's certificate and a known-good and a known-revoked certificate of it there.
# The intermediate-server platform is watched through its API as a client uses it (module chukan_api: log in,
# take the token, call /api/v1/status, check its status field); the account's password is secrets/chukan-api-password.
#
# Addresses are private examples (10.x): replace them with your estate's. Validate offline with
#   monitor check-config config/monitor.yml
# Reference of every key: config/README.md. Generated once by `python -m monitor.demo.estate config`,
# then meant to be edited by hand.
"""


def placeholder_certs(directory: Path) -> None:
    """The example's JPKI CA and canaries, where there are none yet: placeholders (their keys are thrown
    away) for the operator to replace with the real CA's."""
    import datetime as dt

    from monitor.demo.pki import JpkiCA

    certs = directory / "certs"
    if not (certs / JPKI_CA_FILE).exists():
        certs.mkdir(parents=True, exist_ok=True)
        JpkiCA.create(certs, dt.datetime.now(dt.UTC))


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "config")
    print(build_estate(47, "example").write(target, EXAMPLE_HEADER))
    placeholder_certs(target)
