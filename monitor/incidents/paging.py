"""Who gets paged at an escalation level, through which channel, as outbox items.

Every item has a dedup key (incident, level, channel, recipient, kind[, repeat]): queuing it again,
after a restart or a retried transaction, is a no-op, so each page goes out once.

A level that names a `schedule` pages whoever is on call in it at the moment the level is paged (its
escalation, a repeat), asked of `OnCall` then: not whoever was on call when the incident opened. The
incident's timers are in the store, so after a restart the level due is paged when it is due, to the shift
on duty then, once (the recipient is part of the dedup key). Resolved and severity pages go to whoever
was paged, whether still on duty or not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.config.response_model import ResponseConfig
from monitor.incidents import messages
from monitor.store.records import IncidentRecord, OutboxItem
from monitor.timefmt import utc_iso


@dataclass(frozen=True, slots=True)
class Recipient:
    channel: str  # notifier name
    channel_kind: str  # alertmanager, email, webhook
    key: str  # contact name, or the channel itself for Alertmanager
    details: dict[str, Any]


# (schedule, when) -> the contacts on call in it then (monitor.oncall.roster.Roster.people)
OnCall = Callable[[str, float], Sequence[str]]


def nobody(_schedule: str, _at: float) -> Sequence[str]:
    return ()


def recipients(
    config: ResponseConfig, playbook: str | None, level: int, on_call: Callable[[str], Iterable[str]] | None = None
) -> list[Recipient]:
    """The recipients of `level` (1-based) of a playbook; none if there is no such level. `on_call` names
    the people a schedule stands for (who is on call now, for a new page)."""
    book = config.playbooks.get(playbook or "")
    if book is None or not 1 <= level <= len(book.levels):
        return []
    found: dict[tuple[str, str], Recipient] = {}
    for notify in book.levels[level - 1].notify:
        names = list(notify.contacts)
        if notify.schedule is not None and on_call is not None:
            names += [n for n in on_call(notify.schedule) if n in config.contacts and n not in names]
        for via in notify.via:
            kind = config.notifiers[via].kind
            if kind == "alertmanager":
                found[(via, via)] = Recipient(via, kind, via, {})
                continue
            for name in names:
                contact = config.contacts[name]
                if kind == "email" and contact.email:
                    found[(via, name)] = Recipient(via, kind, name, {"name": contact.name, "email": contact.email})
                elif kind != "email":  # webhook, command, and any chat-like kind: reached by contact name
                    details = {"name": contact.name, **({"phone": contact.phone} if contact.phone else {})}
                    found[(via, name)] = Recipient(via, kind, name, details)
    return list(found.values())


def dedup_key(incident_id: int, level: int, channel: str, recipient: str, kind: str, repeat: int = 0) -> str:
    """`repeat` numbers the pages of a kind sent more than once: repeats, and severity updates."""
    suffix = f":{repeat}" if kind in ("repeat", "update") else ""
    return f"{incident_id}:{level}:{channel}:{recipient}:{kind}{suffix}"


def pages(
    config: ResponseConfig,
    incident: IncidentRecord,
    level: int,
    kind: str,
    now: float,
    only: set[tuple[str, str]] | None = None,
    on_call: OnCall = nobody,
) -> list[OutboxItem]:
    """Outbox items paging `level` of the incident's playbook (restricted to `only` (channel, key) pairs:
    then a schedule stands for the people of `only`, paged before, whoever is on call now)."""
    items = []
    serial = int(incident.affected.get("rerates", 0)) if kind == "update" else incident.repeats
    paged = sorted({key for _, key in only or ()})

    def people(schedule: str) -> Iterable[str]:
        return on_call(schedule, now) if only is None else paged

    for r in recipients(config, incident.playbook, level, people):
        if only is not None and (r.channel, r.key) not in only:
            continue
        items.append(
            OutboxItem(
                dedup_key=dedup_key(incident.id, level, r.channel, r.key, kind, serial),
                incident_id=incident.id,
                level=level,
                channel=r.channel,
                recipient=r.key,
                kind=kind,
                payload=messages.payload(
                    r.channel_kind, incident, kind, level, r.details, now, config.incidents, (r.channel, r.key)
                ),
                not_before=now,
                created_at=now,
            )
        )
    return items


def pages_to_paged(
    config: ResponseConfig, incident: IncidentRecord, kind: str, now: float, sent: Iterable[OutboxItem]
) -> list[OutboxItem]:
    """Pages of `kind` (resolved, update) to everyone a page of this incident already reached, per level."""
    paged: dict[int, set[tuple[str, str]]] = {}
    alerts: dict[tuple[str, int], dict[str, Any]] = {}  # the last alert Alertmanager got, per channel and level
    for item in sorted(sent, key=lambda i: i.id):
        if item.status == "sent" and item.kind in ("firing", "repeat", "update"):
            paged.setdefault(item.level, set()).add((item.channel, item.recipient))
            if "alert" in item.payload:
                alerts[(item.channel, item.level)] = item.payload["alert"]
    items = [p for level, who in sorted(paged.items()) for p in pages(config, incident, level, kind, now, who)]
    for item in items:
        last = alerts.get((item.channel, item.level))
        if last is None or "alert" not in item.payload or last["labels"] == item.payload["alert"]["labels"]:
            continue
        # Alertmanager knows an alert by its labels (severity is one): resolve, or end, the one it has
        ended = {**last, "endsAt": item.payload["alert"].get("endsAt") or utc_iso(now)}
        if kind == "resolved":
            item.payload = {"alert": ended}
        else:
            item.payload = {**item.payload, "supersedes": [ended]}
    return items


def next_times(config: ResponseConfig, incident: IncidentRecord, now: float) -> tuple[float | None, float | None]:
    """After paging the incident's current level: when to escalate further, when to repeat."""
    book = config.playbooks.get(incident.playbook or "")
    if book is None or incident.level < 1:
        return None, None
    level = book.levels[incident.level - 1]
    escalate = now + level.ack_timeout if level.ack_timeout and incident.level < len(book.levels) else None
    repeat = now + level.repeat if level.repeat else None
    return escalate, repeat


def contact_messages(
    config: ResponseConfig,
    recipients: Iterable[tuple[str, str]],
    *,
    kind: str,
    dedup: str,
    subject: str,
    text: str,
    webhook: dict[str, Any],
    incident_id: int | None,
    now: float,
) -> list[OutboxItem]:
    """Outbox items telling contacts something that is not a page (a notice, a cut): by mail or webhook,
    never Alertmanager (it pages our own staff). `recipients` are (notifier, contact) pairs; each item's
    dedup key is `{dedup}:{notifier}:{contact}`, so each goes out once."""
    items = []
    for via, name in recipients:
        contact = config.contacts[name]
        channel = config.notifiers[via].kind
        if channel == "alertmanager" or (channel == "email" and not contact.email):
            continue
        payload: dict[str, Any] = (
            {"to": contact.email, "to_name": contact.name, "subject": subject, "body": text}
            if channel == "email"
            else {"version": 1, "event": kind, "recipient": contact.name, "subject": subject, "text": text, **webhook}
        )
        items.append(OutboxItem(f"{dedup}:{via}:{name}", incident_id, 0, via, name, kind, payload, now, now))
    return items
