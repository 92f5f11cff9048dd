"""Auto-drafted public notices (issue 18 point 7): only a live notice (published, or a recent draft of
an unresolved incident) for the same public service and prefecture stops a draft. Real manager,
NoticeDesk and SQLite store, fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.status.notices import NoticeDesk
from monitor.store.records import Notice
from tests.conftest import Loader
from tests.incidents import world as estate
from tests.incidents.world import World

STATUS = """
status_page:
  services:
    - {id: lgwan, name: 総合行政ネットワーク, name_en: LGWAN, services: [pref-net-13, link], prefectures: true}
notices:
  auto_draft: [critical, major]
"""


@pytest.fixture
async def world(load_yaml_config: Loader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    monkeypatch.setattr(estate, "CONFIG", estate.CONFIG + STATUS)
    w = await estate.make_world(load_yaml_config, tmp_path)
    yield w
    await w.store.close(now=w.clock.t)


async def drafts_for(world: World, target: str) -> list[Notice]:
    """Open an incident about `target` and let the desk draft (or not) for it."""
    desk = NoticeDesk(world.store, world.clock.now, lambda: world.engine.inventory, lambda: None)
    await world.fail(target)
    desk.on_incident(world.manager.open[f"target:{target}"])
    await desk.stop()
    incident = world.manager.open[f"target:{target}"]
    return (await world.store.notices_for_incidents([incident.id])).get(incident.id, [])


async def notice(world: World, status: str, prefectures: list[str], incident_id: int | None, age: float) -> None:
    at = world.clock.t - age
    draft = Notice("occurred", "t", "t", "b", "b", at, "system", status=status, services=["lgwan"],
                   prefectures=prefectures, incident_id=incident_id, updated_at=at)  # fmt: skip
    await world.store.save_notice(draft)


async def test_a_stale_draft_of_an_outage_that_ended_does_not_stop_a_new_draft(world: World) -> None:
    """A 30 s outage drafted a notice nobody published; nine minutes later a real outage of the same
    service and prefecture gets its own draft."""
    await world.fail("c-primary", "c-backup")  # the short outage: link DOWN
    short = world.manager.open["target:c-primary"]
    await world.later(30)
    await world.recover("c-primary", "c-backup")
    await notice(world, "draft", ["13"], short.id, age=0)
    world.clock.t += 9 * 60
    drafted = await drafts_for(world, "ap")
    assert [(n.services, n.prefectures, n.status) for n in drafted] == [(["lgwan"], ["13"], "draft")]


async def test_a_live_notice_of_another_prefecture_does_not_stop_a_draft(world: World) -> None:
    await notice(world, "published", ["27"], None, age=60)
    assert len(await drafts_for(world, "ap")) == 1


async def test_a_published_notice_of_the_same_service_and_prefecture_stops_the_draft(world: World) -> None:
    await notice(world, "published", ["13"], None, age=600)
    assert await drafts_for(world, "ap") == []


async def test_a_recent_draft_of_an_open_incident_stops_the_draft(world: World) -> None:
    """Two incidents of one outage (the link and the access point behind the same edge): one draft."""
    await world.fail("c-primary", "c-backup")
    await notice(world, "draft", ["13"], world.manager.open["target:c-primary"].id, age=5)
    assert await drafts_for(world, "ap") == []
