"""What a received notification means: its trap OID, well-known name or configured mapping, the
interface it names, as a TrapEvent (the data listeners get). Pure: no I/O.

v1 and v2c datagrams are read here with the project's BER codec (probes.snmp.ber), 20-50x cheaper
than pysnmp's: under a flood of thousands of traps a second the receiver must keep up with the socket
or the kernel drops what it cannot queue. A v1 Trap-PDU is translated to the SNMPv2 form of RFC 3584
(sysUpTime.0, snmpTrapOID.0, its varbinds, snmpTrapAddress.0), as pysnmp does for v3 notifications,
so decode_trap reads every version the same way. Anything malformed raises BerError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from monitor.config.traps import TrapMapping
from probes.snmp import ber
from probes.snmp.ber import BerError, Value, VarBind

SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
SNMP_TRAP_ADDRESS = (1, 3, 6, 1, 6, 3, 18, 1, 3, 0)
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_TRAPS = (1, 3, 6, 1, 6, 3, 1, 1, 5)  # generic-trap N of a v1 trap is snmpTraps.(N+1)
IF_ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IF_INDEX = (*IF_ENTRY, 1)
# RFC 3418 / RFC 2863 generic traps: (name, event kind)
WELL_KNOWN: dict[tuple[int, ...], tuple[str, str]] = {
    (1, 3, 6, 1, 6, 3, 1, 1, 5, 1): ("coldStart", "cold_start"),
    (1, 3, 6, 1, 6, 3, 1, 1, 5, 2): ("warmStart", "warm_start"),
    (1, 3, 6, 1, 6, 3, 1, 1, 5, 3): ("linkDown", "link_down"),
    (1, 3, 6, 1, 6, 3, 1, 1, 5, 4): ("linkUp", "link_up"),
    (1, 3, 6, 1, 6, 3, 1, 1, 5, 5): ("authenticationFailure", "auth_failure"),
}


@dataclass(slots=True)
class TrapEvent:
    at: float  # wall clock, UTC epoch seconds
    agent: str  # the address the trap is attributed to
    trap_oid: str  # dotted
    name: str  # coldStart, linkDown, ..., a mapping's name, or "unknown"
    event: str | None  # link_down, link_up, cold_start, warm_start, auth_failure, security, info; None: unknown OID
    if_index: int | None = None
    agent_addr: str | None = None  # a v1 trap's agent-addr (snmpTrapAddress.0), when it differs
    repoll: bool = True
    varbinds: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Notification:
    """A v1 or v2c trap or inform as it came off the wire, in SNMPv2 form."""

    version: int  # 0: v1, 1: v2c
    community: bytes
    pdu: int  # ber.TRAP_V1, ber.TRAP_V2 or ber.INFORM
    request_id: int  # 0 for a v1 trap
    varbinds: list[VarBind]
    raw_varbinds: list[VarBind]  # as received (an inform's response echoes them)


def snmp_version(data: bytes) -> int | None:
    """msgVersion of an SNMP message (0, 1, 3, ...), or None when the datagram does not start like one."""
    try:
        tag, i, stop = ber._header(data, 0, len(data))
        if tag != ber.SEQUENCE or stop != len(data):
            return None
        tag, s, e = ber._header(data, i, stop)
        return ber._int(data, tag, s, e)
    except BerError:
        return None


def v3_envelope_ok(data: bytes) -> bool:
    """The outer SNMPv3 message (RFC 3412) is well formed: what pysnmp may be given. pysnmp raises
    TypeError and friends on some malformed envelopes, and each costs a millisecond of its decoder."""
    try:
        _, i, stop = ber._header(data, 0, len(data))
        tag, _, i = ber._header(data, i, stop)  # msgVersion, checked by snmp_version
        tag, s, i = ber._header(data, i, stop)  # msgGlobalData
        if tag != ber.SEQUENCE:
            return False
        for expected in (ber.INTEGER, ber.INTEGER, ber.OCTET_STRING, ber.INTEGER):
            ftag, fs, s = ber._header(data, s, i)
            if ftag != expected or (expected == ber.INTEGER and not 0 < s - fs <= 5):
                return False
            if expected == ber.OCTET_STRING and s - fs != 1:  # msgFlags
                return False
        if s != i:
            return False
        tag, _, i = ber._header(data, i, stop)  # msgSecurityParameters
        if tag != ber.OCTET_STRING:
            return False
        tag, _, i = ber._header(data, i, stop)  # scopedPDU, or encryptedPDU
        return tag in (ber.SEQUENCE, ber.OCTET_STRING) and i == stop
    except BerError:
        return False


def decode_notification(data: bytes) -> Notification:
    """A v1 Trap-PDU, v2c SNMPv2-Trap or InformRequest; BerError for anything else."""
    try:
        return _decode_notification(data)
    except IndexError as exc:  # every read is bounds-checked; belt and braces as in probes.snmp.ber
        raise BerError("truncated") from exc


def _decode_notification(data: bytes) -> Notification:
    end = len(data)
    tag, i, stop = ber._header(data, 0, end)
    if tag != ber.SEQUENCE or stop != end:
        raise BerError("not an SNMP message")
    tag, s, e = ber._header(data, i, stop)
    version = ber._int(data, tag, s, e)
    tag, s, e = ber._header(data, e, stop)
    if tag != ber.OCTET_STRING:
        raise BerError("bad community")
    community = data[s:e]
    pdu, i, pdu_end = ber._header(data, e, stop)
    if pdu_end != stop:
        raise BerError("trailing bytes")
    if version == ber.V1 and pdu == ber.TRAP_V1:
        return _v1_trap(data, community, i, pdu_end)
    if (
        version not in (ber.V1, ber.V2C)
        or pdu not in (ber.TRAP_V2, ber.INFORM)
        or (version == ber.V1 and pdu != ber.TRAP_V1)
    ):
        raise BerError(f"not a notification (version {version}, PDU 0x{pdu:02x})")
    fields = []
    for _ in range(3):
        tag, s, i = ber._header(data, i, pdu_end)
        fields.append(ber._int(data, tag, s, i))
    varbinds = _varbinds(data, i, pdu_end)
    return Notification(version, community, pdu, fields[0], varbinds, varbinds)


def _varbinds(data: bytes, i: int, end: int) -> list[VarBind]:
    tag, i, list_end = ber._header(data, i, end)
    if tag != ber.SEQUENCE or list_end != end:
        raise BerError("bad varbind list")
    varbinds: list[VarBind] = []
    while i < list_end:
        tag, s, i = ber._header(data, i, list_end)
        if tag != ber.SEQUENCE:
            raise BerError("bad varbind")
        tag, os_, oe = ber._header(data, s, i)
        if tag != ber.OBJECT_IDENTIFIER:
            raise BerError("bad varbind name")
        vtag, vs, ve = ber._header(data, oe, i)
        if ve != i:
            raise BerError("bad varbind")
        varbinds.append((ber.decode_oid(data[os_:oe]), (vtag, ber._value(data, vtag, vs, ve))))
    return varbinds


def _v1_trap(data: bytes, community: bytes, i: int, end: int) -> Notification:
    """RFC 1157 Trap-PDU: enterprise, agent-addr, generic-trap, specific-trap, time-stamp, varbinds."""
    tag, s, i = ber._header(data, i, end)
    if tag != ber.OBJECT_IDENTIFIER:
        raise BerError("bad enterprise")
    enterprise = ber.decode_oid(data[s:i])
    tag, s, i = ber._header(data, i, end)
    if tag != ber.IP_ADDRESS or i - s != 4:
        raise BerError("bad agent-addr")
    agent_addr = data[s:i]
    tag, s, i = ber._header(data, i, end)
    generic = ber._int(data, tag, s, i)
    tag, s, i = ber._header(data, i, end)
    specific = ber._int(data, tag, s, i)
    tag, s, i = ber._header(data, i, end)
    if tag != ber.TIMETICKS:
        raise BerError("bad time-stamp")
    stamp = ber._value(data, tag, s, i)
    raw = _varbinds(data, i, end)
    if not 0 <= generic <= 6 or specific < 0:
        raise BerError("bad generic-trap")
    trap_oid = (*SNMP_TRAPS, generic + 1) if generic < 6 else (*enterprise, 0, specific)
    varbinds: list[VarBind] = [
        (SYS_UPTIME, (ber.TIMETICKS, stamp)),
        (SNMP_TRAP_OID, (ber.OBJECT_IDENTIFIER, trap_oid)),
        *raw,
        (SNMP_TRAP_ADDRESS, (ber.IP_ADDRESS, agent_addr)),
    ]
    return Notification(ber.V1, community, ber.TRAP_V1, 0, varbinds, raw)


def value_text(value: Value, limit: int = 200) -> str:
    """A value as an operator reads it: text, dotted OID or address, number; binary as 0x hex."""
    tag, raw = value
    if isinstance(raw, bytes):
        if tag == ber.IP_ADDRESS and len(raw) == 4:
            return ".".join(str(b) for b in raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + raw[: limit // 2].hex()
        return text[:limit] if text.isprintable() else "0x" + raw[: limit // 2].hex()
    if isinstance(raw, tuple):
        return ".".join(map(str, raw))[:limit]
    return "" if raw is None else str(raw)[:limit]


def decode_trap(
    source: str, varbinds: Sequence[VarBind], mappings: Mapping[tuple[int, ...], TrapMapping], now: float
) -> TrapEvent:
    """What a notification (SNMPv2 form: plain OIDs and (tag, value) pairs) from `source` means."""
    trap_oid: tuple[int, ...] = ()
    if_index: int | None = None
    agent_addr: str | None = None
    shown: list[tuple[str, str]] = []
    for oid, value in varbinds:
        raw = value[1]
        if oid == SNMP_TRAP_OID:
            if not isinstance(raw, tuple):
                raise BerError("snmpTrapOID.0 is not an OID")
            trap_oid = raw
            continue
        if oid == SNMP_TRAP_ADDRESS:
            if isinstance(raw, bytes) and len(raw) == 4 and raw != b"\0\0\0\0":
                agent_addr = ".".join(str(b) for b in raw)
            continue
        if oid[: len(IF_ENTRY)] == IF_ENTRY and len(oid) == len(IF_ENTRY) + 2 and if_index is None:
            # ifIndex.N carries N as its value; ifAdminStatus.N, ifOperStatus.N, ifDescr.N carry it in the OID
            if oid[:-1] == IF_INDEX:
                if isinstance(raw, int) and 0 < raw < 2**31:
                    if_index = raw
            else:
                if_index = oid[-1]
        if len(shown) < 32:
            shown.append((".".join(map(str, oid)), value_text(value)))
    dotted = ".".join(map(str, trap_oid)) if trap_oid else ""
    known = WELL_KNOWN.get(trap_oid)
    mapping = mappings.get(trap_oid)
    if mapping is not None:  # the operator's mapping wins, even over a well-known name
        name, event, repoll = mapping.name, str(mapping.event), mapping.repoll
    elif known is not None:
        name, event, repoll = known[0], known[1], known[1] != "auth_failure"
    else:
        name, event, repoll = "unknown", None, True
    return TrapEvent(
        at=now,
        agent=source,
        trap_oid=dotted,
        name=name,
        event=event,
        if_index=if_index,
        agent_addr=agent_addr if agent_addr != source else None,
        repoll=repoll,
        varbinds=tuple(shown),
    )
