"""Export datagrams built by an independent encoder: scapy's NetFlow v9 / IPFIX layers (templates,
options, data records), so the decoder is held to someone else's reading of RFC 3954 / RFC 7011.

scapy's IPFIX header leaves the version field out of the message length; `message()` writes the
length RFC 7011 3.1 defines (the whole message) after building."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from scapy.compat import raw
from scapy.layers.netflow import (
    GetNetflowRecordV9,
    NetflowDataflowsetV9,
    NetflowFlowsetV9,
    NetflowHeader,
    NetflowHeaderV9,
    NetflowHeaderV10,
    NetflowTemplateFieldV9,
    NetflowTemplateV9,
)
from scapy.packet import Packet

# field type -> the scapy record attribute for it (scapy names v9's)
NAMES = {
    1: "IN_BYTES",
    2: "IN_PKTS",
    4: "PROTOCOL",
    5: "TOS",
    6: "TCP_FLAGS",
    7: "L4_SRC_PORT",
    8: "IPV4_SRC_ADDR",
    10: "INPUT_SNMP",
    11: "L4_DST_PORT",
    12: "IPV4_DST_ADDR",
    14: "OUTPUT_SNMP",
    21: "LAST_SWITCHED",
    22: "FIRST_SWITCHED",
    27: "IPV6_SRC_ADDR",
    28: "IPV6_DST_ADDR",
    60: "IP_PROTOCOL_VERSION",
    61: "DIRECTION",
    152: "flowStartMilliseconds",
    153: "flowEndMilliseconds",
}


@dataclass(frozen=True)
class Flow:
    src: IPv4Address | IPv6Address
    dst: IPv4Address | IPv6Address
    protocol: int
    src_port: int
    dst_port: int
    octets: int
    packets: int
    input_if: int
    output_if: int
    tcp_flags: int
    start_ms: int  # v9: ms of sysUptime; IPFIX: epoch ms
    end_ms: int


def template(template_id: int, layout: Sequence[tuple[int, int]], ipfix: bool) -> NetflowFlowsetV9:
    fields = [NetflowTemplateFieldV9(fieldType=t, fieldLength=n) for t, n in layout]  # type: ignore[no-untyped-call]
    record = NetflowTemplateV9(template_fields=fields, templateID=template_id, fieldCount=len(fields))
    return NetflowFlowsetV9(templates=[record], flowSetID=2 if ipfix else 0)


def values(flow: Flow, layout: Sequence[tuple[int, int]]) -> dict[str, object]:
    by_type: dict[int, object] = {
        1: flow.octets,
        2: flow.packets,
        4: flow.protocol,
        5: 0,
        6: flow.tcp_flags,
        7: flow.src_port,
        8: str(flow.src),
        10: flow.input_if,
        11: flow.dst_port,
        12: str(flow.dst),
        14: flow.output_if,
        21: flow.end_ms,
        22: flow.start_ms,
        27: str(flow.src),
        28: str(flow.dst),
        60: flow.src.version,
        61: 0,
        152: flow.start_ms,
        153: flow.end_ms,
    }
    return {NAMES[t]: by_type[t] for t, _n in layout}


def data(template_id: int, layout: Sequence[tuple[int, int]], flows: Sequence[Flow], ipfix: bool) -> Packet:
    record_class = GetNetflowRecordV9(template(template_id, layout, ipfix))  # type: ignore[no-untyped-call]
    records = [record_class(**values(f, layout)) for f in flows]
    return NetflowDataflowsetV9(templateID=template_id, records=records)


def message(
    sets: Sequence[Packet], ipfix: bool, sequence: int = 0, domain: int = 0, export_time: int = 1_800_000_000,
    uptime: int = 3_600_000,
) -> bytes:  # fmt: skip
    if ipfix:
        header = NetflowHeader(version=10) / NetflowHeaderV10(
            ExportTime=export_time, flowSequence=sequence, ObservationDomainID=domain
        )
    else:
        header = NetflowHeader(version=9) / NetflowHeaderV9(
            count=len(sets), sysUptime=uptime, unixSecs=export_time, packageSequence=sequence, SourceID=domain
        )
    packet = header
    for flowset in sets:
        packet = packet / flowset
    out = bytearray(raw(packet))
    if ipfix:
        struct.pack_into(">H", out, 2, len(out))
    return bytes(out)


def address(text: str) -> IPv4Address | IPv6Address:
    return ip_address(text)
