"""`monitor run --shard i/N`: N daemons split the estate, each probing and exporting its own share.

What must stay together goes to one shard: a target with everything behind it below the top of the
topology (a prefecture's edge router, switches, firewall, access point and municipal circuits), all
the targets of one service (so a service's state, its SLO and its report rows are computed whole, by
one daemon), and a security connection's interface check with the organisation's targets (its
playbook verifies a cut on them). Names in the config (a flow allow-list's destinations) resolve
against the whole estate on every shard (`Inventory.estate`). Such a group is placed by rendezvous
hashing of its name: stable across restarts and machines, and when N changes only the groups that
must move do.

Root cause across shards: a shard also probes the ancestors of its targets that belong to other shards
(their reachability checks only), as *context*: it needs their state to call its own targets
UNREACHABLE rather than DOWN when the core above them fails. Context checks are not exported, stored,
or turned into incidents; the owning shard does that. So Prometheus scraping every shard sees each
check and service exactly once, and sums over the union are right.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Container, Mapping

from monitor.core.inventory import Check, Inventory, reachability_checks

SHARD = re.compile(r"^(\d+)/(\d+)$")


def parse_shard(text: str) -> tuple[int, int]:
    """ "2/3" -> (2, 3): the second of three shards (1-based). ValueError when malformed."""
    match = SHARD.match(text.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise ValueError(f"--shard must be i/N with 1 <= i <= N (e.g. 1/2), not {text!r}")
    return int(match[1]), int(match[2])


def shard_of(key: str, count: int) -> int:
    """Rendezvous (highest random weight) hashing: 1..count."""
    weights = [hashlib.blake2b(f"{shard}:{key}".encode(), digest_size=8).digest() for shard in range(1, count + 1)]
    return max(range(count), key=lambda i: weights[i]) + 1


def groups(inventory: Inventory) -> dict[str, str]:
    """Target -> the name of the group it must share a shard with."""
    parent = {name: name for name in inventory.targets}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for name, target in inventory.targets.items():
        top = name  # its ancestor just below the top of the topology (itself at or near the top)
        while (up := inventory.targets[top].parent) is not None and inventory.targets[up].parent is not None:
            top = up
        if target.parent is not None:
            union(name, top)
    for service in inventory.services.values():
        members = sorted({inventory.checks[c].target.name for c in service.check_ids})
        for other in members[1:]:
            union(members[0], other)
    # a connection's disconnect playbook runs where its interface check is, and verifies the cut on the
    # organisation's own targets there: they need those targets' states
    for connection in inventory.security.connections if inventory.security is not None else ():
        check = inventory.checks.get(connection.check)
        if check is None:
            continue
        for other in connection.targets:
            if other in inventory.targets:
                union(check.target.name, other)
    return {name: find(name) for name in inventory.targets}


def owning_shard(inventory: Inventory, target: str, count: int) -> int:
    """The shard (1-based) that owns a target of the whole inventory."""
    return shard_of(groups(inventory)[target], count)


def shard_inventory(inventory: Inventory, index: int, count: int) -> Inventory:
    """This shard's part of the inventory: its own targets, plus their ancestors as unexported context."""
    if count == 1:
        return inventory
    group = groups(inventory)
    owned = {name for name in inventory.targets if shard_of(group[name], count) == index}
    context: set[str] = set()
    for name in owned:
        up = inventory.targets[name].parent
        while up is not None and up not in owned:
            context.add(up)
            up = inventory.targets[up].parent
    checks: dict[str, Check] = {}
    for cid, check in inventory.checks.items():
        name = check.target.name
        if name in owned:
            checks[cid] = check
        elif name in context and cid in reachability_checks(inventory, name):
            checks[cid] = dataclasses.replace(check, exported=False)
    targets = {n: t for n, t in inventory.targets.items() if n in owned or n in context}
    exported = {cid for cid, check in checks.items() if check.exported}
    services = {n: s for n, s in inventory.services.items() if set(s.check_ids) <= exported}
    security = inventory.security
    if security is not None:  # a connection's playbook runs where its interface check is
        kept = [c for c in security.connections if c.check in exported]
        security = security.model_copy(update={"connections": kept})
    return dataclasses.replace(
        inventory,
        targets=targets,
        checks=checks,
        services=services,
        checks_by_target={
            n: tuple(c for c in ids if c in checks) for n, ids in inventory.checks_by_target.items() if n in targets
        },
        children={n: tuple(c for c in kids if c in targets) for n, kids in inventory.children.items() if n in targets},
        services_by_check={
            c: tuple(s for s in ss if s in services) for c, ss in inventory.services_by_check.items() if c in checks
        },
        security=security,
        shard=(index, count),
        context=frozenset(context),
        whole=inventory,
    )


def _within(
    mapping: Mapping[str, tuple[str, ...]], keys: Container[str], values: Container[str]
) -> dict[str, tuple[str, ...]]:
    return {k: tuple(v for v in vs if v in values) for k, vs in mapping.items() if k in keys}
