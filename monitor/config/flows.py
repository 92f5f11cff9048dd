"""The `flows:` section: where the NetFlow v9 / IPFIX collector binds, which exporters it believes, and
how much of each it takes. What the flows mean (allow-lists, detectors) is the security section's."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.config.types import Duration, Listen, parse_listen

DEFAULT_PORT = 2055  # the customary NetFlow port; IPFIX's own (4739) works as well: both versions share a socket


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FlowExporter(_Strict):
    """A router (or a range of them) whose export is accepted: anything else is counted and dropped."""

    # the datagrams' source address, or a prefix of them (a region's access routers)
    address: str
    # 1-in-N packet sampling configured on the exporter, for exporters that do not announce it in an
    # options template; an announced interval takes precedence (it is what the exporter actually does)
    sampling: int | None = Field(default=None, ge=1, le=1_000_000_000)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            return str(ip_network(value.strip(), strict=True))
        except ValueError:
            raise ValueError(
                f'exporter address must be an IP address or prefix, e.g. 192.0.2.1, not "{value}"'
            ) from None

    def network(self) -> IPv4Network | IPv6Network:
        return ip_network(self.address)


class FlowRateLimit(_Strict):
    # export datagrams per exporter per second fully decoded (a router sends ~20-30 records in each);
    # past it their data records are counted (outcome rate_limited) and dropped, templates still learned
    per_second: float = Field(default=5000.0, gt=0, le=1_000_000)
    burst: int = Field(default=10000, ge=1, le=10_000_000)


class FlowsConfig(_Strict):
    listen: Listen = f"0.0.0.0:{DEFAULT_PORT}"  # HOST:PORT; NetFlow v9 and IPFIX on the same socket
    exporters: list[FlowExporter] = Field(min_length=1)
    rate_limit: FlowRateLimit = FlowRateLimit()
    # a template not refreshed for this long is forgotten (RFC 7011 8.4 / RFC 3954 9: over UDP templates are
    # re-sent periodically, every few minutes; data that arrives after expiry waits for the next refresh)
    template_timeout: Annotated[Duration, Field(ge=10, le=86400)] = 1800.0  # e.g. 30m
    # bytes of kernel queue for the socket (SO_RCVBUF; SO_RCVBUFFORCE as root): what a burst can fill while
    # the loop is busy; past it the kernel drops, counted in monitor_flow_dropped_total{reason="kernel"}
    receive_buffer: int = Field(default=32 * 1024 * 1024, ge=64 * 1024, le=1024 * 1024 * 1024)

    @model_validator(mode="after")
    def _unique(self) -> FlowsConfig:
        seen: set[str] = set()
        for exporter in self.exporters:
            if exporter.address in seen:
                raise ValueError(f"exporter {exporter.address} is listed twice")
            seen.add(exporter.address)
        return self

    def listen_address(self) -> tuple[str, int]:
        return parse_listen(self.listen)
