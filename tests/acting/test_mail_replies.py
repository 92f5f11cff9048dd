"""Acknowledge by replying to the mail page, end to end over real SMTP both ways: the daemon's outbox sends
the page to a real SMTP server (aiosmtpd), the test reads it there and composes the reply with Python's
`email` package as a mail client would (quoting, attribution lines, ISO-2022-JP and UTF-8, quoted-printable
and base64, HTML only), and sends it to the daemon's own SMTP listener. Replies from addresses that were not
paged are refused (a 5xx the sender's mail system reports) and audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from monitor.daemon import Daemon
from monitor.notifiers.email import message_id
from monitor.replies.smtp import ReplyListener, open_listener
from probes.base import ProbeResult
from tests.acting.mailpeers import Inbox, send_reply, start_inbox
from tests.conftest import Loader
from tests.e2e.peers import free_port

CONFIG = """
defaults: {failures_to_down: 1}
modules: {ping: {kind: icmp}}
targets:
  - {name: pref13-edge, address: 127.0.0.1, labels: {prefecture: 13}, modules: [ping]}
incidents:
  action_links: {base_url: "https://noc.example.lg.jp", key: {file: link.key}}
  mail_replies: {address: noc@monitor.example.lg.jp, listen: "127.0.0.1:%(listen)d"}
notifiers:
  mail: {kind: email, host: 127.0.0.1, port: %(smtp)d, sender: monitor@monitor.example.lg.jp}
contacts:
  yamada: {name: 山田（当番）, email: yamada@example.lg.jp}
  boss: {name: 統括責任者, email: boss@example.lg.jp}
playbooks:
  default:
    levels:
      - {notify: [{contacts: [yamada], via: [mail]}], ack_timeout: 10m}
      - {notify: [{contacts: [boss], via: [mail]}]}
"""


@dataclass
class World:
    daemon: Daemon
    inbox: Inbox
    listen: int
    incident_id: int
    page: EmailMessage  # the level-1 page as yamada's mail client shows it


@pytest.fixture
async def world(load_yaml_config: Loader, tmp_path: Path) -> AsyncIterator[World]:
    controller: Controller
    controller, inbox, smtp = start_inbox()
    listen = free_port()
    (tmp_path / "link.key").write_text("r" * 40)
    daemon = Daemon(load_yaml_config(CONFIG % {"listen": listen, "smtp": smtp}), data_dir=tmp_path / "data")
    daemon.store.open(now=daemon.clock.now())
    await daemon.incidents.load()
    listener: ReplyListener | None = await open_listener(
        daemon.replies, daemon.inventory.response.incidents.mail_replies
    )
    assert listener is not None
    try:
        await daemon.incidents.handle(
            daemon.engine.observe("pref13-edge/ping", ProbeResult(ok=False, error="timeout"), daemon.clock.now())
        )
        incident_id = daemon.incidents.open["target:pref13-edge"].id
        await daemon.incidents.escalate_now(incident_id, "system")
        assert await daemon.response.outbox.deliver_due() == 1
        (page,) = inbox.messages
        yield World(daemon, inbox, listen, incident_id, page)
    finally:
        await listener.stop()
        controller.stop()
        await daemon.store.close(now=daemon.clock.now())


def reply_to(page: EmailMessage, body: str, *, sender: str = "yamada@example.lg.jp", charset: str = "utf-8",
             cte: str | None = None, to: str | None = None, thread: bool = True) -> EmailMessage:  # fmt: skip
    """A reply as a mail client composes it: Re: subject, To the page's Reply-To, In-Reply-To/References."""
    reply = EmailMessage()
    reply["From"] = f"山田 太郎 <{sender}>"
    reply["To"] = to or str(page["Reply-To"])
    reply["Subject"] = "Re: " + str(page["Subject"])
    reply["Message-ID"] = make_msgid(domain="example.lg.jp")
    if thread:
        reply["In-Reply-To"] = str(page["Message-ID"])
        reply["References"] = str(page["Message-ID"])
    reply.set_content(body, charset=charset, cte=cte)
    return reply


