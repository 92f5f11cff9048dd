"""Generic scalar and table OIDs from config (CPU, memory, temperature, power supply, fan, BGP peer
state, ...): each value becomes a `monitor_snmp_value{name, index}` series and is held to its
thresholds. A violation fails the check (severity down) or makes it DEGRADED (severity degraded)."""

from __future__ import annotations

from probes.base import Family, Series
from probes.snmp.ber import OID, Value
from probes.snmp.settings import OidCheck, SnmpSettings
from probes.snmp.transport import Session
from probes.snmp.walk import walk_columns

HELP_VALUE = "Value of a configured OID (scaled), by its name and table index ('' for scalars)."
VALUE = Family("monitor_snmp_value", HELP_VALUE, "gauge", ("name", "index"))
FAMILIES = (VALUE,)


def _number(raw: object) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return float(raw)
    if isinstance(raw, bytes):  # some agents report sensor values as strings ("42.5")
        try:
            return float(raw.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            return None
    return None


def _fmt(number: float) -> str:
    return f"{number:g}"


def violation(check: OidCheck, value: Value) -> str | None:
    """Why this value breaks the check's thresholds, or None."""
    raw = value[1]
    number = _number(raw)
    if check.ok_values:
        allowed = {str(v) for v in check.ok_values}
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        if text not in allowed:
            return f"is {text}, expected one of {', '.join(sorted(allowed))}"
    if number is None:
        if check.max is not None or check.min is not None:
            return "is not a number"
        return None
    scaled = number * check.scale
    if check.max is not None and scaled > check.max:
        return f"{_fmt(scaled)} above max {_fmt(check.max)}"
    if check.min is not None and scaled < check.min:
        return f"{_fmt(scaled)} below min {_fmt(check.min)}"
    return None


async def evaluate_oids(
    session: Session, settings: SnmpSettings, scalars: dict[OID, Value], series: list[Series], deadline: float
) -> tuple[list[str], list[str]]:
    """(failures, degradations) of the module's oids; appends their series."""
    problems: list[str] = []
    degraded: list[str] = []
    tables = [c for c in settings.oids if c.table]
    walked = (
        await walk_columns(
            session, [c.oid for c in tables], deadline, settings.max_repetitions, settings.max_walk_varbinds
        )
        if tables
        else {}
    )
    for check in settings.oids:
        values: dict[str, Value] = {}
        if check.table:
            values = {".".join(map(str, suffix)): v for suffix, v in walked.get(check.oid, {}).items()}
        elif check.oid in scalars:
            values = {"": scalars[check.oid]}
        label = check.description or check.name
        if not values:
            if check.missing == "fail":
                problems.append(f"{label}: OID {'.'.join(map(str, check.oid))} not found on the agent")
            continue
        for index, value in values.items():
            number = _number(value[1])
            if number is not None:
                labels = (("name", check.name), ("index", index))
                series.append(VALUE.sample(labels, number * check.scale))
            why = violation(check, value)
            if why is not None:
                where = f"{label}[{index}]" if index else label
                (problems if check.severity == "down" else degraded).append(f"{where} {why}")
    return problems, degraded
