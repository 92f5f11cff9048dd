"""Handover at a shift change: the incoming shift's summary by real SMTP (aiosmtpd on loopback) through the
outbox, once per change across a restart, and in the API the console reads. A daemon (not started) with a
fake clock; the estate's state comes from probe results fed to the real engine and store."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiosmtpd.controller import Controller

from monitor.daemon import Daemon
from monitor.http.app import build_app
from monitor.store.oncall_records import Handover
from monitor.store.records import SecurityIncident
from probes.base import ProbeResult
from tests.conftest import Loader
from tests.e2e.peers import free_port
from tests.oncall.world import Clock, config, jst

EXTRA = """
  - {name: flappy, address: 127.0.0.9, labels: {tier: national}, modules: [ping]}
maintenance:
  - {name: core-swap, reason: 機器交換, targets: [core], start: "2026-12-07T20:00:00", end: "2026-12-07T22:00:00"}
  - {name: os-update, reason: OS更新, targets: [flappy], start: "2026-12-08T02:00:00", end: "2026-12-08T03:00:00"}
  - {name: far-away, reason: 来月, targets: [flappy], start: "2027-01-20T02:00:00", end: "2027-01-20T03:00:00"}
"""


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Mailbox]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, box
    controller.stop()


def daemon_for(load: Loader, port: int, data: Path, clock: Clock) -> Daemon:
    text = config(smtp_port=port)
    text = text.replace(
        "modules: [ping]}\nincidents:",
        "modules: [ping]}" + EXTRA.rstrip("\n").split("\nmaintenance:")[0] + "\nincidents:",
    )
    text += "maintenance:" + EXTRA.split("\nmaintenance:")[1]
    daemon = Daemon(load(text), data_dir=data, clock=clock)
    daemon.store.open(now=clock.now())
    return daemon


async def test_incoming_shift_gets_the_handover_once_across_a_restart(
    load_yaml_config: Loader, tmp_path: Path, smtp: tuple[int, Mailbox]
) -> None:
    port, box = smtp
    clock = Clock(jst("2026-12-07T20:10:00"))
    daemon = daemon_for(load_yaml_config, port, tmp_path / "data", clock)
    await daemon.incidents.load()
    engine, store = daemon.engine, daemon.store

    def observe(target: str, ok: bool) -> None:
        outcome = engine.observe(
            f"{target}/ping", ProbeResult(ok=ok, error=None if ok else "100% packet loss"), clock.t
        )
        store.record(outcome.transitions)
        daemon.incidents.on_outcome(outcome)

    for ok in (True, False, False, True, False, False, True, False, False, True):  # flappy: 7 changes in 10 min
        observe("flappy", ok)
        clock.t += 60
    observe("core", True)
    for _ in range(2):
        await daemon.incidents.handle(
            engine.observe("core/ping", ProbeResult(ok=False, error="100% packet loss"), clock.t)
        )
    clock.t += 11
    await daemon.incidents.tick()  # level 1: yamada, on the day shift
    incident = daemon.incidents.open["target:core"]
    await daemon.incidents.acknowledge(incident.id, "yamada", "対応中")
    case = SecurityIncident("lgwan-13", "major", clock.t, "ids", "不正通信の疑い", phase="approval")
    case_id = await store.save_security_incident(case)
    await store.flush()

    handover = daemon.response.handover
    assert await handover.tick() == 1  # the day shift began at 08:30, before this daemon ran: ...
    first = await store.oncall.handovers("noc")
    assert [h.at for h in first] == [jst("2026-12-07T08:30")]  # ... recorded, too late to mail
    assert await daemon.response.outbox.deliver_due() == 1  # only the incident's page, to yamada
    assert [m["To"].addresses[0].addr_spec for m in box.messages] == ["yamada@example.lg.jp"]

    clock.t = jst("2026-12-07T20:30:02")
    assert await handover.tick() == 1
    assert await daemon.response.outbox.deliver_due() == 1
    assert len(box.messages) == 2
    mail = box.messages[1]
    assert mail["To"].addresses[0].addr_spec == "suzuki@example.lg.jp"
    assert mail["Subject"].startswith("【引継ぎ】NOC 当番 12/07 20:30 未解決 1 件")
    body = mail.get_content()
    assert f"#{incident.id} [major] L1" in body and "受領 yamada" in body
    assert "core-swap: 機器交換 (～12/07 22:00)" in body
    assert "os-update: OS更新 (12/08 02:00～)" in body and "far-away" not in body
    assert f"#{case_id} lgwan-13 [major] approval" in body
    assert "flappy/ping: 7 回の状態変化" in body and "core/ping" not in body.split("フラッピング")[1]
    await store.close(clock.t)

    # a restart just after: the same change is not handed over (or mailed) again
    clock.t += 5
    again = daemon_for(load_yaml_config, port, tmp_path / "data", clock)
    await again.incidents.load()
    assert await again.response.handover.tick() == 0
    assert await again.response.outbox.deliver_due() == 0
    assert len(box.messages) == 2
    async with TestClient(TestServer(build_app(again.http_services()))) as client:
        listed = await (await client.get("/api/v1/oncall/handovers?schedule=noc")).json()
    latest = listed["handovers"][0]
    assert latest["incoming"] == ["suzuki"] and latest["outgoing"] == ["yamada"]
    assert latest["summary"]["incoming_names"] == ["鈴木"]
    assert latest["summary"]["incidents"][0]["acked_by"] == "yamada"
    assert latest["summary"]["security"][0]["phase"] == "approval"
    await again.store.close(clock.t)


async def test_handover_queued_before_a_crash_is_not_sent_twice(
    load_yaml_config: Loader, tmp_path: Path, smtp: tuple[int, Mailbox]
) -> None:
    """Queued, then the daemon died before recording the summary: the next one records it, mails nobody again."""
    port, box = smtp
    clock = Clock(jst("2026-12-07T20:30:01"))
    daemon = daemon_for(load_yaml_config, port, tmp_path / "data", clock)
    await daemon.incidents.load()
    desk = daemon.response.handover
    at = jst("2026-12-07T20:30")
    change = desk.current_change("noc", clock.t)
    assert change is not None and change[0] == at
    await desk._mail(
        "noc", Handover("noc", at, ["suzuki"], ["yamada"], await desk.summary(change[1].start, at, clock.t)), clock.t
    )
    await daemon.store.close(clock.t)
    restarted = daemon_for(load_yaml_config, port, tmp_path / "data", clock)
    await restarted.incidents.load()
    assert await restarted.response.handover.tick() == 1
    assert await restarted.response.outbox.deliver_due() == 1
    assert len(box.messages) == 1
    await restarted.store.close(clock.t)


async def test_restart_between_shift_change_and_page_mails_the_new_shift_once(
    load_yaml_config: Loader, tmp_path: Path, smtp: tuple[int, Mailbox]
) -> None:
    """End to end through the outbox and real SMTP: the incident opens at 20:29:55 under the day shift, the
    daemon restarts after the 20:30 change, the page due at 20:30:05 goes to the night shift (鈴木) once,
    and another restart sends nothing again."""
    port, box = smtp
    clock = Clock(jst("2026-12-07T20:29:00"))
    daemon = daemon_for(load_yaml_config, port, tmp_path / "data", clock)
    await daemon.incidents.load()
    await daemon.incidents.handle(daemon.engine.observe("core/ping", ProbeResult(ok=True), clock.t))
    clock.t = jst("2026-12-07T20:29:55")
    for _ in range(2):
        outcome = daemon.engine.observe("core/ping", ProbeResult(ok=False, error="100% packet loss"), clock.t)
        await daemon.incidents.handle(outcome)
    assert daemon.incidents.open["target:core"].level == 0
    await daemon.store.close(clock.t)

    clock.t = jst("2026-12-07T20:30:01")
    for step in range(2):  # a restart after the shift change, and one more after the page
        restarted = daemon_for(load_yaml_config, port, tmp_path / "data", clock)
        await restarted.incidents.load()
        clock.t += 5
        await restarted.incidents.tick()
        await restarted.response.outbox.deliver_due()
        pages = [m for m in box.messages if "障害" in m["Subject"] or "PROBLEM" in m["Subject"]]
        assert [m["To"].addresses[0].addr_spec for m in pages] == ["suzuki@example.lg.jp"], step
        await restarted.store.close(clock.t)
