"""The connections of the disconnect playbook as the config and inventory define them now: which one an
address or a trap belongs to, its playbook, and the device and interface a cut acts on. Read afresh on
every call, so a reload is seen at once; no state of its own."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from monitor.cluster.sharding import owning_shard
from monitor.config.security_model import Connection, SecurityConfig, SecurityPlaybook
from monitor.core.inventory import Inventory
from monitor.security.execute import Edge
from monitor.store.records import SecurityIncident

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Connections:
    def __init__(self, inventory: Callable[[], Inventory], ifindex: Callable[[str], int | None]) -> None:
        self._inventory = inventory
        self._ifindex = ifindex  # the SNMP probe's ifIndex of an interface check, once it has polled it

    @property
    def config(self) -> SecurityConfig:
        return self._inventory().security or SecurityConfig()

    def get(self, name: str) -> Connection | None:
        return next((c for c in self.config.connections if c.name == name), None)

    def playbook(self, connection: Connection) -> SecurityPlaybook:
        return self.config.playbooks[connection.playbook]

    def for_address(self, address: Address) -> Connection | None:
        for connection in self.config.connections:
            if any(address in network for network in connection.addresses):
                return connection
        return None

    def on_another_shard(self, match: Callable[[Connection], bool]) -> tuple[Connection, str] | None:
        """A connection of the whole estate that matches but is another shard's, and that shard ("2/3"):
        so an IDS that sends to the wrong shard is told where to send, not that no such connection exists."""
        inventory = self._inventory()
        whole = inventory.whole
        if whole is None or whole.security is None:
            return None
        for connection in whole.security.connections:
            check = whole.checks.get(connection.check)
            if check is not None and match(connection):
                count = inventory.shard[1]
                return connection, f"{owning_shard(whole, check.target.name, count)}/{count}"
        return None

    def for_trap(self, agent: str, if_index: int | None, values: list[str]) -> Connection | None:
        """By an address in the varbinds inside a connection's ranges, else by the agent's device and
        the ifIndex the trap names, else the agent's only connection."""
        for text in values:
            try:
                address = ipaddress.ip_address(text.strip())
            except ValueError:
                continue
            found = self.for_address(address)
            if found is not None:
                return found
        inventory = self._inventory()
        on_agent = [
            c
            for c in self.config.connections
            if (check := inventory.checks.get(c.check)) is not None and check.target.address == agent
        ]
        if if_index is not None:
            for connection in on_agent:
                if self._ifindex(connection.check) == if_index:
                    return connection
        return on_agent[0] if len(on_agent) == 1 else None

    def edge(self, connection: Connection, incident: SecurityIncident | None = None) -> Edge:
        """The device and interface to act on. Once proposed, the proposal's ifIndex is the one
        approved (a daemon just restarted has not polled the interface yet)."""
        inventory = self._inventory()
        check = inventory.checks[connection.check]
        book = self.playbook(connection)
        org_checks = [c for t in connection.targets for c in inventory.checks_by_target.get(t, ())]
        return Edge(
            device=check.target.name,
            address=check.target.address,
            interface=str(check.request.params.get("interface")),
            if_index=book.action.if_index
            or (incident.proposal.get("if_index") if incident is not None else None)
            or self._ifindex(connection.check),
            read_settings=check.settings,
            org_checks=org_checks,
        )
