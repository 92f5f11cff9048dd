"""Incidents from state changes, with a real SQLite store and a hand-driven clock: root-cause grouping,
merge, escalation, ack, repeat, resolve messages, restart continuity, maintenance, severity."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.core.engine import Engine
from monitor.core.state import State
from monitor.incidents.manager import IncidentManager
from monitor.store.sqlite import SQLiteStore
from probes.base import ProbeResult
from tests.conftest import Loader

CONFIG = """
defaults: {failures_to_down: 2, successes_to_up: 1}
modules: {ping: {kind: icmp}}
targets:
  - {name: core, address: 127.0.0.1, labels: {tier: national, system: backbone}, modules: [ping]}
  - {name: edge, address: 127.0.0.2, parent: core, labels: {tier: prefecture, prefecture: 13}, modules: [ping]}
{children}
  - {name: c-primary, address: 127.0.2.1, parent: edge, labels: {tier: municipality, prefecture: 13, role: circuit}, modules: [ping]}
  - {name: c-backup, address: 127.0.2.2, parent: edge, labels: {tier: municipality, prefecture: 13, role: circuit}, modules: [ping]}
services:
  - {name: link, rule: any, targets: [c-primary, c-backup], labels: {tier: municipality, system: lgwan}}
incidents:
  group_wait: 10s
  severity:
    - {match: {tier: national}, severity: critical}
    - {match: {system: lgwan}, severity: major}
    - {match: {tier: prefecture}, severity: major}
    - {match: {tier: municipality}, severity: minor}
notifiers:
  am: {kind: alertmanager, urls: ["http://127.0.0.1:1"]}
  mail: {kind: email, host: 127.0.0.1, port: 1, sender: monitor@example.lg.jp}
contacts:
  noc: {name: 監視オペレータ当番, email: noc@example.lg.jp}
  boss: {name: 統括責任者, email: boss@example.lg.jp}
playbooks:
  default:
    ack_expiry: 1h
    levels:
      - {notify: [{contacts: [noc], via: [am, mail]}], ack_timeout: 10m, repeat: 4m}
      - {notify: [{contacts: [boss], via: [mail]}], ack_timeout: 20m}
maintenance:
  - {name: edge-work, reason: 機器交換, targets: [edge], start: "2030-01-01T01:00:00+09:00", end: "2030-01-01T03:00:00+09:00"}
"""


@dataclass
class Clock:
    t: float = 1_800_000_000.0

    def now(self) -> float:
        return self.t


@dataclass
class World:
    engine: Engine
    manager: IncidentManager
    store: SQLiteStore
    clock: Clock

    async def fail(self, *targets: str, ok: bool = False) -> None:
        """Two probe results per target (enough to confirm), then let the manager see the changes."""
        for target in targets:
            for _ in range(2):
                outcome = self.engine.observe(
                    f"{target}/ping", ProbeResult(ok=ok, error=None if ok else "100% packet loss"), self.clock.t
                )
                await self.manager.handle(outcome)

    async def recover(self, *targets: str) -> None:
        await self.fail(*targets, ok=True)

    async def later(self, seconds: float) -> None:
        self.clock.t += seconds
        await self.manager.tick()

    async def pages(self, kind: str | None = None) -> list[tuple[int, str, str, str]]:
        items = await self.store.notifications()
        return [
            (i.level, i.channel, i.recipient, i.kind)
            for i in items
            if i.status != "cancelled" and (kind is None or i.kind == kind)
        ]

    async def deliver(self) -> None:
        """Pretend every pending page went out (the outbox worker is tested with real receivers elsewhere)."""
        for item in await self.store.due_notifications(self.clock.t + 1e6, 10_000):
            await self.store.mark_sent(item.id, self.clock.t)


def children_rows(count: int) -> str:
    return "\n".join(
        f"  - {{name: child-{i}, address: 127.0.1.{i + 1}, parent: edge, modules: [ping]}}" for i in range(count)
    )


@pytest.fixture
async def world(load_yaml_config: Loader, tmp_path: Path) -> AsyncIterator[World]:
    inventory = load_yaml_config(CONFIG.replace("{children}", children_rows(20))).inventory
    engine = Engine(inventory)
    store = SQLiteStore(tmp_path / "m.db")
    store.open(now=0.0)
    clock = Clock()
    manager = IncidentManager(store, clock, engine, lambda: None)
    await manager.load()
    w = World(engine, manager, store, clock)
    await w.recover("core", "edge", *(f"child-{i}" for i in range(20)), "c-primary", "c-backup")
    yield w
    await store.close(now=clock.t)


async def test_parent_down_with_20_children_is_one_incident_one_page(world: World) -> None:
    """The edge router and its 20 children fail: one incident about the edge, children attached, one page per recipient."""
    await world.fail("edge", *(f"child-{i}" for i in range(20)))
    assert list(world.manager.open) == ["target:edge"]
    incident = world.manager.open["target:edge"]
    assert sorted(incident.affected["children"]) == sorted(f"child-{i}" for i in range(20))
    assert await world.pages() == []  # group_wait: nobody paged yet
    await world.later(11)
    assert await world.pages() == [(1, "am", "am", "firing"), (1, "mail", "noc", "firing")]


async def test_child_confirmed_first_is_merged_and_never_paged(world: World) -> None:
    """A child confirmed DOWN before its parent gets its own incident, which merges into the parent's before paging."""
    await world.fail("child-3")
    assert "target:child-3" in world.manager.open
    await world.later(5)
    await world.fail("edge")
    assert list(world.manager.open) == ["target:edge"]
    child_incident = (await world.store.list_incidents("resolved"))[0][0]
    assert child_incident.key == "target:child-3" and child_incident.merged_into == world.manager.open["target:edge"].id
    await world.later(20)
    assert {p[2] for p in await world.pages()} == {"am", "noc"} and all(p[0] == 1 for p in await world.pages())


