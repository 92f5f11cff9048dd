"""Polling a mailbox for replies over IMAP (`incidents.mail_replies.imap`), for sites whose mail system cannot
hand the reply address to our SMTP listener. stdlib imaplib, in a worker thread: a slow or hung IMAP server
costs at most its timeout and never blocks the event loop.

Each poll takes the messages not yet flagged `$MonitorDone` (a keyword, so a person reading the mailbox does
not hide a reply from us), skips those over `max_size`, hands each to the desk like the SMTP listener does,
and flags it done unless the desk answered a temporary failure (4xx: the next poll tries again). Nothing is
deleted. A refusal cannot bounce here: it is in the audit log and the log, as with SMTP."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import re
import ssl

import structlog

from monitor.config.acting_model import ImapMailbox, MailReplies
from monitor.replies.desk import ReplyDesk

log = structlog.get_logger()
DONE = "$MonitorDone"
MAX_PER_POLL = 200  # a flood is worked off over several polls, never all in one
_SIZE = re.compile(rb"(\d+) \(UID (\d+) RFC822\.SIZE (\d+)\)")


class ImapError(Exception):
    """The mailbox could not be read (said why, without the password)."""


class _Session:
    """One IMAP connection, used from the worker thread only."""

    def __init__(self, config: ImapMailbox) -> None:
        self.config = config
        port = config.port or (993 if config.ssl else 143)
        context = ssl.create_default_context()
        if config.ssl:
            self.imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(config.host, port, ssl_context=context, timeout=config.timeout)
        else:
            self.imap = imaplib.IMAP4(config.host, port, timeout=config.timeout)
            if config.starttls:
                self.imap.starttls(ssl_context=context)
        try:
            self.imap.login(config.username, config.password.get_secret_value())
        except imaplib.IMAP4.error:
            raise ImapError("IMAP login refused (check the username and password reference)") from None
        status, _ = self.imap.select(_quote(config.mailbox))
        if status != "OK":
            raise ImapError(f'IMAP mailbox "{config.mailbox}" cannot be opened')

    def pending(self, max_size: int) -> tuple[list[bytes], list[bytes]]:
        """(UIDs to read, UIDs too large), oldest first."""
        status, found = self.imap.uid("SEARCH", "UNKEYWORD", DONE)
        uids = found[0].split()[:MAX_PER_POLL] if status == "OK" and found and found[0] else []
        if not uids:
            return [], []
        status, sizes = self.imap.uid("FETCH", b",".join(uids).decode(), "(RFC822.SIZE)")
        small: list[bytes] = []
        large: list[bytes] = []
        for item in sizes if status == "OK" else []:
            match = _SIZE.search(item if isinstance(item, bytes) else b"")
            if match:
                (small if int(match[3]) <= max_size else large).append(match[2])
        return small, large

    def read(self, uid: bytes) -> bytes | None:
        status, data = self.imap.uid("FETCH", uid.decode(), "(BODY.PEEK[])")  # PEEK: \\Seen is the people's flag
        for item in data if status == "OK" else []:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1]
        return None

    def done(self, uid: bytes) -> None:
        self.imap.uid("STORE", uid.decode(), "+FLAGS", f"({DONE})")

    def close(self) -> None:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            self.imap.logout()


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ReplyPoller:
    def __init__(self, desk: ReplyDesk, config: MailReplies, imap: ImapMailbox) -> None:
        self.desk = desk
        self.config = config
        self.imap = imap
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        log.info("mail_reply_poller_started", host=self.imap.host, mailbox=self.imap.mailbox)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except (ImapError, imaplib.IMAP4.error, OSError) as exc:
                log.warning("mail_reply_imap_failed", host=self.imap.host, error=str(exc)[:200] or type(exc).__name__)
            await asyncio.sleep(self.imap.interval)

    async def poll(self) -> int:
        """Read the mailbox once; returns how many replies were handled (done or refused)."""
        session = await asyncio.to_thread(_Session, self.imap)
        handled = 0
        try:
            small, large = await asyncio.to_thread(session.pending, self.config.max_size)
            for uid in large:
                log.warning("mail_reply_too_large", uid=uid.decode(), max_size=self.config.max_size)
                await asyncio.to_thread(session.done, uid)
            for uid in small:
                raw = await asyncio.to_thread(session.read, uid)
                if raw is None:
                    continue
                answer = await self.desk.receive(raw, [], f"imap:{self.imap.host}")
                if 400 <= answer.code < 500:
                    continue  # ours to retry (a standby, a store that failed): left for the next poll
                log.info("mail_reply_polled", uid=uid.decode(), answer=str(answer))
                await asyncio.to_thread(session.done, uid)
                handled += 1
        finally:
            await asyncio.to_thread(session.close)
        return handled
