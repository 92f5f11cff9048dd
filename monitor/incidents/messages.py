"""What a page says, per channel: rendered when it is queued and stored with it, so a notification
sent after a restart says exactly what it would have said before. Japanese first, English below."""

from __future__ import annotations

from typing import Any

from monitor.config.prefectures import lookup
from monitor.config.response_model import IncidentPolicy
from monitor.incidents import links
from monitor.incidents.policy import peak_severity
from monitor.incidents.reasons import causes, reason_ja, resolve_reason_ja
from monitor.store.records import IncidentRecord, OutboxItem
from monitor.timefmt import jst, utc_iso

GENERATOR = "national-monitor"  # label on our own alerts: the inbound webhook ignores them (no loops)
SEVERITY_JA = {"critical": "緊急", "major": "重大", "minor": "軽微", "warning": "警告"}
KIND_JA = {"firing": "障害発生", "repeat": "再通知", "resolved": "復旧", "update": "重要度変更"}
KIND_EN = {"firing": "PROBLEM", "repeat": "REMINDER", "resolved": "RESOLVED", "update": "SEVERITY CHANGED"}
STATE_JA = {"down": "停止", "unreachable": "到達不能", "degraded": "縮退（一部停止）", "up": "復旧", "unknown": "不明"}
# What the title says of the trouble, and what replaces it once it is over.
TITLE_TROUBLE = (" 障害", " down")
TITLE_OVER = (" 復旧", " resolved")


def titles(target: str, labels: dict[str, str], site: tuple[str | None, str | None] | None = None) -> tuple[str, str]:
    """Incident titles in Japanese and English, naming the target and where it is: its prefecture, or
    else its site (a national centre)."""
    pref = lookup(labels["prefecture"]) if labels.get("prefecture") else None
    if pref:
        where_ja, where_en = pref.name_ja, pref.name_en
    elif site and (site[0] or site[1]):
        where_ja, where_en = site[0] or site[1] or "", site[1] or site[0] or ""
    else:
        where_ja = where_en = ""
    place_ja = f"（{where_ja}）" if where_ja else ""
    place_en = f" ({where_en})" if where_en else ""
    return f"{target}{place_ja}{TITLE_TROUBLE[0]}", f"{target}{place_en}{TITLE_TROUBLE[1]}"


def kind_titles(incident: IncidentRecord, kind: str) -> tuple[str, str]:
    """The titles as a page of `kind` gives them: a RESOLVED page says 復旧/resolved, not 障害/down."""
    if kind != "resolved":
        return incident.title, incident.title_en
    ja, en = incident.title, incident.title_en
    ja = ja.removesuffix(TITLE_TROUBLE[0]) + TITLE_OVER[0] if ja.endswith(TITLE_TROUBLE[0]) else f"{ja}{TITLE_OVER[0]}"
    en = en.removesuffix(TITLE_TROUBLE[1]) + TITLE_OVER[1] if en.endswith(TITLE_TROUBLE[1]) else f"{en}{TITLE_OVER[1]}"
    return ja, en


def began_at(incident: IncidentRecord) -> float:
    """When the trouble began (the first failed probe of the confirming run), else when it was detected."""
    began = incident.affected.get("began_at")
    return float(began) if isinstance(began, int | float) else incident.opened_at


def alert_labels(incident: IncidentRecord, level: int, severity: str | None = None) -> dict[str, str]:
    keys = ("target", "service", "prefecture", "system", "tier", "site")
    labels = {k: incident.labels[k] for k in keys if incident.labels.get(k)}
    labels.update(
        alertname=incident.labels.get("alertname", "MonitorIncident"),
        severity=severity or incident.severity,
        incident=str(incident.id),
        playbook=incident.playbook or "",
        escalation_level=str(level),
        generator=GENERATOR,
    )
    return labels


def _links(incident: IncidentRecord, policy: IncidentPolicy) -> tuple[str, str | None]:
    """The console's page of the incident (the route monitor/console/app.js draws), and the runbook."""
    console = f"{policy.console_url.rstrip('/')}/#/incidents/{incident.id}"
    runbook = None
    if policy.runbook_url:
        fields = {k: incident.labels.get(k, "") for k in ("target", "service", "system")}
        runbook = policy.runbook_url.format(**fields)
    return console, runbook


