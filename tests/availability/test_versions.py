"""The monthly report as a signed record, on a real store with a real SMTP server (aiosmtpd on loopback):
draft -> reviewed -> approved by two different people, each with a comment; approval by the reviewer is
refused; a stale draft is refused; the approved PDF is kept and a regeneration gives the same bytes; a
correction after approval yields version 2 listing what changed and why; each prefecture's liaison
receives its own variant once, also across a restart."""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from prometheus_client import CollectorRegistry

from monitor.access.auth import Refused
from monitor.availability.pdf import render_pdf
from monitor.availability.periods import month_span
from monitor.availability.stamp import canonical, sha256
from monitor.availability.versions import ReportDesk, stamp_of
from monitor.core.inventory import Inventory
from monitor.incidents.outbox import OutboxMetrics, OutboxWorker
from monitor.notifiers.registry import create_notifiers
from monitor.store.sql_reports import Correction
from monitor.store.sqlite import SQLiteStore
from tests.availability.test_calc import at
from tests.availability.test_report import CONFIG, seed
from tests.conftest import Loader
from tests.e2e.peers import free_port

DISTRIBUTION = """
notifiers:
  mail: {{kind: email, host: 127.0.0.1, port: {port}, sender: noc-monitor@example.lg.jp, timeout: 10}}
contacts:
  tokyo: {{name: 東京都 連絡窓口, email: liaison-13@example.lg.jp}}
  osaka: {{name: 大阪府 連絡窓口, email: liaison-27@example.lg.jp}}
  noc: {{name: 監視オペレータ当番, email: noc@example.lg.jp}}
playbooks:
  default: {{levels: [{{notify: [{{contacts: [noc], via: [mail]}}]}}]}}
reports:
  distribution:
    via: [mail]
    liaisons: {{"13": tokyo, 大阪府: osaka}}
"""


@dataclass
class Mailbox:
    messages: list[email.message.EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))  # type: ignore[arg-type]
        return "250 OK"


@dataclass
class FixedClock:
    t: float

    def now(self) -> float:
        return self.t


@dataclass
class World:
    store: SQLiteStore
    inventory: Inventory
    clock: FixedClock
    desk: ReportDesk
    mailbox: Mailbox
    worker: OutboxWorker


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


@pytest.fixture
async def world(load_yaml_config: Loader, tmp_path: Path, smtp: tuple[Mailbox, int]) -> AsyncIterator[World]:
    mailbox, port = smtp
    inventory = load_yaml_config(CONFIG + DISTRIBUTION.format(port=port)).inventory
    store = SQLiteStore(tmp_path / "m.db")
    await seed(store, inventory)
    clock = FixedClock(at("2026-12-03T10:00"))
    woken: list[int] = []
    desk = ReportDesk(store, clock.now, lambda: inventory, lambda: woken.append(1))
    notifiers = create_notifiers(inventory.response.notifiers)
    worker = OutboxWorker(store, clock, lambda: notifiers, OutboxMetrics(CollectorRegistry()))
    yield World(store, inventory, clock, desk, mailbox, worker)
    await desk.stop()
    await store.close(now=clock.t)


def _pdf_text(pdf: bytes, tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True).stdout


async def _approve(w: World, version: int) -> None:
    w.clock.t += 3600
    await w.desk.review("2026-11", version, "佐藤", "数値と障害一覧を確認した")
    w.clock.t += 3600
    await w.desk.approve("2026-11", version, "鈴木課長", "承認する")


