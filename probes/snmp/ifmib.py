"""IF-MIB (RFC 2863): interface labels (cached), per-interface counters and status, as labelled series.

Labels (ifName, ifDescr, ifAlias, ifType, speed) change rarely, so they are walked once and then
only every `label_refresh_cycles` polls, after a reboot, or when a poll meets an unknown ifIndex.
Each poll reads status, errors, discards and traffic counters of the *selected* interfaces only:
a walk of those columns when most interfaces are selected, GETs by ifIndex when few are.
"""

from __future__ import annotations

import time

from probes.base import Family, Series
from probes.snmp.ber import OID, Value
from probes.snmp.counters import DeviceState, IfLabels, count, utilisation
from probes.snmp.settings import SnmpSettings
from probes.snmp.transport import Session
from probes.snmp.walk import get_many, walk_columns

IF = (1, 3, 6, 1, 2, 1, 2, 2, 1)  # ifTable.ifEntry
IFX = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)  # ifXTable.ifXEntry
IF_DESCR, IF_TYPE, IF_SPEED = (*IF, 2), (*IF, 3), (*IF, 5)
IF_ADMIN, IF_OPER, IF_LAST_CHANGE = (*IF, 7), (*IF, 8), (*IF, 9)
IF_NAME, IF_HIGH_SPEED, IF_ALIAS = (*IFX, 1), (*IFX, 15), (*IFX, 18)
LABEL_COLUMNS = (IF_DESCR, IF_TYPE, IF_SPEED, IF_NAME, IF_HIGH_SPEED, IF_ALIAS)

# Status and error columns, read every poll: (series suffix, column)
STATUS = {"admin": IF_ADMIN, "oper": IF_OPER, "last_change": IF_LAST_CHANGE}
ERRORS = {
    "in_discards": (*IF, 13),
    "in_errors": (*IF, 14),
    "out_discards": (*IF, 19),
    "out_errors": (*IF, 20),
}
# Traffic counters: 64-bit ifXTable columns, and the 32-bit columns used where those are missing.
TRAFFIC64 = {
    "in_octets": (*IFX, 6),
    "in_unicast_packets": (*IFX, 7),
    "in_multicast_packets": (*IFX, 8),
    "in_broadcast_packets": (*IFX, 9),
    "out_octets": (*IFX, 10),
    "out_unicast_packets": (*IFX, 11),
    "out_multicast_packets": (*IFX, 12),
    "out_broadcast_packets": (*IFX, 13),
}
TRAFFIC32 = {
    "in_octets": (*IF, 10),
    "in_unicast_packets": (*IF, 11),
    "in_multicast_packets": (*IFX, 2),
    "in_broadcast_packets": (*IFX, 3),
    "out_octets": (*IF, 16),
    "out_unicast_packets": (*IF, 17),
    "out_multicast_packets": (*IFX, 4),
    "out_broadcast_packets": (*IFX, 5),
}
OPER_STATUS = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent", 7: "lowerLayerDown"}
ADMIN_STATUS = {1: "up", 2: "down", 3: "testing"}

