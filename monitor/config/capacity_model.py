"""Config of circuit capacity (`capacity:`): which circuits are measured, from which ports, against what
capacity, and when a forecast becomes an alert.

A circuit is one or more ports (SNMP checks, and for a device check the interface to read): its traffic is
the sum of its ports' traffic. By default (`services: true`) every service whose members are all SNMP
interface checks is a circuit too (the prefecture LGWAN uplinks, lgwan-uplink-NN). The LGWAN circuits in
the inventory are ICMP checks of the far end, with no counters: list each with the port that carries it
(`circuits:`), usually an interface of the prefecture's edge router read by its device check.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from monitor.config.model import StrictModel
from monitor.config.types import Name

CircuitKind = Literal["lgwan_circuit", "uplink", "other"]


class CapacityPort(StrictModel):
    check: str = Field(min_length=3)  # "target/check" of an SNMP check
    # for a device check (which reads every selected interface): the interface, by ifName or ifAlias;
    # an interface check reads one interface and needs none
    interface: str | None = None


class CapacityCircuit(StrictModel):
    name: Name
    display_name: str | None = None  # Japanese, in the report
    display_name_en: str | None = None
    kind: CircuitKind = "lgwan_circuit"
    ports: list[CapacityPort] = Field(min_length=1)
    # the contracted bandwidth in bits per second (e.g. 1e9): without it, the sum of the ports' speeds
    # (ifHighSpeed, else ifSpeed) as the devices report them
    capacity_bps: float | None = Field(default=None, gt=0)
    labels: dict[str, str] = {}  # e.g. prefecture: "13" (else the first port's target's prefecture)


class CapacityConfig(StrictModel):
    # every service made only of SNMP interface checks is a circuit of kind "uplink"; a redundant one
    # (rule "any": one port must carry it all when the other fails) is measured against its largest
    # port's speed, any other against the sum of its ports' speeds
    services: bool = True
    circuits: list[CapacityCircuit] = []
    threshold: float = Field(default=0.8, gt=0, le=1.0)  # the utilisation a circuit must stay below (95th pct.)
    alert_within_days: float = Field(default=90.0, gt=0, le=3650)  # alert when the forecast is this close
    forecast_months: int = Field(default=6, ge=2, le=36)  # months the trend is fitted over
    min_months: int = Field(default=3, ge=2, le=36)  # below this many months with data: "not enough data"
    # a month's 95th percentile counts for the forecast only with this share of its 5-minute slots measured
    min_coverage: float = Field(default=0.5, gt=0, le=1.0)
    retention_days: int = Field(default=400, ge=35, le=3650)  # 5-minute samples kept (the months stay rolled up)

    @model_validator(mode="after")
    def _months(self) -> CapacityConfig:
        if self.min_months > self.forecast_months:
            raise ValueError(f"min_months ({self.min_months}) exceeds forecast_months ({self.forecast_months})")
        names = [c.name for c in self.circuits]
        if duplicates := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"duplicate circuit names: {', '.join(duplicates)}")
        return self


class CapacitySection(StrictModel):
    capacity: CapacityConfig = CapacityConfig()
