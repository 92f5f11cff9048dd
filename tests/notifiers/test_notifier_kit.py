"""One test kit for every notifier, each against its real peer on loopback: a real Alertmanager, an
aiohttp webhook receiver that checks the signature, a real SMTP server (aiosmtpd) with login.
Every notifier: delivers what it is given; fails with NotifyError (never anything else) when the
peer is down; never lets a secret into the message, the error or the log."""

from __future__ import annotations

import email
import email.policy
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from monitor.notifiers.alertmanager import Alertmanager, AlertmanagerNotifier
from monitor.notifiers.base import Notifier, NotifyError
from monitor.notifiers.email import Email, EmailNotifier
from monitor.notifiers.webhook import Webhook, WebhookNotifier, signature
from tests.e2e.peers import alertmanager, alertmanager_available, am_alerts, free_port

SECRET = "s3cret-Value-that-must-never-show-9f2c"
SUBJECT = "[重大/MAJOR] 障害発生 PROBLEM: pref13-edge（東京都） 障害 / pref13-edge (Tokyo) down"


@dataclass
class Kit:
    notifier: Notifier
    payload: dict[str, Any]
    received: Callable[[], Awaitable[list[dict[str, Any]]]]
    stop_peer: Callable[[], None]
    extra: dict[str, Any] = field(default_factory=dict)


def alert_payload() -> dict[str, Any]:
    return {"alert": {"labels": {"alertname": "MonitorIncident", "incident": "7", "severity": "major",
                                 "target": "pref13-edge", "generator": "national-monitor"},
                      "annotations": {"summary": "pref13-edge（東京都） 障害", "summary_en": "pref13-edge (Tokyo) down"},
                      "startsAt": "2026-11-26T00:00:00Z", "generatorURL": "http://127.0.0.1:9310/api/v1/incidents/7"}}  # fmt: skip


async def webhook_kit(tmp_path: Path) -> tuple[Kit, Callable[[], Awaitable[None]]]:
    got: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        expected = signature(SECRET.encode(), request.headers["X-Monitor-Timestamp"], body)
        got.append({"valid": request.headers["X-Monitor-Signature"] == expected, "key": request.headers["Idempotency-Key"],
                    "json": json.loads(body)})  # fmt: skip
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    config = WebhookNotifier.model_validate(
        {"kind": "webhook", "url": f"http://127.0.0.1:{port}/hook", "secret": "${KIT_SECRET}", "timeout": 2}
    )
    payload = {"version": 1, "event": "firing", "subject": SUBJECT, "text": "本文"}

    async def received() -> list[dict[str, Any]]:
        return got

    def stop() -> None:
        site._server.close()  # type: ignore[union-attr]  # stop listening: connection refused from now on

    return Kit(Webhook("hook", config), payload, received, stop), runner.cleanup


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))  # type: ignore[arg-type]
        return "250 OK"


def email_kit(stack: ExitStack) -> Kit:
    mailbox = _Mailbox()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword) and auth_data.login == b"noc" and auth_data.password == SECRET.encode()
        )
        return AuthResult(success=ok, handled=False)

    port = free_port()
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=port, authenticator=authenticate, auth_require_tls=False
    )
    controller.start()
    stack.callback(lambda: controller.stop() if controller._thread else None)  # type: ignore[attr-defined]
    config = EmailNotifier.model_validate({"kind": "email", "host": "127.0.0.1", "port": port, "username": "noc",
                                           "password": "${KIT_SECRET}", "sender": "monitor@example.lg.jp", "timeout": 3})  # fmt: skip
    payload = {"to": "noc@example.lg.jp", "to_name": "監視オペレータ当番", "subject": SUBJECT,
               "body": "障害発生: pref13-edge（東京都） 障害\n----- English -----\nPROBLEM"}  # fmt: skip

    async def received() -> list[dict[str, Any]]:
        return [{"subject": m["Subject"], "to": m["To"], "body": m.get_content(), "id": m["Message-ID"]}
                for m in mailbox.messages]  # fmt: skip

    return Kit(Email("mail", config), payload, received, controller.stop)


@pytest.fixture(params=["alertmanager", "webhook", "email"])
async def kit(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Kit]:
    monkeypatch.setenv("KIT_SECRET", SECRET)
    with ExitStack() as stack:
        cleanup = None
        if request.param == "alertmanager":
            if not alertmanager_available():
                pytest.skip("prometheus-alertmanager (Debian package) not installed")
            am = stack.enter_context(alertmanager(tmp_path))
            config = AlertmanagerNotifier.model_validate({"kind": "alertmanager", "urls": [am], "timeout": 2})

            async def received() -> list[dict[str, Any]]:
                return [{"labels": a["labels"], "annotations": a["annotations"]} for a in am_alerts(am)]

            def stop() -> None:
                stack.close()

            made = Kit(Alertmanager("am", config), alert_payload(), received, stop)
        elif request.param == "webhook":
            made, cleanup = await webhook_kit(tmp_path)
        else:
            made = email_kit(stack)
        yield made
        await made.notifier.close()
        if cleanup:
            await cleanup()


async def test_delivers_the_payload(kit: Kit) -> None:
    """The peer receives exactly what was given, Japanese text intact (and, for webhooks, correctly signed)."""
    await kit.notifier.send(kit.payload, "7:1:x:noc:firing")
    got = await kit.received()
    assert len(got) == 1
    if kit.notifier.kind == "alertmanager":
        assert (
            got[0]["labels"]["target"] == "pref13-edge"
            and got[0]["annotations"]["summary"] == "pref13-edge（東京都） 障害"
        )
    elif kit.notifier.kind == "webhook":
        assert got[0]["valid"] and got[0]["json"] == kit.payload and got[0]["key"] == "7:1:x:noc:firing"
    else:
        assert (
            got[0]["subject"] == SUBJECT
            and "監視オペレータ当番" in got[0]["to"]
            and "pref13-edge（東京都）" in got[0]["body"]
        )


async def test_retry_is_recognisable_as_the_same_notification(kit: Kit) -> None:
    """Sending the same notification twice carries the same idempotency key / Message-ID / alert labels."""
    for _ in range(2):
        await kit.notifier.send(kit.payload, "7:1:x:noc:firing")
    got = await kit.received()
    if kit.notifier.kind == "alertmanager":
        assert len(got) == 1  # Alertmanager folds identical label sets into one alert
    elif kit.notifier.kind == "webhook":
        assert [g["key"] for g in got] == ["7:1:x:noc:firing"] * 2
    else:
        assert got[0]["id"] == got[1]["id"]


async def test_peer_down_is_a_notify_error_without_secrets(kit: Kit) -> None:
    """With the peer gone, send raises NotifyError (nothing else), and neither the error nor the log holds a secret."""
    kit.stop_peer()
    log = io.StringIO()
    structlog.configure(logger_factory=structlog.WriteLoggerFactory(log))
    try:
        with pytest.raises(NotifyError) as info:
            await kit.notifier.send(kit.payload, "7:1:x:noc:firing")
    finally:
        structlog.reset_defaults()
    assert SECRET not in str(info.value) and SECRET not in log.getvalue()
    assert SECRET not in repr(kit.notifier.__dict__)  # config holds a SecretStr: repr shows **********


def test_email_login_is_refused_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong SMTP password is reported as a refused login, without the password."""
    monkeypatch.setenv("KIT_SECRET", "wrong-password-123")
    with ExitStack() as stack:
        made = email_kit(stack)
        import asyncio

        with pytest.raises(NotifyError, match="login refused") as info:
            asyncio.run(made.notifier.send(made.payload, "k"))
        assert "wrong-password-123" not in str(info.value)