def _services(incident: IncidentRecord, kind: str) -> list[tuple[str, str, str, str]]:
    """(Japanese name, English name, Japanese state, English state) of the affected services: their
    state now, or in a RESOLVED page the worst state the incident took them to."""
    now = incident.affected.get("services_now", {})
    taken = incident.affected.get("services", {})
    states = dict(taken) if kind == "resolved" or not now else dict(now)
    names = incident.affected.get("service_names", {})
    members = incident.affected.get("service_members", {})
    out = []
    for service in sorted(states):
        state = str(states[service])
        ja, en = (names.get(service) or [service, service])[:2]
        which = ", ".join(members.get(service, [])) if kind != "resolved" else ""
        out.append((
            ja or service,
            en or ja or service,
            STATE_JA.get(state, state) + (f": {which}" if which else ""),
            state.upper() + (f": {which}" if which else ""),
        ))  # fmt: skip
    return out


def actions(
    incident: IncidentRecord, kind: str, level: int, who: tuple[str, str] | None, now: float, policy: IncidentPolicy
) -> list[dict[str, str]]:
    """The signed action links of a page to `who` (channel, recipient): none when links are not configured,
    and none in a RESOLVED page (there is nothing left to acknowledge)."""
    config = policy.action_links
    if config is None or who is None or kind == "resolved" or not incident.id:
        return []
    channel, recipient = who
    return links.page_actions(config, incident.id, level, recipient, channel, now, incident.key.startswith("security:"))


def reply_to(incident: IncidentRecord, level: int, address: str, policy: IncidentPolicy) -> str | None:
    """The Reply-To of a mail page when replies are read (incidents.mail_replies): it names the incident,
    the level and, through its mac, the address the page went to."""
    if policy.mail_replies is None or policy.action_links is None or not incident.id:
        return None
    token = links.reply_token(policy.action_links.key_bytes(), incident.id, level, address)
    return links.reply_address(policy.mail_replies.address, token)


def action_lines(found: list[dict[str, str]], replies: bool) -> tuple[list[str], list[str]]:
    """The links as lines of the Japanese and the English body."""
    ja = [f"{a['label']}: {a['url']}" for a in found]
    en = [f"{a['label_en']}: {a['url']}" for a in found]
    if replies:
        ja.append(
            "このメールに「了解」「ACK」「対応中」（確認）または「エスカレ」（エスカレーション）と1行目に書いて返信しても操作できます。"
        )
        en.append('Or reply to this mail with "ACK" or "ESCALATE" on the first line.')
    return ja, en


