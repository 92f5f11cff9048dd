"""Done-when of issue 21 (act from the page): the daemon as a process pages level 1 by mail through a real
SMTP server; from that mail alone the on-call engineer acknowledges, and the escalation stops: level 2 is
never paged. Once with headless Chromium opening the mail's link (GET shows a confirmation, the button
acts), once by replying to the mail (a reply composed by Python's `email` package, sent to the daemon's SMTP
listener). Screenshots in artifacts/act-*.png."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.acting.mailpeers import Inbox, send_reply, start_inbox
from tests.console.cdp import Browser
from tests.e2e.peers import daemon_process, free_port, http_get, wait_for
from tests.e2e.test_daemon_process import TCPGate

pytestmark = [pytest.mark.slow]
ARTIFACTS = Path(__file__).parents[2] / "artifacts"
ACK_TIMEOUT = 20.0  # long enough to act on a loaded machine; the test then waits it out to see no level 2


@pytest.fixture
def mail() -> Iterator[tuple[Inbox, int]]:
    controller: Controller
    controller, inbox, port = start_inbox()
    yield inbox, port
    controller.stop()


def write_config(tmp: Path, gate: TCPGate, http: int, smtp: int, replies: int) -> Path:
    (tmp / "link.key").write_text("e2e-action-link-key-" + "7" * 32)
    config = tmp / "monitor.yml"
    config.write_text(
        f"""
defaults: {{interval: 1s, timeout: 500ms, retry_interval: 200ms, failures_to_down: 2, successes_to_up: 1}}
modules: {{tcp: {{kind: tcp, reachability: true}}}}
targets:
  - {{name: pref13-edge, address: 127.0.0.1, checks: [{{module: tcp, port: {gate.port}}}],
     labels: {{tier: prefecture, prefecture: 13}}}}
incidents:
  group_wait: 1s
  console_url: http://127.0.0.1:{http}
  action_links: {{base_url: "http://127.0.0.1:{http}", key: {{file: link.key}}, expires: 1h}}
  mail_replies: {{address: noc@monitor.example.lg.jp, listen: "127.0.0.1:{replies}"}}
notifiers:
  mail: {{kind: email, host: 127.0.0.1, port: {smtp}, sender: monitor@monitor.example.lg.jp, timeout: 5s}}
contacts:
  yamada: {{name: 山田（夜勤当番）, email: yamada@example.lg.jp}}
  boss: {{name: 統括責任者, email: boss@example.lg.jp}}
playbooks:
  default:
    levels:
      - {{notify: [{{contacts: [yamada], via: [mail]}}], ack_timeout: {ACK_TIMEOUT:g}s}}
      - {{notify: [{{contacts: [boss], via: [mail]}}]}}
""",
        encoding="utf-8",
    )
    return config


def incident(base: str) -> dict[str, Any] | None:
    found = json.loads(http_get(f"{base}/api/v1/incidents")[1])["incidents"]
    if not found:
        return None
    return dict(json.loads(http_get(f"{base}/api/v1/incidents/{found[0]['id']}")[1]))


def to(inbox: Inbox, address: str) -> list[EmailMessage]:
    return [m for m in inbox.messages if address in str(m["To"])]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def no_level_two_after_the_timeout(base: str, inbox: Inbox, paged_at: float) -> None:
    """Wait until level 2 would have been paged (ack_timeout after level 1, plus margin): it never is."""
    time.sleep(max(0.0, paged_at + ACK_TIMEOUT + 5.0 - time.monotonic()))
    shown = incident(base)
    assert shown is not None
    assert shown["level"] == 1 and shown["status"] == "acknowledged"
    assert {n["level"] for n in shown["notifications"]} == {1}
    assert to(inbox, "boss@example.lg.jp") == []


def start(tmp: Path, mail: tuple[Inbox, int]) -> tuple[TCPGate, str, int, Any]:
    gate = TCPGate()
    http, replies = free_port(), free_port()
    config = write_config(tmp, gate, http, mail[1], replies)
    args = ["run", "--config", str(config), "--listen", f"127.0.0.1:{http}", "--data-dir", str(tmp / "data")]
    return gate, f"http://127.0.0.1:{http}", replies, daemon_process(args, tmp)


def page_level_one(base: str, gate: TCPGate, inbox: Inbox) -> tuple[EmailMessage, float]:
    wait_for(lambda: http_get(base + "/readyz")[0] == 200, 30, what="daemon ready")
    gate.close()  # the prefecture's edge router stops answering
    (page,) = wait_for(lambda: to(inbox, "yamada@example.lg.jp"), 30, 0.1, "the level-1 mail page")
    return page, time.monotonic()


async def test_the_link_in_the_mail_acknowledges_in_a_browser_and_level_two_is_never_paged(
    tmp_path: Path, mail: tuple[Inbox, int]
) -> None:
    inbox = mail[0]
    gate, base, _, process = start(tmp_path, mail)
    with process:
        page, paged_at = await asyncio.to_thread(page_level_one, base, gate, inbox)
        link = re.search(r"^了解（確認しました）: (\S+)$", text_of(page), re.M)
        assert link is not None, text_of(page)
        async with Browser() as browser:
            await browser.goto(link[1])  # what a phone does when the link is tapped
            await browser.wait("document.querySelector('#confirm') !== null")
            await browser.screenshot(ARTIFACTS / "act-confirm.png")
            shown = await asyncio.to_thread(incident, base)
            assert shown is not None and shown["status"] == "open"  # opening the link changed nothing
            await browser.js("document.querySelector('textarea[name=comment]').value = '現地に向かいます'")
            # (clicked after evaluate returns: the form's POST navigates the page away)
            await browser.js("setTimeout(() => document.querySelector('#confirm').click(), 0) && true")
            await browser.wait("document.querySelector('#done') !== null", 15)
            await browser.screenshot(ARTIFACTS / "act-done.png")
            shown = await asyncio.to_thread(incident, base)
            assert shown is not None and (shown["status"], shown["acked_by"]) == ("acknowledged", "yamada")
            acked = [e for e in shown["timeline"] if e["kind"] == "acknowledged"]
            assert [e["detail"]["comment"] for e in acked] == ["現地に向かいます"]
            await browser.goto(link[1])  # the same link again: used
            await browser.wait("document.querySelector('#refused')?.dataset.reason === 'used'")
        await asyncio.to_thread(no_level_two_after_the_timeout, base, inbox, paged_at)
    gate.close()


async def test_a_reply_to_the_mail_acknowledges_and_level_two_is_never_paged(
    tmp_path: Path, mail: tuple[Inbox, int]
) -> None:
    inbox = mail[0]
    gate, base, replies, process = start(tmp_path, mail)
    with process:
        page, paged_at = await asyncio.to_thread(page_level_one, base, gate, inbox)
        reply = EmailMessage()
        reply["From"] = "山田 <yamada@example.lg.jp>"
        reply["To"] = str(page["Reply-To"])
        reply["Subject"] = "Re: " + str(page["Subject"])
        reply["In-Reply-To"] = reply["References"] = str(page["Message-ID"])
        quoted = "\n".join("> " + line for line in text_of(page).splitlines())
        reply.set_content(f"了解です。リモートで確認します\n\n{quoted}\n", charset="iso-2022-jp")
        code, answer = await send_reply(replies, reply)
        assert code == 250 and "acknowledged" in answer, answer
        shown = await asyncio.to_thread(incident, base)
        assert shown is not None and (shown["status"], shown["acked_by"]) == ("acknowledged", "yamada")
        await asyncio.to_thread(no_level_two_after_the_timeout, base, inbox, paged_at)
    gate.close()
