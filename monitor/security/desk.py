"""The security desk: security incidents from detection to reconnect, one open per connection.

detected -> proposed --approve(s)--> approved -> cutting -> cut --reconnect(+approve)--> reconnect_approved
         -> reconnecting -> reconnected (closed); deny closes a proposed cut (denied) or withdraws a reconnect.
A failed execution or verification stops in cut_failed / reconnect_failed and pages again; execute retries.

Detection pages the security team at once through an incident (escalation and ack as for any other).
Every phase is in the store before the next thing happens, and every step and decision goes to the
hash-chained audit log, so a restart resumes where it stood and nothing is done twice. While a
connection is cut, its interface check and the organisation's checks are in a maintenance window of
the desk's own: a deliberate cut pages nobody as an outage and is not an outage in the reports.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from monitor.clock import Clock
from monitor.config.security_model import Connection, SecurityConfig, SecurityPlaybook
from monitor.core.inventory import Inventory
from monitor.flows.policy_metrics import FlowPolicyMetrics
from monitor.flows.records import FlowRecord
from monitor.flows.watch import FlowWatch
from monitor.incidents.actions import IncidentActionError
from monitor.incidents.manager import IncidentManager
from monitor.security import notices
from monitor.security.actions import ActionError
from monitor.security.anomaly import AnomalyDetector, Baselines, Detection
from monitor.security.connections import Connections
from monitor.security.errors import SecurityError
from monitor.security.execute import Executor
from monitor.security.intake import SecurityIntake
from monitor.store.base import Store
from monitor.store.records import AuditEntry, MaintenanceWindow, SecurityIncident
from monitor.traps.decode import TrapEvent
from probes.base import ProbeResult

log = structlog.get_logger()
CUT_PHASES = (
    "cutting",
    "cut",
    "cut_failed",
    "reconnect_requested",
    "reconnect_approved",
    "reconnecting",
    "reconnect_failed",
)
FOREVER = 10 * 365 * 86400.0


class SecurityMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "monitor_security_events_total",
            "Security detections by source and what they did.",
            ["source", "outcome"],
            registry=registry,
        )
        self.actions = Counter(
            "monitor_security_actions_total",
            "Cuts and reconnects carried out, by outcome.",
            ["step", "outcome"],
            registry=registry,
        )
        self.open = Gauge(
            "monitor_security_incidents_open", "Open security incidents by phase.", ["phase"], registry=registry
        )
        self.flows = FlowPolicyMetrics(registry)


class SecurityDesk:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        inventory: Callable[[], Inventory],
        incidents: IncidentManager,
        executor: Executor,
        ifindex: Callable[[str], int | None],
        maintenance_changed: Callable[[], Awaitable[None]],
        wake_outbox: Callable[[], None],
        metrics: SecurityMetrics,
    ) -> None:
        self.store = store
        self.clock = clock
        self._inventory = inventory
        self.incidents = incidents
        self.executor = executor
        self._maintenance_changed = maintenance_changed
        self._wake_outbox = wake_outbox
        self.metrics = metrics
        self.connections = Connections(inventory, ifindex)
        self.baselines = Baselines()
        self.detector = AnomalyDetector(self.config.connections, self.baselines)
        self.open: dict[str, SecurityIncident] = {}  # by connection
        self._lock = asyncio.Lock()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._settling: dict[int, SecurityIncident] = {}  # reconnected; window kept until their checks are UP
        self._tasks: set[asyncio.Task[Any]] = set()
        # detections in (we are its Casebook): results, traps and IDS events open or extend incidents
        self.intake = SecurityIntake(
            self, self.connections, self.detector, store, clock, incidents, inventory, metrics.events
        )
        # the flow policy: the flow collector's sink (through on_flows); findings go to the intake
        self.flows = FlowWatch(inventory, ifindex, clock, self.intake.on_flows, metrics.flows)

    @property
    def config(self) -> SecurityConfig:
        return self.connections.config

    def connection(self, name: str) -> Connection | None:
        return self.connections.get(name)

    def playbook(self, connection: Connection) -> SecurityPlaybook:
        return self.connections.playbook(connection)

    # --- detections (monitor.security.intake; the daemon and the API call them on the desk) ---

    def on_result(self, check_id: str, result: ProbeResult) -> None:
        self.intake.on_result(check_id, result)

    def on_trap(self, event: TrapEvent) -> None:
        self.intake.on_trap(event)

    def on_flows(self, records: list[FlowRecord]) -> None:
        """FlowSink (monitor.flows.records): decoded flow records from the collector."""
        self.flows.on_flows(records)

    async def detect(self, detection: Detection) -> tuple[SecurityIncident, bool]:
        return await self.intake.detect(detection)

    @property
    def lock(self) -> asyncio.Lock:
        return self._lock

    async def opened(self, incident: SecurityIncident, book: SecurityPlaybook) -> None:
        """Casebook: a detection opened `incident` and paged; a severity the playbook cuts automatically
        is approved and carried out at once."""
        if incident.severity in book.automatic:
            incident.approvals.append({"step": "cut", "actor": "system", "at": incident.opened_at, "automatic": True})
            await self._set_phase(incident, "approved", "system", reason=f"automatic for {incident.severity}")
            self._start_step(incident, "system", resumed=False)
        self.update_gauges()

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self.baselines.buckets = await self.store.traffic_baselines()
        self.flows.load_baselines(await self.store.flow_peers())
        for incident in await self.store.open_security_incidents():
            self.open[incident.connection] = incident
        log.info("security_desk_started", open=len(self.open), baselines=len(self.baselines.buckets))
        for incident in self.open.values():
            connection = self.connection(incident.connection)
            if connection is None:
                log.error("security_connection_gone", id=incident.id, connection=incident.connection)
                continue
            book = self.playbook(connection)
            if incident.phase in ("cutting", "reconnecting"):
                await self.audit("system", "security.resume", f"security:{incident.id}", phase=incident.phase)
                self._start_step(incident, "system", resumed=True)
            elif incident.phase in ("approved", "reconnect_approved") and book.execute_on_approval:
                self._start_step(incident, "system", resumed=False)
        self.spawn(self._save_baselines_every(60.0))
        self.update_gauges()

    async def stop(self) -> None:
        for task in [*self._tasks, *self._running.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._running.values(), return_exceptions=True)
        await self.store.save_traffic_baselines(self.baselines.take_dirty())
        await self.store.save_flow_peers(self.flows.take_dirty())
        self.executor.snmp.close()

    def reload(self) -> None:
        self.detector.configure(self.config.connections)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _save_baselines_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.store.save_traffic_baselines(self.baselines.take_dirty())
                await self.store.save_flow_peers(self.flows.take_dirty())
            except Exception:
                log.exception("traffic_baselines_not_saved")

    def update_gauges(self) -> None:
        self.metrics.open.clear()
        for incident in self.open.values():
            self.metrics.open.labels(incident.phase).inc()

    # --- decisions -------------------------------------------------------------------------

    async def find(self, incident_id: int) -> SecurityIncident:
        for incident in self.open.values():
            if incident.id == incident_id:
                return incident
        stored = await self.store.get_security_incident(incident_id)
        if stored is None:
            raise SecurityError(f"no security incident #{incident_id}", 404)
        return stored

    def _resolve_parts(self, incident: SecurityIncident) -> tuple[Connection, SecurityPlaybook]:
        connection = self.connection(incident.connection)
        if connection is None:
            raise SecurityError(f'connection "{incident.connection}" is no longer in the config', 409)
        return connection, self.playbook(connection)

    async def approve(self, incident_id: int, actor: str) -> SecurityIncident:
        async with self._lock:
            incident = await self.find(incident_id)
            if incident.phase not in ("proposed", "reconnect_requested"):
                raise SecurityError(f"security incident #{incident_id} is {incident.phase}: nothing waits for approval")
            _, book = self._resolve_parts(incident)
            step = incident.step
            given = [a for a in incident.approvals if a["step"] == step]
            if any(a["actor"] == actor for a in given):
                raise SecurityError(
                    f"{actor} has already approved the {step}: it needs {book.approvals} different approvers"
                )
            incident.approvals.append({"step": step, "actor": actor, "at": self.clock.now()})
            if len(given) + 1 < book.approvals:
                incident.updated_at = self.clock.now()
                await self.store.save_security_incident(incident)
                await self.audit(
                    actor,
                    f"security.{step}.approval",
                    f"security:{incident.id}",
                    approvals=len(given) + 1,
                    needed=book.approvals,
                )
                return incident
            await self._set_phase(incident, "approved" if step == "cut" else "reconnect_approved", actor)
        if book.execute_on_approval:
            self._start_step(incident, actor, resumed=False)
        return incident

    async def deny(self, incident_id: int, actor: str, reason: str) -> SecurityIncident:
        async with self._lock:
            incident = await self.find(incident_id)
            if incident.phase in ("proposed", "approved", "cut_failed"):
                if incident.id in self._running:
                    raise SecurityError("the cut is being executed; deny it once it has finished or failed")
                await self._set_phase(incident, "denied", actor, reason=reason)
                await self._close(incident, actor, f"denied: {reason}")
            elif incident.phase in ("reconnect_requested", "reconnect_approved", "reconnect_failed"):
                if incident.id in self._running:
                    raise SecurityError("the reconnect is being executed")
                incident.approvals = [a for a in incident.approvals if a["step"] != "reconnect"]
                await self._set_phase(incident, "cut", actor, reason=f"reconnect denied: {reason}")
            else:
                raise SecurityError(f"security incident #{incident_id} is {incident.phase}: nothing to deny")
        return incident

    async def request_reconnect(self, incident_id: int, actor: str, reason: str) -> SecurityIncident:
        """Ask to reconnect a cut connection; the request counts as the requester's approval."""
        async with self._lock:
            incident = await self.find(incident_id)
            if incident.phase not in ("cut", "cut_failed"):
                raise SecurityError(
                    f"security incident #{incident_id} is {incident.phase}: only a cut connection can be reconnected"
                )
            await self._set_phase(incident, "reconnect_requested", actor, reason=reason)
        return await self.approve(incident_id, actor)

    async def execute(self, incident_id: int, actor: str, dry_run: bool = False) -> dict[str, Any]:
        """Run the approved step now (or again after a failure); with dry_run only say what would be done."""
        incident = await self.find(incident_id)
        connection, book = self._resolve_parts(incident)
        edge = self.connections.edge(connection, incident)
        plan = notices.proposal(connection, book, edge) | {"step": incident.step}
        if dry_run or book.dry_run:
            await self.audit(actor, f"security.{incident.step}.dry_run", f"security:{incident.id}", plan=plan)
            self.metrics.actions.labels(incident.step, "dry_run").inc()
            return {"dry_run": True, "phase": incident.phase, "would": plan, "text": notices.describe(plan)}
        async with self._lock:
            if incident.id in self._running:
                raise SecurityError(f"the {incident.step} of #{incident.id} is running already")
            runnable = ("approved", "cut_failed", "reconnect_approved", "reconnect_failed")
            if incident.phase not in runnable:
                waiting = "needs approval" if incident.phase in ("proposed", "reconnect_requested") else "is done"
                raise SecurityError(f"security incident #{incident.id} is {incident.phase}: the step {waiting}")
        task = self._start_step(incident, actor, resumed=False)
        await asyncio.shield(task)
        return {"dry_run": False, "phase": incident.phase, "executions": incident.executions[-1:]}

    # --- carrying out a step ---------------------------------------------------------------

    def _start_step(self, incident: SecurityIncident, actor: str, resumed: bool) -> asyncio.Task[None]:
        running = self._running.get(incident.id)
        if running is not None:
            return running
        task = asyncio.ensure_future(self._run_step(incident, actor, resumed))
        self._running[incident.id] = task
        task.add_done_callback(lambda _: self._running.pop(incident.id, None))
        return task

    async def _run_step(self, incident: SecurityIncident, actor: str, resumed: bool) -> None:
        step = incident.step
        obj = f"security:{incident.id}"
        try:
            connection, book = self._resolve_parts(incident)
        except SecurityError as exc:
            log.error("security_step_impossible", id=incident.id, error=str(exc))
            return
        edge = self.connections.edge(connection, incident)
        running_phase = "cutting" if step == "cut" else "reconnecting"
        record = incident.executions[-1] if resumed and incident.executions else None
        if record is None or record.get("finished_at") is not None:
            attempt = sum(1 for e in incident.executions if e["step"] == step) + 1
            record = {
                "step": step,
                "attempt": attempt,
                "actor": actor,
                "started_at": self.clock.now(),
                "finished_at": None,
                "outcome": "started",
                "detail": notices.describe(incident.proposal),
            }
            incident.executions.append(record)
            async with self._lock:
                await self._set_phase(incident, running_phase, actor, attempt=attempt)
            if step == "cut":
                await self._maintenance_changed()  # the cut's own effects page nobody as an outage
        try:
            said = await self.executor.apply(incident, connection, book, edge, record["attempt"], resumed)
        except ActionError as exc:
            await self._step_failed(incident, record, f"action failed: {exc}")
            return
        await self.audit(
            "system", f"security.{step}.executed", obj, attempt=record["attempt"], result=said, resumed=resumed
        )
        activity = self.flows.activity
        ok, findings = await self.executor.verify(
            incident, connection, book, edge, self.clock.now(), lambda: activity.get(connection.name)
        )
        if not ok:
            await self._step_failed(incident, record, "verification failed: " + "; ".join(findings))
            return
        now = self.clock.now()
        record.update(finished_at=now, outcome="verified", findings=findings, result=said)
        self.metrics.actions.labels(step, "ok").inc()
        async with self._lock:
            if step == "cut":
                incident.cut_at = now
                await self._set_phase(incident, "cut", "system", findings=findings)
            else:
                incident.reconnected_at = now
                await self._set_phase(incident, "reconnected", "system", findings=findings)
                await self._close(incident, "system", "reconnected and verified")
        await self._note(incident, f"{notices.STEP_JA[step]}を確認しました / {step} verified: " + "; ".join(findings))
        await self._notify_organisation(incident, connection, step)
        if step == "reconnect":
            await self._lift_window(incident, connection, book)

    async def _lift_window(self, incident: SecurityIncident, connection: Connection, book: SecurityPlaybook) -> None:
        """End the desk's maintenance window once the connection's checks are UP by their own probes."""
        self._settling[incident.id] = incident
        try:
            waiting = await self.executor.settle(self._window_checks(connection), book.verify.timeout + 60.0)
            if waiting:
                log.warning("security_window_lifted_with_checks_down", id=incident.id, checks=waiting)
        finally:
            self._settling.pop(incident.id, None)
            await self._maintenance_changed()

    async def _step_failed(self, incident: SecurityIncident, record: dict[str, Any], why: str) -> None:
        step = incident.step
        record.update(finished_at=self.clock.now(), outcome="failed", error=why)
        self.metrics.actions.labels(step, "failed").inc()
        log.error("security_step_failed", id=incident.id, step=step, error=why)
        async with self._lock:
            await self._set_phase(incident, f"{step}_failed", "system", error=why)
        if incident.incident_id:
            try:
                await self.incidents.escalate_now(incident.incident_id, "system", f"{step} failed: {why}"[:1000])
            except IncidentActionError as exc:  # resolved meanwhile, or no playbook: the note still says it
                log.warning("security_escalation_failed", id=incident.id, error=str(exc))
                await self._note(incident, f"{step} failed: {why}")

    # --- records ---------------------------------------------------------------------------

    async def _set_phase(self, incident: SecurityIncident, phase: str, actor: str, **detail: Any) -> None:
        old, incident.phase = incident.phase, phase
        incident.updated_at = self.clock.now()
        await self.store.save_security_incident(incident)
        await self.audit(actor, "security.phase", f"security:{incident.id}", old=old, new=phase, **detail)
        log.info("security_phase", id=incident.id, connection=incident.connection, old=old, new=phase, actor=actor)
        self.update_gauges()

    async def _close(self, incident: SecurityIncident, actor: str, reason: str) -> None:
        incident.closed_at, incident.closed_by, incident.close_reason = self.clock.now(), actor, reason
        await self.store.save_security_incident(incident)
        self.open.pop(incident.connection, None)
        self.update_gauges()
        if incident.incident_id:
            with contextlib.suppress(IncidentActionError):  # resolved by hand already
                await self.incidents.resolve(incident.incident_id, actor, reason)

    async def _note(self, incident: SecurityIncident, text: str) -> None:
        if incident.incident_id:
            with contextlib.suppress(IncidentActionError):
                await self.incidents.add_note(incident.incident_id, "system", text[:4000])

    async def _notify_organisation(self, incident: SecurityIncident, connection: Connection, step: str) -> None:
        items = notices.organisation_notices(self._inventory().response, connection, incident, step, self.clock.now())
        if items:
            await self.store.enqueue(items)
            self._wake_outbox()
            await self.audit(
                "system",
                f"security.{step}.notified",
                f"security:{incident.id}",
                recipients=sorted({f"{i.channel}:{i.recipient}" for i in items}),
            )

    async def audit(self, actor: str, action: str, obj: str, **detail: Any) -> None:
        await self.store.audit(
            AuditEntry(at=self.clock.now(), actor=actor, action=action, outcome="ok", object=obj, detail=detail)
        )

    # --- maintenance while cut -------------------------------------------------------------

    def _window_checks(self, connection: Connection) -> list[str]:
        inventory = self._inventory()
        return [connection.check, *(c for t in connection.targets for c in inventory.checks_by_target.get(t, ()))]

    def windows(self) -> Iterable[MaintenanceWindow]:
        """A window per cut connection over its interface check and the organisation's checks."""
        for incident in [*self.open.values(), *self._settling.values()]:
            connection = self.connection(incident.connection)
            if connection is None or (incident.phase not in CUT_PHASES and incident.id not in self._settling):
                continue
            checks = self._window_checks(connection)
            started = next((e["started_at"] for e in incident.executions if e["step"] == "cut"), incident.updated_at)
            yield MaintenanceWindow(
                name=f"security-cut-{incident.id}",
                reason=f"接続遮断 #{incident.id} ({connection.organisation})",
                created_by="security",
                created_at=started,
                scope={"checks": checks},
                source="security",
                starts_at=started,
                ends_at=started + FOREVER,
                id=incident.id,
            )
