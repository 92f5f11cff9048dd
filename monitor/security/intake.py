"""Detections in, security incidents out: traffic anomalies (from the connection's interface check),
security traps and IDS events are mapped to a connection; the first one opens a security incident and
pages the security team at once, later ones add evidence. Mixed into SecurityDesk."""

from __future__ import annotations

import ipaddress
import sqlite3
from typing import Any

import structlog

from monitor.config.security_model import Connection, SecurityConfig, SecurityPlaybook
from monitor.security import notices
from monitor.security.anomaly import AnomalyDetector, Detection
from monitor.security.errors import SecurityError
from monitor.security.execute import Edge
from monitor.store.base import Store
from monitor.store.records import IncidentRecord, SecurityIncident

log = structlog.get_logger()


class IntakeMixin:
    """Uses the desk's state and helpers (declared here for the type checker)."""

    detector: AnomalyDetector
    open: dict[str, SecurityIncident]
    metrics: Any
    store: Store
    clock: Any
    incidents: Any
    _lock: Any
    _inventory: Any
    _ifindex: Any

    @property
    def config(self) -> SecurityConfig: ...  # type: ignore[empty-body]

    def connection(self, name: str) -> Connection | None: ...
    def playbook(self, connection: Connection) -> SecurityPlaybook: ...  # type: ignore[empty-body]
    def _spawn(self, coro: Any) -> None: ...
    def update_gauges(self) -> None: ...
    async def _audit(self, actor: str, action: str, obj: str, **detail: Any) -> None: ...
    async def _set_phase(self, incident: SecurityIncident, phase: str, actor: str, **detail: Any) -> None: ...
    def _start_step(self, incident: SecurityIncident, actor: str, resumed: bool) -> Any: ...

    # --- detection inputs ------------------------------------------------------------------

    def on_result(self, check_id: str, result: Any) -> None:
        """Probe path (synchronous): counters of a connection's interface check."""
        if check_id not in self.detector.by_check or not result.ok:
            return
        values = {s.name: s.value for s in result.series if s.name.startswith("monitor_if_")}
        detection = self.detector.observe(check_id, values, result.finished_at)
        if detection is not None:
            self._spawn(self.detect(detection))

    def on_trap(self, event: Any) -> None:
        """Trap listener (synchronous): traps mapped as security events."""
        if event.event != "security":
            return
        connection = self._connection_for_trap(event.agent, event.if_index, [v for _, v in event.varbinds])
        if connection is None:
            self.metrics.events.labels("trap", "unmapped").inc()
            log.warning("security_trap_unmapped", agent=event.agent, trap=event.name, if_index=event.if_index)
            return
        detail = {
            "agent": event.agent,
            "trap": event.name,
            "trap_oid": event.trap_oid,
            "varbinds": [list(v) for v in event.varbinds[:20]],
        }
        summary = f"security trap {event.name} from {event.agent}"
        self._spawn(
            self.detect(Detection(connection.name, "trap", self.config.trap_severity, summary, event.at, detail))
        )

    def _connection_for_trap(self, agent: str, if_index: int | None, values: list[str]) -> Connection | None:
        """By an address in the varbinds inside a connection's ranges, else by the agent's device and
        the ifIndex the trap names, else the agent's only connection."""
        for text in values:
            try:
                address = ipaddress.ip_address(text.strip())
            except ValueError:
                continue
            found = self.connection_for_address(address)
            if found is not None:
                return found
        inventory = self._inventory()
        on_agent = [
            c
            for c in self.config.connections
            if (check := inventory.checks.get(c.check)) is not None and check.target.address == agent
        ]
        if if_index is not None:
            for connection in on_agent:
                if self._ifindex(connection.check) == if_index:
                    return connection
        return on_agent[0] if len(on_agent) == 1 else None

    def connection_for_address(self, address: Any) -> Connection | None:
        for connection in self.config.connections:
            if any(address in network for network in connection.addresses):
                return connection
        return None

    async def detect(self, detection: Detection) -> tuple[SecurityIncident, bool]:
        """Open a security incident (and page) or add the evidence to the open one."""
        connection = self.connection(detection.connection)
        if connection is None:
            raise SecurityError(f'no connection "{detection.connection}"', 422)
        evidence = {
            "at": detection.at,
            "source": detection.source,
            "severity": detection.severity,
            "summary": detection.summary,
            "detail": detection.detail,
        }
        async with self._lock:
            incident = self.open.get(connection.name)
            if incident is not None:
                incident.evidence = [*incident.evidence, evidence][-self.config.evidence_kept :]
                incident.updated_at = self.clock.now()
                await self.store.save_security_incident(incident)
                self.metrics.events.labels(detection.source, "appended").inc()
                return incident, False
            incident = await self._open(connection, detection, evidence)
        self.metrics.events.labels(detection.source, "opened").inc()
        return incident, True

    async def _open(self, connection: Connection, detection: Detection, evidence: dict[str, Any]) -> SecurityIncident:
        now = self.clock.now()
        book = self.playbook(connection)
        edge = self.edge(connection)
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
            await self.store.save_security_incident(incident)
        except sqlite3.IntegrityError:  # another daemon process holds an open one: take it over
            raise SecurityError(f"a security incident is already open for {connection.name}") from None
        self.open[connection.name] = incident
        obj = f"security:{incident.id}"
        await self._audit(
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
        await self.incidents.open_now(page, {"security_incident": incident.id, "summary": detection.summary})
        incident.incident_id = page.id
        await self.store.save_security_incident(incident)
        log.warning(
            "security_incident_opened",
            id=incident.id,
            connection=connection.name,
            source=detection.source,
            severity=detection.severity,
            summary=detection.summary,
        )
        if detection.severity in book.automatic:
            incident.approvals.append({"step": "cut", "actor": "system", "at": now, "automatic": True})
            await self._set_phase(incident, "approved", "system", reason=f"automatic for {detection.severity}")
            self._start_step(incident, "system", resumed=False)
        self.update_gauges()
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

    def edge(self, connection: Connection, incident: SecurityIncident | None = None) -> Edge:
        """The device and interface to act on. Once proposed, the proposal's ifIndex is the one
        approved (a daemon just restarted has not polled the interface yet)."""
        inventory = self._inventory()
        check = inventory.checks[connection.check]
        book = self.playbook(connection)
        org_checks = [c for t in connection.targets for c in inventory.checks_by_target.get(t, ())]
        return Edge(
            device=check.target.name,
            address=check.target.address,
            interface=str(check.request.params.get("interface")),
            if_index=book.action.if_index
            or (incident.proposal.get("if_index") if incident is not None else None)
            or self._ifindex(connection.check),
            read_settings=check.settings,
            org_checks=org_checks,
        )
