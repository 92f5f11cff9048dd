"""Generic webhook: JSON POST, signed with HMAC-SHA256 over timestamp and body, with an idempotency key.

Headers: X-Monitor-Timestamp (unix seconds), X-Monitor-Signature ("sha256=" + hex HMAC of
"<timestamp>.<body>"), Idempotency-Key (the same for every retry of one notification), so a
receiver can reject replays and deliver each notification once even if we retry after a timeout.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, Literal

import aiohttp

from monitor.config.types import Timeout
from monitor.notifiers.base import Channel, NotifierSettings, NotifyError
from probes.secret import Secret


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookNotifier(NotifierSettings):
    kind: Literal["webhook"]
    url: str
    secret: Secret  # HMAC-SHA256 key for the X-Monitor-Signature header
    timeout: Timeout = 5.0


class Webhook:
    kind = "webhook"

    def __init__(self, name: str, config: WebhookNotifier) -> None:
        self.name = name
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    async def send(self, payload: dict[str, Any], idempotency_key: str) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.config.timeout))
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Monitor-Timestamp": timestamp,
            "X-Monitor-Signature": signature(self.config.secret.get_secret_value().encode(), timestamp, body),
            "Idempotency-Key": idempotency_key,
        }
        try:
            async with self._session.post(self.config.url, data=body, headers=headers) as response:
                if response.status >= 300:
                    raise NotifyError(f"webhook answered HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise NotifyError(f"webhook unreachable: {type(exc).__name__}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


CHANNEL = Channel(WebhookNotifier, Webhook)
