"""Every notifier kind the config accepts and the daemon can build: one line each in CHANNELS.

Adding a channel: a module in monitor/notifiers/ with its settings model and class and a `CHANNEL`
(see monitor.notifiers.base.Channel), and its line below. The config's `notifiers:` entries are
validated by the union of the settings models (discriminated by `kind:`), built here from CHANNELS.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Protocol

from pydantic import Field

from monitor.notifiers import alertmanager, command, email, webhook
from monitor.notifiers.base import Notifier, NotifierSettings


class AnyChannel(Protocol):
    """A `Channel` of any settings model, as the registry holds it."""

    @property
    def kind(self) -> str: ...

    @property
    def settings(self) -> type[NotifierSettings]: ...

    def create(self, name: str, settings: NotifierSettings) -> Notifier: ...


CHANNELS: dict[str, AnyChannel] = {
    c.kind: c
    for c in (
        alertmanager.CHANNEL,
        webhook.CHANNEL,
        email.CHANNEL,
        command.CHANNEL,
    )
}

if TYPE_CHECKING:  # the type checker sees the common base; pydantic the union of every registered model
    NotifierConfig = NotifierSettings
else:
    NotifierConfig = Annotated[
        functools.reduce(operator.or_, (c.settings for c in CHANNELS.values())), Field(discriminator="kind")
    ]


def create_notifiers(configs: Mapping[str, NotifierSettings]) -> dict[str, Notifier]:
    """Notifier instances from the config's `notifiers:` section."""
    return {name: CHANNELS[cfg.kind].create(name, cfg) for name, cfg in configs.items()}
