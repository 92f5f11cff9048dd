"""A connection's allow-list compiled against the inventory: destinations named as services or targets
(LGWAN-ASP services, national servers) become their addresses, so the list follows the inventory on a
reload. `Allowlist.match` says which rule, if any, allows a flow."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from monitor.config.flows_check import Network, resolve
from monitor.config.flows_model import AllowRule
from monitor.core.inventory import Inventory
from monitor.flows.records import FlowRecord


@dataclass(frozen=True)
class CompiledRule:
    name: str
    networks: tuple[Network, ...]
    protocol: int | None
    ports: tuple[tuple[int, int], ...]
    # (network, mask) as ints, by address family: `address in network` runs ipaddress' Python code for each
    # network, and this is asked for every flow
    _v4: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)
    _v6: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, version in (("_v4", 4), ("_v6", 6)):
            masks = tuple((int(n.network_address), int(n.netmask)) for n in self.networks if n.version == version)
            object.__setattr__(self, name, masks)  # frozen: set once, here

    def allows(self, record: FlowRecord, value: int | None = None) -> bool:
        """Whether the rule allows the flow; `value` is int(record.dst) when the caller has it already."""
        if self.protocol is not None and record.protocol != self.protocol:
            return False
        if self.ports:
            port = record.dst_port
            for low, high in self.ports:
                if low <= port <= high:
                    break
            else:
                return False
        dst = record.dst
        if value is None:
            value = int(dst)
        for network, mask in self._v4 if isinstance(dst, IPv4Address) else self._v6:
            if value & mask == network:
                return True
        return False


class Allowlist:
    def __init__(self, rules: list[AllowRule], inventory: Inventory) -> None:
        self.rules: list[CompiledRule] = []
        self.problems: list[str] = []  # destinations that resolved to nothing (check-config reports them)
        for rule in rules:
            networks: list[Network] = []
            for item in rule.to:
                found, problem = resolve(item, inventory)
                networks.extend(found)
                if problem:
                    self.problems.append(f"allow rule {rule.name}: {problem}")
            self.rules.append(CompiledRule(rule.name, tuple(networks), rule.protocol, tuple(rule.ports)))

    def match(self, record: FlowRecord) -> str | None:
        """The first rule that allows the flow, or None."""
        value = int(record.dst)
        for rule in self.rules:
            if rule.allows(record, value):
                return rule.name
        return None
