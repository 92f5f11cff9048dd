"""The monthly report from a real store: per service, prefecture, LGWAN link and system; incidents with
first notification; 12-month trend; CSV for Excel, JSON with the documented fields, HTML in Japanese
and English, rendered by headless Chromium to PNG and PDF (kept in artifacts/ to look at)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.availability.html_report import render_html
from monitor.availability.periods import month_span
from monitor.availability.report import Report, ReportBuilder, to_csv, to_json
from monitor.core.engine import Transition
from monitor.core.inventory import Inventory
from monitor.core.state import State
from monitor.store.records import IncidentEvent, IncidentRecord, Notice, OutboxItem
from monitor.store.sql_reports import Correction
from monitor.store.sqlite import SQLiteStore
from tests.availability.test_calc import MIN, at
from tests.conftest import Loader

ARTIFACTS = Path(__file__).parents[2] / "artifacts"
CONFIG = """
modules: {ping: {kind: icmp}}
targets:
  - {name: juki-east, address: 127.0.0.1, labels: {tier: national, system: juki-net}, modules: [ping]}
  - {name: pref13-edge, address: 127.0.0.2, labels: {tier: prefecture, prefecture: 13, system: pref-net}, modules: [ping]}
  - {name: pref27-edge, address: 127.0.0.3, labels: {tier: prefecture, prefecture: 27, system: pref-net}, modules: [ping]}
  - {name: c1, address: 127.0.0.4, labels: {tier: municipality, prefecture: 13, system: lgwan}, modules: [ping]}
  - {name: c2, address: 127.0.0.5, labels: {tier: municipality, prefecture: 13, system: lgwan}, modules: [ping]}
services:
  - {name: juki-net, display_name: 住基ネット全国サーバ, targets: [juki-east], labels: {tier: national, system: juki-net}}
  - {name: pref-net-13, display_name: 都道府県ネットワーク（東京都）, targets: [pref13-edge], labels: {prefecture: 13, system: pref-net}}
  - {name: pref-net-27, display_name: 都道府県ネットワーク（大阪府）, targets: [pref27-edge], labels: {prefecture: 27, system: pref-net}}
  - {name: lgwan-link-13-01, display_name: LGWAN接続（千代田区）, rule: any, targets: [c1, c2], labels: {prefecture: 13, system: lgwan}}
slo:
  rules:
    - {match: {system: lgwan}, objective: 0.995}
recovery:
  objectives: [{match: {severity: critical}, objective: 20m}, {match: {system: lgwan}, objective: 1h}]
