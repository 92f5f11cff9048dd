"""The notifier interface: deliver one stored notification, or raise NotifyError saying why not."""

from __future__ import annotations

from typing import Any, Protocol


class NotifyError(Exception):
    """Delivery failed; the outbox retries later. The message must not contain secrets."""


class Notifier(Protocol):
    name: str  # the notifier's name in the config
    kind: str  # alertmanager, email, webhook

    async def send(self, payload: dict[str, Any], idempotency_key: str) -> None:
        """Deliver `payload` (as rendered by monitor.incidents.messages); raise NotifyError on failure."""
        ...

    async def close(self) -> None: ...