_HELP = {
    "in_octets": "Octets received on the interface (ifHCInOctets, else ifInOctets extended past 32-bit wraps).",
    "out_octets": "Octets sent on the interface (ifHCOutOctets, else ifOutOctets extended past 32-bit wraps).",
    "in_unicast_packets": "Unicast packets received (ifHCInUcastPkts, else ifInUcastPkts).",
    "out_unicast_packets": "Unicast packets sent (ifHCOutUcastPkts, else ifOutUcastPkts).",
    "in_multicast_packets": "Multicast packets received (ifHCInMulticastPkts, else ifInMulticastPkts).",
    "out_multicast_packets": "Multicast packets sent (ifHCOutMulticastPkts, else ifOutMulticastPkts).",
    "in_broadcast_packets": "Broadcast packets received (ifHCInBroadcastPkts, else ifInBroadcastPkts).",
    "out_broadcast_packets": "Broadcast packets sent (ifHCOutBroadcastPkts, else ifOutBroadcastPkts).",
    "in_errors": "Inbound packets with errors (ifInErrors).",
    "out_errors": "Outbound packets not sent because of errors (ifOutErrors).",
    "in_discards": "Inbound packets discarded without an error, e.g. for lack of buffers (ifInDiscards).",
    "out_discards": "Outbound packets discarded without an error (ifOutDiscards).",
}
HELP_ADMIN = "ifAdminStatus: 1 up, 2 down, 3 testing."
HELP_OPER = "ifOperStatus: 1 up, 2 down, 3 testing, 4 unknown, 5 dormant, 6 notPresent, 7 lowerLayerDown."
HELP_LAST_CHANGE = "When the interface last changed operational state (from ifLastChange and sysUpTime)."
HELP_SPEED = "Interface speed in bytes per second (ifHighSpeed x 10^6 / 8, else ifSpeed / 8)."
HELP_UTIL = "Share of the interface speed used between the last two polls."
IF_LABELS = ("if_index", "if_name", "if_alias")  # IfLabels.series_labels
FAMILIES = (
    Family("monitor_if_admin_status", HELP_ADMIN, "gauge", IF_LABELS),
    Family("monitor_if_oper_status", HELP_OPER, "gauge", IF_LABELS),
    Family("monitor_if_last_change_timestamp_seconds", HELP_LAST_CHANGE, "gauge", IF_LABELS),
    Family("monitor_if_speed_bytes_per_second", HELP_SPEED, "gauge", IF_LABELS),
    *(Family(f"monitor_if_{key}_total", _HELP[key], "counter", IF_LABELS) for key in _HELP),
    Family("monitor_if_utilization_ratio", HELP_UTIL, "gauge", (*IF_LABELS, "direction")),
)


def _text(value: Value | None) -> str:
    if value is None or not isinstance(value[1], bytes):
        return ""
    return value[1].decode("utf-8", "replace").strip("\x00").strip()


def _number(value: Value | None) -> int | None:
    if value is None or not isinstance(value[1], int):
        return None
    return value[1]


async def read_labels(session: Session, settings: SnmpSettings, state: DeviceState, deadline: float) -> None:
    """Walk the label columns into the state's ifIndex -> labels cache."""
    table = await walk_columns(session, LABEL_COLUMNS, deadline, settings.max_repetitions, settings.max_walk_varbinds)
    labels: dict[int, IfLabels] = {}
    for suffix, descr in table[IF_DESCR].items():
        if len(suffix) != 1:
            continue
        index = suffix[0]
        high = _number(table[IF_HIGH_SPEED].get(suffix))
        speed = _number(table[IF_SPEED].get(suffix)) or 0
        name = _text(table[IF_NAME].get(suffix))
        labels[index] = IfLabels(
            index=index,
            name=name or _text(descr),
            descr=_text(descr),
            alias=_text(table[IF_ALIAS].get(suffix)),
            type=_number(table[IF_TYPE].get(suffix)) or 0,
            # ifSpeed saturates at 4,294,967,295; ifHighSpeed (Mb/s) takes over above that
            speed_bps=float(high) * 1e6 if high and (speed >= 0xFFFFFFFF or not speed) else float(speed),
        )
    state.labels = labels
    state.polls_since_labels = 0
    if session.version == "1":
        state.hc = False  # v1 cannot carry Counter64
    elif settings.counters != "auto":
        state.hc = settings.counters == "64"


def selected(settings: SnmpSettings, state: DeviceState) -> list[int]:
    sel = settings.interfaces
    return [i for i, lb in sorted(state.labels.items()) if sel.selects(i, lb.name, lb.descr, lb.alias)]


def find_interface(state: DeviceState, wanted: str) -> int | None:
    """The ifIndex of an interface given by index, ifName, ifDescr or ifAlias (exact, in that order)."""
    text = str(wanted).strip()
    if text.isdigit() and int(text) in state.labels:
        return int(text)
    for attr in ("name", "descr", "alias"):
        for index, lb in state.labels.items():
            if getattr(lb, attr) == text:
                return index
    return None


def _columns(state: DeviceState) -> dict[str, OID]:
    traffic: dict[str, OID] = {}
    if state.hc is not False:
        traffic.update(TRAFFIC64)
    if state.hc is not True:  # unknown: ask for both once, then keep the one the agent has
        traffic.update({f"{k}_32": v for k, v in TRAFFIC32.items()})
    return {**STATUS, **ERRORS, **traffic}


