"""Live SLO figures for every service: availability so far in its window, error budget total and
remaining, and burn rates over 5m..3d, from the state intervals (loaded from the store at start, then
kept up to date from the engine's service transitions; no store read per scrape)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor.availability.calc import Availability, StateSpan, compute
from monitor.availability.periods import Span, intersect, service_spans
from monitor.availability.slo import BURN_WINDOWS, SLOSpec, slo_for
from monitor.engine import Engine, Outcome
from monitor.incidents.policy import in_office_hours
from monitor.inventory import Inventory

KEEP = max(BURN_WINDOWS.values())  # history kept beyond the SLO window, for the burn rates


@dataclass(frozen=True, slots=True)
class SLOStatus:
    spec: SLOSpec
    window: Availability
    budget_total_seconds: float
    burn_rates: dict[str, float | None]
    in_service_hours: bool = True

    @property
    def budget_remaining_seconds(self) -> float:
        return self.budget_total_seconds - self.window.downtime_seconds

    @property
    def budget_remaining_ratio(self) -> float | None:
        if self.budget_total_seconds <= 0:
            return None
        return self.budget_remaining_seconds / self.budget_total_seconds


class SLOTracker:
    def __init__(self, store: Any, engine: Callable[[], Engine], clock: Callable[[], float]) -> None:
        self.store = store
        self._engine = engine
        self._clock = clock
        self._spans: dict[str, list[StateSpan]] = {}
        self._lock = threading.Lock()  # the metrics thread reads while the event loop appends

    def horizon(self, inventory: Inventory, now: float) -> float:
        starts = [slo_for(s, inventory.slo).window_span(now)[0] for s in inventory.services.values()]
        return min([now - KEEP, *starts])

    async def load(self) -> None:
        now = self._clock()
        since = self.horizon(self._engine().inventory, now)
        loaded = await self.store.intervals_since("service", since)
        with self._lock:
            self._spans = {
                sid: [StateSpan(i.state, i.start, i.end, i.root_cause) for i in intervals]
                for sid, intervals in loaded.items()
            }

    def on_outcome(self, outcome: Outcome) -> None:
        changes = [t for t in outcome.transitions if t.kind == "service"]
        if not changes:
            return
        with self._lock:
            for t in changes:
                spans = self._spans.setdefault(t.id, [])
                if spans and spans[-1].end is None:
                    last = spans[-1]
                    spans[-1] = StateSpan(last.state, last.start, t.at, last.root_cause)
                spans.append(StateSpan(t.new.value, t.at, None, t.root_cause))

    def prune(self) -> None:
        """Forget spans that ended before anything still needs them."""
        now = self._clock()
        horizon = self.horizon(self._engine().inventory, now)
        with self._lock:
            for spans in self._spans.values():
                while spans and spans[0].end is not None and spans[0].end < horizon:
                    spans.pop(0)

    def status(self) -> dict[str, SLOStatus]:
        """Every service's SLO figures now (called from the metrics thread)."""
        now = self._clock()
        inventory = self._engine().inventory
        with self._lock:
            copies = {name: list(self._spans.get(name, ())) for name in inventory.services}
        hours_cache: dict[tuple[str, Span], list[Span]] = {}

        def hours(spec: SLOSpec, span: Span) -> list[Span] | None:
            if spec.hours is None:
                return None
            key = (spec.hours_name, span)
            if key not in hours_cache:
                hours_cache[key] = service_spans(span[0], span[1], spec.hours)
            return hours_cache[key]

        result: dict[str, SLOStatus] = {}
        for name, service in inventory.services.items():
            spec = slo_for(service, inventory.slo)
            spans = copies[name]
            full = spec.window_span(now)
            so_far = (full[0], min(full[1], now))
            full_hours = hours(spec, full)
            window = compute(spans, so_far, intersect(full_hours, [so_far]) if full_hours is not None else None,
                             degraded_up=spec.degraded_up)  # fmt: skip
            expected = sum(b - a for a, b in full_hours) if full_hours is not None else full[1] - full[0]
            budget = spec.budget_fraction * max(0.0, expected - window.maintenance_seconds - window.gap_seconds)
            burns: dict[str, float | None] = {}
            for label, seconds in BURN_WINDOWS.items():
                span = (now - seconds, now)
                part = compute(spans, span, hours(spec, span), degraded_up=spec.degraded_up)
                observed = part.up_seconds + part.downtime_seconds
                burns[label] = None if observed <= 0 else (part.downtime_seconds / observed) / spec.budget_fraction
            inside = spec.hours is None or in_office_hours(now, spec.hours)
            result[name] = SLOStatus(spec, window, budget, burns, inside)
        return result
