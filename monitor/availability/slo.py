"""Which objective applies to a service, and the windows it is measured over."""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.availability.periods import Span, month_of, month_span
from monitor.config.response_model import OfficeHours, labels_match
from monitor.config.slo_model import WINDOW_SECONDS, SLOConfig
from monitor.core.inventory import Service

BURN_WINDOWS = {"5m": 300.0, "30m": 1800.0, "1h": 3600.0, "2h": 7200.0, "6h": 21600.0, "1d": 86400.0, "3d": 259200.0}


@dataclass(frozen=True, slots=True)
class SLOSpec:
    objective: float
    window: str  # month, 28d, 30d
    degraded_up: bool
    hours_name: str  # "always" or a name under slo.hours
    hours: OfficeHours | None = field(compare=False)  # None: 24h365d; hours_name identifies it

    @property
    def budget_fraction(self) -> float:
        return 1.0 - self.objective

    def window_span(self, now: float) -> Span:
        """The whole current window: the JST calendar month around `now`, or the last N days."""
        if self.window == "month":
            return month_span(*month_of(now))
        return now - WINDOW_SECONDS[self.window], now


def slo_label(spec: SLOSpec) -> str:
    """A readable name of an SLO variant, e.g. "99.9%/month" or "99.95%/month/degraded-down/office". The
    `slo` label of monitor_service_info and the generated rules' selectors both use it, so it must stay stable."""
    parts = [f"{spec.objective * 100:g}%", spec.window]
    if not spec.degraded_up:
        parts.append("degraded-down")
    if spec.hours is not None:
        parts.append(spec.hours_name)
    return "/".join(parts)


def slo_for(service: Service, config: SLOConfig) -> SLOSpec:
    values = {"objective": config.objective, "window": config.window, "degraded": config.degraded,
              "service_hours": config.service_hours}  # fmt: skip
    for rule in config.rules:
        if service.name in rule.services or (rule.match and labels_match(rule.match, dict(service.labels))):
            values.update({k: v for k, v in rule.model_dump(include=set(values)).items() if v is not None})
            break
    name = str(values["service_hours"])
    return SLOSpec(
        objective=float(values["objective"]),
        window=str(values["window"]),
        degraded_up=values["degraded"] == "up",
        hours_name=name,
        hours=None if name == "always" else config.hours[name],
    )