async def read_rows(
    session: Session, settings: SnmpSettings, state: DeviceState, indexes: list[int], deadline: float
) -> dict[int, dict[str, Value]]:
    """{ifIndex: {column key: value}} for the given interfaces."""
    columns = _columns(state)
    rows: dict[int, dict[str, Value]] = {i: {} for i in indexes}
    if len(indexes) * 3 > max(len(state.labels), 1):  # most of the table: one walk is cheaper than many GETs
        table = await walk_columns(
            session, list(columns.values()), deadline, settings.max_repetitions, settings.max_walk_varbinds
        )
        for key, column in columns.items():
            for suffix, value in table[column].items():
                if len(suffix) == 1 and suffix[0] in rows:
                    rows[suffix[0]][key] = value
    else:
        oids = [(*column, i) for i in indexes for column in columns.values()]
        got = await get_many(session, oids, deadline, settings.max_oids_per_request)
        for i in indexes:
            for key, column in columns.items():
                found = got.get((*column, i))
                if found is not None:
                    rows[i][key] = found
    if state.hc is None:
        state.hc = any("in_octets" in row for row in rows.values())
    return rows


def interface_series(
    state: DeviceState, index: int, row: dict[str, Value], uptime_ticks: int | None, wall: float
) -> list[Series]:
    """The series of one interface from one poll (counters advance the state)."""
    lb = state.labels.get(index)
    if lb is None:  # a row the label walk did not see (it is re-read next poll)
        lb = IfLabels(index, "", "", "", 0, 0.0)
    labels = lb.series_labels
    out: list[Series] = []
    admin, oper = _number(row.get("admin")), _number(row.get("oper"))
    if admin is not None:
        out.append(Series("monitor_if_admin_status", HELP_ADMIN, "gauge", labels, float(admin)))
    if oper is not None:
        out.append(Series("monitor_if_oper_status", HELP_OPER, "gauge", labels, float(oper)))
    last_change = _number(row.get("last_change"))
    if last_change is not None and uptime_ticks is not None and last_change <= uptime_ticks:
        at = wall - (uptime_ticks - last_change) / 100.0
        out.append(Series("monitor_if_last_change_timestamp_seconds", HELP_LAST_CHANGE, "gauge", labels, at))
    if lb.speed_bps > 0:
        out.append(Series("monitor_if_speed_bytes_per_second", HELP_SPEED, "gauge", labels, lb.speed_bps / 8))
    now = time.monotonic()
    hc = state.hc is not False
    for key in (*ERRORS, *TRAFFIC64):
        raw = _number(row.get(key) if key in ERRORS or hc else row.get(f"{key}_32"))
        if raw is None:
            continue
        bits = 64 if (key in TRAFFIC64 and hc) else 32
        exported, delta, seconds = count(state, index, key, raw, bits, now)
        out.append(Series(f"monitor_if_{key}_total", _HELP[key], "counter", labels, float(exported)))
        if key in ("in_octets", "out_octets"):
            ratio = utilisation(delta, seconds, lb.speed_bps)
            if ratio is not None:
                with_direction = lb.in_labels if key == "in_octets" else lb.out_labels
                out.append(Series("monitor_if_utilization_ratio", HELP_UTIL, "gauge", with_direction, ratio))
    return out


def link_problem(row: dict[str, Value], admin_down: str) -> str | None:
    """Why an interface check fails, or None: admin up but oper down is a link down."""
    admin, oper = _number(row.get("admin")), _number(row.get("oper"))
    if admin is None or oper is None:
        return "interface status not readable (ifAdminStatus/ifOperStatus missing)"
    if admin != 1:
        return None if admin_down == "ok" else f"administratively {ADMIN_STATUS.get(admin, str(admin))}"
    if oper in (1, 5):  # up, or dormant (waiting for traffic: e.g. a dial-on-demand backup circuit)
        return None
    return f"link down: admin up, oper {OPER_STATUS.get(oper, str(oper))}"


def describe(lb: IfLabels | None, index: int) -> str:
    if lb is None:
        return f"ifIndex {index}"
    return f"{lb.name}" + (f" ({lb.alias})" if lb.alias else "") + f" [ifIndex {index}]"
