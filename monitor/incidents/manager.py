"""Incidents from state changes: one per root cause, escalated by playbook, durable across restarts.

A check that is DOWN (or, by policy, DEGRADED or flapping) opens an incident about its target; a
check that is UNREACHABLE attaches to the incident of its root cause instead (one page, not forty).
A target whose own incident opened first (a child confirmed before its parent) is merged into the
parent's as soon as the parent is found down: pages wait `group_wait` for exactly this. Services a
problem takes down raise its severity. The incident resolves itself when its target is healthy.

Everything the incident needs later (level, timers, who was paged) is in the store, so a restart
continues the escalation where it stood. Work is done in one task, in order of arrival.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from monitor.clock import Clock
from monitor.engine import Engine, Outcome, Transition
from monitor.incidents import messages, paging
from monitor.incidents.actions import ActionsMixin
from monitor.incidents.policy import choose_playbook, incident_objective, incident_severity, peak_severity, worst
from monitor.state import State
from monitor.store.base import Store
from monitor.store.records import IncidentEvent, IncidentRecord, OutboxItem

log = structlog.get_logger()
TICK_SECONDS = 1.0
MAX_BATCH = 10_000
INCIDENT_LABELS = ("prefecture", "system", "tier", "site", "role")


@dataclass
class Batch:
    """What one outcome changes, written in as few transactions as possible."""

    created: list[tuple[IncidentRecord, IncidentEvent]] = field(default_factory=list)
    saved: dict[str, tuple[IncidentRecord, list[IncidentEvent]]] = field(default_factory=dict)
    pages: list[OutboxItem] = field(default_factory=list)
    resolved: list[IncidentRecord] = field(default_factory=list)
    merges: list[tuple[IncidentRecord, IncidentRecord]] = field(default_factory=list)  # (merged, into)

    def touch(self, incident: IncidentRecord, *events: IncidentEvent) -> None:
        if any(incident is created for created, _ in self.created):
            return  # written whole when created (its events are recorded then)
        entry = self.saved.setdefault(incident.key, (incident, []))
        entry[1].extend(events)


class IncidentManager(ActionsMixin):
    def __init__(
        self, store: Store, clock: Clock, engine: Callable[[], Engine], wake_outbox: Callable[[], None]
    ) -> None:
        self.store = store
        self.clock = clock
        self._engine = engine
        self._wake_outbox = wake_outbox
        self.open: dict[str, IncidentRecord] = {}  # by key; open or acknowledged
        self._queue: asyncio.Queue[Outcome] = asyncio.Queue()
        self._lock = asyncio.Lock()  # one change at a time: outcomes, timers and operator actions
        self._tasks: list[asyncio.Task[None]] = []
        self.watchers: list[Callable[[IncidentRecord], None]] = []  # told of every incident a commit changed

    @property
    def response(self) -> Any:
        return self._engine().inventory.response

    # --- lifecycle -------------------------------------------------------------------------

    async def load(self) -> None:
        """Take over the open incidents from the store (after a restart: timers continue from there)."""
        for incident in await self.store.open_incidents():
            self.open[incident.key] = incident
        log.info("incidents_loaded", open=len(self.open))

    async def start(self) -> None:
        await self.load()
        self._tasks = [asyncio.create_task(self._process()), asyncio.create_task(self._timers())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def find(self, incident_id: int) -> IncidentRecord | None:
        """An open incident by id (the in-memory copy is the current one)."""
        return next((i for i in self.open.values() if i.id == incident_id), None)

    def on_outcome(self, outcome: Outcome) -> None:
        """Daemon listener (synchronous, on the probe path): queue the outcome for the incident task."""
        if outcome.transitions or outcome.flapping:
            self._queue.put_nowait(outcome)

    async def drain(self) -> None:
        """Wait until every queued outcome has been handled (tests, benchmarks)."""
        await self._queue.join()

    async def _process(self) -> None:
        """Handle queued outcomes; whatever piled up meanwhile (a mass outage: thousands of children
        confirmed one by one) is handled as one batch, in one transaction."""
        while True:
            outcomes = [await self._queue.get()]
            while not self._queue.empty() and len(outcomes) < MAX_BATCH:
                outcomes.append(self._queue.get_nowait())
            merged = Outcome()
            for outcome in outcomes:
                merged.transitions.extend(outcome.transitions)
                merged.flapping.extend(outcome.flapping)
            try:
                await self.handle(merged)
            except Exception:
                log.exception("incident_processing_failed")
            finally:
                for _ in outcomes:
                    self._queue.task_done()

    async def _timers(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                await self.tick()
            except Exception:
                log.exception("incident_timers_failed")

    # --- state changes -> incidents -------------------------------------------------------

    async def handle(self, outcome: Outcome) -> None:
        async with self._lock:
            await self._handle(outcome)

    async def _handle(self, outcome: Outcome) -> None:
        now = self.clock.now()
        batch = Batch()
        for t in outcome.transitions:
            if t.kind == "check":
                self._check_changed(t, now, batch)
        for name in dict.fromkeys(t.id for t in outcome.transitions if t.kind == "service"):
            self._service_changed(name, now, batch)
        for check_id, _event in outcome.flapping:
            rt = self._engine().checks.get(check_id)
            if rt is not None:
                self._check_changed(Transition("check", check_id, rt.state, rt.state, now), now, batch)
        await self._commit(batch, now)

    def _is_problem(self, check_id: str) -> bool:
        rt = self._engine().checks.get(check_id)
        if rt is None:
            return False
        policy = self.response.incidents.open_on
        if rt.state == State.DOWN:
            return True
        if rt.state == State.DEGRADED and "degraded" in policy:
            return True
        return rt.machine.flapping and "flapping" in policy and rt.state not in (State.MAINTENANCE, State.UNREACHABLE)

    def _target_problems(self, target: str) -> dict[str, str | None]:
        engine = self._engine()
        ids = engine.inventory.checks_by_target.get(target, ())
        return {cid: engine.checks[cid].reason or "flapping" for cid in ids if self._is_problem(cid)}

    def _check_changed(self, t: Transition, now: float, batch: Batch) -> None:
        rt = self._engine().checks.get(t.id)
        if rt is None:
            return
        target = rt.check.target.name
        own = self.open.get(f"target:{target}")
        if t.new == State.UNREACHABLE and t.root_cause:
            root = self.open.get(f"target:{t.root_cause}")
            if root is not None:
                self._attach_child(root, target, now, batch)
            if own is not None and not self._target_problems(target):
                self._resolve(own, now, "system", f"merged into {root.key}" if root else "parent is down", batch)
                if root is not None:
                    batch.merges.append((own, root))
            return
        if t.old == State.UNREACHABLE:
            for incident in self.open.values():
                children = incident.affected.get("children", [])
                if target in children and not any(
                    self._engine().checks[c].state == State.UNREACHABLE
                    for c in self._engine().inventory.checks_by_target.get(target, ())
                ):
                    children.remove(target)
                    batch.touch(incident)
        problems = self._target_problems(target)
        if problems:
            incident = own or self._open_incident(target, problems, now, batch)
            if incident.affected.get("checks") != problems:
                incident.affected["checks"] = problems
                incident.reason = "; ".join(f"{c}: {r}" for c, r in problems.items())[:500]
                batch.touch(incident)
        elif own is not None:
            self._resolve(own, now, "system", "recovered", batch)

    def _open_incident(self, target: str, problems: dict[str, str | None], now: float, batch: Batch) -> IncidentRecord:
        engine = self._engine()
        t = engine.inventory.targets[target]
        labels = {"target": target, **{k: t.labels[k] for k in INCIDENT_LABELS if t.labels.get(k)}}
        services = sorted({s for c in problems for s in engine.inventory.services_by_check.get(c, ())})
        if services:
            labels["service"] = services[0]
        degraded_only = all(engine.checks[c].state != State.DOWN for c in problems)
        severity = incident_severity(labels, {}, self.response.incidents, degraded_only)
        title, title_en = messages.titles(target, labels)
        incident = IncidentRecord(
            key=f"target:{target}",
            severity=severity,
            title=title,
            title_en=title_en,
            opened_at=now,
            reason="; ".join(f"{c}: {r}" for c, r in problems.items())[:500],
            labels=labels,
            playbook=choose_playbook(labels, severity, self.response.routing, now),
            affected={"checks": problems, "services": {}, "children": []},
        )
        if incident.playbook in self.response.playbooks:
            incident.next_escalation_at = now + self.response.incidents.group_wait
        self.open[incident.key] = incident
        batch.created.append((incident, IncidentEvent(0, now, "detected", None, {"checks": problems})))
        log.warning("incident_opened", key=incident.key, severity=severity, playbook=incident.playbook)
        return incident

    def _attach_child(self, root: IncidentRecord, target: str, now: float, batch: Batch) -> None:
        children = root.affected.setdefault("children", [])
        if target not in children:
            children.append(target)
            batch.touch(root)

    def _service_changed(self, name: str, now: float, batch: Batch) -> None:
        engine = self._engine()
        srt = engine.services.get(name)
        if srt is None:
            return
        involved = {
            f"target:{m.root_cause or m.check.target.name}"
            for m in (engine.checks[c] for c in srt.service.check_ids)
            if m.state in (State.DOWN, State.UNREACHABLE, State.DEGRADED)
        }
        for key, incident in self.open.items():
            services = incident.affected.setdefault("services", {})
            if key in involved and srt.state not in (State.UP, State.UNKNOWN, State.MAINTENANCE):
                services[name] = srt.state.value
            elif name in services:
                del services[name]
            else:
                continue
            self._rate(incident, now, batch)

    def _rate(self, incident: IncidentRecord, now: float, batch: Batch) -> None:
        """Recompute severity from the affected services; before the first page, re-route too."""
        engine = self._engine()
        services = {
            s: (state, dict(engine.services[s].service.labels))
            for s, state in incident.affected.get("services", {}).items()
            if s in engine.services
        }
        target_labels = {k: v for k, v in incident.labels.items() if k != "service"}
        severity = incident_severity(target_labels, services, self.response.incidents)
        events = []
        if severity != incident.severity:
            incident.affected["peak_severity"] = worst([severity, peak_severity(incident.severity, incident.affected)])
            events.append(
                IncidentEvent(incident.id, now, "severity", None, {"from": incident.severity, "to": severity})
            )
            incident.severity = severity
            if incident.level == 0:
                incident.playbook = choose_playbook(incident.labels, severity, self.response.routing, now)
        batch.touch(incident, *events)

    # --- resolving -------------------------------------------------------------------------

    def _resolve(self, incident: IncidentRecord, now: float, actor: str, reason: str, batch: Batch) -> None:
        incident.status = "resolved"
        incident.resolved_at, incident.resolved_by, incident.resolve_reason = now, actor, reason
        incident.next_escalation_at = incident.next_repeat_at = None
        self.open.pop(incident.key, None)
        batch.touch(incident, IncidentEvent(incident.id, now, "resolved", actor, {"reason": reason}))
        batch.resolved.append(incident)
        log.info("incident_resolved", key=incident.key, id=incident.id, reason=reason, actor=actor)

    async def _commit(self, batch: Batch, now: float) -> None:
        changed = [i for i, _ in batch.created] + [i for i, _ in batch.saved.values()]
        await self._write(batch, now)
        for incident in changed:
            for watcher in self.watchers:
                watcher(incident)

    async def _write(self, batch: Batch, now: float) -> None:
        for incident, event in batch.created:
            await self.store.create_incident(incident, event)
        batch.created.clear()  # from here on they are saved like any other
        for merged, root in batch.merges:  # ids exist now, also of a root created in this batch
            merged.merged_into = root.id
            merged.resolve_reason = f"merged into #{root.id}"
            batch.touch(merged, IncidentEvent(merged.id, now, "merged", None, {"into": root.id}))
            batch.touch(root, IncidentEvent(root.id, now, "absorbed", None, {"incident": merged.id, "key": merged.key}))
        if batch.saved:
            await self.store.save_incidents([(i, [IncidentEvent(i.id, e.at, e.kind, e.actor, e.detail) for e in ev])
                                             for i, ev in batch.saved.values()])  # fmt: skip
        for incident in batch.resolved:
            if incident.id:
                await self._page_resolved(incident, now)
        if batch.pages:
            await self.store.enqueue(batch.pages)
            self._wake_outbox()

    async def _page_resolved(self, incident: IncidentRecord, now: float) -> None:
        """Cancel pages not sent yet; tell everyone who was paged that it is over."""
        await self.store.cancel_pending(incident.id)
        book = self.response.playbooks.get(incident.playbook or "")
        if book is not None and not book.notify_resolved:
            return
        paged: dict[int, set[tuple[str, str]]] = {}
        for item in await self.store.notifications(incident.id):
            if item.status == "sent" and item.kind in ("firing", "repeat"):
                paged.setdefault(item.level, set()).add((item.channel, item.recipient))
        items = [
            p
            for level, who in paged.items()
            for p in paging.pages(self.response, incident, level, "resolved", now, who)
        ]
        if items:
            await self.store.enqueue(items)
            self._wake_outbox()

    # --- timers: escalation and repeats ---------------------------------------------------

    async def tick(self) -> None:
        """Escalations, repeats and expired acks that are due."""
        async with self._lock:
            await self._tick()

    async def _tick(self) -> None:
        now = self.clock.now()
        batch = Batch()
        for incident in list(self.open.values()):
            self._recovery_due(incident, now, batch)
            if incident.status == "acknowledged":
                if incident.ack_expires_at is not None and now >= incident.ack_expires_at:
                    incident.status, incident.ack_expires_at = "open", None
                    batch.touch(incident, IncidentEvent(incident.id, now, "ack_expired", None, {}))
                    self._escalate(incident, now, batch, reason="acknowledgement expired")
            elif incident.next_escalation_at is not None and now >= incident.next_escalation_at:
                self._escalate(
                    incident, now, batch, reason="not acknowledged in time" if incident.level else "detected"
                )
            elif incident.next_repeat_at is not None and now >= incident.next_repeat_at:
                incident.repeats += 1
                batch.pages += paging.pages(self.response, incident, incident.level, "repeat", now)
                _, incident.next_repeat_at = paging.next_times(self.response, incident, now)
                batch.touch(incident, IncidentEvent(incident.id, now, "repeated", None, {"level": incident.level}))
        await self._commit(batch, now)

    def _escalate(
        self, incident: IncidentRecord, now: float, batch: Batch, reason: str, actor: str | None = None
    ) -> bool:
        """Page the next level; at the last level, page it again. False if the playbook has no levels."""
        book = self.response.playbooks.get(incident.playbook or "")
        if book is None:
            incident.next_escalation_at = None
            return False
        if incident.level < len(book.levels):
            incident.level += 1
            kind = "firing"
        else:
            incident.repeats += 1
            kind = "repeat"
        pages = paging.pages(self.response, incident, incident.level, kind, now)
        batch.pages += pages
        incident.next_escalation_at, incident.next_repeat_at = paging.next_times(self.response, incident, now)
        detail = {
            "level": incident.level,
            "reason": reason,
            "recipients": sorted({f"{p.channel}:{p.recipient}" for p in pages}),
        }
        batch.touch(incident, IncidentEvent(incident.id, now, "escalated", actor, detail))
        log.warning("incident_escalated", id=incident.id, key=incident.key, level=incident.level, reason=reason)
        return True

    def _recovery_due(self, incident: IncidentRecord, now: float, batch: Batch) -> None:
        """目標復旧時間: at `warn_at` of the objective page the next level (acknowledged or not: missing
        the objective is for the next level to know); at the objective, record the breach. Once each."""
        recovery = self._engine().inventory.recovery
        objective = incident_objective(incident, recovery)
        if objective is None:
            return
        elapsed = now - incident.opened_at
        if elapsed >= recovery.warn_at * objective and "recovery_warned_at" not in incident.affected:
            incident.affected["recovery_warned_at"] = now
            detail = {"objective_seconds": objective, "elapsed_seconds": round(elapsed, 1)}
            batch.touch(incident, IncidentEvent(incident.id, now, "recovery_warning", None, detail))
            if recovery.escalate == "next_level":
                self._escalate(incident, now, batch, reason="recovery-time objective about to be missed")
        if elapsed >= objective and "recovery_breached_at" not in incident.affected:
            incident.affected["recovery_breached_at"] = now
            detail = {"objective_seconds": objective, "elapsed_seconds": round(elapsed, 1)}
            batch.touch(incident, IncidentEvent(incident.id, now, "recovery_breached", None, detail))
            log.warning("recovery_objective_missed", id=incident.id, key=incident.key, objective=objective)
