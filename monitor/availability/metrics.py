"""SLO figures as Prometheus series, a provider of the state collector (labelled `service` plus their own:
the service's descriptive labels and SLO variant are on monitor_service_info)."""

from __future__ import annotations

from collections.abc import Callable

from monitor.availability.live import SLOStatus
from monitor.core.inventory import Inventory
from monitor.metrics.exposition import Families, families_text
from monitor.metrics.text import SERVICE_LABELS

WINDOW_LABELS = (*SERVICE_LABELS, "slo_window")
BURN_LABELS = (*SERVICE_LABELS, "window")
HELP = {
    "monitor_service_slo_objective_ratio": "The service's availability objective (0.999 is 99.9%).",
    "monitor_service_availability_ratio": (
        "Availability so far in the SLO window (稼働率): maintenance and monitoring gaps excluded."
    ),
    "monitor_service_error_budget_seconds": "Error budget of the whole SLO window (0.1% of planned time at 99.9%).",
    "monitor_service_error_budget_remaining_seconds": "Error budget left in the SLO window (negative: overspent).",
    "monitor_service_error_budget_remaining_ratio": "Share of the error budget left (1 untouched, 0 used up).",
    "monitor_service_downtime_seconds": "Downtime (障害停止時間) so far in the SLO window.",
    "monitor_service_maintenance_seconds": "Planned maintenance (計画停止) so far in the SLO window.",
    "monitor_service_monitoring_gap_seconds": "Time without monitoring data so far in the SLO window.",
    "monitor_service_burn_rate": "Error budget burn rate over the window (1: the budget lasts exactly the SLO window).",
    "monitor_service_in_service_time": "1 while now is inside the service's hours (always, for 24h services).",
}


class SLOProvider:
    """The SLO families as exposition text appended to /metrics; cached while the figures are unchanged."""

    def __init__(self, status: Callable[[], dict[str, SLOStatus]], inventory: Callable[[], Inventory]) -> None:
        self._status = status
        self._inventory = inventory
        self._text: tuple[int, str] | None = None

    def text(self) -> str:
        status = self._status()  # the tracker hands out the same dict until it recomputes
        if self._text is None or self._text[0] != id(status):
            fam = Families()
            self._add(fam, status)
            self._text = (id(status), families_text(fam))
        return self._text[1]

    def _add(self, fam: Families, statuses: dict[str, SLOStatus]) -> None:
        services = self._inventory().services
        for name, s in statuses.items():
            service = services.get(name)
            if service is None:
                continue
            base = (name,)  # the descriptive labels are on monitor_service_info only
            labels = (*base, s.spec.window)
            values = {
                "monitor_service_slo_objective_ratio": s.spec.objective,
                "monitor_service_availability_ratio": s.window.availability,
                "monitor_service_error_budget_seconds": s.budget_total_seconds,
                "monitor_service_error_budget_remaining_seconds": s.budget_remaining_seconds,
                "monitor_service_error_budget_remaining_ratio": s.budget_remaining_ratio,
                "monitor_service_downtime_seconds": s.window.downtime_seconds,
                "monitor_service_maintenance_seconds": s.window.maintenance_seconds,
                "monitor_service_monitoring_gap_seconds": s.window.gap_seconds,
                "monitor_service_in_service_time": float(s.in_service_hours),
            }
            for metric, value in values.items():
                if value is not None:  # no planned time yet: no ratio rather than a made-up one
                    fam.add(metric, HELP[metric], WINDOW_LABELS, labels, value)
            for window, rate in s.burn_rates.items():
                if rate is not None:
                    fam.add("monitor_service_burn_rate", HELP["monitor_service_burn_rate"], BURN_LABELS,
                            (*base, window), rate)  # fmt: skip
