"""Config of service level objectives: the target (99.9% by default), the window (calendar month in
JST, or rolling 28/30 days), whether DEGRADED counts as down, and the service hours."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from monitor.config.model import StrictModel
from monitor.config.response_model import Match, OfficeHours
from monitor.config.types import Name

Window = Literal["month", "28d", "30d"]
WINDOW_SECONDS = {"28d": 28 * 86400.0, "30d": 30 * 86400.0}


class SLORule(StrictModel):
    """Applies to the services named, or whose labels match; the first rule that applies wins."""

    services: list[Name] = []
    match: Match = {}
    objective: float | None = Field(default=None, gt=0.5, lt=1.0)
    window: Window | None = None
    degraded: Literal["up", "down"] | None = None
    service_hours: Name | None = None  # "always", or a name under slo.hours


class SLOConfig(StrictModel):
    objective: float = Field(default=0.999, gt=0.5, lt=1.0)  # 稼働率99.9%以上
    window: Window = "month"
    degraded: Literal["up", "down"] = "up"
    service_hours: Name = "always"
    hours: dict[Name, OfficeHours] = {}  # named service hours, e.g. office: {start: "08:30", end: "17:45"}
    rules: list[SLORule] = []
    report_schedule: bool = True  # write last month's report on the 1st (JST) into data_dir/reports


class SLOSection(StrictModel):
    slo: SLOConfig = SLOConfig()
