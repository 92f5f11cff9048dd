"""Plain records the store keeps: incidents and their timeline, outbox notifications, maintenance
windows, the audit log. Times are UTC epoch seconds; JSON-ish fields are dicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

INCIDENT_STATUSES = ("open", "acknowledged", "resolved")
OUTBOX_STATUSES = ("pending", "sent", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class Interval:
    """A span of one state of a check or service ([start, end); end None while it lasts)."""

    subject: str  # check or service
    subject_id: str
    state: str
    start: float
    end: float | None
    reason: str | None
    root_cause: str | None


@dataclass(slots=True)
class IncidentRecord:
    key: str  # what the incident is about: "target:<name>", "alert:<fingerprint>"
    severity: str
    title: str  # Japanese
    title_en: str
    opened_at: float
    status: str = "open"
    reason: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    playbook: str | None = None
    level: int = 0  # escalation level paged so far (0: none yet)
    next_escalation_at: float | None = None  # when the next level is paged (the first: after group_wait)
    next_repeat_at: float | None = None  # when the current level is paged again
    repeats: int = 0
    acked_at: float | None = None
    acked_by: str | None = None
    ack_expires_at: float | None = None
    resolved_at: float | None = None
    resolved_by: str | None = None
    resolve_reason: str | None = None
    merged_into: int | None = None
    affected: dict[str, Any] = field(default_factory=dict)  # checks, services, children
    id: int = 0


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    incident_id: int
    at: float
    kind: str  # detected, attached, notified, acknowledged, note, escalated, severity, recovered, resolved, ...
    actor: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    id: int = 0


@dataclass(slots=True)
class OutboxItem:
    dedup_key: str  # one delivery per (incident, level, channel, recipient, kind), across restarts
    incident_id: int | None
    level: int
    channel: str  # a notifier name from the config
    recipient: str
    kind: str  # firing, repeat, resolved
    payload: dict[str, Any]
    not_before: float
    created_at: float
    status: str = "pending"
    attempts: int = 0
    sent_at: float | None = None
    last_error: str | None = None
    id: int = 0


@dataclass(slots=True)
class MaintenanceWindow:
    name: str
    reason: str
    created_by: str
    created_at: float
    scope: dict[str, Any]  # {"targets": [...], "labels": {...}} - what the window covers
    source: str = "api"  # api, cli or config
    starts_at: float | None = None  # one-off window
    ends_at: float | None = None
    cron: str | None = None  # recurring: cron expression (5 fields) in `timezone`, lasting `duration`
    duration: float | None = None
    timezone: str = "Asia/Tokyo"
    cancelled_at: float | None = None
    cancelled_by: str | None = None
    id: int = 0


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: float
    actor: str  # token or user name; "anonymous" when none was given
    action: str  # e.g. incident.ack, maintenance.create
    outcome: str  # ok, denied, unauthenticated, invalid, error
    role: str | None = None
    object: str | None = None
    source: str | None = None  # client address
    detail: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = ""
    hash: str = ""
    id: int = 0


SECURITY_OPEN_PHASES = (
    "proposed",  # a cut is proposed and waits for approval
    "approved",  # approved, not executed yet
    "cutting",  # the cut is being executed and verified
    "cut_failed",  # the cut could not be executed or verified (execute retries)
    "cut",  # cut and verified; stays so until a reconnect is approved
    "reconnect_requested",
    "reconnect_approved",
    "reconnecting",
    "reconnect_failed",
)
SECURITY_CLOSED_PHASES = ("denied", "reconnected")


@dataclass(slots=True)
class SecurityIncident:
    """One case of unauthorized traffic on one connection, from detection to reconnect."""

    connection: str
    severity: str
    opened_at: float
    source: str  # what opened it: anomaly, trap or ids
    summary: str
    phase: str = "proposed"
    evidence: list[dict[str, Any]] = field(default_factory=list)  # the detections, newest last (bounded)
    proposal: dict[str, Any] = field(default_factory=dict)  # the exact action: device, address, interface, method
    approvals: list[dict[str, Any]] = field(default_factory=list)  # {"step", "actor", "at"}
    executions: list[dict[str, Any]] = field(default_factory=list)  # {"step", "attempt", "started_at", ...}
    incident_id: int | None = None  # the incident that pages the security team
    cut_at: float | None = None  # when the cut was verified
    reconnected_at: float | None = None
    closed_at: float | None = None
    closed_by: str | None = None
    close_reason: str | None = None
    updated_at: float = 0.0
    id: int = 0

    @property
    def step(self) -> str:
        """The step the phase belongs to: approvals and executions are counted per step."""
        return "reconnect" if self.phase.startswith("reconnect") else "cut"


NOTICE_STATUSES = ("draft", "published", "closed")


@dataclass(slots=True)
class Notice:
    """お知らせ: what the governments are told, drafted from a template and published by an operator."""

    template: str  # occurred, investigating, estimate, recovered, planned
    title: str  # Japanese
    title_en: str
    body: str
    body_en: str
    created_at: float
    created_by: str
    status: str = "draft"
    services: list[str] = field(default_factory=list)  # public service ids
    prefectures: list[str] = field(default_factory=list)  # JIS codes (LGWAN notices)
    incident_id: int | None = None
    maintenance_id: int | None = None
    starts_at: float | None = None  # when the trouble began / the planned stop begins
    ends_at: float | None = None  # recovered at / the planned stop ends
    estimate_at: float | None = None  # expected recovery (復旧見込み)
    updated_at: float = 0.0
    updated_by: str | None = None
    published_at: float | None = None  # first publication
    published_by: str | None = None
    closed_at: float | None = None
    revision: int = 0  # bumped by every change after publication (subscribers are told of each)
    id: int = 0


@dataclass(slots=True)
class LinkUse:
    """The first use of a signed action link (monitor/incidents/links.py): what makes it single-use."""

    digest: str  # sha256 of the token (the token itself stays a credential until it expires)
    incident_id: int
    action: str
    recipient: str
    channel: str
    used_at: float
