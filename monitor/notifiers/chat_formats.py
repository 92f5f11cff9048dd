"""Payload formats of the webhook notifier (`format:`) for the chat tools NOCs use, rendered from the page the
outbox stored (monitor.incidents.messages: subject, Japanese and English text, the signed action links).

- `monitor`: our own JSON, as stored (the default: what receivers of this daemon's webhook already parse).
- `teams`: a Microsoft Teams message carrying an Adaptive Card (incoming webhook, or a Workflows "post to a
  channel when a webhook request is received" flow); the links are Action.OpenUrl buttons.
- `slack`: a Slack incoming-webhook message in Block Kit (header, section, actions with URL buttons), with
  `text` as the notification fallback.
- `lineworks`: a LINE WORKS Incoming Webhook bot message (title, body.text, one button): the first link
  (acknowledge) is the button, the others are lines of the text.

Every format stays within the service's documented limits (Slack: header 150, section 3000, button 75 chars),
so a long page is cut, never refused. A format is one function here and one entry of FORMATS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Render = Callable[[dict[str, Any]], dict[str, Any]]
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(payload: dict[str, Any]) -> str:
    ja, en = str(payload.get("text", "")), str(payload.get("text_en", ""))
    return f"{ja}\n\n{en}" if en else ja


def _buttons(payload: dict[str, Any]) -> list[dict[str, str]]:
    return [a for a in payload.get("actions", []) if a.get("url")]


def _label(action: dict[str, str]) -> str:
    return f"{action['label']} / {action['label_en']}"


def monitor(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


def teams(payload: dict[str, Any]) -> dict[str, Any]:
    alarm = payload.get("event") in ("firing", "repeat", "update")
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": str(payload.get("subject", "")), "weight": "Bolder", "size": "Medium",
         "wrap": True, "color": "Attention" if alarm else "Good"},
        {"type": "TextBlock", "text": _text(payload), "wrap": True},
    ]  # fmt: skip
    actions = [{"type": "Action.OpenUrl", "title": _label(a), "url": a["url"]} for a in _buttons(payload)]
    if payload.get("console_url"):
        actions.append({"type": "Action.OpenUrl", "title": "詳細 / Details", "url": payload["console_url"]})
    card = {"$schema": CARD_SCHEMA, "type": "AdaptiveCard", "version": "1.4", "body": body, "actions": actions}
    return {"type": "message", "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}]}


def _mrkdwn(text: str) -> str:
    # Slack's three control characters; everything else in a page is plain text
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(payload: dict[str, Any]) -> dict[str, Any]:
    subject = str(payload.get("subject", ""))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(subject, 150), "emoji": False}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(_mrkdwn(_text(payload)), 3000)}},
    ]
    buttons = [
        {"type": "button", "text": {"type": "plain_text", "text": _cut(_label(a), 75)}, "url": a["url"],
         "action_id": a["action"], **({"style": "primary"} if a["action"] == "ack" else {})}
        for a in _buttons(payload)
    ]  # fmt: skip
    if payload.get("console_url"):
        buttons.append({"type": "button", "text": {"type": "plain_text", "text": "詳細 / Details"},
                        "url": payload["console_url"], "action_id": "details"})  # fmt: skip
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return {"text": _cut(subject, 3000), "blocks": blocks}


def lineworks(payload: dict[str, Any]) -> dict[str, Any]:
    buttons = _buttons(payload)
    lines = [_text(payload), *(f"{_label(a)}: {a['url']}" for a in buttons[1:])]
    message: dict[str, Any] = {"title": _cut(str(payload.get("subject", "")), 200),
                               "body": {"text": _cut("\n".join(lines), 2000)}}  # fmt: skip
    first = buttons[0] if buttons else None
    if first is not None:
        message["button"] = {"label": _cut(_label(first), 40), "url": first["url"]}
    elif payload.get("console_url"):
        message["button"] = {"label": "詳細 / Details", "url": payload["console_url"]}
    return message


FORMATS: dict[str, Render] = {"monitor": monitor, "teams": teams, "slack": slack, "lineworks": lineworks}
