"""A level that pages a `schedule:` (issue 21, on-call) and the acting of issue 21 (action links, mail replies)
together: the page goes to whoever is on call, its links are signed for that person, and that person's reply
to the mail acknowledges, over real SMTP both ways (aiosmtpd receives the page; the daemon's own listener
receives the reply). Someone else, even a contact of the same playbook, is refused."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from monitor.daemon import Daemon
from monitor.incidents import links
from monitor.replies.smtp import open_listener
from probes.base import ProbeResult
from tests.acting.mailpeers import Inbox, send_reply, start_inbox
from tests.acting.test_mail_replies import reply_to
from tests.conftest import Loader
from tests.e2e.peers import free_port

KEY = "s" * 40
# one all-day shift with one member: suzuki is on call whenever the test runs (no clock to fake)
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
  suzuki: {name: 鈴木（当番）, email: suzuki@example.lg.jp}
  yamada: {name: 山田, email: yamada@example.lg.jp}
  boss: {name: 統括責任者, email: boss@example.lg.jp}
schedules:
  noc:
    layers:
      - name: base
        rotation_start: 2026-01-01
        shifts: [{name: 終日, start: "00:00", end: "00:00"}]
        members: [suzuki]
playbooks:
  default:
    levels:
      - {notify: [{schedule: noc, via: [mail]}], ack_timeout: 10m}
      - {notify: [{contacts: [boss], via: [mail]}]}
"""


@dataclass
class World:
    daemon: Daemon
    inbox: Inbox
    listen: int
    incident_id: int
    page: EmailMessage


@pytest.fixture
async def world(load_yaml_config: Loader, tmp_path: Path) -> AsyncIterator[World]:
    controller: Controller
    controller, inbox, smtp = start_inbox()
    listen = free_port()
    (tmp_path / "link.key").write_text(KEY)
    daemon = Daemon(load_yaml_config(CONFIG % {"listen": listen, "smtp": smtp}), data_dir=tmp_path / "data")
    daemon.store.open(now=daemon.clock.now())
    await daemon.incidents.load()
    listener = await open_listener(daemon.replies, daemon.inventory.response.incidents.mail_replies)
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


def claims(page: EmailMessage) -> list[links.Claim]:
    html = page.get_body(preferencelist=("html",))
    assert isinstance(html, EmailMessage)
    tokens = re.findall(r"https://noc\.example\.lg\.jp/act/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)", html.get_content())
    assert tokens, "the page carries no action links"
    return [links.verify(KEY.encode(), t, 0) for t in dict.fromkeys(tokens)]


async def test_the_page_goes_to_the_person_on_call_with_links_for_them(world: World) -> None:
    assert world.page["To"].addresses[0].addr_spec == "suzuki@example.lg.jp"
    found = claims(world.page)
    assert {c.action for c in found} == {"ack", "escalate"}
    assert {(c.recipient, c.channel, c.level, c.incident_id) for c in found} == {
        ("suzuki", "mail", 1, world.incident_id)
    }
    reply_address = str(world.page["Reply-To"])
    token = links.parse_reply_token(reply_address.partition("+")[2].partition("@")[0])
    assert token is not None
    assert links.reply_matches(KEY.encode(), world.incident_id, 1, token[2], "suzuki@example.lg.jp")


async def test_the_on_call_persons_reply_acknowledges(world: World) -> None:
    code, text = await send_reply(world.listen, reply_to(world.page, "了解\n", sender="suzuki@example.lg.jp"))
    assert code == 250 and "acknowledged" in text, text
    incident = world.daemon.incidents.find(world.incident_id)
    assert incident is not None and (incident.status, incident.acked_by) == ("acknowledged", "suzuki")


async def test_a_reply_by_thread_only_from_the_on_call_person_acknowledges(world: World) -> None:
    """The client dropped the Reply-To token: the thread (In-Reply-To) finds the page, and the sender is
    checked against the schedule-resolved recipient the page went to."""
    reply = reply_to(world.page, "ACK\n", sender="suzuki@example.lg.jp", to="noc@monitor.example.lg.jp")
    code, text = await send_reply(world.listen, reply)
    assert code == 250 and "acknowledged" in text, text


async def test_a_contact_not_on_call_is_refused(world: World) -> None:
    code, text = await send_reply(world.listen, reply_to(world.page, "了解\n", sender="yamada@example.lg.jp"))
    assert code == 550 and "was not paged" in text, text
    incident = world.daemon.incidents.find(world.incident_id)
    assert incident is not None and incident.status == "open"
