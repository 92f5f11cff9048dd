"""A small estate driven by hand for incident tests: the real engine, manager and SQLite store, a fake
clock. A national centre (site) with its core, a prefecture edge, an LGWAN access point behind it with
its own service, and a redundant LGWAN link of two circuits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from monitor.core.engine import Engine, Outcome
from monitor.incidents.manager import IncidentManager
from monitor.store.records import IncidentRecord, OutboxItem
from monitor.store.sqlite import SQLiteStore
from probes.base import ProbeResult
from tests.conftest import Loader

CONFIG = """
defaults: {interval: 10s, retry_interval: 2s, failures_to_down: 2, successes_to_up: 2}
modules: {ping: {kind: icmp}, ping2: {kind: icmp, interval: 30s}}
sites:
  - {id: center-east, kind: national_center, name: 東日本全国センター, name_en: East national center}
targets:
  - {name: core, address: 127.0.0.1, site: center-east, labels: {system: backbone}, modules: [ping]}
  - {name: edge, address: 127.0.0.2, parent: core, labels: {tier: prefecture, prefecture: 13}, modules: [ping]}
  - {name: ap, address: 127.0.0.3, parent: edge, labels: {tier: lgwan, prefecture: 13}, modules: [ping]}
  - {name: sw, address: 127.0.0.4, parent: edge, labels: {tier: prefecture, prefecture: 13}, modules: [ping]}
  - {name: srv, address: 127.0.0.5, site: center-east, labels: {system: backbone}, modules: [ping, ping2]}
  - {name: c-primary, address: 127.0.2.1, parent: edge, labels: {tier: municipality, prefecture: 13}, modules: [ping]}
  - {name: c-backup, address: 127.0.2.2, parent: edge, labels: {tier: municipality, prefecture: 13}, modules: [ping]}
services:
  - {name: core-svc, display_name: 全国基幹網, display_name_en: National backbone, rule: all, targets: [core],
     labels: {tier: national}}
  - {name: pref-net-13, display_name: 東京都ネットワーク, display_name_en: Tokyo network, rule: all, targets: [ap],
     labels: {tier: lgwan, prefecture: 13}}
  - {name: edge-lan, display_name: 東京都庁舎LAN, display_name_en: Tokyo office LAN, rule: all, targets: [edge, sw],
     labels: {tier: prefecture, prefecture: 13}}
  - {name: srv-app, display_name: 全国業務サーバ, display_name_en: National application, rule: all, checks: [srv/ping2],
     labels: {tier: national}}
  - {name: link, display_name: LGWAN回線（東京都）, display_name_en: LGWAN link (Tokyo), rule: any,
     targets: [c-primary, c-backup], labels: {tier: municipality, system: lgwan, prefecture: 13}}
incidents:
  group_wait: {group_wait}
  console_url: https://noc.example.lg.jp/
  severity:
    - {match: {tier: national}, severity: critical}
    - {match: {system: lgwan}, severity: major}
    - {match: {tier: prefecture}, severity: major}
    - {match: {tier: lgwan}, severity: major}
    - {match: {tier: municipality}, severity: minor}
notifiers:
  am: {kind: alertmanager, urls: ["http://127.0.0.1:1"]}
  mail: {kind: email, host: 127.0.0.1, port: 1, sender: monitor@example.lg.jp}
contacts:
  noc: {name: 監視オペレータ当番, email: noc@example.lg.jp}
  boss: {name: 統括責任者, email: boss@example.lg.jp}
playbooks:
  default:
    levels:
      - {notify: [{contacts: [noc], via: [am, mail]}], ack_timeout: 10m, repeat: 4m}
      - {notify: [{contacts: [boss], via: [mail]}]}
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

    def observe(self, target: str, ok: bool, error: str = "100% packet loss (3 sent)", check: str = "ping") -> Outcome:
        result = ProbeResult(ok=ok, error=None if ok else error)
        return self.engine.observe(f"{target}/{check}", result, self.clock.t)

    async def fail(self, *targets: str, error: str = "100% packet loss (3 sent)") -> None:
        """Two failed results per target (enough to confirm), each handled as it comes."""
        for target in targets:
            for _ in range(2):
                await self.manager.handle(self.observe(target, False, error))

    async def recover(self, *targets: str) -> None:
        for target in targets:
            for _ in range(2):
                await self.manager.handle(self.observe(target, True))

    async def later(self, seconds: float) -> None:
        self.clock.t += seconds
        await self.manager.tick()

    async def pages(self, kind: str | None = None) -> list[OutboxItem]:
        return [i for i in await self.store.notifications() if i.status != "cancelled" and kind in (None, i.kind)]

    async def deliver(self) -> None:
        """Pretend every pending page went out (the outbox worker is tested with real receivers elsewhere)."""
        for item in await self.store.due_notifications(self.clock.t + 1e6, 10_000):
            await self.store.mark_sent(item.id, self.clock.t)

    async def incidents(self) -> list[IncidentRecord]:
        return (await self.store.list_incidents(limit=1000))[0]


async def make_world(
    load: Loader, tmp_path: Path, group_wait: str = "10s", alertmanager: str | None = None, start: float | None = None
) -> World:
    text = CONFIG.replace("{group_wait}", group_wait)
    if alertmanager:
        text = text.replace("http://127.0.0.1:1", alertmanager)
    inventory = load(text).inventory
    engine = Engine(inventory)
    store = SQLiteStore(tmp_path / "m.db")
    store.open(now=0.0)
    clock = Clock() if start is None else Clock(start)
    manager = IncidentManager(store, clock, engine, lambda: None)
    await manager.load()
    world = World(engine, manager, store, clock)
    await world.recover("core", "edge", "ap", "sw", "srv", "c-primary", "c-backup")
    for _ in range(2):
        await manager.handle(world.observe("srv", True, check="ping2"))
    return world
