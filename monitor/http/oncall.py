"""The on-call API (`/api/v1/oncall`): who is on call now at each level, slots, overrides and swaps, the
handovers, and iCal feeds per schedule and per person. Reading needs `read`; a change needs `oncall.swap`
(members, for slots they hold) or `oncall.manage` (managers, for anyone; also a schedule's `managers`);
every change is audited, refused ones too."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from monitor.access.auth import ProblemError
from monitor.http.errors import body_of, whole_number
from monitor.http.services import SERVICES
from monitor.oncall import ical, rotation, views
from monitor.oncall.roster import Actor
from monitor.store.oncall_records import OnCallChange
from monitor.timefmt import iso

MAX_DAYS = 62  # slots listed at most this far ahead


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ProblemError(422, "invalid on-call change", f"{key}: must be text")
    return value


def handover_json(handover: Any) -> dict[str, Any]:
    return {
        "schedule": handover.schedule,
        "at": iso(handover.at),
        "incoming": handover.incoming,
        "outgoing": handover.outgoing,
        "summary": handover.summary,
    }


def add_oncall_routes(app: web.Application) -> None:
    services = app[SERVICES]
    guard = services.guard
    roster = services.incidents.roster

    def config() -> Any:
        return services.inventory().response

    def schedule_name(request: web.Request) -> str:
        name = request.match_info["schedule"]
        if name not in config().schedules:
            raise ProblemError(404, "no such schedule", f'no schedule "{name}"')
        return name

    async def now_view(request: web.Request) -> web.Response:
        await guard.require(request, "read")
        await roster.load()  # what the leader (or another daemon) changed since
        return web.json_response(views.oncall_now(roster, config(), roster.clock.now()))

    async def slots_view(request: web.Request) -> web.Response:
        await guard.require(request, "read")
        name = schedule_name(request)
        days = min(max(whole_number(request.query.get("days", "7"), "days"), 1), MAX_DAYS)
        await roster.load()
        now = roster.clock.now()
        duties = roster.duties(name, now, now + days * rotation.DAY)
        return web.json_response(
            {
                "schedule": name,
                "slots": [views.duty_json(config(), d) for d in duties],
                "orphaned": roster.orphans(name),
            }
        )

    async def changes_view(request: web.Request) -> web.Response:
        await guard.require(request, "read")
        await roster.load()
        wanted = request.query.get("schedule")
        return web.json_response({"changes": [views.change_json(c) for c in reversed(roster.changes(wanted))]})

    async def handovers_view(request: web.Request) -> web.Response:
        await guard.require(request, "read")
        wanted = request.query.get("schedule")
        limit = min(max(whole_number(request.query.get("limit", "10"), "limit"), 1), 100)
        found = await services.store.oncall.handovers(wanted, limit)
        return web.json_response({"handovers": [handover_json(h) for h in found]})

    def actor_of(name: str, may_manage: bool) -> Actor:
        return Actor(name, manages_all=may_manage)

    async def make_change(request: web.Request) -> web.Response:
        name = request.match_info["schedule"]
        obj = f"schedule:{name}"
        who = await guard.require(request, "oncall.swap", "oncall.change", obj)
        schedule_name(request)
        body = await body_of(request)
        kind, reason = body.get("kind"), _text(body, "reason")
        actor = actor_of(who.name, who.may("oncall.manage"))
        if kind == "swap":
            pair = body.get("slots")
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(s, str) for s in pair)):
                raise ProblemError(422, "invalid on-call change", "slots: give the keys of the two slots to swap")
            work = roster.swap(name, pair[0], pair[1], actor, reason)
        elif kind == "override":
            slot, to = body.get("slot"), body.get("to")
            if not isinstance(slot, str) or not (to is None or isinstance(to, str)):
                raise ProblemError(422, "invalid on-call change", "slot: a slot key; to: a contact, or null for nobody")
            work = roster.override(name, slot, to, actor, reason)
        else:
            raise ProblemError(422, "invalid on-call change", 'kind must be "swap" or "override"')
        change: OnCallChange = await guard.attempt(request, who, "oncall.change", obj, work)
        moves = {k: {"from": change.previous.get(k), "to": v} for k, v in change.slots.items()}
        await guard.audit(request, who, "oncall.change", "ok", f"oncall:{change.id}", kind=change.kind,
                          schedule=name, slots=moves, reason=reason)  # fmt: skip
        return web.json_response(views.change_json(change), status=201)

    async def cancel_change(request: web.Request) -> web.Response:
        change_id = whole_number(request.match_info["id"], "id")
        obj = f"oncall:{change_id}"
        who = await guard.require(request, "oncall.swap", "oncall.cancel", obj)
        await roster.load()
        work = roster.cancel(change_id, actor_of(who.name, who.may("oncall.manage")))
        change: OnCallChange = await guard.attempt(request, who, "oncall.cancel", obj, work)
        await guard.audit(request, who, "oncall.cancel", "ok", obj, schedule=change.schedule)
        return web.json_response(views.change_json(change))

    def calendar(body: bytes, filename: str) -> web.Response:
        disposition = f"inline; filename*=UTF-8''{quote(filename)}"
        return web.Response(
            body=body, content_type="text/calendar", charset="utf-8", headers={"Content-Disposition": disposition}
        )

    def window() -> tuple[float, float, float]:
        now = roster.clock.now()
        return now, now - ical.PAST_DAYS * rotation.DAY, now + ical.AHEAD_DAYS * rotation.DAY

    async def schedule_feed(request: web.Request) -> web.Response:
        await guard.require(request, "read")
        name = schedule_name(request)
        await roster.load()
        now, start, end = window()
        schedule = config().schedules[name]
        body = ical.feed(schedule.name or name, roster.duties(name, start, end), config(), now, by_person=False)
        return calendar(body, f"{name}.ics")

    async def person_feed(request: web.Request) -> web.Response:
        await guard.require(request, "read")
        person = request.match_info["person"]
        response = config()
        if person not in response.contacts:
            raise ProblemError(404, "no such contact", f'no contact "{person}"')
        await roster.load()
        now, start, end = window()
        mine = [d for name in response.schedules for d in roster.duties(name, start, end) if d.person == person]
        title = f"当番: {response.contacts[person].name}"
        return calendar(ical.feed(title, sorted(mine, key=lambda d: d.slot.start), response, now, by_person=True),
                        f"{person}.ics")  # fmt: skip

    app.router.add_get("/api/v1/oncall", now_view)
    app.router.add_get("/api/v1/oncall/changes", changes_view)
    app.router.add_delete("/api/v1/oncall/changes/{id}", cancel_change)
    app.router.add_get("/api/v1/oncall/handovers", handovers_view)
    app.router.add_get("/api/v1/oncall/schedules/{schedule}/slots", slots_view)
    app.router.add_post("/api/v1/oncall/schedules/{schedule}/changes", make_change)
    app.router.add_get("/api/v1/oncall/schedules/{schedule}/calendar.ics", schedule_feed)
    app.router.add_get("/api/v1/oncall/people/{person}/calendar.ics", person_feed)
