"""Webhook payload formats for Teams, Slack and LINE WORKS, delivered by the real webhook notifier through the
daemon's outbox to local aiohttp receivers that check each service's payload shape (these are third-party SaaS:
the receivers stand in for them). The buttons are the page's signed links: pressing the one in a Slack
message acknowledges the incident."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from monitor.daemon import Daemon
from monitor.http.app import build_app
from monitor.notifiers.chat_formats import ADAPTIVE_CARD, slack
from monitor.notifiers.webhook import WebhookNotifier
from probes.base import ProbeResult
from tests.conftest import Loader
from tests.e2e.peers import free_port

CONFIG = """
defaults: {failures_to_down: 1}
modules: {ping: {kind: icmp}}
targets:
  - {name: pref13-edge, address: 127.0.0.1, labels: {prefecture: 13}, modules: [ping]}
incidents:
  action_links: {base_url: "https://noc.example.lg.jp", key: {file: link.key}}
notifiers:
  teams: {kind: webhook, format: teams, url: "http://127.0.0.1:%(port)d/teams"}
  slack: {kind: webhook, format: slack, url: "http://127.0.0.1:%(port)d/slack"}
  lineworks: {kind: webhook, format: lineworks, url: "http://127.0.0.1:%(port)d/lineworks"}
contacts:
  noc: {name: 監視当番}
playbooks:
  default:
    levels:
      - {notify: [{contacts: [noc], via: [teams, slack, lineworks]}], ack_timeout: 10m}
"""


def teams_shape(body: dict[str, Any]) -> list[str]:
    """What a Teams incoming webhook / Workflows flow accepts: a message with one Adaptive Card."""
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == ADAPTIVE_CARD
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] in ("1.2", "1.3", "1.4", "1.5")
    assert all(b["type"] == "TextBlock" and isinstance(b["text"], str) and b["text"] for b in card["body"])
    assert all(a["type"] == "Action.OpenUrl" and a["title"] for a in card["actions"])
    return [a["url"] for a in card["actions"]]


def slack_shape(body: dict[str, Any]) -> list[str]:
    """Block Kit within Slack's limits: fallback text, a header, a section, an actions block of URL buttons."""
    assert isinstance(body["text"], str) and body["text"]
    header, section, actions = body["blocks"]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text" and len(header["text"]["text"]) <= 150
    assert section["text"]["type"] == "mrkdwn" and len(section["text"]["text"]) <= 3000
    assert actions["type"] == "actions" and len(actions["elements"]) <= 25
    ids = [e["action_id"] for e in actions["elements"]]
    assert len(set(ids)) == len(ids)
    for element in actions["elements"]:
        assert element["type"] == "button" and len(element["text"]["text"]) <= 75 and len(element["url"]) <= 3000
    return [e["url"] for e in actions["elements"]]


def lineworks_shape(body: dict[str, Any]) -> list[str]:
    """A LINE WORKS Incoming Webhook message: title, body.text, one button."""
    assert set(body) <= {"title", "body", "button"} and isinstance(body["body"]["text"], str)
    assert set(body["button"]) == {"label", "url"}
    return [body["button"]["url"]]


SHAPES = {"teams": teams_shape, "slack": slack_shape, "lineworks": lineworks_shape}


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[int, dict[str, list[dict[str, Any]]]]]:
    got: dict[str, list[dict[str, Any]]] = {name: [] for name in SHAPES}

    async def receive(request: web.Request) -> web.Response:
        assert request.content_type == "application/json"
        got[request.match_info["service"]].append(json.loads(await request.read()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{service}", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port, got
    await runner.cleanup()


async def test_chat_pages_carry_the_links_as_buttons_and_a_button_acknowledges(
    load_yaml_config: Loader, tmp_path: Path, receivers: tuple[int, dict[str, list[dict[str, Any]]]]
) -> None:
    port, got = receivers
    (tmp_path / "link.key").write_text("x" * 40)
    daemon = Daemon(load_yaml_config(CONFIG % {"port": port}), data_dir=tmp_path / "data")
    daemon.store.open(now=daemon.clock.now())
    await daemon.incidents.load()
    try:
        await daemon.incidents.handle(
            daemon.engine.observe("pref13-edge/ping", ProbeResult(ok=False, error="timeout"), daemon.clock.now())
        )
        incident_id = daemon.incidents.open["target:pref13-edge"].id
        await daemon.incidents.escalate_now(incident_id, "system")
        assert await daemon.response.outbox.deliver_due() == 3
        urls = {}
        for service, shape in SHAPES.items():
            (body,) = got[service]
            assert "pref13-edge（東京都）" in json.dumps(body, ensure_ascii=False)
            urls[service] = shape(body)
            assert any(u.startswith("https://noc.example.lg.jp/act/") for u in urls[service]), service
        async with TestClient(TestServer(build_app(daemon.http_services()))) as client:
            ack = urls["slack"][0].removeprefix("https://noc.example.lg.jp")
            assert (await client.post(ack)).status == 200
        incident = daemon.incidents.find(incident_id)
        assert incident is not None and (incident.status, incident.acked_by) == ("acknowledged", "noc")
    finally:
        await daemon.response.stop()
        await daemon.store.close(now=daemon.clock.now())


def test_long_pages_are_cut_to_slack_limits() -> None:
    """A page longer than Slack allows is cut (with …), never refused by Slack; its control characters escaped."""
    body = slack({"subject": "障" * 400, "text": "<b>&" + "x" * 5000, "actions": []})
    header, section = body["blocks"]
    assert len(header["text"]["text"]) == 150 and header["text"]["text"].endswith("…")
    assert len(section["text"]["text"]) == 3000 and section["text"]["text"].startswith("&lt;b&gt;&amp;")


def test_our_own_format_still_needs_its_secret() -> None:
    with pytest.raises(ValidationError, match="secret is required"):
        WebhookNotifier.model_validate({"kind": "webhook", "url": "http://127.0.0.1:1/"})
    WebhookNotifier.model_validate({"kind": "webhook", "url": "http://127.0.0.1:1/", "format": "slack"})