def quoted(page: EmailMessage) -> str:
    text = page.get_body(preferencelist=("plain",))
    assert isinstance(text, EmailMessage)
    return "\n".join("> " + line for line in text.get_content().splitlines())


async def outcomes(daemon: Daemon) -> list[tuple[str, str, str | None]]:
    entries, _ = await daemon.store.audit_log()
    return [(e.action, e.outcome, e.detail.get("channel")) for e in reversed(entries)]


def incident_of(world: World) -> tuple[str, str | None]:
    incident = world.daemon.incidents.find(world.incident_id)
    assert incident is not None
    return incident.status, incident.acked_by


async def test_the_page_says_how_to_reply(world: World) -> None:
    """The page's Reply-To is the mailbox with a token; the text and the HTML part carry the links."""
    assert str(world.page["Reply-To"]).startswith(f"noc+{world.incident_id}-1-")
    assert str(world.page["Reply-To"]).endswith("@monitor.example.lg.jp")
    html = world.page.get_body(preferencelist=("html",))
    assert isinstance(html, EmailMessage) and "https://noc.example.lg.jp/act/" in html.get_content()
    assert "「了解」「ACK」「対応中」" in world.page.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]


async def test_utf8_quoted_printable_reply_above_the_quote_acknowledges(world: World) -> None:
    body = f"了解。向かいます\n到着は30分後です\n\n2026年12月4日(金) 3:02 監視 <monitor@monitor.example.lg.jp>:\n{quoted(world.page)}\n"
    code, text = await send_reply(world.listen, reply_to(world.page, body, cte="quoted-printable"))
    assert code == 250 and "acknowledged" in text, text
    assert incident_of(world) == ("acknowledged", "yamada")
    events = await world.daemon.store.incident_events(world.incident_id)
    (ack,) = [e for e in events if e.kind == "acknowledged"]
    assert ack.detail["comment"] == "向かいます\n到着は30分後です"
    assert ("incident.ack", "ok", "mail-reply") in await outcomes(world.daemon)


async def test_iso_2022_jp_reply_matched_by_its_thread_only(world: World) -> None:
    """A reply to the plain mailbox (the Reply-To dropped by the client) is matched by In-Reply-To."""
    body = f"対応中です\n\n> {world.page['Subject']}\n"
    reply = reply_to(world.page, body, charset="iso-2022-jp", to="noc@monitor.example.lg.jp")
    assert "iso-2022-jp" in reply.as_string().lower()
    code, _ = await send_reply(world.listen, reply)
    assert code == 250
    assert incident_of(world) == ("acknowledged", "yamada")


async def test_base64_reply_below_the_quote_and_full_width_ack(world: World) -> None:
    body = f"On Fri, Dec 4, 2026 at 3:02 AM Monitor <monitor@monitor.example.lg.jp> wrote:\n{quoted(world.page)}\n\nＡＣＫ\n"
    code, _ = await send_reply(world.listen, reply_to(world.page, body, cte="base64"))
    assert code == 250
    assert incident_of(world) == ("acknowledged", "yamada")


async def test_html_only_reply_escalates_and_its_quote_is_ignored(world: World) -> None:
    """An HTML-only reply: its own text says エスカレ; the quoted page below (which contains 了解 and ACK) is not read."""
    reply = reply_to(world.page, "placeholder")
    reply.set_content(
        "<html><body><div dir='ltr'>ｴｽｶﾚｰｼｮﾝお願いします</div><br>"
        "<div class='gmail_quote'><div>ACK 了解</div><blockquote>了解</blockquote></div></body></html>",
        subtype="html",
        charset="utf-8",
    )
    code, text = await send_reply(world.listen, reply)
    assert code == 250 and "escalated to level 2" in text
    levels = sorted({i.level for i in await world.daemon.store.notifications(world.incident_id)})
    assert levels == [1, 2]
    assert ("incident.escalate", "ok", "mail-reply") in await outcomes(world.daemon)


