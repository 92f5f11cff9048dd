"""Detections in, security incidents out: traffic anomalies (from the connection's interface check),
security traps, IDS events and flow policy findings (monitor.flows) are mapped to a connection; the
first one opens a security incident and pages the security team at once, later ones add evidence.

`SecurityIntake` is owned by the desk and reaches it only through `Casebook` (the open security
incidents, the desk's lock, its audit log and what it does once an incident is open); it never imports
the desk."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import structlog
from prometheus_client import Counter

from monitor.clock import Clock
from monitor.config.security_model import Connection, SecurityPlaybook
from monitor.core.inventory import Inventory
from monitor.flows.detectors import Finding, five_tuple
from monitor.incidents.manager import IncidentManager
from monitor.security import notices
from monitor.security.anomaly import AnomalyDetector, Detection
from monitor.security.connections import Connections
from monitor.security.errors import SecurityError
from monitor.store.base import Store
from monitor.store.records import IncidentRecord, SecurityIncident
from monitor.traps.decode import TrapEvent
from probes.base import ProbeResult

log = structlog.get_logger()


class Casebook(Protocol):
    """What the intake needs from the security desk (which implements it)."""

    open: dict[str, SecurityIncident]  # by connection

    @property
    def lock(self) -> asyncio.Lock: ...  # the desk's: one decision about its incidents at a time

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...

    async def audit(self, actor: str, action: str, obj: str, **detail: Any) -> None: ...

    async def opened(self, incident: SecurityIncident, book: SecurityPlaybook) -> None:
        """A detection opened the incident and paged (called under the lock)."""
        ...


class SecurityIntake:
    def __init__(
        self,
        casebook: Casebook,
        connections: Connections,
        detector: AnomalyDetector,
        store: Store,
        clock: Clock,
        incidents: IncidentManager,
        inventory: Callable[[], Inventory],
        events: Counter,
    ) -> None:
        self._casebook = casebook
        self._connections = connections
        self._detector = detector
        self._store = store
        self._clock = clock
        self._incidents = incidents
        self._inventory = inventory
        self._events = events  # monitor_security_events_total{source, outcome}

    # --- detection inputs ------------------------------------------------------------------

    def on_result(self, check_id: str, result: ProbeResult) -> None:
        """Probe path (synchronous): counters of a connection's interface check."""
        if check_id not in self._detector.by_check or not result.ok:
            return
        values = {s.name: s.value for s in result.series if s.name.startswith("monitor_if_")}
        detection = self._detector.observe(check_id, values, result.finished_at)
        if detection is not None:
            self._casebook.spawn(self.detect(detection))

    def on_trap(self, event: TrapEvent) -> None:
        """Trap listener (synchronous): traps mapped as security events."""
        if event.event != "security":
            return
        connection = self._connections.for_trap(event.agent, event.if_index, [v for _, v in event.varbinds])
        if connection is None:
            self._events.labels("trap", "unmapped").inc()
            log.warning("security_trap_unmapped", agent=event.agent, trap=event.name, if_index=event.if_index)
            return
        detail = {
            "agent": event.agent,
            "trap": event.name,
            "trap_oid": event.trap_oid,
            "varbinds": [list(v) for v in event.varbinds[:20]],
        }
        summary = f"security trap {event.name} from {event.agent}"
        severity = self._connections.config.trap_severity
        self._casebook.spawn(self.detect(Detection(connection.name, "trap", severity, summary, event.at, detail)))

    def on_flows(self, finding: Finding) -> None:
        """Flow policy (synchronous, from the flow sink): a connection's detector found something."""
        self._casebook.spawn(self.flow_finding(finding))

    async def flow_finding(self, finding: Finding) -> SecurityIncident | None:
        """A finding opens or extends the incident with its flows as evidence, and the flows go to the
        audit log; a dry-run detector's finding only goes to the audit log."""
        if finding.dry_run:
            self._events.labels("flows", "dry_run").inc()
            await self._casebook.audit(
                "system", "security.flows.dry_run", f"connection:{finding.connection}", **finding.detail()
            )
            return None
        shown = "; ".join(five_tuple(f) for f in finding.flows[-3:])
        more = f" (+{len(finding.flows) - 3} more)" if len(finding.flows) > 3 else ""
        summary = f"flows, rule {finding.rule}: {finding.summary}. Flows: {shown}{more}"
        detection = Detection(
            finding.connection, "flows", finding.severity, summary, self._clock.now(), finding.detail()
        )
        try:
            incident, new = await self.detect(detection)
        except SecurityError as exc:  # the connection left the config between the flow and now
            self._events.labels("flows", "unmapped").inc()
            log.warning("security_flow_finding_dropped", connection=finding.connection, error=str(exc))
            return None
        await self._casebook.audit(
            "system", "security.flows.violation", f"security:{incident.id}", new=new, **finding.detail()
        )
        return incident

    async def detect(self, detection: Detection) -> tuple[SecurityIncident, bool]:
        """Open a security incident (and page) or add the evidence to the open one."""
        connection = self._connections.get(detection.connection)
        if connection is None:
            raise SecurityError(f'no connection "{detection.connection}"', 422)
        evidence = {
            "at": detection.at,
            "source": detection.source,
            "severity": detection.severity,
            "summary": detection.summary,
            "detail": detection.detail,
        }
        async with self._casebook.lock:
            incident = self._casebook.open.get(connection.name)
            if incident is not None:
                incident.evidence = [*incident.evidence, evidence][-self._connections.config.evidence_kept :]
                incident.updated_at = self._clock.now()
                await self._store.save_security_incident(incident)
                self._events.labels(detection.source, "appended").inc()
                return incident, False
            incident = await self._open(connection, detection, evidence)
        self._events.labels(detection.source, "opened").inc()
        return incident, True

    async def _open(self, connection: Connection, detection: Detection, evidence: dict[str, Any]) -> SecurityIncident:
        now = self._clock.now()
        book = self._connections.playbook(connection)
        edge = self._connections.edge(connection)
        incident = SecurityIncident(
            connection=connection.name,
            severity=detection.severity,
            opened_at=now,
            source=detection.source,
            summary=detection.summary,
            evidence=[evidence],
            proposal=notices.proposal(connection, book, edge),
            updated_at=now,
        )
        try:
            await self._store.save_security_incident(incident)
        except sqlite3.IntegrityError:  # another daemon process holds an open one: take it over
            raise SecurityError(f"a security incident is already open for {connection.name}") from None
        self._casebook.open[connection.name] = incident
        obj = f"security:{incident.id}"
        await self._casebook.audit(
            "system",
            "security.detected",
            obj,
            connection=connection.name,
            source=detection.source,
            severity=detection.severity,
            summary=detection.summary,
            proposal=incident.proposal,
        )
        page = self._page_incident(incident, connection, book)
        await self._incidents.open_now(page, {"security_incident": incident.id, "summary": detection.summary})
        incident.incident_id = page.id
        await self._store.save_security_incident(incident)
        log.warning(
            "security_incident_opened",
            id=incident.id,
            connection=connection.name,
            source=detection.source,
            severity=detection.severity,
            summary=detection.summary,
        )
        await self._casebook.opened(incident, book)
        return incident

    def _page_incident(
        self, incident: SecurityIncident, connection: Connection, book: SecurityPlaybook
    ) -> IncidentRecord:
        inventory = self._inventory()
        check = inventory.checks.get(connection.check)
        labels = {"alertname": "UnauthorizedTraffic", "connection": connection.name, "tier": "lgwan"}
        if check is not None:
            labels["target"] = check.target.name
            labels.update({k: check.target.labels[k] for k in ("prefecture", "site") if check.target.labels.get(k)})
        title, title_en = notices.titles(connection)
        return IncidentRecord(
            key=f"security:{incident.id}",
            severity=incident.severity,
            title=title,
            title_en=title_en,
            opened_at=incident.opened_at,
            reason=f"{incident.summary}. {notices.describe(incident.proposal)}",
            labels=labels,
            playbook=book.page,
            affected={"security_incident": incident.id},
        )
