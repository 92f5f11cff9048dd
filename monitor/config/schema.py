"""The whole config file: monitoring (model.py) plus response (response_model.py)."""

from __future__ import annotations

from monitor.config.model import MonitoringConfig
from monitor.config.response_model import ResponseConfig


class Config(MonitoringConfig, ResponseConfig):
    pass
