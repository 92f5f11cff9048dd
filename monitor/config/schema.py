"""The whole config file: monitoring (model.py), response (response_model.py), SLOs (slo_model.py)
the disconnect playbook (security_model.py)
and what the governments are told (status_model.py), circuit capacity (capacity_model.py), the report's
distribution (reports_model.py)."""

from __future__ import annotations

from monitor.config.capacity_model import CapacitySection
from monitor.config.model import MonitoringConfig
from monitor.config.reports_model import ReportsSection
from monitor.config.response_model import ResponseConfig
from monitor.config.security_model import SecuritySection
from monitor.config.slo_model import SLOSection
from monitor.config.status_model import StatusSection


class Config(
    MonitoringConfig, ResponseConfig, SLOSection, SecuritySection, StatusSection, CapacitySection, ReportsSection
):
    pass