async def test_two_people_sign_and_the_approved_pdf_is_kept(world: World, tmp_path: Path) -> None:
    w = world
    with pytest.raises(Refused, match="not over"):
        await w.desk.draft("2026-12", "佐藤")
    first = await w.desk.draft("2026-11", "佐藤")
    assert (first.version, first.status, first.supersedes) == (1, "draft", None)
    assert first.data_sha256 == sha256(first.data.encode()) and json.loads(first.data)["month"] == "2026-11"
    with pytest.raises(Refused, match="already has this data"):
        await w.desk.draft("2026-11", "佐藤")  # nothing changed: no second draft
    with pytest.raises(Refused, match="comment"):
        await w.desk.review("2026-11", 1, "佐藤", "  ")
    with pytest.raises(Refused, match="only a reviewed"):
        await w.desk.approve("2026-11", 1, "鈴木課長", "承認")
    await w.desk.review("2026-11", 1, "佐藤", "確認した")
    with pytest.raises(Refused, match="two-person"):
        await w.desk.approve("2026-11", 1, "佐藤", "自分で承認")  # the reviewer approving: refused
    w.clock.t += 600
    approved = await w.desk.approve("2026-11", 1, "鈴木課長", "承認する")
    assert (approved.status, approved.reviewed_by, approved.approved_by) == ("approved", "佐藤", "鈴木課長")
    kept = await w.store.report_version("2026-11", 1, pdfs=True)
    assert kept is not None and kept.pdf_ja is not None and kept.pdf_en is not None
    with pytest.raises(Refused, match="approved: only a draft"):
        await w.desk.review("2026-11", 1, "山田", "again")
    # the signed copy is checked against a regeneration: the same data, the same bytes
    report, data = await w.desk.build("2026-11", kept.created_at)
    assert canonical(data).decode() == kept.data
    assert render_pdf(report, stamp_of(kept), "ja") == kept.pdf_ja
    text = _pdf_text(kept.pdf_ja, tmp_path, "v1.pdf")
    assert "第1版 · 承認済み · 確認: 佐藤 · 承認: 鈴木課長" in text and kept.data_sha256 in text.replace("\n", "")
    assert "Version 1 · approved" in _pdf_text(kept.pdf_en, tmp_path, "v1-en.pdf")


async def test_correction_after_approval_makes_version_2_with_the_changes(world: World, tmp_path: Path) -> None:
    w = world
    await w.desk.draft("2026-11", "佐藤")
    await _approve(w, 1)
    w.clock.t += 86400
    assert await w.desk.reconcile("2026-11", "佐藤") is None  # nothing changed since the approval
    await w.store.add_correction(Correction("pref-net-27", at("2026-11-01T00:00"), at("2026-11-01T00:05"),
                                            "dummy: no outage there", "admin", w.clock.t))  # fmt: skip
    assert await w.desk.reconcile("2026-11", "佐藤") is None  # a correction that changes no figure: no version
    await w.store.add_correction(Correction("juki-net", at("2026-11-10T10:00"), at("2026-11-10T10:30"),
                                            "計画作業（事前連絡済み）", "admin", w.clock.t))  # fmt: skip
    second = await w.desk.reconcile("2026-11", "佐藤")
    assert second is not None and (second.version, second.status, second.supersedes) == (2, "draft", 1)
    assert second.reason == "計画作業（事前連絡済み）"
    listed = {c["item"]: c for c in json.loads(second.changes)}
    juki = listed["services/juki-net/downtime_minutes"]
    assert (juki["before"], juki["after"], juki["reason"]) == ("30.0", "0.0", "計画作業（事前連絡済み）")
    assert listed["systems/juki-net/availability"]["reason"] == "計画作業（事前連絡済み）"  # its group too
    assert "services/pref-net-27/downtime_minutes" not in listed
    first = await w.store.report_version("2026-11", 1)
    assert first is not None and first.status == "approved"  # version 1 stays as it was signed
    await _approve(w, 2)
    kept = await w.store.report_version("2026-11", 2, pdfs=True)
    assert kept is not None and kept.pdf_ja is not None
    text = _pdf_text(kept.pdf_ja, tmp_path, "v2.pdf")
    assert "承認済み第1版からの変更" in text and "services/juki-net/downtime_minutes" in text
    assert "計画作業（事前連絡済み）" in text and "第2版" in text


