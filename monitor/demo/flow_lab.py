"""Flow export in the lab and the demo: one organisation per prefecture behind its LGWAN access point,
with a flow policy, a disconnect playbook and the access point exporting the organisation's flows as
a router would (monitor.demo.flow_exporter, no root needed), and the `intrude` fault that makes one of
the organisation's terminals misbehave.

Like a router's flow cache, the lab exports a flow when it has been idle for the inactive timeout or
has run for the active timeout; the demo's are short (2 s / 10 s instead of a router's 15 s / 60 s) so
that a detection shows within seconds. Traffic exists only while the organisation's interface on the
access point is up: once the cut sets ifAdminStatus down (by SNMP SET on the demo's agent), no flow
from the organisation is exported any more, which is what verification by flows sees.

Intrusions (`monitor lab fault ORG intrude --kind ...`):
  scan             one terminal probes SMB (445) on 64 addresses of another organisation within ~10 s
  disallowed-port  one terminal opens RDP (3389) to a national server (outside the allow-list's ports)
  exfil            one terminal sends ~80 MB within a minute to an allowed LGWAN-ASP address
The ground-truth record's time is the first offending packet's, so detection latency can be measured.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from monitor.config.model import MonitoringConfig
from monitor.demo.estate import Estate
from monitor.demo.estate_snmp import SNMP_PORT
from monitor.demo.flow_exporter import Encoder, Flow, Sender, flow
from monitor.demo.snmp_agent import SnmpAgents

log = structlog.get_logger()
KINDS = ("scan", "disallowed-port", "exfil")
ACTIVE_TIMEOUT, INACTIVE_TIMEOUT = 10.0, 2.0  # seconds (scaled down from a router's 60 s / 15 s)
TICK = 1.0  # how often the lab's exporters look at their flow caches
ORG_IF_INDEX, ORG_IF_NAME = 5, "Gi0/2/0"  # the access point's "municipality link 01" (snmp_agent.demo_interfaces)
WRITE_ENV = "DEMO_SNMP_WRITE"  # the access points' write community (the cut's SNMP SET), in the environment
FLOW_PORT = 2055


def collector_supported() -> bool:
    """Whether this build has the flow collector (the top-level `flows:` section)."""
    return "flows" in MonitoringConfig.model_fields


@dataclass(frozen=True)
class LabOrg:
    connection: str  # its security.connections[] name
    organisation: str
    network: ipaddress.IPv4Network  # the organisation's range: its terminals are the flows' sources
    device: str  # the LGWAN access point (target and simulated SNMP agent)
    exporter: str  # the access point's address: the export datagrams' source
    prefecture: str


@dataclass
class _Cached:
    """A flow in an exporter's cache: exported at its inactive or active timeout."""

    flow: Flow
    started_export: float  # when the current active interval began


@dataclass
class _Org:
    org: LabOrg
    sender: Sender
    cache: list[_Cached] = field(default_factory=list)


def lab_orgs(estate: Estate) -> list[LabOrg]:
    """One organisation per prefecture of the estate, behind its access point."""
    out = []
    for name, address, role in estate.snmp_devices:
        if role != "access-point":
            continue
        pref = name[4:6]
        out.append(
            LabOrg(
                connection=f"city-{pref}-01",
                organisation=f"都道府県{pref} 市町村01",
                network=ipaddress.IPv4Network(f"10.{int(pref)}.1.0/24"),
                device=name,
                exporter=address,
                prefecture=pref,
            )
        )
    return out


def add_flow_config(estate: Estate, orgs: list[LabOrg], page: str, flow_listen: str) -> None:
    """The organisations' interface checks, their connections with flow policies and the disconnect
    playbook; the collector's section when this build has one."""
    targets = {t["name"]: t for t in estate.config["targets"]}
    for org in orgs:
        targets[org.device].setdefault("checks", []).append(
            {"module": "snmp_uplink", "name": "municipal-01", "interface": ORG_IF_NAME}
        )
    national = [s["name"] for s in estate.config["services"] if s.get("labels", {}).get("tier") == "national"]
    https = [n for n in national if n in ("juki-net", "card-mgmt", "chukan")]
    connections = [
        {
            "name": org.connection,
            "organisation": org.organisation,
            "check": f"{org.device}/municipal-01",
            "addresses": [str(org.network)],
            "anomaly": None,  # the demo's counters are synthetic: flows are this organisation's detector
            "playbook": "lgwan",
            "flows": {
                "allow": [
                    {"name": "national-https", "to": https, "protocol": "tcp", "ports": [8443, 443]},
                    {"name": "national-dns", "to": ["national-dns"], "protocol": "udp", "ports": [5353, 53]},
                    {"name": "asp-services", "to": ["192.0.2.0/24"], "protocol": "tcp", "ports": [443]},
                    {"name": "asp-legacy-ftp", "to": ["192.0.2.21"], "protocol": "tcp", "ports": [21]},
                ],
                "detectors": {
                    "disallowed": {"severity": "major"},
                    "scan": {"hosts_per_minute": 32, "ports_per_minute": 32},
                    "bytes": {"bytes_per_minute": 50_000_000, "severity": "major"},
                },
            },
        }
        for org in orgs
    ]
    estate.config["security"] = {
        "connections": connections,
        "playbooks": {
            "lgwan": {
                "page": page,
                "approvals": 1,
                "action": {
                    "kind": "snmp_set",
                    "snmp": {
                        "version": "2c",
                        "community": "${" + WRITE_ENV + "}",
                        "port": SNMP_PORT["demo"],
                        "timeout": "1s",
                    },
                },
                "verify": {
                    "timeout": "15s",
                    "interface": True,
                    "targets": False,  # the simulated circuits are not behind the access point's port
                    "max_rate_bytes": None,
                    "flows": {"quiet": f"{INACTIVE_TIMEOUT * 3:g}s"},
                },
            }
        },
    }
    if collector_supported():
        estate.config["flows"] = {"listen": flow_listen, "exporters": [{"address": o.exporter} for o in orgs]}


