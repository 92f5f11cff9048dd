"""What in `capacity:` cannot be measured, found when the config loads (see capacity_model.py)."""

from __future__ import annotations

from collections.abc import Mapping

from monitor.config.capacity_model import CapacityConfig
from monitor.config.errors import Issue


def check_capacity(config: CapacityConfig, checks: Mapping[str, tuple[str, bool]]) -> list[Issue]:
    """Every port of a configured circuit is an SNMP check; a device check's port names its interface.
    `checks`: check id -> (its kind, whether it is an interface check)."""
    issues: list[Issue] = []
    for i, circuit in enumerate(config.circuits):
        for j, port in enumerate(circuit.ports):
            loc = ("capacity", "circuits", i, "ports", j)
            found = checks.get(port.check)
            if found is None:
                issues.append(Issue((*loc, "check"), f'unknown check "{port.check}" (a check is "target/name")'))
                continue
            kind, interface_check = found
            if kind != "snmp":
                issues.append(Issue((*loc, "check"), f'check "{port.check}" is {kind}, not snmp: it has no counters'))
            elif port.interface is None and not interface_check:
                issues.append(
                    Issue(
                        (*loc, "interface"), f'"{port.check}" is a device check: name the interface (ifName or ifAlias)'
                    )
                )
        seen = [(p.check, p.interface) for p in circuit.ports]
        if len(set(seen)) != len(seen):
            issues.append(Issue(("capacity", "circuits", i, "ports"), "a port is listed twice (it would count twice)"))
    return issues