async def test_no_ack_escalates_to_level_two_after_timeout(world: World) -> None:
    """Level 1 after group_wait; nobody acknowledges; level 2 (the supervisor) after the 10 minute ack timeout."""
    await world.fail("core")
    await world.later(11)
    await world.later(9 * 60)
    assert [p for p in await world.pages() if p[0] == 2] == []
    await world.later(61)
    assert (2, "mail", "boss", "firing") in await world.pages()
    assert world.manager.open["target:core"].level == 2


async def test_ack_stops_escalation_and_expired_ack_escalates(world: World) -> None:
    """An ack stops escalation and repeats; when the ack expires unresolved, the next level is paged."""
    await world.fail("core")
    await world.later(11)
    incident = world.manager.open["target:core"]
    await world.manager.acknowledge(incident.id, "yamada", "調査中")
    await world.later(30 * 60)
    assert [p for p in await world.pages() if p[0] == 2 or p[3] == "repeat"] == []
    await world.later(31 * 60)  # past the 1 h ack expiry
    assert (2, "mail", "boss", "firing") in await world.pages()
    assert incident.status == "open"


async def test_unacknowledged_level_repeats(world: World) -> None:
    """The level's repeat interval re-pages the same recipients, each repeat once."""
    await world.fail("core")
    await world.later(11)
    await world.later(4 * 60 + 1)
    await world.later(4 * 60 + 1)
    repeats = [p for p in await world.pages() if p[3] == "repeat"]
    assert sorted(repeats) == sorted([(1, "am", "am", "repeat"), (1, "mail", "noc", "repeat")] * 2)


async def test_recovery_resolves_and_tells_everyone_paged(world: World) -> None:
    """When the target recovers, the incident resolves and each recipient that was paged gets a resolve message."""
    await world.fail("core")
    await world.later(11)
    await world.deliver()
    await world.recover("core")
    assert world.manager.open == {}
    assert sorted(await world.pages("resolved")) == [(1, "am", "am", "resolved"), (1, "mail", "noc", "resolved")]
    resolved = (await world.store.list_incidents("resolved"))[0][0]
    assert resolved.resolve_reason == "recovered" and resolved.resolved_by == "system"


async def test_recovery_before_group_wait_pages_nobody(world: World) -> None:
    """A blip that recovers within group_wait is recorded but pages nobody."""
    await world.fail("core")
    await world.later(3)
    await world.recover("core")
    await world.later(20)
    assert await world.pages() == []


async def test_restart_continues_escalation_once(world: World, load_yaml_config: Loader) -> None:
    """A new manager on the same store (a restart) takes over the open incident and pages level 2 once, on time."""
    await world.fail("core")
    await world.later(11)
    restarted = IncidentManager(world.store, world.clock, world.engine, lambda: None)
    await restarted.load()
    world.manager = restarted
    await world.later(5 * 60)
    assert [p for p in await world.pages() if p[0] == 2] == []
    await world.later(6 * 60)
    await world.later(1)
    await world.manager.tick()
    assert [p for p in await world.pages() if p[0] == 2] == [(2, "mail", "boss", "firing")]
    await world.fail("core")  # results after the restart attach to the same incident
    assert len(world.manager.open) == 1


async def test_lgwan_link_severity_minor_then_major(world: World) -> None:
    """One circuit of a redundant link down is minor; both down makes the one incident of the link major."""
    await world.fail("c-primary")
    incident = world.manager.open["target:c-primary"]
    assert incident.severity == "minor" and world.engine.services["link"].state == State.DEGRADED
    await world.fail("c-backup")
    assert world.engine.services["link"].state == State.DOWN
    assert list(world.manager.open) == ["target:c-primary"] and incident.severity == "major"
    assert incident.affected["targets"] == ["c-backup"]


async def test_maintenance_suppresses_and_its_end_opens_the_incident(world: World) -> None:
    """In a maintenance window the target is MAINTENANCE (no incident); when the window ends still down, it opens."""
    await world.manager.handle(world.engine.set_maintenance({"edge/ping": "edge-work"}, world.clock.t))
    await world.fail("edge")
    assert world.engine.checks["edge/ping"].state == State.MAINTENANCE
    assert world.manager.open == {}
    await world.manager.handle(world.engine.set_maintenance({}, world.clock.t))
    assert world.engine.checks["edge/ping"].state == State.DOWN
    assert list(world.manager.open) == ["target:edge"]


async def test_manual_actions_and_timeline(world: World) -> None:
    """Note, escalate now and resolve by hand are recorded in the timeline with who did them."""
    await world.fail("core")
    incident = world.manager.open["target:core"]
    await world.manager.add_note(incident.id, "suzuki", "回線事業者に連絡済み")
    await world.manager.escalate_now(incident.id, "suzuki", "重大")
    assert incident.level == 1
    await world.manager.resolve(incident.id, "suzuki", "暫定復旧")
    kinds = [(e.kind, e.actor) for e in await world.store.incident_events(incident.id)]
    assert kinds == [("detected", None), ("note", "suzuki"), ("escalated", "suzuki"), ("resolved", "suzuki")]
