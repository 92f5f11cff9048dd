"""Notices (お知らせ): drafted from a template (by an operator, or by the daemon when a critical
incident opens), edited, published by an operator, updated and closed. Publishing (and every update of
a published notice) is mailed to the subscribed government contacts through the outbox, once per
revision. Drafts are never public."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from monitor.access.auth import Refused
from monitor.config.response_model import labels_match
from monitor.config.status_model import PublicService, Subscriber
from monitor.core.inventory import Inventory
from monitor.incidents.paging import contact_messages
from monitor.status.templates import TEMPLATES, render
from monitor.store.base import Store
from monitor.store.records import AuditEntry, IncidentRecord, Notice
from monitor.timefmt import jst

log = structlog.get_logger()
DRAFT_LIVE = 3600.0  # an unpublished draft counts as live this long after its last edit (if its incident is open)
EDITABLE = (
    "template",
    "services",
    "prefectures",
    "starts_at",
    "ends_at",
    "estimate_at",
    "incident_id",
    "maintenance_id",
    "title",
    "title_en",
    "body",
    "body_en",
)


class NoticeError(Refused):
    """A notice action that does not apply (a closed notice, an unknown template or service)."""


def members(service: PublicService, inventory: Inventory) -> list[str]:
    """The internal services a public service shows."""
    chosen = [s for s in service.services if s in inventory.services]
    if service.select:
        chosen += [n for n, s in inventory.services.items() if labels_match(service.select, dict(s.labels))]
    return list(dict.fromkeys(chosen))


def public_services(inventory: Inventory) -> list[PublicService]:
    """The public services this daemon can tell the state of. A shard (`--shard i/N`) leaves out those with
    member services on other shards: over its own members alone it would call a service "operational"
    while another shard's members are down, or a partial failure an outage."""
    listed = list(inventory.status_page.services) if inventory.status_page is not None else []
    if inventory.whole is None:
        return listed
    return [p for p in listed if set(members(p, inventory.whole)) <= set(inventory.services)]


def split_by_shards(inventory: Inventory) -> list[str]:
    """Public service ids a shard leaves out of its status page (their members are on several shards)."""
    if inventory.whole is None or inventory.status_page is None:
        return []
    shown = {p.id for p in public_services(inventory)}
    return [p.id for p in inventory.status_page.services if p.id not in shown]


def affected_public(inventory: Inventory, internal: set[str]) -> list[str]:
    """Public service ids that show any of these internal services."""
    return [p.id for p in public_services(inventory) if internal & set(members(p, inventory))]


