"""The `security:` section: the disconnect playbook (接続遮断). Which LGWAN connections can be cut,
how unauthorized traffic on them is recognised, and how a cut is approved, executed and verified.

A connection is an organisation's link as seen on our edge device: the SNMP interface check that
watches it (its counters feed the anomaly detector, its ifIndex is what a cut sets down), the
organisation's address ranges (IDS events and security traps name those) and the organisation's
own targets (unreachable once cut: part of the verification).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from monitor.config.flows_model import FlowPolicy, VerifyFlowsField
from monitor.config.model import StrictModel
from monitor.config.response_model import Notify, Severity
from monitor.config.types import IntervalOrZero, Name, Timeout
from probes.secret import Secret
from probes.snmp.settings import V3Credentials, Version


def _network(value: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise ValueError(f'"{value}" is not an address or network (e.g. 10.13.0.0/16)') from None


Network = Annotated[ipaddress.IPv4Network | ipaddress.IPv6Network, BeforeValidator(_network)]


class Anomaly(StrictModel):
    """When the connection's traffic is unauthorized-looking: far above its own baseline for this hour
    of the week, or above an absolute ceiling, for at least `duration`."""

    direction: Literal["in", "out", "both"] = "in"  # "in": received on our edge interface = from the organisation
    factor: float = Field(default=5.0, gt=1)  # times the learned baseline of this hour of the week
    min_rate_bytes: float = Field(default=125_000.0, ge=0)  # baseline alarms only above this (1 Mb/s)
    ceiling_bytes: float | None = Field(default=None, gt=0)  # bytes per second, whatever the baseline
    ceiling_packets: float | None = Field(default=None, gt=0)  # packets per second
    duration: IntervalOrZero = 60.0  # the rate must stay anomalous this long (one spike is no incident)
    learning_samples: int = Field(default=20, ge=1)  # an hour-of-week bucket judges after this many samples
    severity: Severity = "major"


class Connection(StrictModel):
    name: Name
    organisation: str = Field(min_length=1)  # as the security team says it, e.g. 東京都A市
    organisation_en: str | None = None
    check: str  # "target/check": the SNMP interface check on our edge device that watches this connection
    addresses: list[Network] = []  # the organisation's address ranges
    targets: list[Name] = []  # the organisation's targets (they become unreachable when cut)
    notify: Notify | None = None  # the organisation's contacts, told of the cut and the reconnect
    anomaly: Anomaly | None = Anomaly()  # null: no traffic-based detection on this connection
    flows: FlowPolicy | None = None  # detection from the edge routers' flow export (monitor.flows)
    playbook: Name = "default"


class SnmpWrite(StrictModel):
    """Credentials with write access to ifAdminStatus on the edge device (v3 authPriv preferred)."""

    version: Version = "3"
    community: Secret | None = None
    v3: V3Credentials | None = None
    port: int = Field(default=161, ge=1, le=65535)
    timeout: Timeout = 2.0
    retries: int = Field(default=1, ge=0, le=5)

    @model_validator(mode="after")
    def _credentials(self) -> SnmpWrite:
        if self.version == "3" and self.v3 is None:
            raise ValueError("version 3 needs a v3 block (username, keys)")
        if self.version != "3" and self.community is None:
            raise ValueError(f"version {self.version} needs community (a secret reference)")
        return self


class CutAction(StrictModel):
    """How a connection is cut and restored: SNMP SET of ifAdminStatus on the edge device, or a webhook
    or command for equipment that is cut another way. Webhooks and commands get an idempotency key:
    after a restart in mid-action the same key is sent again and must be deduplicated by the receiver."""

    kind: Literal["snmp_set", "webhook", "command"] = "snmp_set"
    snmp: SnmpWrite | None = None
    if_index: int | None = Field(default=None, ge=1)  # default: the ifIndex the connection's check found
    url: str | None = None
    secret: Secret | None = None  # HMAC-SHA256 key for X-Monitor-Signature
    argv: list[str] = []  # the command; MONITOR_ACTION=cut|reconnect and more in its environment
    timeout: Timeout = 10.0

    @model_validator(mode="after")
    def _shape(self) -> CutAction:
        needed = {"snmp_set": self.snmp, "webhook": self.url, "command": self.argv or None}
        if needed[self.kind] is None:
            field = {"snmp_set": "snmp", "webhook": "url", "command": "argv"}[self.kind]
            raise ValueError(f"an action of kind {self.kind} needs {field}")
        return self


class Verify(StrictModel):
    timeout: Timeout = 30.0  # how long a cut or reconnect may take to show
    interface: bool = True  # ifOperStatus of the interface goes down (and comes back up)
    targets: bool = True  # the organisation's targets stop answering (and answer again)
    max_rate_bytes: float | None = Field(default=1000.0, ge=0)  # traffic after the cut at most this (bytes/s)
    flows: VerifyFlowsField = None  # true: no flow from the organisation's ranges after the cut (flows again after
    # a reconnect)


class SecurityPlaybook(StrictModel):
    page: Name  # the escalation playbook (under playbooks:) that pages the security team
    approvals: int = Field(default=1, ge=1, le=2)  # 2: two different people must approve each step
    automatic: list[Severity] = []  # events of these severities are cut without waiting for approval
    execute_on_approval: bool = True  # false: an approved step waits for POST .../execute
    dry_run: bool = False  # only show and audit what would be done; nothing is changed
    action: CutAction
    verify: Verify = Verify()


class SecurityConfig(StrictModel):
    connections: list[Connection] = []
    playbooks: dict[Name, SecurityPlaybook] = {}
    trap_severity: Severity = "critical"  # security traps (traps.mappings with event: security)
    evidence_kept: int = Field(default=50, ge=1, le=10_000)  # events kept on one security incident


class SecuritySection(StrictModel):
    security: SecurityConfig | None = None
