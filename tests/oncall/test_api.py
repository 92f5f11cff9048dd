"""The on-call API through aiohttp on a real (not started) daemon with a fake clock: who is on call now,
swaps and overrides by members and managers (refusals audited), the iCal feeds read back with the
`icalendar` package."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from icalendar import Calendar

from monitor.daemon import Daemon
from monitor.http.app import build_app
from tests.conftest import Loader
from tests.oncall.world import TOKENS, Clock, config, jst

Client = TestClient[web.Request, web.Application]


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


@pytest.fixture
async def api(load_yaml_config: Loader, tmp_path: Path) -> AsyncIterator[tuple[Client, Daemon]]:
    daemon = Daemon(load_yaml_config(config()), data_dir=tmp_path / "data", clock=Clock(jst("2026-12-07T12:00")))
    daemon.store.open(now=daemon.clock.now())
    await daemon.incidents.load()
    daemon.ready = True
    async with TestClient(TestServer(build_app(daemon.http_services()))) as client:
        yield client, daemon
    await daemon.store.close(now=daemon.clock.now())


async def audit(daemon: Daemon) -> list[tuple[str, str, str, str | None]]:
    entries, _ = await daemon.store.audit_log()
    return [(e.action, e.outcome, e.actor, e.object) for e in reversed(entries)]


async def test_who_is_on_call_now_at_each_level(api: tuple[Client, Daemon]) -> None:
    client, _ = api
    data = await (await client.get("/api/v1/oncall")).json()
    assert [(lv["playbook"], lv["level"], [p["key"] for p in lv["people"]]) for lv in data["levels"]] == [
        ("default", 1, ["yamada"]),
        ("default", 2, ["boss"]),
    ]
    assert data["levels"][0]["until"] == "2026-12-07T11:30:00.000Z"  # 20:30 JST
    noc = data["schedules"][0]
    assert noc["name"] == "NOC 当番" and noc["on_call"][0]["person_name"] == "山田"
    assert [d["person"] for d in noc["next"]] == ["suzuki"]


async def test_swaps_and_overrides_by_members_and_managers(api: tuple[Client, Daemon]) -> None:
    client, daemon = api
    path = "/api/v1/oncall/schedules/noc/changes"
    theirs = {"kind": "swap", "slots": ["noc/base/日勤/2026-12-08", "noc/base/日勤/2026-12-09"]}
    refused = await client.post(path, json=theirs, headers=bearer("yamada"))
    assert refused.status == 403 and "manager swaps for others" in (await refused.json())["detail"]
    made = await client.post(path, json={**theirs, "reason": "通院"}, headers=bearer("noc-lead"))
    assert made.status == 201, await made.text()
    change = await made.json()
    assert change["slots"]["noc/base/日勤/2026-12-08"] == {"from": "tanaka", "to": "suzuki"}
    own = {"kind": "override", "slot": "noc/base/夜勤/2026-12-08", "to": "tanaka"}
    mine = await client.post(path, json=own, headers=bearer("yamada"))
    assert mine.status == 201
    empty = await client.post(path, json={**own, "to": None}, headers=bearer("yamada"))
    assert empty.status == 403
    bad = await client.post(path, json={"kind": "trade"}, headers=bearer("yamada"))
    assert bad.status == 422
    slots = await (await client.get("/api/v1/oncall/schedules/noc/slots?days=3")).json()
    held = {s["key"]: (s["person"], s["change_id"]) for s in slots["slots"]}
    assert held["noc/base/日勤/2026-12-08"] == ("suzuki", change["id"])
    assert held["noc/base/夜勤/2026-12-08"][0] == "tanaka"
    gone = await client.delete(f"/api/v1/oncall/changes/{change['id']}", headers=bearer("suzuki"))
    assert gone.status == 403  # neither its maker nor a manager
    undone = await client.delete(f"/api/v1/oncall/changes/{change['id']}", headers=bearer("noc-lead"))
    assert undone.status == 200 and (await undone.json())["cancelled_by"] == "noc-lead"
    assert daemon.incidents.roster.people("noc", jst("2026-12-08T12:00")) == ["tanaka"]  # paging sees it at once
    log = await audit(daemon)
    assert ("oncall.change", "rejected", "yamada", "schedule:noc") in log
    assert ("oncall.change", "ok", "noc-lead", f"oncall:{change['id']}") in log
    assert ("oncall.cancel", "rejected", "suzuki", f"oncall:{change['id']}") in log
    assert ("oncall.cancel", "ok", "noc-lead", f"oncall:{change['id']}") in log
    listed = await (await client.get("/api/v1/oncall/changes?schedule=noc")).json()
    assert [c["kind"] for c in listed["changes"]] == ["override", "swap"]


def _events(body: bytes) -> list[Any]:
    return [c for c in Calendar.from_ical(body).walk("VEVENT")]


async def test_ical_feeds_per_schedule_and_per_person(api: tuple[Client, Daemon]) -> None:
    client, _ = api
    swap = {"kind": "swap", "slots": ["noc/base/日勤/2026-12-08", "noc/base/日勤/2026-12-09"]}
    assert (
        await client.post("/api/v1/oncall/schedules/noc/changes", json=swap, headers=bearer("noc-lead"))
    ).status == 201
    feed = await client.get("/api/v1/oncall/schedules/noc/calendar.ics")
    assert feed.status == 200 and feed.content_type == "text/calendar"
    cal = Calendar.from_ical(await feed.read())
    assert str(cal["version"]) == "2.0" and str(cal["x-wr-calname"]) == "NOC 当番"
    events = _events(await feed.read())
    # a week back (but the rotation began on 1 Dec) to eight weeks ahead (1 Feb 12:00 JST), two shifts a day
    assert len(events) == 62 * 2 + 1
    uids = [str(e["uid"]) for e in events]
    assert len(set(uids)) == len(uids)
    day8 = next(e for e in events if "slot: noc/base/日勤/2026-12-08" in str(e["description"]))
    assert str(day8["summary"]) == "NOC 当番 日勤: 鈴木"  # swapped: tanaka's by the rotation
    assert day8.decoded("dtstart") == datetime(2026, 12, 7, 23, 30, tzinfo=UTC)  # 08:30 JST
    assert day8.decoded("dtend") == datetime(2026, 12, 8, 11, 30, tzinfo=UTC)
    assert "change #" in str(day8["description"]) and "rotation: tanaka" in str(day8["description"])

    mine = await client.get("/api/v1/oncall/people/suzuki/calendar.ics")
    theirs = _events(await mine.read())
    assert theirs and all(str(e["summary"]).startswith("NOC 当番 ") for e in theirs)
    starts = [e.decoded("dtstart") for e in theirs]
    assert datetime(2026, 12, 7, 23, 30, tzinfo=UTC) in starts  # the swapped-in 日勤 of 8 Dec
    assert datetime(2026, 12, 8, 23, 30, tzinfo=UTC) not in starts  # the 日勤 of 9 Dec went to tanaka
    assert (await client.get("/api/v1/oncall/people/nobody/calendar.ics")).status == 404


async def test_cli_swaps_lists_and_cancels_through_the_api(
    api: tuple[Client, Daemon], capsys: pytest.CaptureFixture[str]
) -> None:
    """`monitor oncall ...` against the daemon's API (on loopback), with the manager's token."""
    from monitor.cli.main import main

    client, daemon = api
    url = str(client.make_url("")).rstrip("/")
    common = ["--url", url, "--token", TOKENS["noc-lead"]]

    def run(*argv: str) -> str:
        assert main([*argv, *common]) == 0
        return capsys.readouterr().out

    made = await asyncio.to_thread(run, "oncall", "swap", "noc", "noc/base/日勤/2026-12-08", "noc/base/日勤/2026-12-09",
                                   "--reason", "通院")  # fmt: skip
    assert "(swap) made: noc/base/日勤/2026-12-08: tanaka -> suzuki; noc/base/日勤/2026-12-09: suzuki -> tanaka" in made
    now = await asyncio.to_thread(run, "oncall", "now")
    assert now.splitlines()[1].split()[:3] == ["default", "1", "山田"]
    slots = await asyncio.to_thread(run, "oncall", "slots", "noc", "--days", "2")
    assert any(line.startswith("noc/base/日勤/2026-12-08") and "suzuki" in line and "change #1" in line
               for line in slots.splitlines())  # fmt: skip
    gap = await asyncio.to_thread(run, "oncall", "override", "noc", "noc/base/夜勤/2026-12-08", "--nobody")
    assert "夜勤/2026-12-08: yamada -> nobody" in gap
    cancelled = await asyncio.to_thread(run, "oncall", "cancel", "2")
    assert "#2 (override) cancelled" in cancelled
    listed = await asyncio.to_thread(run, "oncall", "changes", "noc")
    assert [line.split()[:3] for line in listed.splitlines()[1:]] == [["2", "override", "noc"], ["1", "swap", "noc"]]
    assert daemon.incidents.roster.people("noc", jst("2026-12-08T23:00")) == ["yamada"]
