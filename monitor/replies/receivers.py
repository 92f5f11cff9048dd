"""The receivers of replies to mail pages that the config asks for: the SMTP listener, the IMAP poller, both."""

from __future__ import annotations

from typing import Protocol

from monitor.config.acting_model import MailReplies
from monitor.replies.desk import ReplyDesk
from monitor.replies.imap import ReplyPoller
from monitor.replies.smtp import open_listener


class Receiver(Protocol):
    async def stop(self) -> None: ...


async def open_receivers(desk: ReplyDesk, config: MailReplies | None) -> list[Receiver]:
    if config is None:
        return []
    found: list[Receiver] = []
    listener = await open_listener(desk, config)
    if listener is not None:
        found.append(listener)
    if config.imap is not None:
        poller = ReplyPoller(desk, config, config.imap)
        await poller.start()
        found.append(poller)
    return found
