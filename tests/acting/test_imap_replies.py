"""Replies read by polling a mailbox over IMAP, against a real IMAP server (Dovecot on loopback): the page goes
out through real SMTP, the reply (ISO-2022-JP, quoting the page) is delivered into the mailbox, one poll
acknowledges; what was handled is flagged and not handled again, a person reading the mailbox hides nothing,
a sender who was not paged is refused, and a wrong password is a clear error, not a crash."""

from __future__ import annotations

import asyncio
import imaplib
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from monitor.config.acting_model import ImapMailbox
from monitor.daemon import Daemon
from monitor.replies.imap import DONE, ImapError, ReplyPoller
from probes.base import ProbeResult
from tests.acting.imap_peer import PASSWORD, USER, dovecot, dovecot_usable
from tests.acting.mailpeers import start_inbox
from tests.acting.test_mail_replies import quoted, reply_to
from tests.conftest import Loader

pytestmark = pytest.mark.skipif(dovecot_usable() is not None, reason=str(dovecot_usable()))

CONFIG = """
defaults: {failures_to_down: 1}
modules: {ping: {kind: icmp}}
targets:
  - {name: pref13-edge, address: 127.0.0.1, labels: {prefecture: 13}, modules: [ping]}
incidents:
  action_links: {base_url: "https://noc.example.lg.jp", key: {file: link.key}}
  mail_replies:
    address: noc@monitor.example.lg.jp
    imap: {host: 127.0.0.1, port: %(imap)d, ssl: false, username: "%(user)s", password: {file: imap.pw}, interval: 1h}
notifiers:
  mail: {kind: email, host: 127.0.0.1, port: %(smtp)d, sender: monitor@monitor.example.lg.jp}
contacts:
  yamada: {name: 山田（当番）, email: yamada@example.lg.jp}
playbooks:
  default:
    levels:
      - {notify: [{contacts: [yamada], via: [mail]}], ack_timeout: 10m}
"""


@pytest.fixture
async def world(
    load_yaml_config: Loader, tmp_path: Path
) -> AsyncIterator[tuple[Daemon, ReplyPoller, EmailMessage, int]]:
    controller: Controller
    controller, inbox, smtp = start_inbox()
    with dovecot() as imap:
        (tmp_path / "link.key").write_text("i" * 40)
        (tmp_path / "imap.pw").write_text(PASSWORD)
        loaded = load_yaml_config(CONFIG % {"imap": imap, "smtp": smtp, "user": USER})
        daemon = Daemon(loaded, data_dir=tmp_path / "data")
        daemon.store.open(now=daemon.clock.now())
        await daemon.incidents.load()
        config = daemon.inventory.response.incidents.mail_replies
        assert config is not None and config.imap is not None
        try:
            await daemon.incidents.handle(
                daemon.engine.observe("pref13-edge/ping", ProbeResult(ok=False, error="timeout"), daemon.clock.now())
            )
            incident_id = daemon.incidents.open["target:pref13-edge"].id
            await daemon.incidents.escalate_now(incident_id, "system")
            assert await daemon.response.outbox.deliver_due() == 1
            (page,) = inbox.messages
            yield daemon, ReplyPoller(daemon.replies, config, config.imap), page, imap
        finally:
            controller.stop()
            await daemon.store.close(now=daemon.clock.now())


def deliver(port: int, message: EmailMessage) -> None:
    with imaplib.IMAP4("127.0.0.1", port, timeout=10) as imap:
        imap.login(USER, PASSWORD)
        status, _ = imap.append("INBOX", None, None, message.as_bytes(policy=message.policy.clone(linesep="\r\n")))
        assert status == "OK"


def flags(port: int) -> list[bytes]:
    with imaplib.IMAP4("127.0.0.1", port, timeout=10) as imap:
        imap.login(USER, PASSWORD)
        imap.select("INBOX")
        _, data = imap.fetch("1:*", "(FLAGS)")
        return [d for d in data if isinstance(d, bytes)]


def read_all(port: int) -> None:
    """A person opens the mailbox and reads everything (\\Seen on every message)."""
    with imaplib.IMAP4("127.0.0.1", port, timeout=10) as imap:
        imap.login(USER, PASSWORD)
        imap.select("INBOX")
        imap.store("1:*", "+FLAGS", "(\\Seen)")


async def test_a_reply_in_the_mailbox_acknowledges_once(world: tuple[Daemon, ReplyPoller, EmailMessage, int]) -> None:
    daemon, poller, page, imap = world
    reply = reply_to(page, f"了解です。対応します\n\n{quoted(page)}\n", charset="iso-2022-jp")
    await asyncio.to_thread(deliver, imap, reply)
    await asyncio.to_thread(read_all, imap)  # someone read it first: the poller still takes it
    assert await poller.poll() == 1
    incident = daemon.incidents.find(1)
    assert incident is not None and (incident.status, incident.acked_by) == ("acknowledged", "yamada")
    assert all(DONE.encode() in f for f in await asyncio.to_thread(flags, imap))
    assert await poller.poll() == 0  # flagged: never handled twice


async def test_a_stranger_is_refused_and_flagged(world: tuple[Daemon, ReplyPoller, EmailMessage, int]) -> None:
    daemon, poller, page, imap = world
    await asyncio.to_thread(deliver, imap, reply_to(page, "ACK", sender="tanaka@example.lg.jp"))
    assert await poller.poll() == 1
    incident = daemon.incidents.find(1)
    assert incident is not None and incident.status == "open"
    entries, _ = await daemon.store.audit_log()
    assert [e.outcome for e in entries if e.action == "incident.mail_reply"] == ["refused_sender"]


async def test_a_wrong_password_is_a_clear_error(
    world: tuple[Daemon, ReplyPoller, EmailMessage, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAP_WRONG", "not-the-password")
    daemon, poller, _, _ = world
    wrong = ImapMailbox.model_validate({**poller.imap.model_dump(), "password": "${IMAP_WRONG}"}, context={})
    bad = ReplyPoller(daemon.replies, poller.config, wrong)
    with pytest.raises(ImapError, match="login refused"):
        await bad.poll()