"""


@pytest.fixture
async def seeded(load_yaml_config: Loader, tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, Inventory]]:
    inventory = load_yaml_config(CONFIG).inventory
    store = SQLiteStore(tmp_path / "m.db")
    await seed(store, inventory)
    yield store, inventory
    await store.close(now=month_span(2026, 11)[1])


async def seed(store: SQLiteStore, inventory: Inventory) -> None:
    """November 2026: juki-net down 30 min (an incident, paged), pref-net-13 down 60 min of which 20 min later
    corrected to planned, plus 2 h of maintenance; pref-net-27 clean; the LGWAN link down 10 min; October rolled up."""
    start, end = month_span(2026, 11)
    store.open(now=start - 40 * 86400)

    def t(service: str, old: State, new: State, when: float) -> Transition:
        return Transition("service", service, old, new, when)

    store.record([t(s, State.UNKNOWN, State.UP, start - 35 * 86400) for s in inventory.services])
    events = [
        t("juki-net", State.UP, State.DOWN, at("2026-10-05T12:00")), t("juki-net", State.DOWN, State.UP, at("2026-10-05T13:00")),
        t("juki-net", State.UP, State.DOWN, at("2026-11-10T10:00")), t("juki-net", State.DOWN, State.UP, at("2026-11-10T10:30")),
        t("pref-net-13", State.UP, State.DOWN, at("2026-11-12T03:00")), t("pref-net-13", State.DOWN, State.UP, at("2026-11-12T04:00")),
        t("pref-net-13", State.UP, State.MAINTENANCE, at("2026-11-20T01:00")), t("pref-net-13", State.MAINTENANCE, State.UP, at("2026-11-20T03:00")),
        t("lgwan-link-13-01", State.UP, State.DOWN, at("2026-11-25T09:00")), t("lgwan-link-13-01", State.DOWN, State.UP, at("2026-11-25T09:10")),
    ]  # fmt: skip
    store.record(sorted(events, key=lambda e: e.at))  # the engine reports changes in time order
    await store.flush()
    await store.add_correction(
        Correction("pref-net-13", at("2026-11-12T03:00"), at("2026-11-12T03:20"), "事前連絡済み工事", "admin", start)
    )
    incident = IncidentRecord("target:juki-east", "critical", "juki-east 障害", "juki-east down", at("2026-11-10T10:00"),
                              labels={"target": "juki-east", "service": "juki-net"}, affected={"services": {"juki-net": "down"}})  # fmt: skip
    incident.status, incident.acked_at, incident.acked_by, incident.resolved_at = (
        "resolved",
        at("2026-11-10T10:05"),
        "山田",
        at("2026-11-10T10:30"),
    )
    incident_id = await store.create_incident(incident, IncidentEvent(0, incident.opened_at, "detected"))
    await store.enqueue(
        [OutboxItem("k", incident_id, 1, "am", "am", "firing", {"alert": {}}, incident.opened_at, incident.opened_at)]
    )
    await store.mark_sent((await store.due_notifications(1e12))[0].id, at("2026-11-10T10:00:40"))
    await ReportBuilder(store, inventory).rollup(2026, 10, end)


async def build(seeded: tuple[SQLiteStore, Inventory]) -> Report:
    store, inventory = seeded
    return await ReportBuilder(store, inventory).build("2026-11", month_span(2026, 12)[0] + 3600)


async def test_service_figures(seeded: tuple[SQLiteStore, Inventory]) -> None:
    """Downtime, maintenance (incl. the correction), availability and target per service, in minutes of a 30-day month."""
    report = await build(seeded)
    rows = {r.key: r for r in report.services}
    month = 30 * 24 * 60 * MIN
    juki = rows["juki-net"]
    assert juki.figures.downtime_seconds == 30 * MIN and juki.figures.availability == pytest.approx(
        1 - 30 / (30 * 24 * 60)
    )
    assert juki.met is True  # 30 minutes of a 43.2 minute budget
    assert juki.budget_used == pytest.approx(30 * MIN / (0.001 * month))
    pref13 = rows["pref-net-13"]
    assert (pref13.figures.downtime_seconds, pref13.figures.maintenance_seconds) == (40 * MIN, 140 * MIN)
    assert rows["lgwan-link-13-01"].objective == 0.995 and rows["lgwan-link-13-01"].met is True
    assert rows["pref-net-27"].figures.availability == 1.0 and rows["pref-net-27"].figures.gap_seconds == 0
    assert juki.incident_ids and [i.first_notified for i in report.incidents] == [at("2026-11-10T10:00:40")]


async def test_groups_and_trend(seeded: tuple[SQLiteStore, Inventory]) -> None:
    """Prefectures pool their services time-weighted, in JIS order; LGWAN links are listed; the trend has 12 months."""
    report = await build(seeded)
    assert [(r.key, r.name) for r in report.prefectures] == [("13", "東京都"), ("27", "大阪府")]
    tokyo = report.prefectures[0]
    assert tokyo.figures.downtime_seconds == 50 * MIN  # pref-net-13 (40) + the LGWAN link (10)
    assert [r.key for r in report.lgwan_links] == ["lgwan-link-13-01"]
    trend = dict(next(r for r in report.services if r.key == "juki-net").trend)
    assert (
        len(trend) == 12 and trend["2026-10"] == pytest.approx(1 - 60 / (31 * 24 * 60)) and trend["2026-11"] is not None
    )
    assert trend["2025-12"] is None  # before any data: no figure rather than 100%


async def test_csv_opens_in_excel(seeded: tuple[SQLiteStore, Inventory]) -> None:
    """The CSV starts with a UTF-8 BOM, has Japanese headers and one row per service, prefecture and system."""
    body = to_csv(await build(seeded))
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:3] == ["区分 (kind)", "サービス (service)", "名称 (name)"]
    juki = next(r for r in rows if r[1] == "juki-net")
    assert juki[2] == "住基ネット全国サーバ" and juki[6] == "30.0" and juki[10] == "達成" and juki[11] == "1"
    assert [r[0] for r in rows[1:]].count("prefecture") == 2


async def test_json_has_the_documented_fields(seeded: tuple[SQLiteStore, Inventory]) -> None:
    """services[] carries service, planned/maintenance/downtime minutes, availability, target, met and incidents[]."""
    data = json.loads(to_json(await build(seeded)))
    assert data["month"] == "2026-11" and data["timezone"] == "Asia/Tokyo"
    juki = next(s for s in data["services"] if s["service"] == "juki-net")
    for key in (
        "planned_minutes",
        "maintenance_minutes",
        "downtime_minutes",
        "availability",
        "target",
        "met",
        "incidents",
    ):
        assert key in juki
    assert juki["incidents"][0]["first_notified_at"] == "2026-11-10T01:00:40.000Z"
    assert juki["incidents"][0]["acknowledged_by"] == "山田" and juki["downtime_minutes"] == 30.0
    assert len(data["daily_downtime_minutes"]) == 30
    daily = {d["date"]: d["minutes"] for d in data["daily_downtime_minutes"]}
    assert (daily["2026-11-10"], daily["2026-11-12"], daily["2026-11-25"]) == (
        30.0,
        40.0,
        10.0,
    )  # the corrected 20 min are not downtime


async def test_html_in_japanese_and_english(seeded: tuple[SQLiteStore, Inventory]) -> None:
    """The HTML report has its sections and charts in Japanese, and in English on request."""
    report = await build(seeded)
    ja, en = render_html(report, "ja"), render_html(report, "en")
    for text in (
        "月次稼働報告 2026-11",
        "都道府県別稼働率",
        "障害一覧",
        "住基ネット全国サーバ",
        "<svg",
        "@page { size: A4",
    ):
        assert text in ja
    assert "Monthly availability report 2026-11" in en and "Availability by prefecture" in en


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium (Debian package) not installed")
async def test_html_renders_in_chromium_to_png_and_pdf(seeded: tuple[SQLiteStore, Inventory], tmp_path: Path) -> None:
    """Headless Chromium renders the report to a PNG and an A4 PDF (kept in artifacts/ for people to look at)."""
    html = tmp_path / "report.html"
    html.write_text(render_html(await build(seeded)), encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    png, pdf = ARTIFACTS / "availability-report-2026-11.png", ARTIFACTS / "availability-report-2026-11.pdf"
    flags = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    for extra in (
        [f"--screenshot={png}", "--window-size=1240,1754"],
        [f"--print-to-pdf={pdf}", "--no-pdf-header-footer"],
    ):
        subprocess.run([*flags, *extra, html.as_uri()], check=True, capture_output=True, timeout=120)  # noqa: ASYNC221
    assert png.stat().st_size > 20_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 20_000


async def test_recovery_objectives_section_matches_the_scenario(seeded: tuple[SQLiteStore, Inventory]) -> None:
    """Scripted: juki-east (critical, objective 20 min) recovered after 30 min, its notice published 12 min
    after detection: a breach; an LGWAN circuit (objective 1 h) recovered after 40 min: within; a
    prefecture incident with no objective is not judged; one still open past its objective is a breach."""
    store, _ = seeded
    lgwan = IncidentRecord("target:c1", "minor", "c1 障害", "c1 down", at("2026-11-25T09:00"),
                           labels={"target": "c1", "system": "lgwan"}, status="resolved",
                           resolved_at=at("2026-11-25T09:40"))  # fmt: skip
    pref = IncidentRecord("target:pref27-edge", "major", "pref27-edge 障害", "pref27-edge down", at("2026-11-26T01:00"),
                          labels={"target": "pref27-edge"}, status="resolved", resolved_at=at("2026-11-26T05:00"))  # fmt: skip
    stuck = IncidentRecord("target:juki-east", "minor", "juki-east 障害", "juki-east down", at("2026-11-30T22:00"),
                           labels={"target": "juki-east"}, affected={"peak_severity": "critical",
                           "recovery_breached_at": at("2026-11-30T22:20")})  # fmt: skip
    ids = [await store.create_incident(i) for i in (lgwan, pref, stuck)]
    juki_id = (await store.incidents_between(*month_span(2026, 11)))[0].id
    notice = Notice("occurred", "【障害発生】住基", "[Disruption] Juki", "本文", "body", at("2026-11-10T10:05"), "system",
                    status="published", incident_id=juki_id, published_at=at("2026-11-10T10:12"))  # fmt: skip
    await store.save_notice(notice)
    data = json.loads(to_json(await build(seeded)))
    assert data["recovery"] == {
        "incidents_with_objective": 3,
        "within_objective": 1,
        "breached": [juki_id, ids[2]],
        "incidents_with_notice": 1,
        "median_time_to_first_notice_minutes": 12.0,
    }
    lines = {i["id"]: i for i in data["incidents"]}
    assert (
        lines[juki_id]["recovery_objective_minutes"] == 20.0 and lines[juki_id]["recovered_within_objective"] is False
    )
    assert lines[juki_id]["time_to_first_notice_minutes"] == 12.0
    assert lines[ids[0]]["recovery_objective_minutes"] == 60.0 and lines[ids[0]]["recovered_within_objective"] is True
    assert lines[ids[1]]["recovery_objective_minutes"] is None and lines[ids[1]]["recovered_within_objective"] is None
    html = render_html(await build(seeded), "ja")
    assert "目標復旧時間" in html and "目標内に復旧: 1 / 3" in html


async def test_incidents_are_attributed_to_the_services_they_took_down(seeded: tuple[SQLiteStore, Inventory]) -> None:
    """Whatever an incident kept of its services, the report attributes it to every service that had an outage during
    it and that its target is a member of (or the root cause of); one merged into another hands them to its root;
    an incident with no outage of its services gets none."""
    store, _ = seeded
    circuit = IncidentRecord("target:c1", "minor", "c1 障害", "c1 down", at("2026-11-25T09:01"), status="resolved",
                             labels={"target": "c1"}, resolved_at=at("2026-11-25T09:11"))  # fmt: skip
    circuit_id = await store.create_incident(circuit)
    merged = IncidentRecord("target:c2", "minor", "c2 障害", "c2 down", at("2026-11-25T09:01"), status="resolved",
                            labels={"target": "c2"}, resolved_at=at("2026-11-25T09:02"), merged_into=circuit_id)  # fmt: skip
    quiet = IncidentRecord("target:pref27-edge", "major", "pref27-edge 障害", "pref27-edge down", at("2026-11-25T09:01"),
                           labels={"target": "pref27-edge"}, status="resolved", resolved_at=at("2026-11-25T09:05"))  # fmt: skip
    later = IncidentRecord("target:c1", "minor", "c1 障害", "c1 down", at("2026-11-26T09:01"), status="resolved",
                           labels={"target": "c1"}, resolved_at=at("2026-11-26T09:11"))  # fmt: skip
    ids = [await store.create_incident(i) for i in (merged, quiet, later)]
    lines = {i["id"]: i for i in json.loads(to_json(await build(seeded)))["incidents"]}
    assert lines[circuit_id]["services"] == ["lgwan-link-13-01"]
    assert ids[0] not in lines  # merged: the report lists its root cause's incident only
    assert [lines[i]["services"] for i in ids[1:]] == [[], []]  # no outage of pref-net-27; after the outage
