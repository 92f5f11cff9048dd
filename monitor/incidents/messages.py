"""What a page says, per channel: rendered when it is queued and stored with it, so a notification
sent after a restart says exactly what it would have said before. Japanese first, English below."""

from __future__ import annotations

from typing import Any

from monitor.config.prefectures import lookup
from monitor.config.response_model import IncidentPolicy
from monitor.store.records import IncidentRecord
from monitor.timefmt import jst, utc_iso

GENERATOR = "national-monitor"  # label on our own alerts: the inbound webhook ignores them (no loops)
SEVERITY_JA = {"critical": "緊急", "major": "重大", "minor": "軽微", "warning": "警告"}
KIND_JA = {"firing": "障害発生", "repeat": "再通知", "resolved": "復旧"}
KIND_EN = {"firing": "PROBLEM", "repeat": "REMINDER", "resolved": "RESOLVED"}


def titles(target: str, labels: dict[str, str]) -> tuple[str, str]:
    """Incident titles in Japanese and English, naming the target and its prefecture."""
    pref = lookup(labels["prefecture"]) if labels.get("prefecture") else None
    where_ja = f"（{pref.name_ja}）" if pref else ""
    where_en = f" ({pref.name_en})" if pref else ""
    return f"{target}{where_ja} 障害", f"{target}{where_en} down"


def alert_labels(incident: IncidentRecord, level: int) -> dict[str, str]:
    keys = ("target", "service", "prefecture", "system", "tier", "site")
    labels = {k: incident.labels[k] for k in keys if incident.labels.get(k)}
    labels.update(
        alertname=incident.labels.get("alertname", "MonitorIncident"),
        severity=incident.severity,
        incident=str(incident.id),
        playbook=incident.playbook or "",
        escalation_level=str(level),
        generator=GENERATOR,
    )
    return labels


def _links(incident: IncidentRecord, policy: IncidentPolicy) -> tuple[str, str | None]:
    console = f"{policy.console_url.rstrip('/')}/api/v1/incidents/{incident.id}"
    runbook = None
    if policy.runbook_url:
        fields = {k: incident.labels.get(k, "") for k in ("target", "service", "system")}
        runbook = policy.runbook_url.format(**fields)
    return console, runbook


def _affected(incident: IncidentRecord) -> tuple[list[str], list[str]]:
    services = sorted(incident.affected.get("services", {}))
    children = sorted(incident.affected.get("children", []))
    return services, children


def text(incident: IncidentRecord, kind: str, level: int, now: float, policy: IncidentPolicy) -> tuple[str, str, str]:
    """(subject, Japanese body, English body) for mail and chat-like channels."""
    sev_ja = SEVERITY_JA.get(incident.severity, incident.severity)
    tag = f"[{sev_ja}/{incident.severity.upper()}] {KIND_JA[kind]} {KIND_EN[kind]}"
    subject = f"{tag}: {incident.title} / {incident.title_en}"
    console, runbook = _links(incident, policy)
    services, children = _affected(incident)
    lines_ja = [
        f"{KIND_JA[kind]}: {incident.title}",
        f"重要度: {sev_ja}  エスカレーションレベル: {level}  インシデント番号: #{incident.id}",
        f"発生時刻: {jst(incident.opened_at)}",
        f"原因: {incident.reason or '不明'}",
    ]
    lines_en = [
        f"{KIND_EN[kind]}: {incident.title_en}",
        f"Severity: {incident.severity}  Escalation level: {level}  Incident: #{incident.id}",
        f"Since: {jst(incident.opened_at)}",
        f"Reason: {incident.reason or 'unknown'}",
    ]
    if services:
        lines_ja.append("影響サービス: " + ", ".join(services))
        lines_en.append("Affected services: " + ", ".join(services))
    if children:
        shown = ", ".join(children[:20]) + (f" ほか{len(children) - 20}件" if len(children) > 20 else "")
        lines_ja.append(f"到達不能（この障害が原因）: {shown}")
        lines_en.append(f"Unreachable because of this: {len(children)} targets")
    if kind == "resolved":
        lines_ja.append(f"復旧時刻: {jst(incident.resolved_at or now)}  ({incident.resolve_reason or ''})")
        lines_en.append(f"Resolved: {jst(incident.resolved_at or now)}  ({incident.resolve_reason or ''})")
    lines_ja.append(f"詳細: {console}")
    lines_en.append(f"Details: {console}")
    if runbook:
        lines_ja.append(f"手順書: {runbook}")
        lines_en.append(f"Runbook: {runbook}")
    return subject, "\n".join(lines_ja), "\n".join(lines_en)


def payload(
    channel_kind: str,
    incident: IncidentRecord,
    kind: str,
    level: int,
    recipient: dict[str, Any],
    now: float,
    policy: IncidentPolicy,
) -> dict[str, Any]:
    """The stored form of one notification for one channel kind."""
    console, runbook = _links(incident, policy)
    if channel_kind == "alertmanager":
        annotations = {
            "summary": incident.title,
            "summary_en": incident.title_en,
            "description": incident.reason or "",
            "since": jst(incident.opened_at),
            "console_url": console,
        }
        if runbook:
            annotations["runbook_url"] = runbook
        alert: dict[str, Any] = {
            "labels": alert_labels(incident, level),
            "annotations": annotations,
            "startsAt": utc_iso(incident.opened_at),
            "generatorURL": console,
        }
        if kind == "resolved":
            alert["endsAt"] = utc_iso(incident.resolved_at or now)
        return {"alert": alert}
    subject, body_ja, body_en = text(incident, kind, level, now, policy)
    if channel_kind == "email":
        return {"to": recipient["email"], "to_name": recipient.get("name", ""), "subject": subject,
                "body": f"{body_ja}\n\n----- English -----\n{body_en}\n"}  # fmt: skip
    return {
        "version": 1,
        "event": kind,
        "recipient": recipient.get("name", ""),
        "incident": {
            "id": incident.id,
            "key": incident.key,
            "status": incident.status,
            "severity": incident.severity,
            "title": incident.title,
            "title_en": incident.title_en,
            "reason": incident.reason,
            "labels": incident.labels,
            "opened_at": utc_iso(incident.opened_at),
            "resolved_at": utc_iso(incident.resolved_at) if incident.resolved_at else None,
        },
        "level": level,
        "subject": subject,
        "text": body_ja,
        "text_en": body_en,
        "console_url": console,
    }
