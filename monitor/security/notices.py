"""What the disconnect playbook says: the proposed action in exact terms, incident titles, and the
notices the organisation's contacts get when their connection is cut and when it is restored
(through the outbox, like pages: durable, sent once)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from monitor.config.response_model import ResponseConfig
from monitor.config.security_model import Connection, SecurityPlaybook
from monitor.incidents.paging import contact_messages
from monitor.store.records import OutboxItem, SecurityIncident
from monitor.timefmt import jst

if TYPE_CHECKING:
    from monitor.security.execute import Edge

STEP_JA = {"cut": "接続遮断", "reconnect": "再接続"}


def proposal(connection: Connection, book: SecurityPlaybook, edge: Edge) -> dict[str, Any]:
    """Which device, which interface, which method: what approving means."""
    action = book.action
    plan: dict[str, Any] = {
        "method": action.kind,
        "connection": connection.name,
        "organisation": connection.organisation,
        "device": edge.device,
        "address": edge.address,
        "interface": edge.interface,
        "if_index": edge.if_index,
        "approvals_needed": book.approvals,
        "dry_run": book.dry_run,
    }
    if action.kind == "snmp_set":
        assert action.snmp is not None
        plan["oid"] = f"1.3.6.1.2.1.2.2.1.7.{edge.if_index if edge.if_index is not None else '<ifIndex>'}"
        plan["set"] = {"cut": "down(2)", "reconnect": "up(1)"}
        plan["snmp_version"] = action.snmp.version
    elif action.kind == "webhook":
        plan["url"] = action.url
    else:
        plan["command"] = action.argv
    return plan


def describe(plan: dict[str, Any]) -> str:
    where = f"{plan.get('device')} ({plan.get('address')}) interface {plan.get('interface')}"
    if plan.get("method") == "snmp_set":
        how = f"SNMP SET ifAdminStatus ({plan.get('oid')}) = down(2); reconnect: up(1)"
    elif plan.get("method") == "webhook":
        how = f"webhook POST {plan.get('url')}"
    else:
        how = f"command {' '.join(plan.get('command') or [])}"
    return f"Proposed cut of {plan.get('organisation')}: {where} by {how}"


def titles(connection: Connection) -> tuple[str, str]:
    org_en = connection.organisation_en or connection.organisation
    return (
        f"不正通信の疑い: {connection.organisation}（{connection.name}）接続遮断の承認待ち",
        f"Unauthorized traffic suspected: {org_en} ({connection.name}), disconnect awaiting approval",
    )


def _text(connection: Connection, incident: SecurityIncident, step: str) -> tuple[str, str]:
    if step == "cut":
        subject = f"[接続遮断のお知らせ] {connection.organisation} LGWAN接続 / LGWAN connection disconnected"
        body = (
            f"{connection.organisation} 御中\n\n"
            f"貴団体のLGWAN接続（{connection.name}）において不正な通信が検知されたため、"
            f"{jst(incident.cut_at or incident.updated_at)} に接続を遮断しました。\n"
            f"検知内容: {incident.summary}\n"
            "原因の調査と対処が完了しましたら、ご連絡ください。確認のうえ再接続いたします。\n"
            f"セキュリティインシデント番号: #{incident.id}\n\n"
            "----- English -----\n"
            f"Unauthorized traffic was detected on your LGWAN connection ({connection.name}); it was "
            f"disconnected at {jst(incident.cut_at or incident.updated_at)}.\nDetected: {incident.summary}\n"
            "Please tell us when the cause has been found and cleared; we will reconnect after review.\n"
            f"Security incident: #{incident.id}\n"
        )
    else:
        subject = f"[再接続のお知らせ] {connection.organisation} LGWAN接続 / LGWAN connection restored"
        body = (
            f"{connection.organisation} 御中\n\n"
            f"貴団体のLGWAN接続（{connection.name}）を {jst(incident.reconnected_at or incident.updated_at)} "
            f"に再接続しました。\nセキュリティインシデント番号: #{incident.id}\n\n"
            "----- English -----\n"
            f"Your LGWAN connection ({connection.name}) was reconnected at "
            f"{jst(incident.reconnected_at or incident.updated_at)}.\nSecurity incident: #{incident.id}\n"
        )
    return subject, body


def organisation_notices(
    config: ResponseConfig, connection: Connection, incident: SecurityIncident, step: str, now: float
) -> list[OutboxItem]:
    """Outbox items telling the organisation's contacts of a verified cut or reconnect (mail and webhook)."""
    if connection.notify is None:
        return []
    subject, body = _text(connection, incident, step)
    recipients = [(via, name) for via in connection.notify.via for name in connection.notify.contacts]
    return contact_messages(
        config, recipients, kind=f"security_{step}", dedup=f"security:{incident.id}:{step}", subject=subject,
        text=body, webhook={"connection": connection.name, "security_incident": incident.id},
        incident_id=incident.incident_id, now=now,
    )  # fmt: skip
