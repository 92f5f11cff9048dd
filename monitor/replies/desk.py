"""What a reply to a page does: find the page it answers, check the sender was paged for that incident, act.

A reply is matched by the token in the address it was sent to (`noc+<incident>-<level>-<mac>@...`, the page's
Reply-To), else by its In-Reply-To / References against the Message-IDs of the mail pages of the open
incidents. Only the address a page of that incident went to may act, and the token's mac must be for that
same address (a forwarded page replied to by someone else is refused). Every reply, acted on or refused, is
in the audit log with the channel (mail reply), the recipient and the sender.

The answer is for the SMTP session (monitor.replies.smtp): a refusal is a 5xx, so the sender's mail system
tells them at once why nothing happened; a failure of ours (the store) is a 4xx, so it retries: no reply
is lost."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from monitor.config.acting_model import MailReplies
from monitor.core.inventory import Inventory
from monitor.incidents import links
from monitor.incidents.acting_metrics import ActingMetrics
from monitor.incidents.actions import IncidentActionError
from monitor.notifiers.email import EmailNotifier, message_id
from monitor.replies.parse import Reply, parse
from monitor.store.base import Store
from monitor.store.records import AuditEntry, IncidentRecord, LinkUse, OutboxItem

log = structlog.get_logger()
CHANNEL = "mail-reply"


class Acting(Protocol):
    """What a reply may do to incidents (the incident manager implements it)."""

    def find(self, incident_id: int) -> IncidentRecord | None: ...
    async def acknowledge(self, incident_id: int, actor: str, comment: str = "") -> IncidentRecord: ...
    async def escalate_now(self, incident_id: int, actor: str, comment: str = "") -> IncidentRecord: ...


@dataclass(frozen=True, slots=True)
class Answer:
    code: int  # SMTP reply code
    text: str  # with its enhanced status code, e.g. "2.0.0 acknowledged incident #12"

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class ReplyDesk:
    def __init__(
        self,
        store: Store,
        incidents: Acting,
        inventory: Callable[[], Inventory],
        now: Callable[[], float],
        leader: Callable[[], bool],
        metrics: ActingMetrics,
    ) -> None:
        self.metrics = metrics
        self.store = store
        self.incidents = incidents
        self._inventory = inventory
        self._now = now
        self._leader = leader

    @property
    def config(self) -> MailReplies | None:
        return self._inventory().response.incidents.mail_replies

    def accepts(self, address: str) -> bool:
        """Whether RCPT TO names our mailbox (with or without a token): nothing else is taken (no relay)."""
        config = self.config
        if config is None:
            return False
        local, _, domain = address.lower().partition("@")
        mine_local, _, mine_domain = config.address.partition("@")
        return domain == mine_domain and (local == mine_local or local.startswith(mine_local + "+"))

    async def receive(self, raw: bytes, envelope_to: list[str], peer: str | None) -> Answer:
        if not self._leader():
            self.metrics.replies.labels("standby").inc()
            return Answer(451, "4.3.2 this daemon is the HA standby; try the leader")
        try:
            reply = parse(raw)
        except Exception as exc:  # a mail the email package cannot read at all: refused, said why
            log.warning("mail_reply_unreadable", error=type(exc).__name__, peer=peer)
            await self._audit(None, "unreadable", None, peer, {"error": type(exc).__name__})
            return Answer(550, "5.6.0 the reply cannot be read")
        try:
            return await self._handle(reply, envelope_to, peer)
        except Exception:
            log.exception("mail_reply_failed", peer=peer, sender=reply.sender)
            self.metrics.replies.labels("failed").inc()
            return Answer(451, "4.3.0 temporary failure of the monitor; the reply will be retried")

    async def _handle(self, reply: Reply, envelope_to: list[str], peer: str | None) -> Answer:
        detail = {"from": reply.sender, "first_line": reply.first_line}
        if reply.automatic:
            await self._audit(None, "ignored_automatic", None, peer, detail)
            return Answer(250, "2.0.0 automatic reply ignored")
        if reply.problems or not reply.sender:
            await self._audit(None, "unreadable", None, peer, {**detail, "problems": "; ".join(reply.problems)})
            return Answer(550, "5.6.0 " + ("; ".join(reply.problems) or "no sender"))
        match = await self._match(reply, envelope_to)
        if match is None:
            await self._audit(None, "unmatched", None, peer, detail)
            return Answer(550, "5.7.1 this reply does not answer a page of an open incident")
        incident_id, level, page, token_mac = match
        if page is None or (token_mac is not None and not self._mac_ok(incident_id, level, token_mac, reply.sender)):
            # the sender was not paged for this incident (or the token was issued to someone else)
            await self._audit(incident_id, "refused_sender", None, peer, detail)
            log.warning("mail_reply_refused", incident=incident_id, sender=reply.sender, peer=peer)
            return Answer(550, f"5.7.1 {reply.sender} was not paged for incident #{incident_id}")
        who = {**detail, "recipient": page.recipient, "via": page.channel, "level": str(page.level)}
        if reply.action is None:
            await self._audit(incident_id, "no_action", page.recipient, peer, who)
            return Answer(550, "5.6.0 the first line must be 了解 / ACK / 対応中 (acknowledge) or エスカレ / ESCALATE")
        # once per reply: a mail system that retries after our answer was lost must not escalate twice
        use = LinkUse(links.digest(f"mail-reply\0{reply.sender}\0{reply.message_id}"), incident_id, reply.action,
                      page.recipient, CHANNEL, self._now())  # fmt: skip
        if await self.store.use_action_link(use) is not None:
            await self._audit(incident_id, "replayed", page.recipient, peer, who, reply.action)
            return Answer(250, f"2.0.0 this reply was processed already (incident #{incident_id})")
        current = self.incidents.find(incident_id)
        if reply.action == "escalate" and current is not None and current.level > page.level:
            # the reply answers an earlier level's page: the next level has been paged already
            await self._audit(incident_id, "rejected", page.recipient, peer, {**who, "error": "escalated already"},
                              reply.action)  # fmt: skip
            return Answer(550, f"5.7.0 incident #{incident_id} was escalated to level {current.level} already")
        act = self.incidents.acknowledge if reply.action == "ack" else self.incidents.escalate_now
        comment = reply.comment or (
            "acknowledged by mail reply" if reply.action == "ack" else "escalated by mail reply"
        )
        try:
            incident = await act(incident_id, page.recipient, comment)
        except IncidentActionError as exc:
            await self._audit(incident_id, "rejected", page.recipient, peer, {**who, "error": str(exc)}, reply.action)
            return Answer(550, f"5.7.0 {exc}")
        await self._audit(incident_id, "ok", page.recipient, peer, {**who, "comment": comment[:500]}, reply.action)
        log.info("mail_reply_acted", incident=incident_id, action=reply.action, recipient=page.recipient)
        done = "acknowledged" if reply.action == "ack" else f"escalated to level {incident.level}"
        return Answer(250, f"2.0.0 {done}: incident #{incident_id}")

    def _mac_ok(self, incident_id: int, level: int, mac: str, sender: str) -> bool:
        linking = self._inventory().response.incidents.action_links
        return linking is not None and links.reply_matches(linking.key_bytes(), incident_id, level, mac, sender)

    def _token(self, addresses: list[str]) -> tuple[int, int, str] | None:
        config = self.config
        if config is None:
            return None
        mine_local, _, mine_domain = config.address.partition("@")
        for address in addresses:
            local, _, domain = address.lower().partition("@")
            if domain == mine_domain and local.startswith(mine_local + "+"):
                found = links.parse_reply_token(local[len(mine_local) + 1 :])
                if found is not None:
                    return found
        return None

    async def _match(
        self, reply: Reply, envelope_to: list[str]
    ) -> tuple[int, int, OutboxItem | None, str | None] | None:
        """(incident, level, the mail page to the sender or None, the token's mac or None), or None."""
        token = self._token([*envelope_to, *reply.recipients])
        if token is not None:
            incident_id, level, mac = token  # (a resolved incident: acknowledging it says so)
            return incident_id, level, await self._page_to(incident_id, reply.sender), mac
        if not reply.refers_to:
            return None
        senders = {n: c.sender for n, c in self._inventory().response.notifiers.items() if isinstance(c, EmailNotifier)}
        wanted = set(reply.refers_to)
        for incident in await self.store.open_incidents():
            for item in await self.store.notifications(incident.id):
                answer_to = str(item.payload.get("reply_to", ""))
                if not answer_to or item.channel not in senders:
                    continue  # (only a page sent with a Reply-To has a Message-ID nobody else can guess)
                if message_id(senders[item.channel], item.dedup_key, answer_to) in wanted:
                    return incident.id, item.level, await self._page_to(incident.id, reply.sender), None
        return None

    async def _page_to(self, incident_id: int, sender: str) -> OutboxItem | None:
        """The latest mail page of the incident that went to `sender`, if any did."""
        pages = [i for i in await self.store.notifications(incident_id)
                 if i.status == "sent" and str(i.payload.get("to", "")).lower() == sender]  # fmt: skip
        return max(pages, key=lambda i: i.id, default=None)

    async def _audit(
        self,
        incident_id: int | None,
        outcome: str,
        recipient: str | None,
        peer: str | None,
        detail: dict[str, str],
        action: str | None = None,
    ) -> None:
        self.metrics.replies.labels(outcome).inc()  # (every outcome of a reply is audited, so counted here)
        entry = AuditEntry(
            at=self._now(),
            actor=(recipient or detail.get("from") or "unknown")[:200],
            action=f"incident.{action}" if action else "incident.mail_reply",
            outcome=outcome,
            object=f"incident:{incident_id}" if incident_id is not None else None,
            source=peer,
            detail={"channel": CHANNEL, "credential": "mail reply", **detail},
        )
        await self.store.audit(entry)