async def test_a_reply_from_someone_not_paged_is_refused_and_audited(world: World) -> None:
    """The page forwarded to a colleague who replies ACK: refused (550), audited, the incident untouched."""
    code, text = await send_reply(world.listen, reply_to(world.page, "ACK", sender="tanaka@example.lg.jp"))
    assert code == 550 and "was not paged" in text
    assert incident_of(world) == ("open", None)
    assert ("incident.mail_reply", "refused_sender", "mail-reply") in await outcomes(world.daemon)
    assert world.daemon.registry.get_sample_value("monitor_mail_replies_total", {"outcome": "refused_sender"}) == 1


async def test_a_reply_without_an_action_word_is_refused_with_the_words_to_use(world: World) -> None:
    code, text = await send_reply(world.listen, reply_to(world.page, "今どうなってますか？\n"))
    assert code == 550 and "ACK" in text and "ESCALATE" in text
    assert incident_of(world) == ("open", None)


async def test_unrelated_mail_and_other_mailboxes_are_refused(world: World) -> None:
    """No relay: another RCPT is refused at once; mail to our mailbox answering nothing is refused too."""
    code, _ = await send_reply(world.listen, reply_to(world.page, "ACK"), envelope_to="someone@example.com")
    assert code == 550
    loose = reply_to(world.page, "ACK", to="noc@monitor.example.lg.jp", thread=False)
    code, text = await send_reply(world.listen, loose)
    assert code == 550 and "does not answer a page" in text
    assert incident_of(world) == ("open", None)


async def test_auto_replies_never_act(world: World) -> None:
    reply = reply_to(world.page, "ACK — 不在です（12/7まで）")
    reply["Auto-Submitted"] = "auto-replied"
    code, _ = await send_reply(world.listen, reply)
    assert code == 250
    assert incident_of(world) == ("open", None)


async def test_a_reply_delivered_twice_acts_once(world: World) -> None:
    """A mail system that retries (our 250 was lost) delivers the same reply again: it escalates once."""
    reply = reply_to(world.page, "ESCALATE")
    assert (await send_reply(world.listen, reply))[0] == 250
    code, text = await send_reply(world.listen, reply)
    assert code == 250 and "processed already" in text
    levels = [i.level for i in await world.daemon.store.notifications(world.incident_id)]
    assert sorted(levels) == [1, 2]


async def test_a_guessed_message_id_is_not_an_answer(world: World) -> None:
    """Someone who forges From: and In-Reply-To from the guessable parts of a page (its idempotency key) is not
    answering it: the page's Message-ID mixes in its Reply-To mac, which only the mail itself carries."""
    (item,) = [i for i in await world.daemon.store.notifications(world.incident_id) if i.level == 1]
    guessed = message_id("monitor@monitor.example.lg.jp", item.dedup_key)
    assert guessed != str(world.page["Message-ID"])
    forged = reply_to(world.page, "ACK", to="noc@monitor.example.lg.jp", thread=False)
    forged["In-Reply-To"] = forged["References"] = guessed
    code, text = await send_reply(world.listen, forged)
    assert code == 550 and "does not answer a page" in text
    assert incident_of(world) == ("open", None)


async def test_escalate_by_reply_to_an_earlier_level_does_not_escalate_again(world: World) -> None:
    await world.daemon.incidents.escalate_now(world.incident_id, "system", "test: the timer ran out")
    code, text = await send_reply(world.listen, reply_to(world.page, "エスカレお願いします"))
    assert code == 550 and "escalated to level 2 already" in text
    incident = world.daemon.incidents.find(world.incident_id)
    assert incident is not None and incident.level == 2
