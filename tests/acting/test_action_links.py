"""Signed action links through the real HTTP app of a real (not started) daemon and its SQLite store: a GET
changes nothing, the POST acts once; replayed, forged, expired and wrong-key links are refused with a clear
page and a 4xx; every use and refusal is audited with its channel and recipient; a link stays used across a
restart. No console login is involved anywhere: the signature is the credential."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from monitor.daemon import Daemon
from monitor.http.app import build_app
from monitor.incidents import links
from monitor.store.records import IncidentRecord
from probes.base import ProbeResult
from tests.conftest import Loader

KEY = "k" * 48
CONFIG = """
defaults: {failures_to_down: 1}
modules: {ping: {kind: icmp}}
targets:
  - {name: edge, address: 127.0.0.1, labels: {prefecture: 13}, modules: [ping]}
auth: {anonymous: none}
incidents:
  action_links: {base_url: "https://noc.example.lg.jp/", key: {file: link.key}, expires: 1h}
notifiers:
  mail: {kind: email, host: 127.0.0.1, port: 1, sender: monitor@example.lg.jp}
  chat: {kind: webhook, url: "http://127.0.0.1:1/", secret: {file: link.key}}
  am: {kind: alertmanager, urls: ["http://127.0.0.1:1"]}
contacts:
  noc: {name: 監視当番, email: noc@example.lg.jp}
  boss: {name: 統括責任者, email: boss@example.lg.jp}
playbooks:
  default:
    levels:
      - {notify: [{contacts: [noc], via: [mail, chat, am]}], ack_timeout: 10m}
      - {notify: [{contacts: [boss], via: [mail]}]}
"""
Client = TestClient[web.Request, web.Application]


def make_daemon(load_yaml_config: Loader, tmp_path: Path) -> Daemon:
    (tmp_path / "link.key").write_text(KEY)
    return Daemon(load_yaml_config(CONFIG), data_dir=tmp_path / "data")


@pytest.fixture
async def world(load_yaml_config: Loader, tmp_path: Path) -> AsyncIterator[tuple[Client, Daemon]]:
    daemon = make_daemon(load_yaml_config, tmp_path)
    daemon.store.open(now=daemon.clock.now())
    await daemon.incidents.load()
    daemon.ready = True
    async with TestClient(TestServer(build_app(daemon.http_services()))) as client:
        yield client, daemon
    await daemon.store.close(now=daemon.clock.now())


async def paged(daemon: Daemon) -> tuple[int, dict[str, dict[str, Any]]]:
    """Open an incident and page level 1; the pages' payloads by channel."""
    await daemon.incidents.handle(
        daemon.engine.observe("edge/ping", ProbeResult(ok=False, error="100% packet loss"), daemon.clock.now())
    )
    incident_id = daemon.incidents.open["target:edge"].id
    await daemon.incidents.escalate_now(incident_id, "system", "test: page level 1")
    items = await daemon.store.notifications(incident_id)
    return incident_id, {i.channel: i.payload for i in items if i.level == 1}


def path_of(payload: dict[str, Any], action: str) -> str:
    (url,) = [a["url"] for a in payload["actions"] if a["action"] == action]
    assert url.startswith("https://noc.example.lg.jp/act/")
    return url.removeprefix("https://noc.example.lg.jp")


async def audit(daemon: Daemon) -> list[tuple[str, str, str, str | None]]:
    entries, _ = await daemon.store.audit_log()
    return [(e.action, e.outcome, e.actor, e.detail.get("channel")) for e in reversed(entries)]


async def test_every_page_carries_its_links(world: tuple[Client, Daemon]) -> None:
    """The mail text and the webhook payload both carry acknowledge and escalate links, signed for their
    own channel and recipient; the mail text shows them in Japanese and English."""
    _, daemon = world
    _, pages = await paged(daemon)
    mail, chat = pages["mail"], pages["chat"]
    assert [a["action"] for a in mail["actions"]] == ["ack", "escalate"]
    assert path_of(mail, "ack") in mail["body"] and "了解（確認しました）:" in mail["body"]
    assert "Acknowledge: https://noc.example.lg.jp/act/" in mail["body"]
    key = KEY.encode()
    claim = links.verify(key, path_of(chat, "ack").removeprefix("/act/"), daemon.clock.now())
    assert (claim.channel, claim.recipient, claim.level, claim.action) == ("chat", "noc", 1, "ack")
    assert links.verify(key, path_of(mail, "escalate").removeprefix("/act/"), daemon.clock.now()).channel == "mail"


