"""An estate with an on-call schedule, driven by hand: the real engine, incident manager, roster and
SQLite store, and a fake clock (the one fake the project allows besides third-party SaaS)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from monitor.core.engine import Engine
from monitor.incidents.manager import IncidentManager
from monitor.oncall.roster import Actor
from monitor.store.sqlite import SQLiteStore
from probes.base import ProbeResult
from tests.conftest import Loader

JST = ZoneInfo("Asia/Tokyo")

# Rotation from Tue 1 Dec 2026, one member per shift in order: on day d (0 = 1 Dec) 日勤 is members[2d % 3]
# and 夜勤 members[(2d + 1) % 3]. So Mon 7 Dec (d = 6): 日勤 yamada, 夜勤 suzuki; 8 Dec: 日勤 tanaka, 夜勤 yamada.
CONFIG = """
defaults: {failures_to_down: 2, successes_to_up: 1}
modules: {ping: {kind: icmp}}
targets:
  - {name: core, address: 127.0.0.1, labels: {tier: national}, modules: [ping]}
incidents: {group_wait: 10s}
notifiers:
  mail: {kind: email, host: 127.0.0.1, port: {smtp_port}, sender: monitor@example.lg.jp}
contacts:
  yamada: {name: 山田, email: yamada@example.lg.jp}
  suzuki: {name: 鈴木, email: suzuki@example.lg.jp}
  tanaka: {name: 田中, email: tanaka@example.lg.jp}
  boss: {name: 統括責任者, email: boss@example.lg.jp}
auth:
  tokens:
    - {name: noc-lead, role: operator, token_sha256: {noc-lead}}
    - {name: yamada, role: operator, token_sha256: {yamada}}
    - {name: suzuki, role: operator, token_sha256: {suzuki}}
    - {name: admin, role: admin, token_sha256: {admin}}
schedules:
  noc:
    name: NOC 当番
    layers:
      - name: base
        rotation_start: 2026-12-01
        shifts:
          - {name: 日勤, start: "{day_start}", end: "{day_end}"}
          - {name: 夜勤, start: "{day_end}", end: "{day_start}"}
        members: [yamada, suzuki, tanaka]
    managers: [noc-lead]
    handover: {via: [mail]}
playbooks:
  default:
    levels:
      - {notify: [{schedule: noc, via: [mail]}], ack_timeout: 10m}
      - {notify: [{contacts: [boss], via: [mail]}]}
"""


def jst(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=JST).timestamp()


TOKENS = {name: f"oncall-test-{name}" for name in ("noc-lead", "yamada", "suzuki", "admin")}


def config(day_start: str = "08:30", day_end: str = "20:30", smtp_port: int = 1) -> str:
    text = CONFIG.replace("{day_start}", day_start).replace("{day_end}", day_end).replace("{smtp_port}", str(smtp_port))
    for name, token in TOKENS.items():
        text = text.replace("{" + name + "}", hashlib.sha256(token.encode()).hexdigest())
    return text


MANAGER = Actor("noc-lead", manages_all=False)


@dataclass
class Clock:
    t: float

    def now(self) -> float:
        return self.t


@dataclass
class World:
    engine: Engine
    manager: IncidentManager
    store: SQLiteStore
    clock: Clock

    async def fail(self, target: str = "core", ok: bool = False) -> None:
        for _ in range(2):
            result = ProbeResult(ok=ok, error=None if ok else "100% packet loss")
            await self.manager.handle(self.engine.observe(f"{target}/ping", result, self.clock.t))

    async def at(self, when: float) -> None:
        self.clock.t = when
        await self.manager.tick()

    async def pages(self) -> list[tuple[int, str, str]]:
        items = await self.store.notifications()
        return [(i.level, i.recipient, i.kind) for i in items if i.status != "cancelled"]

    async def restart(self) -> None:
        """A new manager (and roster) on the same store, as after a restart of the daemon."""
        self.manager = IncidentManager(self.store, self.clock, self.engine, lambda: None)
        await self.manager.load()


async def make_world(load: Loader, tmp_path: Path, start: float, text: str | None = None) -> World:
    engine = Engine(load(text or config()).inventory)
    store = SQLiteStore(tmp_path / "m.db")
    store.open(now=0.0)
    clock = Clock(start)
    manager = IncidentManager(store, clock, engine, lambda: None)
    await manager.load()
    world = World(engine, manager, store, clock)
    await world.fail(ok=True)
    return world