async def test_a_stale_draft_is_refused(world: World) -> None:
    """Data changed after the draft was made: review (and approval) are refused until it is drafted again."""
    w = world
    await w.desk.draft("2026-11", "佐藤")
    await w.store.add_correction(Correction("juki-net", at("2026-11-10T10:00"), at("2026-11-10T10:30"), "計画作業",
                                            "admin", w.clock.t))  # fmt: skip
    with pytest.raises(Refused, match="stale"):
        await w.desk.review("2026-11", 1, "佐藤", "確認した")
    again = await w.desk.draft("2026-11", "佐藤", "訂正を反映")
    assert again.version == 2 and [v.status for v in await w.desk.versions("2026-11")] == ["superseded", "draft"]
    await w.desk.review("2026-11", 2, "佐藤", "確認した")
    await w.store.add_correction(Correction("lgwan-link-13-01", at("2026-11-25T09:00"), at("2026-11-25T09:10"),
                                            "回線工事", "admin", w.clock.t))  # fmt: skip
    with pytest.raises(Refused, match="stale"):
        await w.desk.approve("2026-11", 2, "鈴木課長", "承認")


async def test_each_liaison_gets_its_prefecture_variant_once(world: World, tmp_path: Path) -> None:
    w = world
    await w.desk.draft("2026-11", "佐藤")
    await _approve(w, 1)
    await w.desk.settle()
    assert await w.worker.deliver_due() == 2
    assert await w.store.undistributed_reports() == []
    # a restart: the resumed distribution and a second delivery pass send nothing more
    restarted = ReportDesk(w.store, w.clock.now, lambda: w.inventory, lambda: None)
    await restarted.resume()
    assert await restarted.distribute("2026-11", 1) == 0
    assert await w.worker.deliver_due() == 0
    by_to = {str(m["To"]): m for m in w.mailbox.messages}
    assert len(w.mailbox.messages) == 2 and set(by_to) == {
        "東京都 連絡窓口 <liaison-13@example.lg.jp>",
        "大阪府 連絡窓口 <liaison-27@example.lg.jp>",
    }
    # Tokyo: pref-net-13 and its LGWAN link; Osaka: pref-net-27 only; neither has the other's, nor juki-net's
    for to, code, own, other, services in (("liaison-13", "13", "東京都", "大阪", "2/2"),
                                           ("liaison-27", "27", "大阪府", "東京", "1/1")):  # fmt: skip
        message = next(m for t, m in by_to.items() if to in t)
        assert "月次稼働報告 2026-11" in str(message["Subject"]) and "第1版" in str(message["Subject"])
        (attachment,) = list(message.iter_attachments())
        assert attachment.get_filename() == f"availability-2026-11-v1-{code}.pdf"
        pdf = attachment.get_content()
        assert pdf[:5] == b"%PDF-"
        text = _pdf_text(pdf, tmp_path, f"{code}.pdf")
        assert f"月次稼働報告 2026-11 ({own}) · 第1版 · 承認済み" in text and own in text.split("都道府県別稼働率")[1]
        assert other not in text and "juki" not in text and "住基" not in text
        assert text.split("目標達成サービス")[1].split("システム別")[0].split()[3].replace(" ", "") == services


async def test_late_data_change_is_found_by_the_watch(world: World) -> None:
    """No correction, but the store changed after the approval (here: an incident resolved later): the
    hourly check drafts a new version, audited as made by the monitor itself."""
    w = world
    await w.desk.draft("2026-11", "佐藤")
    await _approve(w, 1)
    assert await w.desk.reconcile_recent() == []
    incident, _ = (await w.store.list_incidents())[0][0], None
    incident.resolved_at = at("2026-11-10T10:45")
    await w.store.save_incident(incident)
    made = await w.desk.reconcile_recent()
    assert [(v.month, v.version, v.supersedes) for v in made] == [("2026-11", 2, 1)]
    listed = {c["item"]: c for c in json.loads(made[0].changes)}
    assert any(k.endswith("/recovered_at") for k in listed) and made[0].reason.startswith("データの遅延反映")
    entries, _total = await w.store.audit_log()
    assert (entries[0].actor, entries[0].action, entries[0].object) == ("monitor", "report.draft", "report:2026-11")
    assert month_span(2026, 11)[1] < w.clock.t
