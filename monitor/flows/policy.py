"""A connection's allow-list compiled against the inventory: destinations named as services or targets
(LGWAN-ASP services, national servers) become their addresses, so the list follows the inventory on a
reload. `Allowlist.match` says which rule, if any, allows a flow."""

from __future__ import annotations

from dataclasses import dataclass

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

    def allows(self, record: FlowRecord) -> bool:
        if self.protocol is not None and record.protocol != self.protocol:
            return False
        if self.ports and not any(low <= record.dst_port <= high for low, high in self.ports):
            return False
        return any(record.dst in network for network in self.networks)


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
        for rule in self.rules:
            if rule.allows(record):
                return rule.name
        return None
