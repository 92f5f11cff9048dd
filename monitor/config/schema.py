"""The whole config file: monitoring (model.py), response (response_model.py) and SLOs (slo_model.py)."""

from __future__ import annotations

from monitor.config.model import MonitoringConfig
from monitor.config.response_model import ResponseConfig
from monitor.config.slo_model import SLOSection


class Config(MonitoringConfig, ResponseConfig, SLOSection):
    pass
