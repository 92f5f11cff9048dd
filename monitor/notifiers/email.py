"""E-mail over SMTP: UTF-8, Japanese subject and body (RFC 2047 headers), optional STARTTLS/TLS and
login. smtplib runs in a worker thread so a slow mail server never blocks the event loop."""

from __future__ import annotations

import asyncio
import base64
import hashlib
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
        # The same Message-ID for every attempt: a mail system that got it once can drop the repeat.
        domain = self.config.sender.rsplit("@", 1)[-1] or "national-monitor"
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]
        message["Message-ID"] = f"<monitor.{digest}@{domain}>"
        message["X-Monitor-Notification"] = idempotency_key
        message.set_content(payload["body"], charset="utf-8")
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