def text(
    incident: IncidentRecord,
    kind: str,
    level: int,
    now: float,
    policy: IncidentPolicy,
    buttons: list[dict[str, str]] | None = None,
    replies: bool = False,
) -> tuple[str, str, str]:
    """(subject, Japanese body, English body) for mail and chat-like channels. Both bodies list the
    same facts in the same order; the action links (`buttons`) come right after the console link."""
    # a RESOLVED page rates the outage that ended (the worst it was), not the step it took on the way back
    severity = peak_severity(incident.severity, incident.affected) if kind == "resolved" else incident.severity
    sev_ja = SEVERITY_JA.get(severity, severity)
    title, title_en = kind_titles(incident, kind)
    tag = f"[{sev_ja}/{severity.upper()}] {KIND_JA[kind]} {KIND_EN[kind]}"
    subject = f"{tag}: {title} / {title_en}"
    console, runbook = _links(incident, policy)
    children = sorted(incident.affected.get("children", []))
    lines_ja = [
        f"{KIND_JA[kind]}: {title}",
        f"重要度: {sev_ja}  エスカレーションレベル: {level}  インシデント番号: #{incident.id}",
        f"発生時刻: {jst(began_at(incident))}",
    ]
    lines_en = [
        f"{KIND_EN[kind]}: {title_en}",
        f"Severity: {severity.upper()}  Escalation level: {level}  Incident: #{incident.id}",
        f"Since: {jst(began_at(incident))}",
    ]
    before = incident.affected.get("severity_from")
    if kind == "update" and isinstance(before, str):
        lines_ja.append(f"重要度の変更: {SEVERITY_JA.get(before, before)} → {sev_ja}")
        lines_en.append(f"Severity changed: {before.upper()} -> {severity.upper()}")
    found = causes(incident.reason, incident.affected.get("cause"))
    label_ja, label_en = ("原因（障害時）", "Cause (of the outage)") if kind == "resolved" else ("原因", "Cause")
    if not found:
        lines_ja.append(f"{label_ja}: 不明")
        lines_en.append(f"{label_en}: unknown")
    for check, reason in found:
        lines_ja.append(f"{label_ja}: {check + ' ' if check else ''}{reason_ja(reason)}")
        lines_en.append(f"{label_en}: {check + ' ' if check else ''}{reason}")
    services = _services(incident, kind)
    if services:
        head_ja, head_en = (
            ("影響のあったサービス", "Services affected")
            if kind == "resolved"
            else ("影響サービス", "Affected services")
        )
        lines_ja.append(f"{head_ja}: " + "、".join(f"{ja}（{state}）" for ja, _, state, _ in services))
        lines_en.append(f"{head_en}: " + ", ".join(f"{en} ({state})" for _, en, _, state in services))
    if children:
        more_ja = f" ほか{len(children) - 20}件" if len(children) > 20 else ""
        more_en = f" and {len(children) - 20} more" if len(children) > 20 else ""
        shown = ", ".join(children[:20])
        lines_ja.append(f"到達不能（この障害が原因）: {len(children)}件: {shown}{more_ja}")
        lines_en.append(f"Unreachable because of this: {len(children)}: {shown}{more_en}")
    if kind == "resolved":
        why, why_ja = incident.resolve_reason or "", resolve_reason_ja(incident.resolve_reason)
        lines_ja.append(f"復旧時刻: {jst(incident.resolved_at or now)}" + (f"  （{why_ja}）" if why_ja else ""))
        lines_en.append(f"Resolved: {jst(incident.resolved_at or now)}" + (f"  ({why})" if why else ""))
    lines_ja.append(f"詳細: {console}")
    lines_en.append(f"Details: {console}")
    if buttons or replies:
        extra_ja, extra_en = action_lines(buttons or [], replies)
        lines_ja += extra_ja
        lines_en += extra_en
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
    who: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The stored form of one notification for one channel kind; `who` (channel, recipient key) signs the
    action links it carries, when links are configured."""
    console, runbook = _links(incident, policy)
    found = actions(incident, kind, level, who, now, policy)
    if channel_kind == "alertmanager":
        title, title_en = kind_titles(incident, kind)
        annotations = {
            "summary": title,
            "summary_en": title_en,
            "description": incident.reason or "",
            "description_ja": "; ".join(
                f"{check + ' ' if check else ''}{reason_ja(reason)}"
                for check, reason in causes(incident.reason, incident.affected.get("cause"))
            ),
            "since": jst(began_at(incident)),
            "console_url": console,
        }
        if runbook:
            annotations["runbook_url"] = runbook
        for link in found:  # a receiver's template may show them; Alertmanager itself ignores them
            annotations[f"{link['action']}_url"] = link["url"]
        alert: dict[str, Any] = {
            "labels": alert_labels(incident, level),
            "annotations": annotations,
            "startsAt": utc_iso(began_at(incident)),
            "generatorURL": console,
        }
        if kind == "resolved":
            alert["endsAt"] = utc_iso(incident.resolved_at or now)
        return {"alert": alert}  # (a re-rated alert is a new one: paging.pages_to_paged ends the old one)
    answer = reply_to(incident, level, recipient["email"], policy) if channel_kind == "email" and found else None
    subject, body_ja, body_en = text(incident, kind, level, now, policy, found, answer is not None)
    if channel_kind == "email":  # ("severity" is not sent: it records what the mail told, for told_severity)
        mail = {"to": recipient["email"], "to_name": recipient.get("name", ""), "subject": subject,
                "body": f"{body_ja}\n\n----- English -----\n{body_en}\n",
                "severity": incident.severity}  # fmt: skip
        if found:
            mail["actions"] = found  # the HTML part's buttons
        if answer:
            mail["reply_to"] = answer
        return mail
    extra: dict[str, Any] = {"actions": found} if found else {}
    if recipient.get("phone"):
        extra["phone"] = recipient["phone"]
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
            "began_at": utc_iso(began_at(incident)),
            "resolved_at": utc_iso(incident.resolved_at) if incident.resolved_at else None,
        },
        "level": level,
        "subject": subject,
        "text": body_ja,
        "text_en": body_en,
        "console_url": console,
        **extra,
    }


def told_severity(items: list[OutboxItem]) -> str | None:
    """The severity the people paged for an incident were last told (or will be, by a page queued and not
    cancelled): the latest firing, repeat or update page, in the place each channel kind's payload keeps it."""
    for item in sorted(items, key=lambda i: i.id, reverse=True):
        if item.kind not in ("firing", "repeat", "update") or item.status not in ("sent", "pending"):
            continue
        p = item.payload
        found = p["alert"]["labels"].get("severity") if "alert" in p else p.get("incident", p).get("severity")
        if isinstance(found, str):
            return found
    return None