class NoticeDesk:
    def __init__(
        self,
        store: Store,
        now: Callable[[], float],
        inventory: Callable[[], Inventory],
        wake_outbox: Callable[[], None],
    ) -> None:
        self.store = store
        self.now = now
        self._inventory = inventory
        self._wake_outbox = wake_outbox
        self._tasks: set[asyncio.Task[Any]] = set()
        self._drafting = asyncio.Lock()  # drafts one at a time: two incidents of one outage make one notice
        self._drafted: set[int] = set()  # incidents a draft was made for in this run (the store knows the rest)

    # --- drafting --------------------------------------------------------------------------

    def _names(self, ids: list[str]) -> tuple[list[str], list[str]]:
        by_id = {p.id: p for p in public_services(self._inventory())}
        chosen = [by_id[i] for i in ids if i in by_id]
        return [p.name for p in chosen], [p.name_en or p.name for p in chosen]

    def _render(self, notice: Notice) -> None:
        ja, en = self._names(notice.services)
        notice.title, notice.title_en, notice.body, notice.body_en = render(
            notice.template, ja, en, notice.starts_at, notice.ends_at, notice.estimate_at
        )

    def _validate(self, values: dict[str, Any]) -> None:
        if values.get("template") is not None and values["template"] not in TEMPLATES:
            raise NoticeError(f"template must be one of {', '.join(TEMPLATES)}", 422)
        known = {p.id for p in public_services(self._inventory())}
        unknown = [s for s in values.get("services") or [] if s not in known]
        if unknown:
            raise NoticeError(
                f"unknown public services: {', '.join(map(str, unknown))} (known: "
                f"{', '.join(sorted(known)) or 'none: configure status_page.services'})",
                422,
            )

    async def create(self, actor: str, values: dict[str, Any]) -> Notice:
        self._validate(values)
        now = self.now()
        notice = Notice(
            template=values.get("template") or "occurred",
            title="",
            title_en="",
            body="",
            body_en="",
            created_at=now,
            created_by=actor,
            updated_at=now,
            updated_by=actor,
        )
        for key in EDITABLE:
            if values.get(key) is not None:
                setattr(notice, key, values[key])
        await self._window_times(notice)
        texts = {k: values.get(k) for k in ("title", "title_en", "body", "body_en")}
        self._render(notice)
        for key, text in texts.items():  # what the operator wrote wins over the template
            if text:
                setattr(notice, key, str(text))
        await self.store.save_notice(notice)
        return notice

    async def update(self, notice_id: int, actor: str, values: dict[str, Any]) -> Notice:
        notice = await self._get(notice_id)
        if notice.status == "closed":
            raise NoticeError(f"notice #{notice_id} is closed")
        self._validate(values)
        texts = {k: values[k] for k in ("title", "title_en", "body", "body_en") if values.get(k)}
        changed = [k for k in EDITABLE if k in values and k not in texts and values[k] != getattr(notice, k)]
        for key in changed:
            setattr(notice, key, values[key])
        if changed:
            self._render(notice)
        for key, text in texts.items():
            setattr(notice, key, str(text))
        notice.updated_at, notice.updated_by = self.now(), actor
        if values.get("status") == "closed":
            notice.status, notice.closed_at = "closed", self.now()
        elif notice.status == "published" and (changed or texts):
            notice.revision += 1
            await self._send(notice, values.get("notify", True))
        await self.store.save_notice(notice)
        return notice

    async def publish(self, notice_id: int, actor: str) -> Notice:
        notice = await self._get(notice_id)
        if notice.status != "draft":
            raise NoticeError(f"notice #{notice_id} is {notice.status}, not a draft")
        now = self.now()
        notice.status, notice.published_at, notice.published_by = "published", now, actor
        notice.updated_at, notice.updated_by = now, actor
        await self.store.save_notice(notice)
        await self._send(notice, True)
        return notice

    async def _window_times(self, notice: Notice) -> None:
        """A notice about a maintenance window (API/CLI) takes the window's times unless given its own."""
        if notice.maintenance_id is None or (notice.starts_at is not None and notice.ends_at is not None):
            return
        window = next((w for w in await self.store.maintenance_windows() if w.id == notice.maintenance_id), None)
        if window is None:
            raise NoticeError(f"no maintenance window #{notice.maintenance_id}", 422)
        if window.starts_at is not None:
            notice.starts_at = notice.starts_at or window.starts_at
            notice.ends_at = notice.ends_at or window.ends_at

    async def _get(self, notice_id: int) -> Notice:
        notice = await self.store.get_notice(notice_id)
        if notice is None:
            raise NoticeError(f"no notice #{notice_id}", 404)
        return notice

    # --- drafts from incidents -------------------------------------------------------------

    def on_incident(self, incident: IncidentRecord) -> None:
        """Incident manager hook (after each commit): a critical incident with a public impact gets a
        draft notice, once; an operator publishes it."""
        inventory = self._inventory()
        if incident.status == "resolved" or incident.severity not in inventory.notices.auto_draft:
            return
        if incident.id in self._drafted or not incident.id:
            return
        # only services the problem actually takes down or degrades (a server whose twin carries on is no news)
        internal = set(incident.affected.get("services", {}))
        ids = affected_public(inventory, internal)
        if not ids:
            return
        self._drafted.add(incident.id)
        task = asyncio.ensure_future(self._draft(incident, ids))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _draft(self, incident: IncidentRecord, ids: list[str]) -> None:
        async with self._drafting:
            await self._draft_one(incident, ids)

    async def _draft_one(self, incident: IncidentRecord, ids: list[str]) -> None:
        if (await self.store.notices_for_incidents([incident.id])).get(incident.id):
            return  # drafted before a restart, or written by hand
        prefecture = incident.labels.get("prefecture")
        live = await self._live_notices()
        ids = [i for i in ids if not any(_covers(n, i, prefecture) for n in live)]
        if not ids:  # one outage, several incidents: one notice
            log.info("notice_not_drafted", incident=incident.id, reason="a live notice covers these services here")
            return
        prefectures = [prefecture] if prefecture else []
        notice = await self.create(
            "system",
            {
                "template": "occurred",
                "services": ids,
                "prefectures": prefectures,
                "incident_id": incident.id,
                "starts_at": incident.opened_at,
            },
        )
        await self.store.audit(
            AuditEntry(
                at=self.now(),
                actor="system",
                action="notice.draft",
                outcome="ok",
                object=f"notice:{notice.id}",
                detail={"incident": incident.id},
            )
        )
        log.info("notice_drafted", notice=notice.id, incident=incident.id, services=ids)

    async def _live_notices(self) -> list[Notice]:
        """Notices that still tell the public about an outage: published ones (until closed), and drafts
        edited recently whose incident is not resolved. A stale draft of an outage that ended (never
        published) tells nobody anything, so it must not stop a draft for a new one."""
        now = self.now()
        live = []
        for notice in (await self.store.list_notices(("draft", "published"), 200))[0]:
            if notice.status == "draft":
                if now - (notice.updated_at or notice.created_at) > DRAFT_LIVE:
                    continue
                if notice.incident_id is not None:
                    incident = await self.store.get_incident(notice.incident_id)
                    if incident is None or incident.status == "resolved":
                        continue
            live.append(notice)
        return live

    async def stop(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- subscribers -----------------------------------------------------------------------

    async def _send(self, notice: Notice, notify: bool) -> None:
        if not notify:
            return
        inventory = self._inventory()
        subject = f"[お知らせ] {notice.title} / {notice.title_en}"
        published = jst(notice.published_at or notice.updated_at)[:16]
        text = (
            f"{notice.title}\n掲載: {published}  更新: {jst(notice.updated_at)[:16]}\n\n"
            f"{notice.body}\n\n----- English -----\n{notice.title_en}\n\n{notice.body_en}\n"
        )
        recipients = [
            (via, s.contact) for s in inventory.notices.subscribers if _subscribed(s, notice) for via in s.via
        ]
        items = contact_messages(
            inventory.response, recipients, kind="notice", dedup=f"notice:{notice.id}:{notice.revision}",
            subject=subject, text=text, webhook={"notice": notice.id, "revision": notice.revision},
            incident_id=notice.incident_id, now=self.now(),
        )  # fmt: skip
        if items:
            await self.store.enqueue(items)
            self._wake_outbox()


def _covers(notice: Notice, service: str, prefecture: str | None) -> bool:
    """Whether a notice already tells of this public service in this prefecture (a notice naming no
    prefecture concerns every prefecture; one naming prefectures does not cover a national incident)."""
    if service not in notice.services:
        return False
    return not notice.prefectures or (prefecture is not None and prefecture in notice.prefectures)


def _subscribed(sub: Subscriber, notice: Notice) -> bool:
    """Empty lists mean everything; a notice naming no prefecture concerns every prefecture."""
    services = not sub.services or bool(set(sub.services) & set(notice.services))
    prefectures = not sub.prefectures or not notice.prefectures or bool(set(sub.prefectures) & set(notice.prefectures))
    return services and prefectures
