"""Handover (引継ぎ) at each shift change: the incoming shift gets a summary, by mail through the outbox and
in the console: open incidents with their level and who acknowledged, maintenance in progress and
upcoming, security incidents and their phase, and checks that flapped during the outgoing shift.

A shift change is a moment the slots on call in a schedule change (monitor.oncall.rotation.spans). Once
per change, across restarts: the mails' dedup keys name the schedule and the change's time (queued again
after a restart, they are ignored), and the summary is kept in the store under the same two (shown by
the console). The mails are queued before the summary is recorded, so a crash between the two sends
nothing twice and loses nothing. A daemon that was down at a change catches up when it is back, while
that shift is still on and at most LATE_MAIL after the change (later, the console has it, but nobody is
mailed a stale summary).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from monitor.clock import Clock
from monitor.config.response_model import ResponseConfig
from monitor.core.engine import Engine
from monitor.incidents.maintenance import occurrence, occurrences
from monitor.incidents.paging import contact_messages
from monitor.oncall import rotation
from monitor.oncall.roster import Roster
from monitor.store.base import Store
from monitor.store.oncall_records import Handover
from monitor.store.records import IncidentRecord, MaintenanceWindow
from monitor.timefmt import iso

log = structlog.get_logger()
LATE_MAIL = 2 * 3600.0  # a handover found later than this after its change is recorded but not mailed
MAX_SLEEP = 30.0  # the next change is re-read at least this often (config reloads, overrides, a stepped clock)
LOOK_BACK = 2 * rotation.DAY  # how far back the change that began the current shift is looked for


def _fmt(ts: float | None, zone: ZoneInfo) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, zone).strftime("%m/%d %H:%M")


def render(schedule_label: str, handover: Handover, config: ResponseConfig, zone: ZoneInfo) -> tuple[str, str]:
    """(subject, body) of the handover mail, in Japanese with the English terms a NOC uses."""
    s = handover.summary
    names = [config.contacts[p].name if p in config.contacts else p for p in handover.incoming]
    subject = (
        f"【引継ぎ】{schedule_label} {_fmt(handover.at, zone)} "
        f"未解決 {len(s['incidents'])} 件 / Handover: {len(s['incidents'])} open"
    )
    lines = [f"{schedule_label} 引継ぎ (handover) {_fmt(handover.at, zone)}", f"担当 (on duty): {', '.join(names)}", ""]
    lines.append(f"■ 未解決インシデント (open incidents): {len(s['incidents'])}")
    for i in s["incidents"]:
        ack = f"受領 {i['acked_by']}" if i["acked_by"] else "未受領 (not acknowledged)"
        lines.append(f"  #{i['id']} [{i['severity']}] L{i['level']} {i['title']} - {ack}")
    lines.append(f"■ 作業中の計画停止 (maintenance in progress): {len(s['maintenance_now'])}")
    lines += [f"  {m['name']}: {m['reason']} (～{_fmt(m['ends_ts'], zone)})" for m in s["maintenance_now"]]
    lines.append(f"■ 予定の計画停止 (upcoming maintenance): {len(s['maintenance_upcoming'])}")
    lines += [f"  {m['name']}: {m['reason']} ({_fmt(m['starts_ts'], zone)}～)" for m in s["maintenance_upcoming"]]
    lines.append(f"■ セキュリティインシデント (security incidents): {len(s['security'])}")
    lines += [f"  #{x['id']} {x['connection']} [{x['severity']}] {x['phase']}" for x in s["security"]]
    lines.append(f"■ 前シフト中のフラッピング (checks flapping in the last shift): {len(s['flapping'])}")
    lines += [f"  {f['check']}: {f['changes']} 回の状態変化 (state changes)" for f in s["flapping"]]
    return subject, "\n".join(lines) + "\n"


class HandoverDesk:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        roster: Roster,
        engine: Engine,
        open_incidents: Callable[[], Iterable[IncidentRecord]],
        windows: Callable[[], list[MaintenanceWindow]],
        wake_outbox: Callable[[], None],
    ) -> None:
        self.store = store
        self.clock = clock
        self.roster = roster
        self.engine = engine  # never replaced: a reload changes its inventory
        self._open = open_incidents
        self._windows = windows
        self._wake = wake_outbox
        self._task: asyncio.Task[None] | None = None

    @property
    def config(self) -> ResponseConfig:
        return self.engine.inventory.response

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("handover_failed")
            wait = MAX_SLEEP
            now = self.clock.now()
            for name, schedule in self.config.schedules.items():
                ahead = rotation.spans(name, schedule, now, now + MAX_SLEEP * 2, self.roster.overrides(name))
                if len(ahead) > 1:
                    wait = min(wait, max(0.05, ahead[1].start - now))
            await asyncio.sleep(wait)

    def current_change(self, name: str, now: float) -> tuple[float, rotation.Span, rotation.Span] | None:
        """The shift change that began the shift on now: (its time, the span before, the span from it)."""
        schedule = self.config.schedules[name]
        found = rotation.spans(name, schedule, now - LOOK_BACK, now + 1, self.roster.overrides(name))
        if len(found) < 2:
            return None
        return found[-1].start, found[-2], found[-1]

    async def tick(self) -> int:
        """Send the handover of each schedule's current shift if it has not gone out; how many were new."""
        await self.roster.load()  # overrides made on another daemon (HA) count too
        now = self.clock.now()
        made = 0
        for name in list(self.config.schedules):
            change = self.current_change(name, now)
            if change is None:
                continue
            at, before, after = change
            if not after.people:
                continue  # nobody came on duty (a coverage gap: check-config and the board tell it)
            if await self._exists(name, at):
                continue
            summary = await self.summary(before.start, at, now)
            contacts = self.config.contacts
            summary["incoming_names"] = [contacts[p].name if p in contacts else p for p in after.people]
            handover = Handover(name, at, list(after.people), list(before.people), summary)
            if now - at <= LATE_MAIL:
                await self._mail(name, handover, now)
            if await self.store.oncall.save_handover(handover):
                made += 1
                log.info("handover", schedule=name, at=iso(at), incoming=handover.incoming)
        return made

    async def _exists(self, name: str, at: float) -> bool:
        return any(h.at == at for h in await self.store.oncall.handovers(name, 5))

    async def _mail(self, name: str, handover: Handover, now: float) -> None:
        schedule = self.config.schedules[name]
        if schedule.handover is None:
            return
        zone = ZoneInfo(schedule.timezone)
        subject, text = render(schedule.name or name, handover, self.config, zone)
        pairs = [(via, person) for via in schedule.handover.via for person in handover.incoming]
        items = contact_messages(
            self.config, pairs, kind="handover", dedup=f"handover:{name}:{round(handover.at)}", subject=subject,
            text=text, webhook={}, incident_id=None, now=now,
        )  # fmt: skip
        if items:
            await self.store.enqueue(items)
            self._wake()

    async def summary(self, shift_start: float, at: float, now: float) -> dict[str, Any]:
        """What the incoming shift needs to know, as of `now`."""
        upcoming_for = 86400.0
        for schedule in self.config.schedules.values():
            if schedule.handover is not None:
                upcoming_for = max(upcoming_for, schedule.handover.upcoming)
        incidents = [
            {"id": i.id, "title": i.title, "severity": i.severity, "level": i.level, "status": i.status,
             "acked_by": i.acked_by, "opened_at": iso(i.opened_at)}
            for i in sorted(self._open(), key=lambda i: i.opened_at)
        ]  # fmt: skip
        now_windows, upcoming = [], []
        for window in self._windows():
            if window.cancelled_at is not None:
                continue
            running = occurrence(window, now)
            if running is not None:
                now_windows.append({"name": window.name, "reason": window.reason, "starts_ts": running[0],
                                    "ends_ts": running[1], "ends_at": iso(running[1])})  # fmt: skip
                continue
            for start, end in occurrences(window, now, now + upcoming_for, limit=1):
                if start > now:
                    upcoming.append({"name": window.name, "reason": window.reason, "starts_ts": start,
                                     "starts_at": iso(start), "ends_at": iso(end)})  # fmt: skip
        security, _ = await self.store.list_security_incidents(open_only=True, limit=100)
        return {
            "incidents": incidents,
            "maintenance_now": now_windows,
            "maintenance_upcoming": sorted(upcoming, key=lambda m: m["starts_ts"]),
            "security": [
                {
                    "id": x.id,
                    "connection": x.connection,
                    "severity": x.severity,
                    "phase": x.phase,
                    "opened_at": iso(x.opened_at),
                }
                for x in security
            ],
            "flapping": await self._flapping(shift_start, at),
            "last_shift": {"start": iso(shift_start), "end": iso(at)},
        }

    async def _flapping(self, start: float, end: float) -> list[dict[str, Any]]:
        """Checks whose state changed at least their flapping threshold of times during the last shift,
        or that the engine holds flapping now, with the number of changes."""
        changes: dict[str, int] = {}
        for check_id, spans in (await self.store.intervals_since("check", start)).items():
            changes[check_id] = sum(1 for s in spans if start < s.start <= end)
        out = []
        for check_id, runtime in self.engine.checks.items():
            count = changes.get(check_id, 0)
            if runtime.machine.flapping or count >= runtime.check.policy.flap_transitions:
                out.append({"check": check_id, "changes": count, "flapping_now": runtime.machine.flapping})
        return sorted(out, key=lambda f: (-f["changes"], f["check"]))
