"""What the public status page shows, as plain data: each published service's state in plain words,
its current notices, planned maintenance ahead and a daily availability history; LGWAN per prefecture.

Built only from what operators chose to publish (status_page.services, published notices, the times
of maintenance windows): no target name, address, window name or failure reason is ever read into it.
The history (the expensive part: days x member services) is cached and rebuilt at most every few
minutes in a thread; the current states are read from the engine on each request.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor.availability.calc import _CATEGORY, DOWN, UP
from monitor.availability.periods import JST
from monitor.config.prefectures import all_prefectures
from monitor.config.status_model import PublicService
from monitor.core.engine import Engine
from monitor.core.state import State
from monitor.incidents.maintenance import covered_checks, occurrences
from monitor.status.notices import members, public_services
from monitor.store.base import Store
from monitor.store.records import MaintenanceWindow, Notice
from monitor.timefmt import iso

HISTORY_MAX_AGE = 60.0  # seconds between history rebuilds (today's bar moves)
STATES = {  # public state -> (Japanese, English)
    "operational": ("正常に稼働しています", "Operational"),
    "degraded": ("一部に影響が出ています", "Partially affected"),
    "outage": ("停止しています", "Outage"),
    "maintenance": ("計画停止中です", "Planned maintenance"),
    "unknown": ("状況を確認中です", "Being checked"),
}


def public_state(states: Iterable[State]) -> str:
    """The words a resident reads: all members down is an outage, some down or degraded is partial."""
    seen = [s for s in states if s != State.UNKNOWN]
    if not seen:
        return "unknown"
    bad = sum(s in (State.DOWN, State.UNREACHABLE) for s in seen)
    if bad == len(seen):
        return "outage"
    if bad or State.DEGRADED in seen:
        return "degraded"
    if State.MAINTENANCE in seen:
        return "maintenance"
    return "operational"


@dataclass
class History:
    built_at: float
    days: list[str]  # YYYY-MM-DD (JST), oldest first
    ratios: dict[str, list[float | None]]  # public service id -> availability per day (None: no data)


def _day_bounds(now: float, days: int) -> list[tuple[str, float, float]]:
    today = datetime.fromtimestamp(now, JST).replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    for back in range(days - 1, -1, -1):
        day = today - timedelta(days=back)
        out.append((day.strftime("%Y-%m-%d"), day.timestamp(), min(now, (day + timedelta(days=1)).timestamp())))
    return out


def build_history(
    spans: dict[str, list[tuple[Any, ...]]], services: dict[str, list[str]], now: float, days: int
) -> History:
    """Availability per day of each public service: its members' downtime pooled over their monitored
    time (up, degraded, down, unreachable; maintenance and gaps are out, as in the reports). One pass over
    each member's spans, each span's seconds spread over the days it covers."""
    bounds = _day_bounds(now, days)
    edges = [b[1] for b in bounds] + [bounds[-1][2]]
    first, last = edges[0], edges[-1]
    ratios: dict[str, list[float | None]] = {}
    for public_id, names in services.items():
        up = [0.0] * len(bounds)
        down = [0.0] * len(bounds)
        for name in names:
            for span in spans.get(name, ()):
                category = _CATEGORY.get(span[0])
                if category not in (UP, DOWN):
                    continue
                lo, hi = max(span[1], first), min(span[2] if span[2] is not None else last, last)
                index = max(0, bisect_right(edges, lo) - 1)
                target = up if category == UP else down
                while lo < hi and index < len(bounds):
                    cut = min(hi, edges[index + 1])
                    target[index] += cut - lo
                    lo, index = cut, index + 1
        ratios[public_id] = [None if u + d <= 0 else u / (u + d) for u, d in zip(up, down, strict=True)]
    return History(now, [d for d, _, _ in bounds], ratios)


class StatusView:
    def __init__(
        self,
        store: Store,
        engine: Engine,
        windows: Callable[[], list[MaintenanceWindow]],
        now: Callable[[], float],
    ) -> None:
        self.store = store
        self.engine = engine  # never replaced: a reload changes its inventory
        self._windows = windows  # configured and stored windows (not the security desk's)
        self.now = now
        self._history: History | None = None
        self._lock = asyncio.Lock()

    async def history(self) -> History:
        async with self._lock:
            if self._history is None or time.time() - self._history.built_at > HISTORY_MAX_AGE:
                engine = self.engine
                page = engine.inventory.status_page
                days = page.history_days if page is not None else 90
                services = {p.id: members(p, engine.inventory) for p in public_services(engine.inventory)}
                now = self.now()
                spans = await self.store.spans_between("service", now - (days + 1) * 86400.0, now)
                wanted = {n for names in services.values() for n in names}
                spans = {k: v for k, v in spans.items() if k in wanted}
                self._history = await asyncio.to_thread(build_history, spans, services, now, days)
            return self._history

    def invalidate(self) -> None:
        self._history = None

    async def snapshot(self) -> dict[str, Any]:
        """The whole page as data (also served as /status.json)."""
        engine = self.engine
        inventory = engine.inventory
        page = inventory.status_page
        now = self.now()
        notices, _ = await self.store.list_notices(("published",), 200)
        history = await self.history()
        services = []
        for public in public_services(inventory):
            names = members(public, inventory)
            state = public_state(engine.services[n].state for n in names if n in engine.services)
            services.append(
                {
                    "id": public.id,
                    "name": public.name,
                    "name_en": public.name_en or public.name,
                    "group": public.group,
                    "state": state,
                    "state_text": STATES[state][0],
                    "state_text_en": STATES[state][1],
                    "notices": [n.id for n in notices if public.id in n.services],
                    "history": [
                        {"date": d, "availability": None if r is None else round(r, 6)}
                        for d, r in zip(history.days, history.ratios.get(public.id, []), strict=False)
                    ],
                    "prefectures": self._prefectures(engine, public, names) if public.prefectures else [],
                }
            )
        return {
            "title": page.title if page else "",
            "title_en": page.title_en if page else "",
            "generated_at": iso(now),
            "services": services,
            "notices": [notice_json(n) for n in notices],
            "planned": self._planned(engine, page.planned_days if page else 30, now),
        }

    @staticmethod
    def _prefectures(engine: Engine, public: PublicService, names: list[str]) -> list[dict[str, Any]]:
        by_code: dict[str, list[State]] = {}
        for name in names:
            runtime = engine.services.get(name)
            code = runtime.service.labels.get("prefecture") if runtime is not None else None
            if runtime is not None and code:
                by_code.setdefault(code, []).append(runtime.state)
        out = []
        for pref in all_prefectures():
            if pref.code in by_code:
                state = public_state(by_code[pref.code])
                out.append(
                    {
                        "code": pref.code,
                        "name": pref.name_ja,
                        "name_en": pref.name_en,
                        "state": state,
                        "state_text": STATES[state][0],
                        "state_text_en": STATES[state][1],
                    }
                )
        return out

    def _planned(self, engine: Engine, days: int, now: float) -> list[dict[str, Any]]:
        """Planned stops in the coming `days` (and those going on), by public service: times only."""
        inventory = engine.inventory
        service_checks = {
            p.id: {c for n in members(p, inventory) if n in inventory.services for c in inventory.services[n].check_ids}
            for p in public_services(inventory)
        }
        horizon = now + days * 86400.0
        planned: list[dict[str, Any]] = []
        for window in self._windows():
            checks = covered_checks(window, inventory)
            affected = [pid for pid, ids in service_checks.items() if ids & checks]
            if not affected:
                continue
            for start, end in occurrences(window, now, horizon):
                planned.append(
                    {"services": affected, "starts_at": iso(start), "ends_at": iso(end), "active": start <= now < end}
                )
        return sorted(planned, key=lambda p: str(p["starts_at"]))[:100]


def notice_json(notice: Notice) -> dict[str, Any]:
    """A notice as the public sees it (no author names, no internal ids but its own)."""
    return {
        "id": notice.id,
        "template": notice.template,
        "status": notice.status,
        "title": notice.title,
        "title_en": notice.title_en,
        "body": notice.body,
        "body_en": notice.body_en,
        "services": notice.services,
        "prefectures": notice.prefectures,
        "starts_at": iso(notice.starts_at),
        "ends_at": iso(notice.ends_at),
        "estimate_at": iso(notice.estimate_at),
        "published_at": iso(notice.published_at),
        "updated_at": iso(notice.updated_at),
        "revision": notice.revision,
    }
