"""The MIME structure of every kind of mail the daemon sends, now that a page with action links gets an HTML
alternative (issue 21) and the report distribution attaches PDFs (issue 22): all through the real outbox and
the real mail notifier to a real SMTP server (aiosmtpd on loopback), parsed back with `email` as a mail
client parses them. Action links and mail replies are configured, so a mail that must not carry them is
seen not to.

- a page: multipart/alternative (text, then HTML with the buttons);
- a page with an attachment too: multipart/mixed, the alternative first, then the file;
- the report distribution: multipart/mixed, the text, then the PDF (no HTML part: it has no actions);
- the on-call handover: one text/plain part, no Reply-To (replying to it acknowledges nothing)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from monitor.daemon import Daemon
from monitor.incidents.paging import contact_messages
from monitor.store.records import OutboxItem
from probes.base import ProbeResult
from tests.acting.mailpeers import start_inbox
from tests.conftest import Loader

CONFIG = """
defaults: {failures_to_down: 1}
modules: {ping: {kind: icmp}}
targets:
  - {name: pref13-edge, address: 127.0.0.1, labels: {prefecture: 13}, modules: [ping]}
incidents:
  action_links: {base_url: "https://noc.example.lg.jp", key: {file: link.key}}
  mail_replies: {address: noc@monitor.example.lg.jp, listen: "127.0.0.1:1"}
notifiers:
  mail: {kind: email, host: 127.0.0.1, port: %(smtp)d, sender: monitor@monitor.example.lg.jp}
contacts:
  yamada: {name: 山田（当番）, email: yamada@example.lg.jp}
  tokyo: {name: 東京都 連絡窓口, email: liaison-13@example.lg.jp}
playbooks:
  default:
    levels:
      - {notify: [{contacts: [yamada], via: [mail]}]}
"""
# not a whole PDF: the notifier carries bytes, it does not read them; what matters is they come back unchanged
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"


@dataclass
class Mails:
    page: EmailMessage
    page_with_file: EmailMessage
    report: EmailMessage
    handover: EmailMessage


def attachment(name: str) -> dict[str, str]:
    return {"filename": name, "content_type": "application/pdf", "data": base64.b64encode(PDF).decode()}


@pytest.fixture
async def mails(load_yaml_config: Loader, tmp_path: Path) -> AsyncIterator[Mails]:
    controller: Controller
    controller, inbox, smtp = start_inbox()
    (tmp_path / "link.key").write_text("m" * 40)
    daemon = Daemon(load_yaml_config(CONFIG % {"smtp": smtp}), data_dir=tmp_path / "data")
    daemon.store.open(now=daemon.clock.now())
    try:
        await daemon.incidents.load()
        await daemon.incidents.handle(
            daemon.engine.observe("pref13-edge/ping", ProbeResult(ok=False, error="timeout"), daemon.clock.now())
        )
        incident_id = daemon.incidents.open["target:pref13-edge"].id
        await daemon.incidents.escalate_now(incident_id, "system")
        (page,) = await daemon.store.notifications(incident_id)
        assert page.payload.get("actions"), "links are configured: the page must carry them"
        now = daemon.clock.now()
        response = daemon.inventory.response
        with_file = {**page.payload, "attachments": [attachment("evidence.pdf")]}
        report = {"to": "liaison-13@example.lg.jp", "to_name": "東京都 連絡窓口", "subject": "月次稼働報告 2026-11",
                  "body": "添付のとおり報告します。", "attachments": [attachment("availability-2026-11-v1-13.pdf")]}  # fmt: skip
        handover = contact_messages(
            response, [("mail", "yamada")], kind="handover", dedup="handover:noc:1", subject="【引継ぎ】NOC 当番",
            text="引継ぎ事項はありません。", webhook={}, incident_id=None, now=now,
        )  # fmt: skip
        items = [
            OutboxItem("test:page-with-file", incident_id, 1, "mail", "yamada", "firing", with_file, now, now),
            OutboxItem("report:2026-11:v1:13:mail:tokyo", None, 0, "mail", "tokyo", "report", report, now, now),
            *handover,
        ]
        await daemon.store.enqueue(items)
        assert await daemon.response.outbox.deliver_due() == 4
        by_key = {str(m["X-Monitor-Notification"]): m for m in inbox.messages}
        yield Mails(by_key[page.dedup_key], by_key["test:page-with-file"], by_key["report:2026-11:v1:13:mail:tokyo"],
                    by_key["handover:noc:1:mail:yamada"])  # fmt: skip
    finally:
        controller.stop()
        await daemon.store.close(now=daemon.clock.now())


def kinds(message: EmailMessage) -> list[str]:
    return [part.get_content_type() for part in message.walk()]


def plain(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


def html(message: EmailMessage) -> str | None:
    body = message.get_body(preferencelist=("html",))
    return None if body is None else str(body.get_content())


def files(message: EmailMessage) -> list[tuple[str | None, str, bytes]]:
    return [(a.get_filename(), a.get_content_type(), a.get_content()) for a in message.iter_attachments()]


async def test_a_page_is_text_then_html_with_the_buttons(mails: Mails) -> None:
    assert kinds(mails.page) == ["multipart/alternative", "text/plain", "text/html"]
    assert "https://noc.example.lg.jp/act/" in plain(mails.page)
    page_html = html(mails.page)
    assert page_html is not None and page_html.count('href="https://noc.example.lg.jp/act/') == 2
    assert files(mails.page) == []
    assert str(mails.page["Reply-To"]).startswith("noc+")


async def test_a_page_with_a_file_keeps_the_alternative_first_and_the_file_after(mails: Mails) -> None:
    message = mails.page_with_file
    assert kinds(message) == ["multipart/mixed", "multipart/alternative", "text/plain", "text/html", "application/pdf"]
    assert plain(message) == plain(mails.page)  # the same text as the page without the file
    assert html(message) == html(mails.page)
    assert files(message) == [("evidence.pdf", "application/pdf", PDF)]
    (pdf_part,) = message.iter_attachments()
    assert pdf_part.get_content_disposition() == "attachment"


async def test_the_report_mail_is_its_text_and_the_pdf(mails: Mails) -> None:
    assert kinds(mails.report) == ["multipart/mixed", "text/plain", "application/pdf"]
    assert html(mails.report) is None  # no actions: no HTML part
    assert plain(mails.report).strip() == "添付のとおり報告します。"
    assert files(mails.report) == [("availability-2026-11-v1-13.pdf", "application/pdf", PDF)]
    assert mails.report["Reply-To"] is None


async def test_the_handover_is_plain_text_and_cannot_be_replied_to_for_an_action(mails: Mails) -> None:
    assert kinds(mails.handover) == ["text/plain"]
    assert plain(mails.handover).strip() == "引継ぎ事項はありません。"
    assert mails.handover["Reply-To"] is None and "/act/" not in plain(mails.handover)