async def test_get_changes_nothing_post_acknowledges_once(world: tuple[Client, Daemon]) -> None:
    """A GET (a mail scanner's prefetch) shows a confirmation page and leaves the incident open; the POST
    acknowledges it as the recipient, stops the escalation and is audited; a replay is refused (409)."""
    client, daemon = world
    incident_id, pages = await paged(daemon)
    path = path_of(pages["mail"], "ack")
    for _ in range(2):
        page = await client.get(path)
        assert page.status == 200 and page.headers["Cache-Control"] == "no-store"
        text = await page.text()
        assert "id='confirm'" in text and f"#{incident_id}" in text
    incident = daemon.incidents.find(incident_id)
    assert incident is not None and incident.status == "open" and incident.next_escalation_at is not None
    done = await client.post(path, data={"comment": "対応します"})
    assert done.status == 200 and "エスカレーションを停止しました" in await done.text()
    incident = daemon.incidents.find(incident_id)
    assert incident is not None
    assert (incident.status, incident.acked_by, incident.next_escalation_at) == ("acknowledged", "noc", None)
    replay = await client.post(path)
    assert replay.status == 409 and "使用済み" in await replay.text()
    again = await client.get(path)
    assert again.status == 409
    assert ("incident.ack", "ok", "noc", "mail") in await audit(daemon)
    assert ("incident.ack", "replayed", "noc", "mail") in await audit(daemon)
    counted = daemon.registry.get_sample_value
    assert counted("monitor_action_links_total", {"action": "ack", "method": "GET", "outcome": "shown"}) == 2
    assert counted("monitor_action_links_total", {"action": "ack", "method": "POST", "outcome": "ok"}) == 1
    events = [e.kind for e in await daemon.store.incident_events(incident_id)]
    assert events.count("acknowledged") == 1


async def test_forged_expired_and_foreign_links_are_refused(world: tuple[Client, Daemon]) -> None:
    """An altered token (403), one signed with another key (403), an expired one (410), garbage (400): each a
    clear refusal page, audited, and the incident untouched."""
    client, daemon = world
    incident_id, pages = await paged(daemon)
    token = path_of(pages["mail"], "ack").removeprefix("/act/")
    _, mac = token.split(".")
    now = daemon.clock.now()
    other = links.sign(b"another-key" * 4, links.Claim(incident_id, 1, "noc", "ack", now + 600, "mail"))
    stale = links.sign(KEY.encode(), links.Claim(incident_id, 1, "noc", "ack", now - 1, "mail"))
    # the claim re-encoded for another recipient, keeping the old signature: a forgery
    forged_head = links.sign(KEY.encode(), links.Claim(incident_id, 1, "boss", "ack", now + 600, "mail")).split(".")[0]
    cases = {f"{forged_head}.{mac}": (403, "forged"), other: (403, "forged"), stale: (410, "expired"),
             "not-a-token": (400, "malformed")}  # fmt: skip
    for bad, (status, reason) in cases.items():
        for method in (client.get, client.post):
            answer = await method(f"/act/{bad}")
            assert answer.status == status, (bad, method)
            assert f"data-reason='{reason}'" in await answer.text()
    incident = daemon.incidents.find(incident_id)
    assert incident is not None and incident.status == "open"
    entries, _ = await daemon.store.audit_log()
    refused = sorted((e.outcome, e.detail["method"]) for e in entries if e.action == "incident.link")
    counted = daemon.registry.get_sample_value
    assert counted("monitor_action_links_total", {"action": "unknown", "method": "GET", "outcome": "forged"}) == 2
    assert counted("monitor_action_links_total", {"action": "unknown", "method": "POST", "outcome": "expired"}) == 1
    # every POST is audited; a GET only when the link is ours (expired): garbage fetched cannot fill the log
    assert refused == sorted([("forged", "POST"), ("forged", "POST"), ("expired", "GET"), ("expired", "POST"),
                              ("malformed", "POST")])  # fmt: skip


async def test_escalate_link_pages_the_next_level(world: tuple[Client, Daemon]) -> None:
    """The escalate-now link, POSTed, pages level 2 at once."""
    client, daemon = world
    incident_id, pages = await paged(daemon)
    answer = await client.post(path_of(pages["chat"], "escalate"))
    assert answer.status == 200 and "Level 2 paged" in await answer.text()
    levels = {i.level for i in await daemon.store.notifications(incident_id)}
    assert levels == {1, 2}
    assert ("incident.escalate", "ok", "noc", "chat") in await audit(daemon)


