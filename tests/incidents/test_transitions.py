"""Incidents through merges, redundancy and blips (issue 18 points 4, 5, 6): the real engine, manager
and SQLite store with a hand-driven clock, plus the manager's own task on the real clock for timing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.config.response_model import IncidentPolicy
from monitor.core.engine import Engine
from monitor.core.state import State
from monitor.incidents.manager import IncidentManager
from monitor.incidents.policy import blip_recovery, first_page_wait
from monitor.store.sqlite import SQLiteStore
from monitor.timefmt import jst, utc_iso
from probes.base import ProbeResult
from tests.conftest import Loader
from tests.incidents.world import CONFIG, World, make_world


@pytest.fixture
async def world(load_yaml_config: Loader, tmp_path: Path) -> AsyncIterator[World]:
    w = await make_world(load_yaml_config, tmp_path)
    yield w
    await w.store.close(now=w.clock.t)


# --- point 4: the services move with a merge ------------------------------------------------


async def test_child_merged_into_root_cause_takes_its_services_along(world: World) -> None:
    """The switch is confirmed DOWN (the office LAN DOWN) before its edge router: when the router is found
    down the switch's incident merges into the router's. The LAN stays DOWN throughout (no change of
    the service to hang the attribution on): it moves with the merge, and stays to the end."""
    await world.fail("sw")
    assert world.manager.open["target:sw"].affected["services"] == {"edge-lan": "down"}
    await world.later(3)
    await world.fail("edge")
    assert list(world.manager.open) == ["target:edge"]
    root = world.manager.open["target:edge"]
    assert root.affected["services"] == {"edge-lan": "down"} and root.affected["children"] == ["sw"]
    await world.later(30)
    await world.recover("edge", "sw")
    stored = {i.key: i for i in await world.incidents()}
    assert stored["target:edge"].status == "resolved" and stored["target:edge"].affected["services"] == {
        "edge-lan": "down"
    }
    assert stored["target:sw"].merged_into == stored["target:edge"].id


async def test_a_service_back_before_its_incident_ends_stays_attributed(world: World) -> None:
    """The server's application check and its ping fail; the application comes back first: the incident
    that took the service down still lists it when it ends (not `services: []`)."""
    for _ in range(2):
        await world.manager.handle(world.observe("srv", False, "timeout", check="ping2"))
    await world.fail("srv")
    incident = world.manager.open["target:srv"]
    assert incident.affected["services"] == {"srv-app": "down"}
    for _ in range(2):
        await world.manager.handle(world.observe("srv", True, check="ping2"))
    assert world.engine.services["srv-app"].state == State.UP and "target:srv" in world.manager.open
    await world.recover("srv")
    (stored,) = [i for i in await world.incidents() if i.key == "target:srv"]
    assert stored.status == "resolved" and stored.affected["services"] == {"srv-app": "down"}


async def test_recovery_blip_of_a_child_never_takes_the_attribution(world: World) -> None:
    """The router is down (the access point UNREACHABLE, its service attributed to the router's incident);
    the router comes back while the child's last result is still the failure from the cut: whatever
    incident that blip opens, the service's outage stays with the router's incident."""
    await world.fail("edge")
    await world.fail("ap")
    assert world.engine.checks["ap/ping"].state == State.UNREACHABLE
    await world.later(30)
    await world.recover("edge")
    await world.later(1)
    await world.recover("ap")
    owners = {i.key: set(i.affected.get("services", {})) for i in await world.incidents()}
    assert owners["target:edge"] == {"pref-net-13", "edge-lan"}
    assert [k for k, s in owners.items() if "pref-net-13" in s] == ["target:edge"]


# --- point 5: one link, one incident; a re-rating is paged ----------------------------------


async def test_second_circuit_joins_the_link_incident_and_the_new_severity_is_paged(world: World) -> None:
    """Primary cut: link DEGRADED, a minor incident, paged. Backup cut too: the same incident, now
    major, and everyone already paged gets a page saying so (the link DOWN, both circuits)."""
    await world.fail("c-primary")
    incident = world.manager.open["target:c-primary"]
    assert incident.severity == "minor"
    await world.later(11)
    await world.deliver()
    assert {(p.channel, p.recipient, p.kind) for p in await world.pages()} == {
        ("am", "am", "firing"),
        ("mail", "noc", "firing"),
    }
    await world.fail("c-backup")
    assert list(world.manager.open) == ["target:c-primary"]  # one link, one incident
    assert incident.severity == "major" and incident.affected["targets"] == ["c-backup"]
    updates = await world.pages("update")
    assert {(p.channel, p.recipient) for p in updates} == {("am", "am"), ("mail", "noc")}
    mail = next(p.payload for p in updates if p.channel == "mail")
    assert mail["subject"].startswith("[重大/MAJOR] 重要度変更 SEVERITY CHANGED: LGWAN回線（東京都） 障害")
    assert "軽微 → 重大" in mail["body"] and "MINOR -> MAJOR" in mail["body"]
    assert "LGWAN link (Tokyo) (DOWN: c-backup, c-primary)" in mail["body"]  # the link DOWN: both circuits
    assert "LGWAN回線（東京都）（停止: c-backup, c-primary）" in mail["body"]
    assert "c-primary/ping" in mail["body"] and "c-backup/ping" in mail["body"]  # both circuits
    alert = next(p.payload for p in updates if p.channel == "am")
    assert alert["alert"]["labels"]["severity"] == "major" and "endsAt" not in alert["alert"]
    assert [a["labels"]["severity"] for a in alert["supersedes"]] == ["minor"]  # the minor alert is ended
    await world.deliver()
    assert [a.payload["alert"]["labels"]["severity"] for a in await world.store.firing_alerts()] == ["major"]
    await world.later(4 * 60 + 1)  # the next page (a repeat) carries the new severity
    repeat = next(p.payload for p in await world.pages("repeat") if p.channel == "mail")
    assert repeat["subject"].startswith("[重大/MAJOR]")
    await world.recover("c-backup")  # one circuit back: minor again, still the same incident
    assert incident.severity == "minor"
    milder = [p for p in await world.pages("update") if p.status == "pending"]
    assert len(milder) == 2 and all(p.not_before >= world.clock.t + 10 for p in milder)  # held like a blip
    await world.recover("c-primary")  # ... and it was the way to recovery: RESOLVED, not "now minor"
    assert world.manager.open == {}
    assert len(await world.pages("update")) == 2 and len(await world.pages("resolved")) == 2
    resolved = next(p.payload for p in await world.pages("resolved") if p.channel == "mail")
    assert resolved["subject"].startswith("[重大/MAJOR] 復旧 RESOLVED")  # the outage was major, not the last step
    ended = next(p.payload for p in await world.pages("resolved") if p.channel == "am")
    assert ended["alert"]["labels"]["severity"] == "major" and "endsAt" in ended["alert"]  # the alert AM has
    stored = {i.key: i for i in await world.incidents()}
    assert stored["target:c-backup"].merged_into == incident.id  # the report lists merged ones under their root
    assert stored["target:c-primary"].affected["services"] == {"link": "down"}
    assert {p.incident_id for p in await world.pages()} == {incident.id}


async def test_a_milder_severity_that_lasts_is_paged(world: World) -> None:
    """Both circuits down (major, paged), then the backup comes back and stays: once the step down has
    lasted as long as a blip would, those paged are told it is minor now."""
    await world.fail("c-primary", "c-backup")
    await world.later(13)
    await world.deliver()
    await world.recover("c-backup")
    await world.later(5)
    assert await world.store.due_notifications(world.clock.t) == []
    await world.later(10)
    due = await world.store.due_notifications(world.clock.t)
    mail = next(p.payload for p in due if p.channel == "mail")
    assert mail["subject"].startswith("[軽微/MINOR] 重要度変更 SEVERITY CHANGED") and "重大 → 軽微" in mail["body"]
    assert "LGWAN link (Tokyo) (DEGRADED: c-primary)" in mail["body"]


async def test_a_severity_change_undone_before_it_was_told_pages_nobody(world: World) -> None:
    """Both circuits down (major, paged); the backup comes back (minor, held like a blip) and fails again
    before the hold ends: those paged were told major and it is major, so no SEVERITY CHANGED page at all,
    neither now nor when the hold would have ended. (The class: services re-attributed after a restart.)"""
    await world.fail("c-primary", "c-backup")
    await world.later(13)
    await world.deliver()
    await world.recover("c-backup")
    await world.later(3)
    await world.fail("c-backup")
    incident = world.manager.open["target:c-primary"]
    assert incident.severity == "major"
    await world.later(30)
    await world.deliver()
    assert await world.pages("update") == []  # the held step down was cancelled, nothing replaced it
    await world.recover("c-backup")  # a step down that lasts is still told, from what was told: major
    await world.later(15)
    due = await world.store.due_notifications(world.clock.t)
    mail = next(p.payload for p in due if p.channel == "mail")
    assert "重大 → 軽微" in mail["body"] and "MAJOR -> MINOR" in mail["body"]


async def test_both_circuits_confirmed_in_one_batch_make_one_incident(world: World) -> None:
    """Both circuits confirmed in the same batch of outcomes (a mass outage): still one incident."""
    for _ in range(2):
        for target in ("c-primary", "c-backup"):
            outcome = world.observe(target, False)
            await world.manager.handle(outcome)
    assert len(world.manager.open) == 1
    incident = next(iter(world.manager.open.values()))
    assert incident.severity == "major" and incident.title_en == "LGWAN link (Tokyo) down"
    await world.later(11)
    assert len({p.incident_id for p in await world.pages()}) == 1


# --- point 6: a confirmed blip that recovered never pages; the decision is taken when due ----


def test_auto_group_wait_outlasts_a_blip_of_the_checks(world: World) -> None:
    """group_wait "auto" (the default): the first page waits until a blip of the incident's checks has
    recovered with margin, never less than 10 s; a number is taken as given."""
    check = world.engine.checks["c-primary/ping"].check  # interval 10 s, retry 2 s, 2 to down, 2 to up
    assert blip_recovery(check) == 10.0
    auto = IncidentPolicy()
    assert auto.group_wait == "auto" and first_page_wait(auto, [check]) > blip_recovery(check)
    assert first_page_wait(IncidentPolicy(group_wait="3s"), [check]) == 3.0
    assert first_page_wait(auto, []) == 10.0


async def test_confirmed_blip_recovered_one_interval_later_never_pages(
    load_yaml_config: Loader, tmp_path: Path
) -> None:
    """With the default group_wait, a blip confirmed DOWN that recovers as fast as its checks allow
    (the next regular probe, one interval after confirmation, plus the retries) pages nobody, wherever
    a timer would have fallen."""
    world = await make_world(load_yaml_config, tmp_path, group_wait="auto")
    try:
        await world.fail("core")
        world.clock.t += 10.0  # the next regular probe: one interval later
        await world.manager.handle(world.observe("core", True))
        world.clock.t += 0.05  # its retry (fast: loopback)
        await world.manager.handle(world.observe("core", True))
        assert world.manager.open == {}
        for _ in range(30):
            await world.later(1)
        assert await world.pages() == []
    finally:
        await world.store.close(now=world.clock.t)


async def test_auto_first_page_waits_for_the_checks_that_failed(load_yaml_config: Loader, tmp_path: Path) -> None:
    """Group_wait "auto" is judged by the incident's failed checks, not every check of the target: the server's
    ping (10 s) alone waits 12 s; when its 30 s application check fails too, the first page waits
    until a blip of that one would have recovered as well."""
    world = await make_world(load_yaml_config, tmp_path, group_wait="auto")
    try:
        await world.fail("srv")
        incident = world.manager.open["target:srv"]
        assert incident.next_escalation_at == incident.opened_at + 12.0
        world.clock.t += 3
        for _ in range(2):
            await world.manager.handle(world.observe("srv", False, "timeout", check="ping2"))
        assert incident.next_escalation_at == incident.opened_at + 32.0
        await world.later(20)
        assert await world.pages() == []
        await world.later(13)
        assert len(await world.pages("firing")) == 2
    finally:
        await world.store.close(now=world.clock.t)


class RealClock:
    def now(self) -> float:
        return time.time()


async def test_first_page_is_queued_at_its_due_time_not_on_a_tick(load_yaml_config: Loader, tmp_path: Path) -> None:
    """The manager's own task pages when the page is due (a few ms late at most), not at the next 1 s
    tick; an outcome that arrived before the due time is handled first (a recovery wins)."""
    inventory = load_yaml_config(CONFIG.replace("{group_wait}", "400ms")).inventory
    engine = Engine(inventory)
    store = SQLiteStore(tmp_path / "t.db")
    store.open(now=0.0)
    manager = IncidentManager(store, RealClock(), engine, lambda: None)
    await manager.start()
    try:

        def feed(target: str, ok: bool) -> None:
            manager.on_outcome(
                engine.observe(f"{target}/ping", ProbeResult(ok=ok, error=None if ok else "timeout"), time.time())
            )

        for target in ("core", "edge", "ap", "c-primary", "c-backup"):
            feed(target, True)
            feed(target, True)
        # a recovery that arrives before the due time: nobody is paged
        feed("c-backup", False)
        feed("c-backup", False)
        await manager.drain()
        await asyncio.sleep(0.3)
        feed("c-backup", True)
        feed("c-backup", True)
        await asyncio.sleep(0.4)
        (backup,) = (await store.list_incidents(limit=50))[0]
        assert backup.key == "target:c-backup" and backup.status == "resolved"
        assert await store.notifications(backup.id) == []
        lags = []
        for delay, target in ((0.0, "core"), (0.13, "ap"), (0.29, "c-primary")):
            await asyncio.sleep(delay)
            feed(target, False)
            feed(target, False)
            await manager.drain()
            due = manager.open[f"target:{target}"].next_escalation_at
            assert due is not None
            await asyncio.sleep(0.6)
            pages = [p for p in await store.notifications() if p.incident_id == manager.open[f"target:{target}"].id]
            assert pages, f"{target} not paged"
            lags.append(min(p.created_at for p in pages) - due)
        assert all(0 <= lag < 0.1 for lag in lags), lags
    finally:
        await manager.stop()
        await store.close(now=time.time())


async def test_the_page_dates_the_trouble_from_its_first_failed_probe(world: World) -> None:
    """The incident is opened (detected) when the second failure confirms DOWN, 10 s after the first: the
    page's 発生時刻 / Since and Alertmanager's startsAt say when the trouble began, opened_at when it was seen."""
    began = world.clock.t
    await world.manager.handle(world.observe("c-primary", False))
    await world.later(10)
    await world.manager.handle(world.observe("c-primary", False))
    incident = world.manager.open["target:c-primary"]
    assert incident.opened_at == began + 10 and incident.affected["began_at"] == pytest.approx(began, abs=0.01)
    await world.later(11)
    pages = await world.pages("firing")
    mail = next(p.payload for p in pages if p.channel == "mail")
    alert = next(p.payload["alert"] for p in pages if p.channel == "am")
    assert f"発生時刻: {jst(began)}" in mail["body"] and f"Since: {jst(began)}" in mail["body"]
    assert alert["startsAt"] == utc_iso(began)
