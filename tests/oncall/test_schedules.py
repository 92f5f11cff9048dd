"""Schedules with the real manager, roster and SQLite store on a fake clock: the rotation, a swap that
follows a moved shift, permissions, paging the shift on duty when the page is due (across a restart, once),
and coverage gaps."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.access.auth import Refused
from monitor.oncall import coverage, rotation
from monitor.oncall.roster import Actor
from tests.conftest import Loader
from tests.oncall.world import MANAGER, config, jst, make_world


def test_rotation_gives_each_shift_to_the_next_member(load_yaml_config: Loader) -> None:
    response = load_yaml_config(config()).inventory.response
    noc = response.schedules["noc"]
    found = rotation.slots("noc", noc, jst("2026-12-07T00:00"), jst("2026-12-09T00:00"))
    assert [(s.key, s.member) for s in found] == [
        ("noc/base/夜勤/2026-12-06", "tanaka"),  # 6 Dec 20:30 - 7 Dec 08:30
        ("noc/base/日勤/2026-12-07", "yamada"),
        ("noc/base/夜勤/2026-12-07", "suzuki"),
        ("noc/base/日勤/2026-12-08", "tanaka"),
        ("noc/base/夜勤/2026-12-08", "yamada"),
    ]
    assert found[1].start == jst("2026-12-07T08:30") and found[1].end == jst("2026-12-07T20:30")
    assert found[2].end == jst("2026-12-08T08:30")  # a night shift ends the next morning
    assert [d.person for d in rotation.on_call("noc", noc, jst("2026-12-07T20:29:59"), {})] == ["yamada"]
    assert [d.person for d in rotation.on_call("noc", noc, jst("2026-12-07T20:30"), {})] == ["suzuki"]


async def test_swap_made_before_a_shift_was_moved_still_holds_after(load_yaml_config: Loader, tmp_path: Path) -> None:
    """Swap 日勤 of 8 Dec (tanaka) with 日勤 of 9 Dec (suzuki); then the config moves 日勤 to 09:00-21:00 and
    the daemon restarts. The moved 日勤 of 8 Dec is still suzuki's, at its new times, and 9 Dec tanaka's."""
    world = await make_world(load_yaml_config, tmp_path, jst("2026-12-07T12:00"))
    roster = world.manager.roster
    change = await roster.swap("noc", "noc/base/日勤/2026-12-08", "noc/base/日勤/2026-12-09", MANAGER, "通院")
    assert change.slots == {"noc/base/日勤/2026-12-08": "suzuki", "noc/base/日勤/2026-12-09": "tanaka"}
    assert roster.people("noc", jst("2026-12-08T08:45")) == ["suzuki"]
    assert roster.people("noc", jst("2026-12-08T20:45")) == ["yamada"]  # 夜勤 from 20:30 under the old times

    moved = load_yaml_config(config(day_start="09:00", day_end="21:00")).inventory
    world.engine.apply_inventory(moved, world.clock.t)
    await world.restart()
    roster = world.manager.roster
    assert roster.people("noc", jst("2026-12-08T08:45")) == ["suzuki"]  # 夜勤 of 7 Dec now runs until 09:00
    assert roster.people("noc", jst("2026-12-08T09:00")) == ["suzuki"]  # then the moved 日勤 of 8 Dec, swapped
    assert roster.people("noc", jst("2026-12-08T20:45")) == ["suzuki"]  # the moved 日勤, still swapped
    assert roster.people("noc", jst("2026-12-09T20:59")) == ["tanaka"]
    assert [d.change_id for d in roster.on_call("noc", jst("2026-12-09T21:00"))] == [None]  # 夜勤: the rotation's
    assert roster.orphans("noc") == []
    await world.store.close(world.clock.t)


async def test_members_change_only_their_own_slots_managers_any(load_yaml_config: Loader, tmp_path: Path) -> None:
    world = await make_world(load_yaml_config, tmp_path, jst("2026-12-07T12:00"))
    roster = world.manager.roster
    yamada, suzuki = Actor("yamada", False), Actor("suzuki", False)
    with pytest.raises(Refused, match="held by tanaka"):
        await roster.override("noc", "noc/base/日勤/2026-12-08", "yamada", suzuki)
    with pytest.raises(Refused, match="only a manager may leave a slot empty"):
        await roster.override("noc", "noc/base/夜勤/2026-12-08", None, yamada)
    with pytest.raises(Refused, match="swap only a slot they hold"):
        await roster.swap("noc", "noc/base/日勤/2026-12-08", "noc/base/日勤/2026-12-09", yamada)
    with pytest.raises(Refused, match="has ended"):
        await roster.override("noc", "noc/base/日勤/2026-12-06", "suzuki", MANAGER)
    with pytest.raises(Refused, match="has no slot"):
        await roster.override("noc", "noc/base/昼勤/2026-12-08", "suzuki", MANAGER)
    with pytest.raises(Refused, match="unknown contact"):
        await roster.override("noc", "noc/base/夜勤/2026-12-08", "nobody-known", MANAGER)
    mine = await roster.override("noc", "noc/base/夜勤/2026-12-08", "tanaka", yamada, "家庭の事情")
    assert roster.people("noc", jst("2026-12-08T23:00")) == ["tanaka"]
    with pytest.raises(Refused, match="only whoever made a change"):
        await roster.cancel(mine.id, suzuki)
    await roster.cancel(mine.id, yamada)
    assert roster.people("noc", jst("2026-12-08T23:00")) == ["yamada"]
    with pytest.raises(Refused, match="cancelled already"):
        await roster.cancel(mine.id, MANAGER)
    gap = await roster.override("noc", "noc/base/夜勤/2026-12-08", None, Actor("admin", manages_all=True))
    assert roster.people("noc", jst("2026-12-08T23:00")) == []
    stored = await world.store.oncall.changes("noc")  # every change is kept, the cancelled one marked
    assert [(c.id, c.kind, c.cancelled_by) for c in stored] == [
        (mine.id, "override", "yamada"),
        (gap.id, "override", None),
    ]
    await world.store.close(world.clock.t)


async def test_restart_between_shift_change_and_page_pages_new_shift_once(
    load_yaml_config: Loader, tmp_path: Path
) -> None:
    """The incident opens at 20:29:55 under the day shift (yamada); its first page is due 10 s later, after
    the 20:30 change to the night shift (suzuki). The daemon restarts at 20:30:01: the page goes to suzuki,
    once, however often the timers run or the daemon restarts again; yamada is never paged."""
    world = await make_world(load_yaml_config, tmp_path, jst("2026-12-07T20:29:55"))
    await world.fail()
    assert await world.pages() == []
    await world.restart()
    await world.at(jst("2026-12-07T20:30:01"))
    assert await world.pages() == []  # not due yet
    await world.at(jst("2026-12-07T20:30:06"))
    assert await world.pages() == [(1, "suzuki", "firing")]
    await world.restart()
    await world.at(jst("2026-12-07T20:30:07"))
    await world.at(jst("2026-12-07T20:30:30"))
    assert await world.pages() == [(1, "suzuki", "firing")]
    # the override made after the page does not re-page; the next escalation goes on as configured
    await world.at(jst("2026-12-07T20:40:07"))
    assert await world.pages() == [(1, "suzuki", "firing"), (2, "boss", "firing")]
    await world.store.close(world.clock.t)


async def test_resolved_page_reaches_whoever_was_paged_after_their_shift(
    load_yaml_config: Loader, tmp_path: Path
) -> None:
    world = await make_world(load_yaml_config, tmp_path, jst("2026-12-07T20:00"))
    await world.fail()
    await world.at(jst("2026-12-07T20:00:11"))
    for item in await world.store.due_notifications(world.clock.t + 1, 100):
        await world.store.mark_sent(item.id, world.clock.t)
    world.clock.t = jst("2026-12-07T20:35")  # the night shift is on now
    await world.fail(ok=True)
    assert ("yamada", "resolved") in [(r, k) for _, r, k in await world.pages()]
    assert "suzuki" not in [r for _, r, _ in await world.pages()]
    await world.store.close(world.clock.t)


def test_coverage_gap_of_a_level_is_told_by_weekday_and_time(load_yaml_config: Loader) -> None:
    text = config().replace(
        '          - {name: 夜勤, start: "20:30", end: "08:30"}',
        '          - {name: 夜勤A, start: "20:30", end: "03:00"}\n          - {name: 夜勤B, start: "03:00", end: "07:00"}',
    )
    response = load_yaml_config(text).inventory.response
    now = jst("2026-12-07T12:00")
    gaps = coverage.level_gaps(response, {}, now)
    lines = coverage.describe(gaps, response)
    assert lines == [
        (
            "playbooks.default.levels.0",
            "nobody on level 1 on Tue 07:00-08:30 JST in the next 28 days ("
            + ", ".join(f"2026-12-{d:02d}" for d in (8, 15, 22, 29))
            + "; schedule noc)",
        ),
        *[(w, m) for w, m in lines[1:]],
    ]
    assert all("07:00-08:30 JST" in m for _, m in lines)  # every morning, one line per weekday
    assert len(lines) == 7


async def test_override_removing_someone_is_a_gap(load_yaml_config: Loader, tmp_path: Path) -> None:
    text = config().replace(
        '          - {name: 夜勤, start: "20:30", end: "08:30"}',
        '          - {name: 夜勤A, start: "20:30", end: "03:00"}\n          - {name: 夜勤B, start: "03:00", end: "08:30"}',
    )
    world = await make_world(load_yaml_config, tmp_path, jst("2026-12-07T12:00"), text)
    roster = world.manager.roster
    assert coverage.level_gaps(world.manager.response, {"noc": roster.overrides("noc")}, world.clock.t) == []
    await roster.override("noc", "noc/base/夜勤B/2026-12-13", None, MANAGER, "欠員")
    lines = coverage.describe(
        coverage.level_gaps(world.manager.response, {"noc": roster.overrides("noc")}, world.clock.t),
        world.manager.response,
    )
    assert lines == [
        (
            "playbooks.default.levels.0",
            "nobody on level 1 on Sun 03:00-08:30 JST in the next 28 days (2026-12-13; schedule noc)",
        )
    ]
    await world.store.close(world.clock.t)


def test_holiday_calendar_decides_which_layer_is_on(load_yaml_config: Loader) -> None:
    """A weekday rotation skips Japan's national holidays (成人の日, Mon 11 Jan 2027) without losing its turn;
    a holiday layer over it takes weekends and holidays (and a listed extra holiday)."""
    text = config().replace(
        """        members: [yamada, suzuki, tanaka]
    managers""",
        """        members: [yamada, suzuki, tanaka]
      - name: weekday
        rotation_start: 2027-01-08
        rotate: day
        days: workdays
        shifts: [{name: 平日日勤, start: "09:00", end: "17:00"}]
        members: [yamada, suzuki]
      - name: holiday
        rotation_start: 2027-01-01
        days: offdays
        shifts: [{name: 休日, start: "09:00", end: "17:00"}]
        members: [boss]
    holidays: [2027-01-13]
    managers""",
    )
    noc = load_yaml_config(text).inventory.response.schedules["noc"]

    def at(when: str) -> list[str | None]:
        return [d.person for d in rotation.on_call("noc", noc, jst(when), {})]

    assert at("2027-01-08T10:00") == ["yamada"]  # Fri: the weekday layer's first day
    assert at("2027-01-09T10:00") == ["boss"]  # Sat
    assert at("2027-01-11T10:00") == ["boss"]  # 成人の日 (national holiday)
    assert at("2027-01-12T10:00") == ["suzuki"]  # Tue: the next turn, the holiday not counted
    assert at("2027-01-13T10:00") == ["boss"]  # the schedule's own extra holiday
    assert at("2027-01-14T10:00") == ["yamada"]
    assert at("2027-01-14T18:00") == ["suzuki"]  # after 17:00 the base rotation shows (日勤 of day 44: 88 % 3)
