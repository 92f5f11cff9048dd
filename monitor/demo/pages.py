"""The lab's pager: a webhook receiver that keeps every page the daemons send, for people and tests to read.

`monitor lab run` configures the daemon's playbook to page it (a webhook notifier, three levels), so the lab
pages out of the box. POST checks the HMAC signature (the lab made the secret) and keeps the page with the
time it arrived; a retry of a page already kept (same Idempotency-Key) is marked a duplicate, not dropped, so
a test can count both. GET returns them all.
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

from aiohttp import web

from monitor.notifiers.webhook import signature

SECRET_ENV = "MONITOR_LAB_WEBHOOK_SECRET"
NOTIFIER = "lab-pager"


def lab_paging(url: str, ack_timeout: str = "20s") -> dict[str, Any]:
    """The config sections that page the lab's receiver: one webhook notifier, three contacts, a three-level
    escalation playbook (short ack timeouts, so a few minutes of lab show every level)."""
    contacts = {
        "noc-shift": "監視オペレータ当番",
        "system-owner": "システム担当者・運用統括責任者",
        "management": "管理職・関係自治体連絡窓口",
    }
    levels: list[dict[str, Any]] = [
        {"notify": [{"via": [NOTIFIER], "contacts": [contact]}], "ack_timeout": ack_timeout} for contact in contacts
    ]
    del levels[-1]["ack_timeout"]  # the last level has nobody above it
    return {
        "notifiers": {NOTIFIER: {"kind": "webhook", "url": url, "secret": f"${{{SECRET_ENV}}}"}},
        "contacts": {key: {"name": name, "webhook": NOTIFIER} for key, name in contacts.items()},
        "playbooks": {"default": {"ack_expiry": "1h", "levels": levels}},
    }


class PageLog:
    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()
        self.pages: list[dict[str, Any]] = []
        self._keys: set[str] = set()

    def routes(self, app: web.Application, path: str) -> None:
        app.router.add_post(path, self._receive)
        app.router.add_get(path, self._list)

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        stamp = request.headers.get("X-Monitor-Timestamp", "")
        given = request.headers.get("X-Monitor-Signature", "")
        if not hmac.compare_digest(given, signature(self._secret, stamp, body)):
            return web.json_response({"error": "bad signature"}, status=401)
        try:
            page = json.loads(body)
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        key = request.headers.get("Idempotency-Key", "")
        self.pages.append({"received_at": time.time(), "idempotency_key": key, "duplicate": key in self._keys,
                           "page": page})  # fmt: skip
        self._keys.add(key)
        return web.json_response({"ok": True})

    async def _list(self, _request: web.Request) -> web.Response:
        return web.json_response({"pages": self.pages})