class FlowLab:
    """The access points' flow export: the organisations' usual traffic and the intrusions."""

    def __init__(self, orgs: list[LabOrg], snmp: SnmpAgents, collector: tuple[str, int], version: int = 9) -> None:
        self.snmp = snmp
        self.collector = collector
        self._orgs = {
            o.connection: _Org(o, Sender(Encoder(version=version, observation_domain=int(o.prefecture)), collector,
                                         source=o.exporter))
            for o in orgs
        }  # fmt: skip
        self._random = random.Random(19)
        self._task: asyncio.Task[None] | None = None

    @property
    def orgs(self) -> list[LabOrg]:
        return [o.org for o in self._orgs.values()]

    def connected(self, org: LabOrg) -> bool:
        """The organisation's interface on its access point is up (not cut)."""
        device = self.snmp.devices.get(org.device)
        return device is not None and device.interface(ORG_IF_INDEX).oper == 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for state in self._orgs.values():
            state.sender.close()

    # --- traffic ---------------------------------------------------------------------------

    def _usual(self, org: LabOrg, now: float) -> list[Flow]:
        """A second of an organisation's ordinary LGWAN traffic: HTTPS to national servers, DNS."""
        r = self._random
        hosts = list(org.network.hosts())[:40]
        out = []
        for _ in range(r.randint(1, 3)):
            src = str(r.choice(hosts))
            dst = f"127.10.{r.choice((1, 2))}.{r.choice((11, 12, 15))}"  # juki, card, chukan (estate addresses)
            out.append(flow(src, dst, 6, r.randint(32768, 60999), 8443, r.randint(2_000, 90_000), r.randint(4, 80),
                            now - 0.8, now, input_if=ORG_IF_INDEX, output_if=1, tcp_flags=0x1B))  # fmt: skip
        out.append(flow(str(r.choice(hosts)), "127.10.1.16", 17, r.randint(32768, 60999), 5353, 80, 1, now, now,
                        input_if=ORG_IF_INDEX, output_if=1))  # fmt: skip
        return out

    def intrusion(self, connection: str, kind: str, now: float | None = None) -> list[Flow]:
        """The flows of an intrusion from one of the organisation's terminals, starting now."""
        state = self._orgs.get(connection)
        if state is None:
            raise KeyError(f"no organisation {connection!r} (one of {', '.join(sorted(self._orgs))})")
        org = state.org
        now = time.time() if now is None else now
        src = str(org.network.network_address + 66)
        if kind == "scan":
            victims = ipaddress.IPv4Network(f"10.{(int(org.prefecture) % 47) + 1}.2.0/24")
            return [flow(src, str(victims.network_address + 1 + i), 6, 50000 + i, 445, 60, 1, now + i * 0.15,
                         now + i * 0.15, input_if=ORG_IF_INDEX, output_if=1, tcp_flags=0x02)
                    for i in range(64)]  # fmt: skip
        if kind == "disallowed-port":
            return [flow(src, "127.10.1.11", 6, 51000, 3389, 2400, 12, now, now + 1.0, input_if=ORG_IF_INDEX,
                         output_if=1, tcp_flags=0x1B)]  # fmt: skip
        if kind == "exfil":
            return [flow(src, "192.0.2.80", 6, 52000 + i, 443, 8_000_000, 5600, now + i * 0.5, now + i * 0.5 + 0.4,
                         input_if=ORG_IF_INDEX, output_if=1, tcp_flags=0x1B) for i in range(10)]  # fmt: skip
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")

    def inject(self, connection: str, kind: str) -> float:
        """Start an intrusion; returns the time of its first packet (the ground truth)."""
        flows = self.intrusion(connection, kind)
        state = self._orgs[connection]
        state.cache.extend(_Cached(f, f.first) for f in flows)
        log.info("flow_intrusion_started", connection=connection, kind=kind, flows=len(flows))
        return min(f.first for f in flows)

    async def _run(self) -> None:
        while True:
            now = time.time()
            for state in self._orgs.values():
                try:
                    self._tick(state, now)
                except OSError as exc:  # the collector not up yet, or its address gone: the lab goes on
                    log.warning("flow_export_failed", exporter=state.org.exporter, error=str(exc))
            await asyncio.sleep(TICK)

    def _tick(self, state: _Org, now: float) -> None:
        if not self.connected(state.org):
            # cut: no packet crosses the interface, so none is counted; what was in the cache before the cut
            # still goes out at its timeout, as on a router
            state.cache = [c for c in state.cache if c.flow.first <= now]
        else:
            state.cache.extend(_Cached(f, f.first) for f in self._usual(state.org, now))
        due, keep = [], []
        for cached in state.cache:
            f = cached.flow
            if f.first > now:
                keep.append(cached)  # its packets are still to come
            elif now - f.last >= INACTIVE_TIMEOUT or now - cached.started_export >= ACTIVE_TIMEOUT:
                due.append(f)
            else:
                keep.append(cached)
        state.cache = keep
        if due:
            state.sender.send(due, now)


def describe(orgs: list[LabOrg]) -> list[dict[str, Any]]:
    return [{"connection": o.connection, "network": str(o.network), "access_point": o.device} for o in orgs]
