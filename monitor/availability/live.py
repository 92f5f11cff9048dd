"""Live SLO figures for every service: availability so far in its window, error budget total and
remaining, and burn rates over 5m..3d, from the state intervals (loaded from the store at start, then
kept up to date from the engine's service transitions; no store read per scrape)."""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from monitor.availability.calc import Availability, RunningTotals, StateSpan, compute
from monitor.availability.periods import Span, intersect, service_spans
from monitor.availability.slo import BURN_WINDOWS, SLOSpec, slo_for
from monitor.core.engine import Engine, Outcome
from monitor.core.inventory import Inventory
from monitor.incidents.policy import in_office_hours

_start = itemgetter(1)  # of a StateSpan
KEEP = max(BURN_WINDOWS.values())  # history kept beyond the SLO window, for the burn rates
# SLO figures move slowly and 5,000 services cost ~0.8 s to compute: recompute every REFRESH seconds, or
# after a state change but not more often than every MIN_REFRESH seconds.
REFRESH = 30.0
MIN_REFRESH = 10.0


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
    def __init__(self, store: Any, engine: Engine, clock: Callable[[], float]) -> None:
        self.store = store
        self.engine = engine  # never replaced: a reload changes its inventory
        self._clock = clock
        self._spans: dict[str, list[StateSpan]] = {}
        self._lock = threading.Lock()  # the metrics thread reads while the event loop appends
        self._cached: tuple[float, dict[str, SLOStatus]] | None = None
        self._checkpoints: dict[str, tuple[float, float, Availability]] = {}  # service -> (window start, upto, sum)
        self._running: dict[str, RunningTotals] = {}  # service -> totals for the burn-rate windows
        self._dirty = False

    def horizon(self, inventory: Inventory, now: float) -> float:
        starts = [slo_for(s, inventory.slo).window_span(now)[0] for s in inventory.services.values()]
        return min([now - KEEP, *starts])

    async def load(self) -> None:
        now = self._clock()
        since = self.horizon(self.engine.inventory, now)
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
            self._dirty = True  # shown within MIN_REFRESH

    def prune(self) -> None:
        """Forget spans that ended before anything still needs them."""
        now = self._clock()
        horizon = self.horizon(self.engine.inventory, now)
        with self._lock:
            for spans in self._spans.values():
                while spans and spans[0].end is not None and spans[0].end < horizon:
                    spans.pop(0)

    def status(self) -> dict[str, SLOStatus]:
        """Every service's SLO figures, at most REFRESH seconds old (called from the metrics thread)."""
        now = self._clock()
        if self._cached is not None:
            age = now - self._cached[0]
            if 0 <= age < (MIN_REFRESH if self._dirty else REFRESH):
                return self._cached[1]
        self._dirty = False
        result = self.compute_status(now)
        self._cached = (now, result)
        return result

    def compute_status(self, now: float) -> dict[str, SLOStatus]:
        inventory = self.engine.inventory
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
            window = self._window(
                name, spans, spec, so_far, None if full_hours is None else intersect(full_hours, [so_far])
            )
            expected = sum(b - a for a, b in full_hours) if full_hours is not None else full[1] - full[0]
            budget = spec.budget_fraction * max(0.0, expected - window.maintenance_seconds - window.gap_seconds)
            if spec.hours is None:
                running = self._running.get(name)
                if running is None or running.degraded_up != spec.degraded_up:
                    running = self._running[name] = RunningTotals(spec.degraded_up)
                running.update(spans)
                sums = {label: running.window(spans, now - secs, now) for label, secs in BURN_WINDOWS.items()}
            else:
                recent = spans[max(0, bisect_right(spans, now - KEEP, key=_start) - 1) :]  # sorted, disjoint
                parts = {}
                for label, secs in BURN_WINDOWS.items():
                    span = (now - secs, now)
                    parts[label] = compute(recent, span, hours(spec, span), degraded_up=spec.degraded_up)
                sums = {label: (p.up_seconds, p.downtime_seconds) for label, p in parts.items()}
            burns = {label: (down / (up + down)) / spec.budget_fraction if up + down > 0 else None
                     for label, (up, down) in sums.items()}  # fmt: skip
            inside = spec.hours is None or in_office_hours(now, spec.hours)
            result[name] = SLOStatus(spec, window, budget, burns, inside)
        return result

    def _window(
        self, name: str, spans: list[StateSpan], spec: SLOSpec, period: Span, hours: list[Span] | None
    ) -> Availability:
        """Availability over the window so far. Spans before the last (still open) one never change, so
        their sum is kept per service (a checkpoint) and only what is new is computed on each refresh."""
        start, now = period
        if hours is not None:  # service hours: computed whole (few services have them)
            return compute(spans, period, hours, degraded_up=spec.degraded_up)
        checkpoint = self._checkpoints.get(name)
        if checkpoint is None or checkpoint[0] != start or checkpoint[1] > now:
            checkpoint = (start, start, Availability())
        _, upto, done = checkpoint
        last_start = spans[-1].start if spans else start
        new_upto = max(upto, min(last_start, now))
        if new_upto > upto:
            first = max(0, bisect_right(spans, upto, key=_start) - 1)
            part = compute(spans[first:], (upto, new_upto), degraded_up=spec.degraded_up)
            done = _summed(done, part)
            self._checkpoints[name] = (start, new_upto, done)
        tail = compute(spans[-1:] if spans else [], (new_upto, now), degraded_up=spec.degraded_up)
        return _summed(done, tail)


def _summed(a: Availability, b: Availability) -> Availability:
    return Availability(
        a.service_seconds + b.service_seconds, a.maintenance_seconds + b.maintenance_seconds,
        a.gap_seconds + b.gap_seconds, a.downtime_seconds + b.downtime_seconds, a.up_seconds + b.up_seconds,
    )  # fmt: skip
