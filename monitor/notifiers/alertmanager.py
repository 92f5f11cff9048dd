"""Alertmanager API v2: POST /api/v2/alerts to every Alertmanager of the cluster.

Delivered when at least one accepts (Alertmanagers gossip; the others catch up from our resends).
Firing alerts carry no endsAt, so Alertmanager keeps them for its resolve_timeout: the outbox
worker re-sends them every `resend_interval` while the incident is open. Resolved ones carry endsAt.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import aiohttp
import structlog
from pydantic import Field

from monitor.config.types import Interval, Timeout
from monitor.notifiers.base import Channel, NotifierSettings, NotifyError

log = structlog.get_logger()


class AlertmanagerNotifier(NotifierSettings):
    kind: Literal["alertmanager"]
    urls: list[str] = Field(min_length=1)  # every Alertmanager of an HA cluster gets every alert
    resend_interval: Interval = 60.0  # firing alerts are re-sent this often (Alertmanager forgets otherwise)
    timeout: Timeout = 5.0


class Alertmanager:
    kind = "alertmanager"

    def __init__(self, name: str, config: AlertmanagerNotifier) -> None:
        self.name = name
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    @property
    def resend_interval(self) -> float:
        return self.config.resend_interval

    async def send(self, payload: dict[str, Any], idempotency_key: str) -> None:
        await self.post([payload["alert"], *payload.get("supersedes", [])])

    async def post(self, alerts: list[dict[str, Any]]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.config.timeout))
        body = json.dumps(alerts, ensure_ascii=False).encode()
        errors = []
        for url in self.config.urls:
            try:
                async with self._session.post(
                    f"{url.rstrip('/')}/api/v2/alerts", data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    if response.status < 300:
                        continue
                    errors.append(f"{url}: HTTP {response.status}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors.append(f"{url}: {type(exc).__name__}")
        if len(errors) == len(self.config.urls):
            raise NotifyError("no Alertmanager accepted the alerts: " + "; ".join(errors))
        if errors:
            log.warning("alertmanager_partly_unreachable", notifier=self.name, errors=errors)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


CHANNEL = Channel(AlertmanagerNotifier, Alertmanager)
