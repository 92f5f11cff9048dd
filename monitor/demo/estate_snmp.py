"""The SNMP part of the simulated estate: modules, interface checks, trap listener and secrets.

Every prefecture device has an SNMP device check (system group, interfaces, CPU and temperature);
each LGWAN access point's two uplinks (primary and backup) are interface checks of their own and
form the service `lgwan-uplink-<pref>` (rule any: DEGRADED with one uplink down, DOWN with both).
The demo talks SNMP v2c to its simulated agents; the example (a starting point for a real
deployment) uses SNMPv3 authPriv with SHA-256/AES and Cisco-style health OIDs.
"""

from __future__ import annotations

from typing import Any, Literal

Plan = Literal["demo", "example"]
SNMP_PORT = {"demo": 1161, "example": 161}
TRAP_LISTEN = {"demo": "127.0.0.1:10162", "example": "0.0.0.0:162"}
UPLINKS = (("uplink-primary", "LGWAN uplink primary"), ("uplink-backup", "LGWAN uplink backup"))
# Files the config refers to (relative to it): secrets are references, never values in the YAML.
SECRET_FILES = {
    "demo": {"secrets/snmp-community": "public\n"},
    "example": {
        "secrets/snmp-v3-auth-key": "CHANGE-ME-snmp-v3-auth-key\n",
        "secrets/snmp-v3-priv-key": "CHANGE-ME-snmp-v3-priv-key\n",
        "secrets/snmp-trap-community": "CHANGE-ME-trap-community\n",
    },
}
DEMO_ENTERPRISE = "1.3.6.1.4.1.99999"  # the demo agent's private MIB (CPU, temperature)


def _credentials(plan: Plan) -> dict[str, Any]:
    if plan == "demo":
        return {"version": "2c", "community": {"file": "secrets/snmp-community"}}
    return {
        "version": 3,
        "v3": {
            "username": "noc-monitor",
            "security_level": "authPriv",
            "auth_protocol": "SHA-256",
            "auth_key": {"file": "secrets/snmp-v3-auth-key"},
            "priv_protocol": "AES",
            "priv_key": {"file": "secrets/snmp-v3-priv-key"},
        },
    }


def _health_oids(plan: Plan) -> list[dict[str, Any]]:
    if plan == "demo":
        return [
            {"name": "cpu", "description": "CPU load (%)", "oid": f"{DEMO_ENTERPRISE}.2.1.0", "max": 90},
            {"name": "temperature", "description": "Chassis temperature (C)", "oid": f"{DEMO_ENTERPRISE}.2.2.0",
             "max": 60, "severity": "degraded"},
        ]  # fmt: skip
    cisco = "1.3.6.1.4.1.9.9"
    return [
        {"name": "cpu_5min", "description": "CPU load 5 min (%)", "oid": f"{cisco}.109.1.1.1.1.8", "table": True,
         "max": 90, "missing": "ignore"},
        {"name": "temperature", "description": "Temperature sensor (C)", "oid": f"{cisco}.13.1.3.1.3",
         "table": True, "max": 60, "severity": "degraded", "missing": "ignore"},
        {"name": "fan", "description": "Fan state (1 normal)", "oid": f"{cisco}.13.1.4.1.3", "table": True,
         "ok_values": [1], "missing": "ignore"},
        {"name": "power_supply", "description": "Power supply state (1 normal)", "oid": f"{cisco}.13.1.5.1.3",
         "table": True, "ok_values": [1], "severity": "degraded", "missing": "ignore"},
        {"name": "bgp_peer", "description": "BGP peer state (6 established)", "oid": "1.3.6.1.2.1.15.3.1.2",
         "table": True, "ok_values": [6], "missing": "ignore"},
    ]  # fmt: skip


def snmp_modules(plan: Plan) -> dict[str, Any]:
    demo = plan == "demo"
    base = {
        **_credentials(plan),
        "port": SNMP_PORT[plan],
        "timeout": "1s" if demo else "2s",
        "retries": 1,
        "max_repetitions": 25,
    }
    return {
        "snmp_device": {
            "kind": "snmp",
            "interval": "10s" if demo else "60s",
            "timeout": "8s" if demo else "15s",
            "snmp": {
                **base,
                "interfaces": {"exclude": ["^Mgmt", "^Null", "^Loopback"]},
                "label_refresh_cycles": 15,
                "oids": _health_oids(plan),
            },
        },
        "snmp_uplink": {
            "kind": "snmp",
            "interval": "20s" if demo else "30s",  # demo: traps, not polls, catch a cut uplink
            "timeout": "5s" if demo else "10s",
            "snmp": base,
        },
    }


def uplink_checks() -> list[dict[str, Any]]:
    """Interface checks of an LGWAN access point, by the uplinks' ifAlias."""
    return [{"module": "snmp_uplink", "name": name, "interface": alias} for name, alias in UPLINKS]


def uplink_service(pref_code: str, name_ja: str, name_en: str) -> dict[str, Any]:
    ap = f"pref{pref_code}-lgwan-ap"
    return {
        "name": f"lgwan-uplink-{pref_code}",
        "display_name": f"LGWAN接続回線（{name_ja}）",
        "display_name_en": f"LGWAN uplinks ({name_en})",
        "labels": {"tier": "lgwan", "prefecture": pref_code, "system": "lgwan"},
        "rule": "any",
        "checks": [f"{ap}/{name}" for name, _ in UPLINKS],
    }


def traps(plan: Plan) -> dict[str, Any]:
    if plan == "demo":
        communities: list[Any] = [{"file": "secrets/snmp-community"}]
        users: list[Any] = []
    else:
        communities = [{"file": "secrets/snmp-trap-community"}]
        creds = _credentials(plan)["v3"]
        users = [{**creds, "username": "noc-trap"}]  # informs need no engine_id; add it for v3 TRAPs
    return {
        "listen": TRAP_LISTEN[plan],
        "communities": communities,
        "v3_users": users,
        "rate_limit": {"per_second": 20, "burst": 100},
        "mappings": [
            {"oid": "1.3.6.1.4.1.9.9.41.2.0.1", "name": "clogMessageGenerated", "event": "info", "repoll": False},
            {"oid": "1.3.6.1.4.1.9.9.147.2.0.1", "name": "cfwSecurityNotification", "event": "security"},
            {"oid": f"{DEMO_ENTERPRISE}.3.0.1", "name": "demoIntrusionAlert", "event": "security"},
        ],
    }
