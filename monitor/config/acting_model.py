"""Config of acting from the page (`incidents.action_links`, `incidents.mail_replies`): the signed links every
page carries and the inbound mail receiver that reads replies to pages.

Both are under `incidents:` because the page text is rendered from that section when a page is queued
(monitor.incidents.messages): what a page says, links included, is fixed then and stored with it."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, SecretStr, model_validator

from monitor.config.model import StrictModel
from monitor.config.types import Duration, Interval, Listen, Timeout
from probes.secret import Secret

_ADDRESS = re.compile(r"^[A-Za-z0-9._%-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


def _base_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f'base_url must be an http:// or https:// URL, not "{value[:80]}"')
    return value.rstrip("/")


MIN_KEY = 32  # characters: a link's signature is the only credential it has


def _long_key(value: SecretStr) -> SecretStr:
    if len(value.get_secret_value()) < MIN_KEY:
        raise ValueError(f"key must be at least {MIN_KEY} characters (e.g. `openssl rand -hex 32`)")
    return value


def _mailbox(value: str) -> str:
    # the reply token goes after a "+" in the local part (noc+<token>@...): the address itself must not have one
    if not _ADDRESS.match(value) or "+" in value:
        raise ValueError(f'address must be a plain mail address without "+" (e.g. noc@example.lg.jp), not "{value}"')
    return value.lower()


class ActionLinks(StrictModel):
    """Signed, single-use, expiring links in every page: acknowledge, escalate now, open the approval page."""

    # the console as the people paged reach it (a phone off the VPN: the address published for them)
    base_url: Annotated[str, AfterValidator(_base_url)]
    key: Annotated[Secret, AfterValidator(_long_key)]  # HMAC-SHA256 key (e.g. `openssl rand -hex 32` into a file)
    expires: Duration = 12 * 3600.0  # a link stops working this long after its page was queued

    def key_bytes(self) -> bytes:
        return self.key.get_secret_value().encode()


class ImapMailbox(StrictModel):
    """A mailbox the replies are delivered to, polled over IMAP (when our own SMTP listener cannot be the MX)."""

    host: str
    port: int | None = Field(default=None, ge=1, le=65535)  # default 993 with ssl, else 143
    ssl: bool = True  # IMAPS; or starttls on a plain connection
    starttls: bool = False
    username: str
    password: Secret
    mailbox: str = "INBOX"  # a mailbox for the replies only (what is processed there is flagged, not deleted)
    interval: Interval = 30.0
    timeout: Timeout = 10.0

    @model_validator(mode="after")
    def _tls(self) -> ImapMailbox:
        if self.ssl and self.starttls:
            raise ValueError("give ssl or starttls, not both")
        return self


class MailReplies(StrictModel):
    """Acknowledge by replying to the page: mail pages carry `Reply-To: <local>+<token>@<domain>`, read by an
    SMTP listener of ours (the MX, or a transport the site's mail server relays that address to), or by
    polling the mailbox that address delivers to over IMAP, or both."""

    address: Annotated[str, AfterValidator(_mailbox)]  # e.g. noc@monitor.example.lg.jp
    listen: Listen | None = None  # HOST:PORT of the SMTP listener (e.g. 0.0.0.0:2525 behind the site's MTA)
    imap: ImapMailbox | None = None
    max_size: int = Field(default=1024 * 1024, ge=16 * 1024, le=50 * 1024 * 1024)  # bytes per message

    @model_validator(mode="after")
    def _somewhere(self) -> MailReplies:
        if self.listen is None and self.imap is None:
            raise ValueError("give listen (our SMTP listener) or imap (a mailbox to poll), or both")
        return self
