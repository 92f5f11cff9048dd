"""Incidents from state changes: one per root cause, escalated by playbook, durable across restarts.

A check that is DOWN (or, by policy, DEGRADED or flapping) opens an incident about its target; a
check that is UNREACHABLE attaches to the incident of its root cause instead (one page, not forty).
A target whose own incident opened first (a child confirmed before its parent) is merged into the
parent's as soon as the parent is found down: pages wait `group_wait` for exactly this; the services
it took down move with it. When a service goes DOWN through targets that have incidents of their own
(the backup circuit of a DEGRADED link), those become one: the incident that covered the service
first takes the others' targets (one link, one incident). Services a problem takes down raise its
severity; a change of severity after the first page is paged itself.
The incident resolves itself when its targets are healthy.

`affected` keeps: checks (problems now), cause (each check's reason when it first failed: what the
pages give as the reason, not whatever failed last while recovering), services (every service the
incident took down, with the worst state it reached: the report's attribution), services_now
(their state now: the severity), service_names (display names), service_members (which targets
of a redundant service are out), children, targets (joined ones).

Timers (first page, escalations, repeats, ack expiry, recovery objectives) are evaluated at the
moment they are due, by the same task that handles state changes, in order: a recovery that arrived
before a page was due always wins, one that arrived after always loses.

Everything the incident needs later (level, timers, who was paged) is in the store, so a restart
continues the escalation where it stood. Work is done in one task, in order of arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog

from monitor.clock import Clock
from monitor.config.response_model import ResponseConfig
from monitor.core.engine import Engine, Outcome, Transition
from monitor.core.state import State
from monitor.incidents import messages, paging
from monitor.incidents.actions import IncidentActions
from monitor.incidents.batch import Batch
from monitor.incidents.policy import (
    choose_playbook,
    first_page_wait,
    incident_objective,
    incident_severity,
    peak_severity,
    worst,
)
from monitor.oncall.roster import Roster
from monitor.store.base import Store
from monitor.store.records import IncidentEvent, IncidentRecord, OutboxItem

log = structlog.get_logger()
MAX_SLEEP = 30.0  # timers are re-read at least this often (the wall clock may be stepped)
LIVE = (State.DOWN, State.UNREACHABLE, State.DEGRADED)
MAX_BATCH = 10_000
INCIDENT_LABELS = ("prefecture", "system", "tier", "site", "role")


_STATE_RANK = ("up", "unknown", "maintenance", "degraded", "unreachable", "down")


def worst_state(a: str | None, b: str) -> str:
    """The worse of two service states (what an incident took a service down to)."""
    rank = {s: i for i, s in enumerate(_STATE_RANK)}
    return b if a is None or rank.get(b, 0) >= rank.get(a, 0) else a


def _reason(problems: dict[str, str | None]) -> str:
    return "; ".join(f"{c}: {r}" for c, r in problems.items())[:500]


class IncidentManager:
    def __init__(self, store: Store, clock: Clock, engine: Engine, wake_outbox: Callable[[], None]) -> None:
        self.store = store
        self.clock = clock
        self.engine = engine  # never replaced: a reload changes its inventory
        self._wake_outbox = wake_outbox
        self.open: dict[str, IncidentRecord] = {}  # by key; open or acknowledged
        self._queue: asyncio.Queue[Outcome] = asyncio.Queue()
        self._lock = asyncio.Lock()  # one change at a time: outcomes, timers and operator actions
        self._tasks: list[asyncio.Task[None]] = []
        self._work = asyncio.Event()  # an outcome was queued, or the timers changed
        self._spells: dict[str, IncidentRecord] = {}  # service -> the incident its current outage is attributed to
        self.watchers: list[Callable[[IncidentRecord], None]] = []  # told of every incident a commit changed
        self.actions = IncidentActions(self, store)  # operator actions and inbound alerts, through our Ledger
        # who is on call in each schedule: a level naming one pages whoever is on duty when it is paged
        self.roster = Roster(store, clock, lambda: self.response)

    @property
    def response(self) -> ResponseConfig:
        return self.engine.inventory.response

    # --- what people and other systems do (monitor.incidents.actions; the API calls them here) ---

    async def acknowledge(self, incident_id: int, actor: str, comment: str = "") -> IncidentRecord:
        return await self.actions.acknowledge(incident_id, actor, comment)

    async def add_note(self, incident_id: int, actor: str, text: str) -> IncidentRecord:
        return await self.actions.add_note(incident_id, actor, text)

    async def escalate_now(self, incident_id: int, actor: str, comment: str = "") -> IncidentRecord:
        return await self.actions.escalate_now(incident_id, actor, comment)

    async def resolve(self, incident_id: int, actor: str, reason: str = "resolved by hand") -> IncidentRecord:
        return await self.actions.resolve(incident_id, actor, reason)

    async def open_now(self, incident: IncidentRecord, detail: dict[str, Any]) -> IncidentRecord:
        return await self.actions.open_now(incident, detail)

    async def receive_alerts(self, alerts: list[dict[str, Any]]) -> dict[str, int]:
        return await self.actions.receive_alerts(alerts)

    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator[float]:
        """Ledger: one change at a time (outcomes, timers and actions); yields the time of the change."""
        async with self._lock:
            yield self.clock.now()

    # --- lifecycle -------------------------------------------------------------------------

    async def load(self) -> None:
        """Take over the open incidents from the store (after a restart: timers continue from there)."""
        self._spells.clear()  # (a daemon that leads again after following: the store is the truth)
        await self.roster.load()  # before any timer pages a schedule
        for incident in await self.store.open_incidents():
            self.open[incident.key] = incident
            for name in incident.affected.get("services_now", {}):
                self._spells.setdefault(name, incident)
        log.info("incidents_loaded", open=len(self.open))

    async def start(self) -> None:
        await self.load()
        self._tasks = [asyncio.create_task(self._process())]

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
            self._work.set()

    async def drain(self) -> None:
        """Wait until every queued outcome has been handled (tests, benchmarks)."""
        await self._queue.join()

    async def _process(self) -> None:
        """Handle queued outcomes, and the timers when they are due. Whatever piled up meanwhile (a mass
        outage: thousands of children confirmed one by one) is handled as one batch, in one
        transaction. One task does both, so what arrived before a timer was due is handled first."""
        while True:
            due = self._next_due()
            if self._queue.empty():
                delay = MAX_SLEEP if due is None else min(MAX_SLEEP, max(0.0, due - self.clock.now()))
                self._work.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._work.wait(), delay)
            outcomes: list[Outcome] = []
            while not self._queue.empty() and len(outcomes) < MAX_BATCH:
                outcomes.append(self._queue.get_nowait())
            if outcomes:
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
            due = self._next_due()
            if due is not None and self.clock.now() >= due:
                try:
                    await self.tick()
                except Exception:
                    log.exception("incident_timers_failed")
                    await asyncio.sleep(1.0)  # a failing store: retry, but do not spin

    def _next_due(self) -> float | None:
        """The earliest moment a timer of an open incident is due."""
        times: list[float] = []
        recovery = self.engine.inventory.recovery
        for incident in self.open.values():
            if incident.status == "acknowledged":
                times += [incident.ack_expires_at] if incident.ack_expires_at is not None else []
            else:
                times += [t for t in (incident.next_escalation_at, incident.next_repeat_at) if t is not None]
            objective = incident_objective(incident, recovery)
            if objective is not None:
                if "recovery_warned_at" not in incident.affected:
                    times.append(incident.opened_at + recovery.warn_at * objective)
                if "recovery_breached_at" not in incident.affected:
                    times.append(incident.opened_at + objective)
        return min(times, default=None)

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
        services: dict[str, State] = {}  # service -> its state before this outcome
        for t in outcome.transitions:
            if t.kind == "service":
                services.setdefault(t.id, t.old)
        for name, old in services.items():
            if old != State.DOWN and self.engine.services[name].state == State.DOWN:
                self._join(name, now, batch)
            self._service_changed(name, now, batch)
        for check_id, _event in outcome.flapping:
            rt = self.engine.checks.get(check_id)
            if rt is not None:
                self._check_changed(Transition("check", check_id, rt.state, rt.state, now), now, batch)
        await self.commit(batch, now)

    def _is_problem(self, check_id: str) -> bool:
        rt = self.engine.checks.get(check_id)
        if rt is None:
            return False
        policy = self.response.incidents.open_on
        if rt.state == State.DOWN:
            return True
        if rt.state == State.DEGRADED and "degraded" in policy:
            return True
        return rt.machine.flapping and "flapping" in policy and rt.state not in (State.MAINTENANCE, State.UNREACHABLE)

    def _target_problems(self, target: str) -> dict[str, str | None]:
        engine = self.engine
        ids = engine.inventory.checks_by_target.get(target, ())
        return {cid: engine.checks[cid].reason or "flapping" for cid in ids if self._is_problem(cid)}

    def _own(self, target: str) -> IncidentRecord | None:
        """The open incident about a target: its own, or the one it joined."""
        own = self.open.get(f"target:{target}")
        if own is not None:
            return own
        return next((i for i in self.open.values() if target in i.affected.get("targets", ())), None)

    def _covering(self, target: str) -> IncidentRecord | None:
        """The open incident a target's trouble belongs to: its own, the one it joined, or its root cause's."""
        own = self._own(target)
        if own is not None:
            return own
        return next((i for i in self.open.values() if target in i.affected.get("children", ())), None)

    @staticmethod
    def _members(incident: IncidentRecord) -> list[str]:
        """The targets an incident is about: its own and those that joined it."""
        return [incident.key.removeprefix("target:"), *incident.affected.get("targets", [])]

    def _check_changed(self, t: Transition, now: float, batch: Batch) -> None:
        rt = self.engine.checks.get(t.id)
        if rt is None:
            return
        target = rt.check.target.name
        own = self._own(target)
        if t.new == State.UNREACHABLE and t.root_cause:
            root = self._own(t.root_cause)
            if root is not None and root is not own:
                self._attach_child(root, target, now, batch)
            if own is not None and own is not root:
                self._problems_changed(own, now, batch, into=root, gone="parent is down")
            return
        if t.old == State.UNREACHABLE:
            for incident in self.open.values():
                children = incident.affected.get("children", [])
                if target in children and not any(
                    self.engine.checks[c].state == State.UNREACHABLE
                    for c in self.engine.inventory.checks_by_target.get(target, ())
                ):
                    children.remove(target)
                    batch.touch(incident)
        if own is None:
            problems = self._target_problems(target)
            if problems:
                self._open_incident(target, problems, now, batch)
            return
        self._problems_changed(own, now, batch)

    def _problems_changed(
        self,
        incident: IncidentRecord,
        now: float,
        batch: Batch,
        into: IncidentRecord | None = None,
        gone: str = "recovered",
    ) -> None:
        """Re-read the problems of an incident's targets: record new causes, or resolve it (merged
        `into` its root cause's incident when that is why its problems went away)."""
        problems: dict[str, str | None] = {}
        for member in self._members(incident):
            problems.update(self._target_problems(member))
        if not problems:
            if into is not None:
                self._merge(incident, into, now, batch)
            else:
                self.close(incident, now, "system", gone, batch)
            return
        before = incident.affected.get("checks", {})
        if before == problems:
            return
        if any(c not in problems for c in before):
            incident.affected["recovering"] = True
        cause = incident.affected.setdefault("cause", {})
        if not incident.affected.get("recovering"):  # what fails while it recovers is not the cause
            for check, reason in problems.items():
                cause.setdefault(check, reason)
        incident.affected["checks"] = problems
        incident.reason = _reason(cause or problems)
        if incident.level == 0 and incident.next_escalation_at is not None:  # a slower check joined the problems
            incident.next_escalation_at = max(incident.next_escalation_at, self._first_page_due(incident))
        batch.touch(incident)

    def _first_page_due(self, incident: IncidentRecord) -> float:
        """When the first page is due: group_wait after opening, "auto" by the checks that are its problems
        (a blip of theirs must have had time to recover), not by every check of the target."""
        engine = self.engine
        failed = {*incident.affected.get("cause", {}), *incident.affected.get("checks", {})}
        checks = [engine.checks[c].check for c in failed if c in engine.checks]
        return incident.opened_at + first_page_wait(self.response.incidents, checks)

    def _merge(self, incident: IncidentRecord, root: IncidentRecord, now: float, batch: Batch) -> None:
        """A child's incident folds into its root cause's, with the services it took down."""
        self.close(incident, now, "system", f"merged into {root.key}", batch)
        batch.merges.append((incident, root))
        for key in ("services", "services_now", "service_names"):
            moved = incident.affected.get(key, {})
            into = root.affected.setdefault(key, {})
            for name, value in moved.items():
                into[name] = worst_state(into.get(name), value) if key == "services" else value
        for name, owner in list(self._spells.items()):
            if owner is incident:
                self._spells[name] = root
        self._rate(root, now, batch)

    def _join(self, name: str, now: float, batch: Batch) -> None:
        """A service just went DOWN through failures of targets that have incidents of their own (the
        backup circuit of a DEGRADED link): one outage, one incident. The one that covered the service
        first (else the oldest) takes the others' targets, causes and services; they are merged into it."""
        engine = self.engine
        srt = engine.services[name]
        found: dict[str, IncidentRecord] = {}
        for m in (engine.checks[c] for c in srt.service.check_ids):
            if m.state in (State.DOWN, State.DEGRADED):
                incident = self._own(m.check.target.name)
                if incident is not None:
                    found.setdefault(incident.key, incident)
        if len(found) < 2:
            return
        ranked = sorted(found.values(), key=lambda i: (name not in i.affected.get("services_now", {}), i.opened_at))
        keep = ranked[0]
        for other in ranked[1:]:
            targets = keep.affected.setdefault("targets", [])
            targets += [t for t in self._members(other) if t not in targets and f"target:{t}" != keep.key]
            for check, reason in other.affected.get("cause", {}).items():
                keep.affected.setdefault("cause", {}).setdefault(check, reason)
            children = keep.affected.setdefault("children", [])
            children += [c for c in other.affected.get("children", []) if c not in children]
            detail = {"service": name, "key": other.key, "targets": self._members(other)}
            batch.touch(keep, IncidentEvent(keep.id, now, "joined", None, detail))
            log.warning("incident_joined", key=keep.key, joined=other.key, service=name)
            self._merge(other, keep, now, batch)
        svc = srt.service
        keep.title = f"{svc.display_name}{messages.TITLE_TROUBLE[0]}"
        keep.title_en = f"{svc.display_name_en or svc.display_name}{messages.TITLE_TROUBLE[1]}"
        keep.affected["checks"] = {}  # re-read below with every member's problems
        self._problems_changed(keep, now, batch)

    def _open_incident(self, target: str, problems: dict[str, str | None], now: float, batch: Batch) -> IncidentRecord:
        engine = self.engine
        t = engine.inventory.targets[target]
        labels = {"target": target, **{k: t.labels[k] for k in INCIDENT_LABELS if t.labels.get(k)}}
        services = sorted({s for c in problems for s in engine.inventory.services_by_check.get(c, ())})
        if services:
            labels["service"] = services[0]
        degraded_only = all(engine.checks[c].state != State.DOWN for c in problems)
        severity = incident_severity(labels, {}, self.response.incidents, degraded_only)
        site = engine.inventory.sites.get(labels.get("site", ""))
        title, title_en = messages.titles(target, labels, (site.name, site.name_en) if site else None)
        incident = IncidentRecord(
            key=f"target:{target}",
            severity=severity,
            title=title,
            title_en=title_en,
            opened_at=now,
            reason=_reason(problems),
            labels=labels,
            playbook=choose_playbook(labels, severity, self.response.routing, now),
            affected={"checks": problems, "cause": dict(problems), "services": {}, "services_now": {}, "children": []},
        )
        # when the trouble began: the start of the first failed result of the run that confirmed it (the page's
        # 発生時刻 and Alertmanager's startsAt), not when it was confirmed (opened_at, the detection)
        began = [s for c in problems if (s := engine.checks[c].since) is not None and s <= now]
        if began:
            incident.affected["began_at"] = min(began)
        if incident.playbook in self.response.playbooks:
            incident.next_escalation_at = self._first_page_due(incident)
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
        """Attribute a service's state to the incidents whose targets cause it. An outage stays with the
        incident it was first attributed to (a blip of a child while its parent recovers never takes it),
        and an incident keeps every service it took down in `services` after they recover."""
        engine = self.engine
        srt = engine.services.get(name)
        if srt is None:
            return
        covering: dict[str, IncidentRecord] = {}
        if srt.state in LIVE:
            for m in (engine.checks[c] for c in srt.service.check_ids):
                if m.state in LIVE:
                    incident = self._covering(m.check.target.name)
                    if incident is None and m.root_cause:
                        incident = self._covering(m.root_cause)
                    if incident is not None:
                        covering[incident.key] = incident
        else:
            self._spells.pop(name, None)
        owner = self._spells.get(name)
        if owner is None and covering:  # the first incident to cover this outage owns it to its end
            owner = self._spells[name] = next(iter(covering.values()))
        svc = srt.service
        members = {engine.checks[c].check.target.name for c in svc.check_ids}
        out = {engine.checks[c].check.target.name for c in svc.check_ids if engine.checks[c].state in LIVE}
        for key, incident in self.open.items():
            current = incident.affected.setdefault("services_now", {})
            if key in covering:
                current[name] = srt.state.value
                if owner is None or incident is owner or incident.opened_at <= owner.opened_at:
                    taken = incident.affected.setdefault("services", {})
                    taken[name] = worst_state(taken.get(name), srt.state.value)
                names = incident.affected.setdefault("service_names", {})
                names[name] = [svc.display_name, svc.display_name_en]
                if len(members) > 1:  # which of a redundant service's members are out: "DOWN: both circuits"
                    incident.affected.setdefault("service_members", {})[name] = sorted(out)
            elif name in current:
                del current[name]
            else:
                continue
            self._rate(incident, now, batch)

    def _rate(self, incident: IncidentRecord, now: float, batch: Batch) -> None:
        """Recompute severity from the services affected now; before the first page, re-route too;
        after it, the change is paged to those already paged."""
        engine = self.engine
        services = {
            s: (state, dict(engine.services[s].service.labels))
            for s, state in incident.affected.get("services_now", {}).items()
            if s in engine.services
        }
        target_labels = {k: v for k, v in incident.labels.items() if k != "service"}
        degraded_only = not services and all(
            engine.checks[c].state != State.DOWN for c in incident.affected.get("checks", {}) if c in engine.checks
        )
        severity = incident_severity(target_labels, services, self.response.incidents, degraded_only)
        events = []
        if severity != incident.severity:
            incident.affected["peak_severity"] = worst([severity, peak_severity(incident.severity, incident.affected)])
            events.append(
                IncidentEvent(incident.id, now, "severity", None, {"from": incident.severity, "to": severity})
            )
            incident.affected["severity_from"] = incident.severity
            incident.severity = severity
            if incident.level == 0:
                incident.playbook = choose_playbook(incident.labels, severity, self.response.routing, now)
            elif incident not in batch.rerated:
                incident.affected["rerates"] = int(incident.affected.get("rerates", 0)) + 1
                batch.rerated.append(incident)
        batch.touch(incident, *events)

    # --- resolving -------------------------------------------------------------------------

    def close(self, incident: IncidentRecord, now: float, actor: str, reason: str, batch: Batch) -> None:
        incident.status = "resolved"
        incident.resolved_at, incident.resolved_by, incident.resolve_reason = now, actor, reason
        incident.next_escalation_at = incident.next_repeat_at = None
        self.open.pop(incident.key, None)
        batch.touch(incident, IncidentEvent(incident.id, now, "resolved", actor, {"reason": reason}))
        batch.resolved.append(incident)
        log.info("incident_resolved", key=incident.key, id=incident.id, reason=reason, actor=actor)

    async def commit(self, batch: Batch, now: float) -> None:
        changed = [i for i, _ in batch.created] + [i for i, _ in batch.saved.values()]
        await self._write(batch, now)
        self._work.set()  # timers may have moved: the task re-reads them
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
        for incident in batch.rerated:
            if incident.id and incident.status != "resolved":
                batch.pages += await self._page_rerated(incident, now)
        if batch.pages:
            await self.store.enqueue(batch.pages)
            self._wake_outbox()

    async def _page_rerated(self, incident: IncidentRecord, now: float) -> list[OutboxItem]:
        """Tell everyone already paged that the severity changed. A worse one at once; a milder one (a
        circuit back) once it has lasted as long as a blip would, so that the step down on the way to
        recovery does not page a second before RESOLVED does. A change not sent yet is replaced."""
        await self.store.cancel_pending(incident.id, ("update",))
        sent = await self.store.notifications(incident.id)
        told = messages.told_severity(sent)
        if told is None:  # only pages stored before they recorded their severity (upgraded mid-incident)
            told = str(incident.affected.get("severity_from", ""))
        if told == incident.severity:
            # A change undone before it was told (the step down held like a blip, then back up; the services
            # re-attributed after a restart): the people paged know this severity already.
            return []
        incident.affected["severity_from"] = before = told
        items = paging.pages_to_paged(self.response, incident, "update", now, sent)
        if worst([before, incident.severity]) == before != incident.severity:
            engine = self.engine
            checks = [
                engine.checks[c].check
                for t in self._members(incident)
                for c in engine.inventory.checks_by_target.get(t, ())
            ]
            hold = now + first_page_wait(self.response.incidents, checks)
            for item in items:
                item.not_before = hold
        return items

    async def _page_resolved(self, incident: IncidentRecord, now: float) -> None:
        """Cancel pages not sent yet; tell everyone who was paged that it is over."""
        await self.store.cancel_pending(incident.id, ("firing", "repeat", "update"))
        book = self.response.playbooks.get(incident.playbook or "")
        if book is not None and not book.notify_resolved:
            return
        sent = await self.store.notifications(incident.id)
        items = paging.pages_to_paged(self.response, incident, "resolved", now, sent)
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
                    self.escalate(incident, now, batch, reason="acknowledgement expired")
            elif incident.next_escalation_at is not None and now >= incident.next_escalation_at:
                self.escalate(incident, now, batch, reason="not acknowledged in time" if incident.level else "detected")
            elif incident.next_repeat_at is not None and now >= incident.next_repeat_at:
                incident.repeats += 1
                batch.pages += paging.pages(
                    self.response, incident, incident.level, "repeat", now, on_call=self.roster.people
                )
                _, incident.next_repeat_at = paging.next_times(self.response, incident, now)
                batch.touch(incident, IncidentEvent(incident.id, now, "repeated", None, {"level": incident.level}))
        await self.commit(batch, now)

    def escalate(
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
        pages = paging.pages(self.response, incident, incident.level, kind, now, on_call=self.roster.people)
        batch.pages += pages
        incident.next_escalation_at, incident.next_repeat_at = paging.next_times(self.response, incident, now)
        detail = {
            "level": incident.level,
            "reason": reason,
            "recipients": sorted({f"{p.channel}:{p.recipient}" for p in pages}),
        }
        batch.touch(incident, IncidentEvent(incident.id, now, "escalated", actor, detail))
        if not pages:  # e.g. a schedule with nobody on call now (a coverage gap check-config would have named)
            log.error("level_paged_nobody", id=incident.id, level=incident.level, playbook=incident.playbook)
        log.warning("incident_escalated", id=incident.id, key=incident.key, level=incident.level, reason=reason)
        return True

    def _recovery_due(self, incident: IncidentRecord, now: float, batch: Batch) -> None:
        """目標復旧時間: at `warn_at` of the objective page the next level (acknowledged or not: missing
        the objective is for the next level to know); at the objective, record the breach. Once each."""
        recovery = self.engine.inventory.recovery
        objective = incident_objective(incident, recovery)
        if objective is None:
            return
        elapsed = now - incident.opened_at
        if elapsed >= recovery.warn_at * objective and "recovery_warned_at" not in incident.affected:
            incident.affected["recovery_warned_at"] = now
            detail = {"objective_seconds": objective, "elapsed_seconds": round(elapsed, 1)}
            batch.touch(incident, IncidentEvent(incident.id, now, "recovery_warning", None, detail))
            if recovery.escalate == "next_level":
                self.escalate(incident, now, batch, reason="recovery-time objective about to be missed")
        if elapsed >= objective and "recovery_breached_at" not in incident.affected:
            incident.affected["recovery_breached_at"] = now
            detail = {"objective_seconds": objective, "elapsed_seconds": round(elapsed, 1)}
            batch.touch(incident, IncidentEvent(incident.id, now, "recovery_breached", None, detail))
            log.warning("recovery_objective_missed", id=incident.id, key=incident.key, objective=objective)
