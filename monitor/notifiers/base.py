"""The notifier interface: deliver one stored notification, or raise NotifyError saying why not.

A channel kind is one module in monitor/notifiers/ holding its settings model (a `NotifierSettings`
with `kind: Literal["<kind>"]`, the config's `notifiers.<name>` entry) and its class, joined by a
`Channel`; one line in monitor/notifiers/registry.py makes the config accept it and the daemon build it.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from monitor.config.model import StrictModel


class NotifyError(Exception):
    """Delivery failed; the outbox retries later. The message must not contain secrets."""


class Notifier(Protocol):
    name: str  # the notifier's name in the config
    kind: str  # alertmanager, email, webhook

    async def send(self, payload: dict[str, Any], idempotency_key: str) -> None:
        """Deliver `payload` (as rendered by monitor.incidents.messages); raise NotifyError on failure."""
        ...

    async def close(self) -> None: ...


@typing.runtime_checkable
class Resending(Protocol):
    """A channel that forgets alerts that stop coming (Alertmanager): firing alerts are posted to it again,
    every `resend_interval` seconds, while their incident is open."""

    name: str
    resend_interval: float

    async def post(self, alerts: list[dict[str, Any]]) -> None: ...


def resending(notifiers: typing.Iterable[Notifier]) -> list[Resending]:
    """The notifiers that want firing alerts re-sent (a channel says so by having `resend_interval` and `post`)."""
    return [n for n in notifiers if isinstance(n, Resending)]


class NotifierSettings(StrictModel):
    """One entry of the config's `notifiers:`; each channel narrows `kind` to its own literal."""

    kind: str


S = TypeVar("S", bound=NotifierSettings)


@dataclass(frozen=True)
class Channel(Generic[S]):
    """A notifier kind: the settings model of its config entries and the class that sends."""

    settings: type[S]
    notifier: Callable[[str, S], Notifier]

    @property
    def kind(self) -> str:
        """The `kind:` literal of the settings model (the registry's key)."""
        (kind,) = typing.get_args(self.settings.model_fields["kind"].annotation)
        return str(kind)

    def create(self, name: str, settings: NotifierSettings) -> Notifier:
        if not isinstance(settings, self.settings):
            raise TypeError(f'notifier "{name}" is {settings.kind}, not {self.kind}')
        return self.notifier(name, settings)
