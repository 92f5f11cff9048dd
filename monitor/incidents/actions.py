"""What people and other systems do to incidents: acknowledge, note, escalate, resolve (operators),
and alerts pushed by Alertmanager (e.g. SLO burn-rate alerts computed in Prometheus).

`IncidentActions` is owned by the incident manager and reaches it only through `Ledger`: the open
incidents, one change at a time, and the steps every change is made of (escalate, close, commit). It
never imports the manager, so the manager's state-change logic and these actions can be read apart."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from monitor.access.auth import Refused
from monitor.config.response_model import SEVERITIES, ResponseConfig
from monitor.incidents import messages
from monitor.incidents.batch import Batch
from monitor.incidents.policy import choose_playbook, first_page_wait
from monitor.store.base import Store
from monitor.store.records import IncidentEvent, IncidentRecord

# Severity labels of Prometheus alerts (SLO rules use page/ticket) in our scale.
ALERT_SEVERITY = {"page": "critical", "ticket": "minor", "critical": "critical", "warning": "warning"}

Change = Callable[[IncidentRecord, float, Batch], None]


class IncidentActionError(Refused):
    """The action does not apply to this incident (it answers 404 or 409)."""


class Ledger(Protocol):
    """What the actions need from the incident manager (which implements it)."""

    open: dict[str, IncidentRecord]  # by key; open or acknowledged

    @property
    def response(self) -> ResponseConfig: ...

    def locked(self) -> AbstractAsyncContextManager[float]:
        """Hold the one lock every change of the incidents takes; yields the time of the change."""
        ...

    async def commit(self, batch: Batch, now: float) -> None: ...

    def escalate(
        self, incident: IncidentRecord, now: float, batch: Batch, reason: str, actor: str | None = None
    ) -> bool: ...

    def close(self, incident: IncidentRecord, now: float, actor: str, reason: str, batch: Batch) -> None: ...


class IncidentActions:
    """Operator actions and inbound alerts, applied through the manager's ledger."""

    def __init__(self, ledger: Ledger, store: Store) -> None:
        self._ledger = ledger
        self._store = store

    async def _load(self, incident_id: int) -> IncidentRecord:
        for incident in self._ledger.open.values():
            if incident.id == incident_id:
                return incident
        stored = await self._store.get_incident(incident_id)
        if stored is None:
            raise IncidentActionError(f"no incident #{incident_id}", 404)
        return stored

    async def _act(self, incident_id: int, change: Change) -> IncidentRecord:
        async with self._ledger.locked() as now:
            incident = await self._load(incident_id)
            batch = Batch()
            change(incident, now, batch)
            await self._ledger.commit(batch, now)
            return incident

    async def acknowledge(self, incident_id: int, actor: str, comment: str = "") -> IncidentRecord:
        def change(incident: IncidentRecord, now: float, batch: Batch) -> None:
            if incident.status == "resolved":
                raise IncidentActionError(f"incident #{incident.id} is resolved")
            if incident.status == "acknowledged":
                raise IncidentActionError(f"incident #{incident.id} is already acknowledged by {incident.acked_by}")
            book = self._ledger.response.playbooks.get(incident.playbook or "")
            incident.status, incident.acked_at, incident.acked_by = "acknowledged", now, actor
            incident.next_escalation_at = incident.next_repeat_at = None
            incident.ack_expires_at = now + book.ack_expiry if book and book.ack_expiry else None
            batch.touch(incident, IncidentEvent(incident.id, now, "acknowledged", actor, {"comment": comment}))

        return await self._act(incident_id, change)

    async def add_note(self, incident_id: int, actor: str, text: str) -> IncidentRecord:
        def change(incident: IncidentRecord, now: float, batch: Batch) -> None:
            batch.touch(incident, IncidentEvent(incident.id, now, "note", actor, {"text": text}))

        return await self._act(incident_id, change)

    async def escalate_now(self, incident_id: int, actor: str, comment: str = "") -> IncidentRecord:
        def change(incident: IncidentRecord, now: float, batch: Batch) -> None:
            if incident.status == "resolved":
                raise IncidentActionError(f"incident #{incident.id} is resolved")
            incident.status, incident.ack_expires_at = "open", None
            if not self._ledger.escalate(incident, now, batch, reason=comment or "escalated by hand", actor=actor):
                raise IncidentActionError(f"incident #{incident.id} has no playbook to escalate with")

        return await self._act(incident_id, change)

    async def resolve(self, incident_id: int, actor: str, reason: str = "resolved by hand") -> IncidentRecord:
        def change(incident: IncidentRecord, now: float, batch: Batch) -> None:
            if incident.status == "resolved":
                raise IncidentActionError(f"incident #{incident.id} is resolved already")
            self._ledger.close(incident, now, actor, reason, batch)

        return await self._act(incident_id, change)

    async def open_now(self, incident: IncidentRecord, detail: dict[str, Any]) -> IncidentRecord:
        """An incident raised by another part of the daemon (the disconnect playbook), its first level
        paged at once: there are no children to wait for, so no group_wait."""
        async with self._ledger.locked() as now:
            batch = Batch()
            self._ledger.open[incident.key] = incident
            batch.created.append((incident, IncidentEvent(0, now, "detected", None, detail)))
            await self._ledger.commit(batch, now)
            batch = Batch()
            self._ledger.escalate(incident, now, batch, reason="detected")
            await self._ledger.commit(batch, now)
            return incident

    # --- Alertmanager webhook -------------------------------------------------------------

    async def receive_alerts(self, alerts: list[dict[str, Any]]) -> dict[str, int]:
        """Alerts from an Alertmanager webhook: firing opens (or keeps) an incident, resolved resolves it.
        Our own alerts (label generator=national-monitor) are ignored so a routing loop cannot page twice."""
        counts = {"opened": 0, "updated": 0, "resolved": 0, "ignored": 0}
        async with self._ledger.locked() as now:
            batch = Batch()
            for alert in alerts:
                labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
                if labels.get("generator") == messages.GENERATOR or "alertname" not in labels:
                    counts["ignored"] += 1
                    continue
                fingerprint = (
                    alert.get("fingerprint")
                    or hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
                )
                key = f"alert:{fingerprint}"
                existing = self._ledger.open.get(key)
                if alert.get("status") == "resolved":
                    if existing is not None:
                        self._ledger.close(existing, now, "alertmanager", "alert resolved", batch)
                        counts["resolved"] += 1
                    else:
                        counts["ignored"] += 1
                    continue
                if existing is not None:
                    counts["updated"] += 1
                    continue
                self._open_alert(key, labels, dict(alert.get("annotations") or {}), now, batch)
                counts["opened"] += 1
            await self._ledger.commit(batch, now)
        return counts

    def _open_alert(
        self, key: str, labels: dict[str, str], annotations: dict[str, Any], now: float, batch: Batch
    ) -> None:
        severity = ALERT_SEVERITY.get(labels.get("severity", ""), labels.get("severity", ""))
        if severity not in SEVERITIES:
            severity = self._ledger.response.incidents.default_severity
        subject = labels.get("service") or labels.get("target") or labels.get("instance") or ""
        title = str(annotations.get("summary") or f"{labels['alertname']} {subject}".strip())
        incident = IncidentRecord(
            key=key,
            severity=severity,
            title=title,
            title_en=str(annotations.get("summary_en") or title),
            opened_at=now,
            reason=str(annotations.get("description") or annotations.get("summary") or labels["alertname"]),
            labels=labels,
            playbook=choose_playbook(labels, severity, self._ledger.response.routing, now),
            affected={"alert": labels},
        )
        if incident.playbook in self._ledger.response.playbooks:
            incident.next_escalation_at = now + first_page_wait(self._ledger.response.incidents, ())
        self._ledger.open[key] = incident
        batch.created.append((incident, IncidentEvent(0, now, "detected", "alertmanager", {"labels": labels})))
