"""The SMTP listener for replies to pages (aiosmtpd, on the daemon's own event loop: a reply acts through the
incident manager like the console does, in the same loop and under the same lock).

It is a final destination, never a relay: RCPT TO must be our mailbox (`incidents.mail_replies.address`,
with or without its +token), anything else is refused at once. Messages are capped at `max_size`, sessions
time out, and bounces (MAIL FROM:<>) are accepted and dropped so that a bounce loop cannot start."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from monitor.config.acting_model import MailReplies
from monitor.config.types import parse_listen
from monitor.replies.desk import ReplyDesk

log = structlog.get_logger()
SESSION_TIMEOUT = 60.0  # seconds of silence before a session is dropped (a phone's MTA is not that slow)
MAX_RECIPIENTS = 20


class _Handler:
    """aiosmtpd's handler hooks (it finds them by name)."""

    def __init__(self, desk: ReplyDesk) -> None:
        self.desk = desk

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not self.desk.accepts(address):
            return "550 5.1.1 no such mailbox here (this server only takes replies to monitoring pages)"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        peer = session.peer[0] if isinstance(session.peer, tuple) else None
        if not envelope.mail_from or envelope.mail_from == "<>":
            log.info("mail_reply_bounce_dropped", peer=peer)
            return "250 2.0.0 bounce accepted and dropped"
        content = envelope.original_content or envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode("utf-8", "surrogateescape")
        answer = await self.desk.receive(raw, list(envelope.rcpt_tos), peer)
        return str(answer)


class ReplyListener:
    def __init__(self, desk: ReplyDesk, config: MailReplies) -> None:
        self.desk = desk
        self.config = config
        self._server: asyncio.base_events.Server | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self.config.listen is not None  # (open_listener starts one only then)
        return parse_listen(self.config.listen)

    async def start(self) -> None:
        host, port = self.address
        handler = _Handler(self.desk)

        def protocol() -> Any:
            return SMTP(handler, data_size_limit=self.config.max_size, enable_SMTPUTF8=True, hostname="monitor",
                        timeout=SESSION_TIMEOUT, ident="national-monitor reply receiver")  # fmt: skip

        self._server = await asyncio.get_running_loop().create_server(protocol, host, port)
        log.info("mail_reply_listener_started", listen=self.config.listen)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


async def open_listener(desk: ReplyDesk, config: MailReplies | None) -> ReplyListener | None:
    """The listener when mail replies are configured and its address can be bound; a bind failure is logged
    (the daemon still pages and the links still work) and the listener stays off until a restart."""
    if config is None or config.listen is None:
        return None
    listener = ReplyListener(desk, config)
    try:
        await listener.start()
    except OSError as exc:
        log.error("mail_reply_listener_failed", listen=config.listen, error=exc.strerror or str(exc))
        return None
    return listener
