"""`security.connections[].flows`: what an organisation's connection may do, judged from the edge
routers' flow export (NetFlow v9 / IPFIX). LGWAN is a closed network with a known set of services
and ports, so the policy is an allow-list plus detectors for what an allow-list cannot see (scans
inside allowed ranges, a first-seen peer, volume from one host).

Every threshold counts what the exporter saw, corrected for its sampling: octets and packets arrive
already scaled by the announced 1-in-N interval, and each sampled flow counts as N flows (and N
distinct peers) towards the flow-count and fan-out thresholds, which is the unbiased estimate.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator, model_validator

from monitor.config.model import StrictModel
from monitor.config.response_model import Severity
from monitor.config.types import Duration, Interval, IntervalOrZero, Name

PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "gre": 47, "esp": 50, "sctp": 132}
_PORT_RANGE = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")
WEEK = 7 * 86400.0


def _ports(value: object) -> tuple[int, int]:
    """443, "443" or "8000-8080" -> (low, high)."""
    text = str(value).strip() if not isinstance(value, bool) else ""
    match = _PORT_RANGE.match(text)
    if match is None:
        raise ValueError(f'"{value}" is not a port or a port range (write 443 or "8000-8080")')
    low, high = int(match.group(1)), int(match.group(2) or match.group(1))
    if not 0 <= low <= high <= 65535:
        raise ValueError(f'"{value}" is not a port range between 0 and 65535 (low first)')
    return low, high


PortRange = Annotated[tuple[int, int], BeforeValidator(_ports)]


def _protocol(value: object) -> int | None:
    if value is None or value == "any":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
        return value
    number = PROTOCOLS.get(str(value).strip().lower())
    if number is None:
        known = ", ".join(sorted(PROTOCOLS))
        raise ValueError(f'unknown protocol "{value}" (one of {known}, any, or a number 0-255)')
    return number


Protocol = Annotated[int | None, BeforeValidator(_protocol)]


class AllowRule(StrictModel):
    """Traffic from the organisation to these destinations (prefixes, or names of configured
    services or targets such as LGWAN-ASP services and national servers: their addresses), with this
    protocol and to these ports, is allowed."""

    name: Name
    to: list[str] = Field(min_length=1)  # "10.200.0.0/16", "10.1.2.3" or a service / target name
    protocol: Protocol = None  # null / "any": every protocol
    ports: list[PortRange] = []  # destination ports; empty: every port

    @field_validator("to")
    @classmethod
    def _destinations(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.strip():
                raise ValueError("an empty destination")
        return [item.strip() for item in value]

    @model_validator(mode="after")
    def _ports_need_protocol(self) -> AllowRule:
        if self.ports and self.protocol not in (6, 17, 132):
            raise ValueError("ports need protocol tcp, udp or sctp")
        return self


class Detector(StrictModel):
    severity: Severity = "major"
    dry_run: bool = False  # only count, log and audit what it would have reported


class Disallowed(Detector):
    """A flow to a destination or port no allow rule covers: `count` such flows from one source host
    within `window` (by default the first one)."""

    count: int = Field(default=1, ge=1)
    window: Interval = 60.0


class Sustained(Detector):
    duration: IntervalOrZero = 0.0  # the rate must stay above the threshold this long (by the flows' clock)


class Scan(Sustained):
    """Fan-out from one source host within a minute: distinct destination hosts, or distinct
    destination ports (over all its destinations)."""

    hosts_per_minute: int | None = Field(default=32, ge=1)
    ports_per_minute: int | None = Field(default=32, ge=1)
    severity: Severity = "critical"


class NewPeer(Detector):
    """A destination this connection never talked to while its baseline was learned. Learning runs for
    `learning` from the first normal flow (flows another detector reports are never learned); after
    that the baseline is fixed until the operator resets it."""

    learning: Duration = WEEK  # e.g. 7d
    prefix_v4: int = Field(default=32, ge=8, le=32)  # peers are addresses masked to this length
    prefix_v6: int = Field(default=64, ge=16, le=128)
    severity: Severity = "minor"


class BytesPerHost(Sustained):
    """Bytes from one source host of the organisation within a minute (exfiltration below any volume
    baseline of the whole link is still far above what one terminal sends)."""

    bytes_per_minute: float = Field(default=50_000_000.0, gt=0)  # octets (scaled for sampling)


class Detectors(StrictModel):
    disallowed: Disallowed | None = Disallowed()  # null: off
    scan: Scan | None = Scan()
    new_peer: NewPeer | None = None  # off unless configured (it needs its learning week)
    bytes: BytesPerHost | None = None


class FlowPolicy(StrictModel):
    """How flows are mapped to this connection and what is allowed on it."""

    # the routers exporting this connection's flows; default: the address of the device of the
    # connection's interface check (its ifIndex then maps a flow to this connection)
    exporters: list[str] = []
    allow: list[AllowRule] = []
    detectors: Detectors = Detectors()
    repeat: Interval = 60.0  # one source's same finding is added to the incident at most this often
    evidence_flows: int = Field(default=20, ge=1, le=500)  # offending flows kept per finding
    unused_after: Duration = WEEK  # an allow rule that matched nothing this long is reported (a typo?)

    @field_validator("exporters")
    @classmethod
    def _exporters(cls, value: list[str]) -> list[str]:
        out = []
        for item in value:
            try:
                out.append(str(ipaddress.ip_address(item.strip())))
            except ValueError:
                raise ValueError(f'exporter "{item}" is not an IP address') from None
        return out

    @model_validator(mode="after")
    def _unique_rules(self) -> FlowPolicy:
        names = [r.name for r in self.allow]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate allow rule names: {', '.join(dup)}")
        return self


class VerifyFlows(StrictModel):
    """Cut verification by flows (`verify.flows`)."""

    quiet: Interval = 30.0  # no flow from the organisation's ranges for this long after the cut; set it
    # above the exporter's inactive timeout (records of traffic before the cut still arrive until then)
    skew: IntervalOrZero = 2.0  # allowed clock difference between the exporter and us
    # after a reconnect, how long to wait for the first flow from the organisation: set it above the exporter's
    # active timeout (traffic that never idles, a ping every few seconds, is exported only at it; a router's is
    # 60 s). Success comes as soon as a flow does; only a failure waits this long.
    reconnect: Interval = 75.0


def verify_flows(value: object) -> VerifyFlows | None:
    """`flows: true` (defaults), `flows: false` / absent, or `flows: {quiet: 45s}`."""
    if value is True:
        return VerifyFlows()
    if value is False or value is None:
        return None
    if isinstance(value, VerifyFlows):
        return value
    return VerifyFlows.model_validate(value)


VerifyFlowsField = Annotated[VerifyFlows | None, BeforeValidator(verify_flows)]

__all__ = ["PROTOCOLS", "AllowRule", "Detectors", "FlowPolicy", "VerifyFlows", "VerifyFlowsField"]
