"""The on-call roster: the schedules of the config with the overrides and swaps made through the API,
console and CLI, kept in the store (restart-safe) and in memory (paging resolves recipients inside the
incident manager's lock, without waiting on the store).

Who may change what: a manager (the `oncall.manage` permission, or a name under the schedule's
`managers`) any slot, to anyone, or to nobody; a member (a user or token whose name is a contact of the
schedule) only slots they hold, given to another contact, and swaps where one of the two slots is theirs.
Nobody changes a slot that has ended. Every change is kept (cancelling one keeps it, marked), so the
store has the whole history; the HTTP layer audits each attempt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from monitor.access.auth import Refused
from monitor.clock import Clock
from monitor.config.oncall_model import Schedule
from monitor.config.response_model import ResponseConfig
from monitor.oncall import rotation
from monitor.oncall.rotation import Duty, Overrides, Slot
from monitor.store.base import Store
from monitor.store.oncall_records import OnCallChange


@dataclass(frozen=True, slots=True)
class Actor:
    name: str  # the user or token
    manages_all: bool  # holds the `oncall.manage` permission


def fold(changes: list[OnCallChange]) -> dict[str, dict[str, tuple[str | None, int]]]:
    """schedule -> slot key -> (holder, change id): the latest change not cancelled wins."""
    out: dict[str, dict[str, tuple[str | None, int]]] = {}
    for change in sorted(changes, key=lambda c: c.id):
        if change.cancelled_at is None:
            for key, person in change.slots.items():
                out.setdefault(change.schedule, {})[key] = (person, change.id)
    return out


class Roster:
    def __init__(self, store: Store, clock: Clock, config: Callable[[], ResponseConfig]) -> None:
        self.store = store
        self.clock = clock
        self._config = config
        self._changes: list[OnCallChange] = []
        self._overrides: dict[str, dict[str, tuple[str | None, int]]] = {}
        self._lock = asyncio.Lock()  # one change at a time: each is checked against the slots as they stand

    async def load(self) -> None:
        """Read the changes from the store (at start, on taking the lead, before answering a read)."""
        changes = await self.store.oncall.changes()
        self._changes, self._overrides = changes, fold(changes)

    # --- reading ---------------------------------------------------------------------------

    def schedule(self, name: str) -> Schedule:
        found = self._config().schedules.get(name)
        if found is None:
            raise Refused(f'no schedule "{name}"', 404)
        return found

    def overrides(self, name: str) -> Overrides:
        return self._overrides.get(name, {})

    def changes(self, name: str | None = None) -> list[OnCallChange]:
        return [c for c in self._changes if name is None or c.schedule == name]

    def on_call(self, name: str, at: float) -> tuple[Duty, ...]:
        schedule = self._config().schedules.get(name)
        return () if schedule is None else rotation.on_call(name, schedule, at, self.overrides(name))

    def people(self, name: str, at: float) -> list[str]:
        """Who is on call in schedule `name` at `at` (contact names); paging asks this when it pages."""
        return sorted({d.person for d in self.on_call(name, at) if d.person is not None})

    def duties(self, name: str, start: float, end: float) -> list[Duty]:
        return rotation.duties(name, self.schedule(name), start, end, self.overrides(name))

    def orphans(self, name: str) -> list[str]:
        return rotation.orphans(name, self.schedule(name), self.overrides(name))

    def holder(self, name: str, slot: Slot) -> str | None:
        person, _ = self.overrides(name).get(slot.key, (slot.member, 0))
        return person

    # --- changing --------------------------------------------------------------------------

    def _slot(self, name: str, key: str) -> Slot:
        schedule = self.schedule(name)
        try:
            rotation.parse_slot_key(key)
        except ValueError as exc:
            raise Refused(str(exc), 422) from None
        slot = rotation.slot_at(name, schedule, key)
        if slot is None:
            raise Refused(f'schedule "{name}" has no slot "{key}"', 404)
        if slot.end <= self.clock.now():
            raise Refused(f'slot "{key}" has ended: past duties are not changed', 409)
        return slot

    def manages(self, name: str, actor: Actor) -> bool:
        return actor.manages_all or actor.name in self.schedule(name).managers

    async def override(self, name: str, key: str, person: str | None, actor: Actor, reason: str = "") -> OnCallChange:
        """Give a slot to `person` (a contact), or to nobody (managers only: it leaves a gap)."""
        async with self._lock:
            slot = self._slot(name, key)
            if person is not None and person not in self._config().contacts:
                raise Refused(f'unknown contact "{person}"', 422)
            holder = self.holder(name, slot)
            if not self.manages(name, actor):
                if holder != actor.name:
                    raise Refused(
                        f'slot "{key}" is held by {holder or "nobody"}: only they or a manager change it', 403
                    )
                if person is None:
                    raise Refused("only a manager may leave a slot empty (it is a coverage gap)", 403)
            if person == holder:
                raise Refused(f'slot "{key}" is held by {holder or "nobody"} already', 409)
            change = OnCallChange(name, "override", {key: person}, {key: holder}, actor.name, self.clock.now(), reason)
            return await self._add(change)

    async def swap(self, name: str, first: str, second: str, actor: Actor, reason: str = "") -> OnCallChange:
        """Exchange the people of two slots of a schedule."""
        async with self._lock:
            a, b = self._slot(name, first), self._slot(name, second)
            if a.key == b.key:
                raise Refused("a swap needs two different slots", 422)
            holder_a, holder_b = self.holder(name, a), self.holder(name, b)
            if not self.manages(name, actor) and actor.name not in (holder_a, holder_b):
                raise Refused("a member may swap only a slot they hold; a manager swaps for others", 403)
            if holder_a == holder_b:
                raise Refused(f"both slots are held by {holder_a or 'nobody'}: nothing to swap", 409)
            change = OnCallChange(
                name, "swap", {a.key: holder_b, b.key: holder_a}, {a.key: holder_a, b.key: holder_b},
                actor.name, self.clock.now(), reason,
            )  # fmt: skip
            return await self._add(change)

    async def cancel(self, change_id: int, actor: Actor) -> OnCallChange:
        """Undo a change (kept in the store, marked cancelled): its maker or a manager of its schedule."""
        async with self._lock:
            change = next((c for c in self._changes if c.id == change_id), None)
            if change is None:
                raise Refused(f"no on-call change #{change_id}", 404)
            if change.cancelled_at is not None:
                raise Refused(f"change #{change_id} was cancelled already", 409)
            if not self.manages(change.schedule, actor) and change.actor != actor.name:
                raise Refused("only whoever made a change, or a manager, cancels it", 403)
            now = self.clock.now()
            schedule = self.schedule(change.schedule)
            slots = [rotation.slot_at(change.schedule, schedule, k) for k in change.slots]
            if all(s is not None and s.end <= now for s in slots):
                raise Refused(f"the slots of change #{change_id} have ended", 409)
            done = await self.store.oncall.cancel_change(change_id, now, actor.name)
            await self.load()
            if done is None:
                raise Refused(f"no on-call change #{change_id}", 404)
            return done

    async def _add(self, change: OnCallChange) -> OnCallChange:
        await self.store.oncall.add_change(change)
        await self.load()  # the store is the truth: what another daemon (HA) changed comes along too
        return change
