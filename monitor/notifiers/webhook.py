"""Generic webhook: JSON POST, signed with HMAC-SHA256 over timestamp and body, with an idempotency key.
`format:` renders the page for a chat tool instead (teams, slack, lineworks: monitor/notifiers/chat_formats.py);
those URLs carry their own credential, so `secret` is optional there (when given, the headers are sent too).

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
from pydantic import model_validator

from monitor.config.types import Timeout
from monitor.notifiers.base import Channel, NotifierSettings, NotifyError
from monitor.notifiers.chat_formats import FORMATS
from probes.secret import Secret


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookNotifier(NotifierSettings):
    kind: Literal["webhook"]
    url: str
    secret: Secret | None = None  # HMAC-SHA256 key for the X-Monitor-Signature header (required by `monitor`)
    timeout: Timeout = 5.0
    format: Literal["monitor", "teams", "slack", "lineworks"] = "monitor"

    @model_validator(mode="after")
    def _signed(self) -> WebhookNotifier:
        if self.format == "monitor" and self.secret is None:
            raise ValueError("secret is required (our own webhook payload is always signed)")
        return self


class Webhook:
    kind = "webhook"

    def __init__(self, name: str, config: WebhookNotifier) -> None:
        self.name = name
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    async def send(self, payload: dict[str, Any], idempotency_key: str) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.config.timeout))
        body = json.dumps(FORMATS[self.config.format](payload), ensure_ascii=False, sort_keys=True).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": idempotency_key}
        if self.config.secret is not None:
            timestamp = str(int(time.time()))
            headers["X-Monitor-Timestamp"] = timestamp
            headers["X-Monitor-Signature"] = signature(self.config.secret.get_secret_value().encode(), timestamp, body)
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
