"""What a received notification means: its trap OID, well-known name or configured mapping, the
interface it names, as a TrapEvent (the data listeners get). Pure: no I/O.

pysnmp hands every notification over in SNMPv2 form (RFC 3584 translates v1 traps): sysUpTime.0,
snmpTrapOID.0, the trap's own varbinds, and for v1 also snmpTrapAddress.0 (the agent-addr field).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.config.traps import TrapMapping

SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
SNMP_TRAP_ADDRESS = (1, 3, 6, 1, 6, 3, 18, 1, 3, 0)
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


def _oid(value: Any) -> tuple[int, ...]:
    return tuple(int(x) for x in value)


def _text(value: Any) -> str:
    try:
        text = value.prettyPrint()
    except AttributeError:
        text = str(value)
    return str(text)[:200]


def decode_trap(source: str, varbinds: Any, mappings: Mapping[tuple[int, ...], TrapMapping], now: float) -> TrapEvent:
    trap_oid: tuple[int, ...] = ()
    if_index: int | None = None
    agent_addr: str | None = None
    shown: list[tuple[str, str]] = []
    for name, value in varbinds:
        oid = _oid(name)
        if oid == SNMP_TRAP_OID:
            trap_oid = _oid(value)
            continue
        if oid == SNMP_TRAP_ADDRESS:
            raw = bytes(value.asOctets())
            if len(raw) == 4 and raw != b"\0\0\0\0":
                agent_addr = ".".join(str(b) for b in raw)
            continue
        if oid[: len(IF_ENTRY)] == IF_ENTRY and len(oid) == len(IF_ENTRY) + 2 and if_index is None:
            # ifIndex.N carries N as its value; ifAdminStatus.N, ifOperStatus.N, ifDescr.N carry it in the OID
            if_index = int(value) if oid[:-1] == IF_INDEX else oid[-1]
        if len(shown) < 32:
            shown.append((".".join(map(str, oid)), _text(value)))
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
