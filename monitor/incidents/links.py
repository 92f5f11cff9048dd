"""Signed action links and reply addresses for pages: what lets the person paged act from the page alone.

A link is `<base_url>/act/<token>`; the token carries (incident, level, recipient, action, expiry, channel) and
an HMAC-SHA256 over exactly those, with the key from `incidents.action_links.key` (a secret reference). The
signature is the credential, so it must name one action on one incident for one recipient, and it runs out.
Single use is not here (this module is pure): the HTTP layer records each token's digest in the store.

A mail reply is matched by the token in its Reply-To address, `noc+<incident>-<level>-<mac>@domain`: the mac
binds it to the address it was sent to, so a reply only counts from that address (monitor.acting.replies).
Mail systems may fold the local part's case, so that token is lower-case base32.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from monitor.config.acting_model import ActionLinks

ACTIONS = ("ack", "escalate", "approve")  # approve: opens the approval page of a security incident
LABELS = {  # (Japanese, English): the words on buttons and in mail text
    "ack": ("了解（確認しました）", "Acknowledge"),
    "escalate": ("今すぐエスカレーション", "Escalate now"),
    "approve": ("承認画面を開く", "Open the approval page"),
}
MAX_TOKEN = 1024  # a longer token is not ours: refused before any decoding
_REPLY = re.compile(r"^(\d{1,12})-(\d{1,3})-([a-z2-7]{16})$")


class LinkError(Exception):
    """A link that must be refused; `reason` is forged, expired or malformed (the HTTP status follows it)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Claim:
    incident_id: int
    level: int
    recipient: str  # the contact key (or the channel, for Alertmanager)
    action: str
    expires_at: float
    channel: str  # the notifier it was sent through: mail, webhook, ...

    def fields(self) -> list[Any]:
        return [self.incident_id, self.level, self.recipient, self.action, self.expires_at, self.channel]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, b"action-link\x00" + body, hashlib.sha256).digest()  # domain-separated from reply macs


def sign(key: bytes, claim: Claim) -> str:
    if claim.action not in ACTIONS:
        raise ValueError(f"unknown action {claim.action!r}")
    fields = [int(f) if isinstance(f, float) and f.is_integer() else f for f in claim.fields()]
    body = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
    return f"{_b64(body)}.{_b64(_mac(key, body))}"


def verify(key: bytes, token: str, now: float) -> Claim:
    """The claim of a token we signed that has not expired; LinkError otherwise (forged before expired: an
    expiry nobody signed is not worth telling)."""
    if len(token) > MAX_TOKEN or token.count(".") != 1:
        raise LinkError("malformed", "this is not an action link of this system")
    head, mac = token.split(".")
    try:
        body, given = _unb64(head), _unb64(mac)
    except (ValueError, TypeError):
        raise LinkError("malformed", "this is not an action link of this system") from None
    if _b64(body) != head or _b64(given) != mac:
        # base64 has spare bits in its last character: another spelling of the same bytes would pass the mac
        # and, being another string, slip past the single-use record. Only our own spelling is a token.
        raise LinkError("malformed", "this is not an action link of this system")
    if not hmac.compare_digest(given, _mac(key, body)):
        raise LinkError("forged", "the link's signature is not valid (altered, or signed with another key)")
    try:
        incident, level, recipient, action, expires, channel = json.loads(body)
        claim = Claim(int(incident), int(level), str(recipient), str(action), float(expires), str(channel))
    except (ValueError, TypeError):
        raise LinkError("malformed", "the link's content cannot be read") from None
    if claim.action not in ACTIONS:
        raise LinkError("malformed", f"unknown action {claim.action!r}")
    if now >= claim.expires_at:
        raise LinkError("expired", "the link has expired")
    return claim


def digest(token: str) -> str:
    """What the store keeps of a used token (the token itself is a credential until it expires)."""
    return hashlib.sha256(token.encode()).hexdigest()


def url(config: ActionLinks, token: str) -> str:
    return f"{config.base_url}/act/{token}"


def page_actions(
    config: ActionLinks, incident_id: int, level: int, recipient: str, channel: str, now: float, security: bool
) -> list[dict[str, str]]:
    """The links a page carries: acknowledge and escalate now, and for a security incident the approval page."""
    actions = ["ack", "escalate", *(["approve"] if security else [])]
    out = []
    for action in actions:
        expires = float(math.ceil(now + config.expires))  # whole seconds: a shorter link, never an earlier end
        claim = Claim(incident_id, level, recipient, action, expires, channel)
        ja, en = LABELS[action]
        out.append({"action": action, "label": ja, "label_en": en, "url": url(config, sign(config.key_bytes(), claim))})
    return out


def _reply_mac(key: bytes, incident_id: int, level: int, address: str) -> str:
    mac = hmac.new(key, f"reply\x00{incident_id}\x00{level}\x00{address.lower()}".encode(), hashlib.sha256).digest()
    return base64.b32encode(mac[:10]).decode().lower()


def reply_token(key: bytes, incident_id: int, level: int, address: str) -> str:
    return f"{incident_id}-{level}-{_reply_mac(key, incident_id, level, address)}"


def reply_address(mailbox: str, token: str) -> str:
    local, domain = mailbox.split("@", 1)
    return f"{local}+{token}@{domain}"


def parse_reply_token(token: str) -> tuple[int, int, str] | None:
    """(incident, level, mac) of a reply token, or None if it is not one."""
    match = _REPLY.match(token.lower())
    return (int(match[1]), int(match[2]), match[3]) if match else None


def reply_matches(key: bytes, incident_id: int, level: int, mac: str, address: str) -> bool:
    """Whether the reply token was issued to `address` (the reply's sender)."""
    return hmac.compare_digest(mac, _reply_mac(key, incident_id, level, address))
