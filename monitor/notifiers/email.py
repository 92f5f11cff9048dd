"""E-mail over SMTP: UTF-8, Japanese subject and body (RFC 2047 headers), optional STARTTLS/TLS and
login. smtplib runs in a worker thread so a slow mail server never blocks the event loop.

A page with action links gets an HTML alternative with them as buttons (the text part keeps them as plain
URLs, for text-only clients), and a Reply-To naming the page when mail replies are read."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Literal

from pydantic import Field

from monitor.config.types import Timeout
from monitor.notifiers.base import Channel, NotifierSettings, NotifyError
from probes.secret import Secret


class EmailNotifier(NotifierSettings):
    kind: Literal["email"]
    host: str
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password: Secret | None = None
    sender: str  # From: address
    timeout: Timeout = 10.0


def message_id(sender: str, idempotency_key: str, reply_to: str = "") -> str:
    """The same Message-ID for every attempt: a mail system that got it once can drop the repeat; and a reply's
    In-Reply-To / References lead back to the page it answers (monitor.replies). A page that can be answered
    mixes in its Reply-To (which holds a mac): the idempotency key alone is guessable, and a reply that only
    quotes a guessed Message-ID must not pass for an answer to the page."""
    domain = sender.rsplit("@", 1)[-1] or "national-monitor"
    seed = f"{idempotency_key}\0{reply_to}" if reply_to else idempotency_key
    digest = hashlib.sha256(seed.encode()).hexdigest()[:24]
    return f"<monitor.{digest}@{domain}>"


BUTTON = (
    "display:inline-block;margin:4px 8px 4px 0;padding:10px 18px;background:#0b5cad;color:#fff;"
    "text-decoration:none;border-radius:4px;font-weight:bold"
)


def _html(payload: dict[str, Any]) -> str:
    """The HTML part: the same text, and the action links as buttons (mail clients run no scripts or forms:
    a button is a link to the confirmation page, which acts only when its own button is pressed)."""
    buttons = "".join(
        f'<a href="{html.escape(a["url"])}" style="{BUTTON}">{html.escape(a["label"] + " / " + a["label_en"])}</a>'
        for a in payload["actions"]
    )
    return (
        '<!doctype html><html lang="ja"><head><meta charset="utf-8"></head><body>'
        f"<p>{buttons}</p>"
        f'<pre style="white-space:pre-wrap;font-family:sans-serif">{html.escape(payload["body"])}</pre>'
        "</body></html>"
    )


class Email:
    kind = "email"

    def __init__(self, name: str, config: EmailNotifier) -> None:
        self.name = name
        self.config = config

    def _message(self, payload: dict[str, Any], idempotency_key: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.config.sender
        message["To"] = Address(display_name=payload.get("to_name", ""), addr_spec=payload["to"])
        message["Subject"] = payload["subject"]
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = message_id(self.config.sender, idempotency_key, payload.get("reply_to", ""))
        message["X-Monitor-Notification"] = idempotency_key
        if payload.get("reply_to"):
            message["Reply-To"] = payload["reply_to"]
        message.set_content(payload["body"], charset="utf-8")
        if payload.get("actions"):
            message.add_alternative(_html(payload), subtype="html", charset="utf-8")
        # files stored base64 in the payload (the outbox keeps JSON): the monthly report's PDF, say
        for attachment in payload.get("attachments", []):
            maintype, _, subtype = str(attachment.get("content_type", "application/octet-stream")).partition("/")
            data = base64.b64decode(attachment["data"])
            message.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream",
                                   filename=attachment["filename"])  # fmt: skip
        return message

    def _deliver(self, message: EmailMessage) -> None:
        cfg = self.config
        context = ssl.create_default_context()
        smtp_class = smtplib.SMTP_SSL if cfg.ssl else smtplib.SMTP
        kwargs: dict[str, Any] = {"timeout": cfg.timeout}
        if cfg.ssl:
            kwargs["context"] = context
        with smtp_class(cfg.host, cfg.port, **kwargs) as smtp:
            if cfg.starttls:
                smtp.starttls(context=context)
            if cfg.username and cfg.password is not None:
                smtp.login(cfg.username, cfg.password.get_secret_value())
            smtp.send_message(message)

    async def send(self, payload: dict[str, Any], idempotency_key: str) -> None:
        message = self._message(payload, idempotency_key)
        try:
            await asyncio.to_thread(self._deliver, message)
        except smtplib.SMTPAuthenticationError:
            raise NotifyError("SMTP login refused (check the username and password reference)") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise NotifyError(f"SMTP delivery failed: {type(exc).__name__}: {str(exc)[:200]}") from None

    async def close(self) -> None:
        return None


CHANNEL = Channel(EmailNotifier, Email)
