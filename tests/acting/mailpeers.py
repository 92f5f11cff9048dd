"""Real SMTP on loopback for the acting tests: an aiosmtpd server that receives the daemon's pages (the mail
system the on-call engineer reads), and a client that sends a reply to the daemon's listener as a phone's
mail system would."""

from __future__ import annotations

import asyncio
import email
import email.policy
import smtplib
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

from aiosmtpd.controller import Controller

from tests.e2e.peers import free_port


class Inbox:
    """What the outgoing mail server received, parsed as a mail client parses it."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"


def start_inbox() -> tuple[Controller, Inbox, int]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, inbox, port


def _send(port: int, message: EmailMessage, envelope_to: str | None) -> tuple[int, str]:
    """Step by step (MAIL, RCPT, DATA) so the answer's text is seen, as the sender's mail system sees it."""
    sender = parseaddr(str(message["From"]))[1]
    to = envelope_to or parseaddr(str(message["To"]))[1]
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo("phone.example.lg.jp")
        smtp.mail(sender)
        code, text = smtp.rcpt(to)
        if code >= 300:
            return code, text.decode()
        code, text = smtp.data(message.as_bytes(policy=email.policy.SMTP))  # CRLF line ends, as on the wire
        return code, text.decode()


async def send_reply(port: int, message: EmailMessage, envelope_to: str | None = None) -> tuple[int, str]:
    """(SMTP code, text) the daemon's listener answered the reply's DATA with (or its RCPT refusal)."""
    return await asyncio.to_thread(_send, port, message, envelope_to)
