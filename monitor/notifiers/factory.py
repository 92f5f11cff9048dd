"""Notifier instances from the config's `notifiers:` section."""

from __future__ import annotations

from typing import Any

from monitor.config.response_model import AlertmanagerNotifier, EmailNotifier, WebhookNotifier
from monitor.notifiers.alertmanager import Alertmanager
from monitor.notifiers.base import Notifier
from monitor.notifiers.email import Email
from monitor.notifiers.webhook import Webhook


def create_notifiers(configs: dict[str, Any]) -> dict[str, Notifier]:
    notifiers: dict[str, Notifier] = {}
    for name, cfg in configs.items():
        if isinstance(cfg, AlertmanagerNotifier):
            notifiers[name] = Alertmanager(name, cfg)
        elif isinstance(cfg, EmailNotifier):
            notifiers[name] = Email(name, cfg)
        elif isinstance(cfg, WebhookNotifier):
            notifiers[name] = Webhook(name, cfg)
    return notifiers
