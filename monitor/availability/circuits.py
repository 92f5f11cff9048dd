"""The circuits whose capacity is measured (config `capacity:`, see monitor/config/capacity_model.py):
each is one or more ports, a port being an SNMP check and, for a device check, the interface it reads.

`circuits(inventory)` is the list, in a fixed order (configured circuits first, then the services made of
interface checks, by name); monitor/config/capacity_check.py reports at load time what in the config cannot
be measured, so a typo in a port is a config error instead of a circuit that silently never has data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from monitor.core.inventory import Check, Inventory

Sizing = Literal["sum", "largest"]  # capacity from the ports' speeds: all carry traffic, or one must carry it all


@dataclass(frozen=True, slots=True)
class Port:
    check: str  # "target/check"
    interface: str | None  # for a device check: the ifName or ifAlias of the interface; None: the check's own


@dataclass(frozen=True, slots=True)
class Circuit:
    name: str
    display_name: str
    display_name_en: str
    kind: str  # lgwan_circuit, uplink, other
    ports: tuple[Port, ...]
    capacity_bps: float | None  # configured; None: from the ports' speeds, by `sizing`
    sizing: Sizing
    labels: Mapping[str, str]

    @property
    def prefecture(self) -> str:
        return self.labels.get("prefecture", "")


def is_interface_check(check: Check) -> bool:
    return check.kind == "snmp" and check.request.params.get("interface") is not None


def circuits(inventory: Inventory) -> list[Circuit]:
    config = inventory.capacity
    out: list[Circuit] = []
    taken: set[str] = set()
    for c in config.circuits:
        first = inventory.checks.get(c.ports[0].check)
        labels = dict(c.labels)
        if "prefecture" not in labels and first is not None and first.target.labels.get("prefecture"):
            labels["prefecture"] = first.target.labels["prefecture"]
        out.append(
            Circuit(
                c.name,
                c.display_name or c.name,
                c.display_name_en or c.display_name or c.name,
                c.kind,
                tuple(Port(p.check, p.interface) for p in c.ports),
                c.capacity_bps,
                "sum",  # a configured aggregate is a bundle (all ports carry traffic), unless capacity_bps says else
                labels,
            )
        )
        taken.add(c.name)
    if config.services:
        for name, service in sorted(inventory.services.items()):
            checks = [inventory.checks.get(i) for i in service.check_ids]
            if name in taken or not checks or not all(c is not None and is_interface_check(c) for c in checks):
                continue
            labels = {k: v for k, v in service.labels.items() if k in ("prefecture", "system", "tier")}
            out.append(
                Circuit(
                    name,
                    service.display_name,
                    service.display_name_en,
                    "uplink",
                    tuple(Port(i, None) for i in service.check_ids),
                    None,
                    "largest" if service.rule == "any" and len(checks) > 1 else "sum",
                    labels,
                )
            )
    return out
