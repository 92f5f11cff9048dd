"""Allow-rule destinations named as services or targets resolve to their addresses: once per reload for
the flow policy (monitor.flows.policy), and here for check-config, so a name that resolves to nothing is
an error at the line that wrote it rather than an allow-list that silently allows nothing."""

from __future__ import annotations

import ipaddress
from typing import Any

from monitor.config.errors import Issue
from monitor.config.security_model import SecurityConfig

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def resolve(item: str, inventory: Any) -> tuple[list[Network], str | None]:
    """A prefix, an address, or a service / target name -> networks; (..., problem) when it is none of
    those or names something without an IP address. `inventory` is a monitor.core.inventory.Inventory
    (typed loosely: the inventory is resolved by the module that calls check_flows)."""
    try:
        return [ipaddress.ip_network(item, strict=False)], None
    except ValueError:
        pass
    if item in inventory.services:
        targets = {t.name: t for c in inventory.services[item].check_ids if (t := inventory.checks[c].target)}
        named = [targets[n] for n in sorted(targets)]
    elif item in inventory.targets:
        named = [inventory.targets[item]]
    else:
        return [], f'"{item}" is neither a prefix nor a configured service or target'
    networks: list[Network] = []
    unaddressed = []
    for target in named:
        try:
            networks.append(ipaddress.ip_network(target.address))
        except ValueError:  # a host name: flows carry addresses, and resolving DNS per reload is no policy
            unaddressed.append(target.name)
    if unaddressed:
        shown = ", ".join(unaddressed[:5])
        return networks, f'"{item}": target(s) {shown} have a host name, not an address (write the prefix)'
    if not networks:
        return [], f'"{item}" has no targets with addresses'
    return networks, None


def check_flows(security: SecurityConfig | None, inventory: Any) -> list[Issue]:
    issues: list[Issue] = []
    for i, connection in enumerate(security.connections if security is not None else ()):
        if connection.flows is None:
            continue
        for j, rule in enumerate(connection.flows.allow):
            for k, item in enumerate(rule.to):
                _, problem = resolve(item, inventory)
                if problem:
                    issues.append(Issue(("security", "connections", i, "flows", "allow", j, "to", k), problem))
    return issues
