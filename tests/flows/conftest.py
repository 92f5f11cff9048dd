"""A config with one LGWAN connection and its flow policy, and records built for it."""

from __future__ import annotations

import ipaddress
import textwrap
from typing import Any

import pytest

from monitor.flows.records import FlowRecord

EDGE = "192.0.2.1"  # the connection's edge router (the SNMP interface check's device and the exporter)
IFINDEX = 7  # the organisation's interface on it
ASP_MAIL = "10.200.0.25"

CONFIG = """
modules:
  edge_snmp: {kind: snmp, snmp: {version: 2c, community: "${FLOW_TEST_COMMUNITY}"}}
  ping: {kind: icmp}
targets:
  - name: edge
    address: 192.0.2.1
    checks: [{module: edge_snmp, name: uplink, interface: ge-0/0/1}]
  - name: asp-mail
    address: 10.200.0.25
    labels: {tier: asp}
    modules: [ping]
services:
  - {name: lgwan-mail, targets: [asp-mail]}
notifiers:
  hook: {kind: webhook, url: "http://127.0.0.1:9/hook", secret: "${FLOW_TEST_COMMUNITY}"}
contacts:
  sec: {name: sec, webhook: hook}
playbooks:
  default: {levels: [{notify: [{contacts: [sec], via: [hook]}]}]}
  security: {levels: [{notify: [{contacts: [sec], via: [hook]}]}]}
security:
  playbooks:
    default:
      page: security
      action: {kind: command, argv: ["/bin/true"]}
  connections:
    - name: city-a
      organisation: A市
      check: edge/uplink
      addresses: [10.13.0.0/16]
      flows:
__FLOWS__
"""

DEFAULT_FLOWS = """
        allow:
          - {name: mail, to: [lgwan-mail], protocol: tcp, ports: [25, 587]}
          - {name: asp-web, to: ["10.200.0.0/16"], protocol: tcp, ports: [443]}
          - {name: dns, to: ["10.1.1.53"], protocol: udp, ports: [53]}
        detectors:
          disallowed: {severity: major}
          scan: {hosts_per_minute: 10, ports_per_minute: 10}
          bytes: {bytes_per_minute: 1000000}
"""


def config_text(flows: str = DEFAULT_FLOWS) -> str:
    body = textwrap.indent(textwrap.dedent(flows).strip("\n"), " " * 8)
    return CONFIG.replace("__FLOWS__", body)


def flow(
    src: str = "10.13.1.5",
    dst: str = "10.200.0.80",
    dport: int = 443,
    proto: int = 6,
    at: float = 1_000_000.0,
    octets: int = 1500,
    packets: int = 3,
    input_if: int | None = None,
    output_if: int | None = None,
    exporter: str = EDGE,
    sampling: int = 1,
    **extra: Any,
) -> FlowRecord:
    return FlowRecord(
        exporter=exporter,
        observation_domain=0,
        version=10,
        src=ipaddress.ip_address(src),
        dst=ipaddress.ip_address(dst),
        protocol=proto,
        src_port=40000,
        dst_port=dport,
        octets=octets,
        packets=packets,
        first_seen=at,
        last_seen=at + 1,
        input_if=input_if,
        output_if=output_if,
        sampling=sampling,
        **extra,
    )


@pytest.fixture(autouse=True)
def _community(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOW_TEST_COMMUNITY", "public")