async def test_a_used_link_stays_used_across_a_restart(load_yaml_config: Loader, tmp_path: Path) -> None:
    """Single use is stored: after the daemon restarts, the same link is still refused."""
    first = make_daemon(load_yaml_config, tmp_path)
    first.store.open(now=first.clock.now())
    await first.incidents.load()
    async with TestClient(TestServer(build_app(first.http_services()))) as client:
        _, pages = await paged(first)
        path = path_of(pages["mail"], "ack")
        assert (await client.post(path)).status == 200
    await first.store.close(now=first.clock.now())
    second = make_daemon(load_yaml_config, tmp_path)
    second.store.open(now=second.clock.now())
    await second.incidents.load()
    try:
        async with TestClient(TestServer(build_app(second.http_services()))) as client:
            answer = await client.post(path)
            assert answer.status == 409
            assert re.search(r"Used: .*noc, mail", await answer.text())
    finally:
        await second.store.close(now=second.clock.now())


async def test_alertmanager_alerts_carry_the_links_as_annotations(world: tuple[Client, Daemon]) -> None:
    """An Alertmanager receiver's template can show them: acknowledge_url-style annotations, signed for am."""
    _, daemon = world
    _, pages = await paged(daemon)
    annotations = pages["am"]["alert"]["annotations"]
    claim = links.verify(KEY.encode(), annotations["ack_url"].rsplit("/act/", 1)[1], daemon.clock.now())
    assert (claim.channel, claim.recipient, claim.action) == ("am", "am", "ack")
    assert "escalate_url" in annotations and "approve_url" not in annotations


async def test_a_security_incident_page_opens_the_approval_page(world: tuple[Client, Daemon]) -> None:
    """A security incident's page also links to its approval page: shown without login (it changes nothing),
    pointing at the console, where approving needs a login with the security role; it cannot be POSTed."""
    client, daemon = world
    record = IncidentRecord(key="security:5", severity="critical", title="不正通信（A市）", title_en="Unauthorized traffic",
                            opened_at=daemon.clock.now(), playbook="default")  # fmt: skip
    incident = await daemon.incidents.open_now(record, {"source": "ids"})
    (mail,) = [i.payload for i in await daemon.store.notifications(incident.id) if i.channel == "mail"]
    assert [a["action"] for a in mail["actions"]] == ["ack", "escalate", "approve"]
    page = await client.get(path_of(mail, "approve"))
    assert page.status == 200
    assert "href='https://noc.example.lg.jp/#/security'" in await page.text()
    assert (await client.post(path_of(mail, "approve"))).status == 405
    again = await client.get(path_of(mail, "approve"))
    assert again.status == 200  # opening it is not a use


async def test_a_resolved_page_carries_no_links(world: tuple[Client, Daemon]) -> None:
    """RESOLVED tells those paged that it is over: there is nothing left to acknowledge or escalate."""
    _, daemon = world
    incident_id, _ = await paged(daemon)
    for item in await daemon.store.notifications(incident_id):
        await daemon.store.mark_sent(
            item.id, daemon.clock.now()
        )  # (as the outbox would: RESOLVED goes to those reached)
    await daemon.incidents.resolve(incident_id, "yamada")
    resolved = [i.payload for i in await daemon.store.notifications(incident_id) if i.kind == "resolved"]
    assert resolved and all("actions" not in p and "reply_to" not in p for p in resolved)


async def test_an_escalate_link_of_an_earlier_level_does_not_escalate_again(world: tuple[Client, Daemon]) -> None:
    """Level 1's escalate-now link after level 2 was paged (by its timer, or by someone else): refused, saying
    so; the playbook does not jump to a level nobody asked for."""
    client, daemon = world
    incident_id, pages = await paged(daemon)
    await daemon.incidents.escalate_now(incident_id, "system", "test: the timer ran out")
    path = path_of(pages["mail"], "escalate")
    assert (await client.get(path)).status == 409
    answer = await client.post(path)
    assert answer.status == 409 and "escalated to level 2 already" in await answer.text()
    incident = daemon.incidents.find(incident_id)
    assert incident is not None and incident.level == 2
