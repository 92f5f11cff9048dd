"""The probe path after the runner: a result -> the engine -> its outcome -> the consumers, in one order.

One place decides who hears what, so the rules are stated once:
- a local failure (this host's fds, firewall, store) is a monitoring gap: counted, logged once per gap,
  judged by nobody;
- with several shards, transitions of another shard's checks (known here only for root cause) are dropped
  before anyone sees them;
- observers (metrics text, live SLO figures, the console's event stream) hear every outcome on every
  daemon; actors (incidents and playbooks, the security desk, the store's state intervals) only on the HA
  leader: `leading` is the one switch, set by the daemon from its Leadership.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

import structlog

from monitor.core.engine import Engine, Outcome, Transition
from monitor.core.inventory import Check
from monitor.metrics.exposition import DaemonMetrics, StateCollector
from probes.base import ProbeResult

log = structlog.get_logger()


class OutcomeConsumer(Protocol):
    def on_outcome(self, outcome: Outcome) -> None: ...


class ResultConsumer(Protocol):
    def on_result(self, check_id: str, result: ProbeResult) -> None: ...


class TransitionRecorder(Protocol):
    """The store's side: state intervals, the availability figures' source."""

    def record(self, transitions: Iterable[Transition]) -> None: ...


class Pipeline:
    def __init__(
        self,
        engine: Engine,
        metrics: DaemonMetrics,
        state: StateCollector,
        recorder: TransitionRecorder,
        now: Callable[[], float],
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.state = state
        self.recorder = recorder
        self.now = now
        self.leading = True  # False while another daemon leads a shared store (HA): observe, do not act
        self.observers: list[OutcomeConsumer] = []
        self.actors: list[OutcomeConsumer] = []
        self.result_actors: list[ResultConsumer] = []
        # the scheduler's probe_soon once it runs: checks the engine wants re-probed at once (a parent is back)
        self.recheck: Callable[[Iterable[str]], None] | None = None

    def result(self, check: Check, result: ProbeResult) -> None:
        """One probe's result, as the runner returned it."""
        in_gap = check.id in self.engine.gaps
        outcome = self.engine.observe(check.id, result, self.now())
        if result.local is not None:  # this host failed, not the target: counted apart, judged by nobody
            self.metrics.local_failures.labels(check.kind, result.local).inc()
            if not in_gap:  # once per gap, not once per probe: thousands of checks fail together
                log.warning("monitoring_gap_started", check=check.id, errno=result.local, reason=result.error)
            return
        if in_gap:
            log.info("monitoring_gap_ended", check=check.id)
        self.metrics.count_probe(check.kind, result.ok)
        if self.leading:
            for actor in self.result_actors:
                actor.on_result(check.id, result)
        if (rt := self.engine.checks.get(check.id)) is not None:
            self.state.on_result(rt)
        if outcome.transitions or outcome.flapping or outcome.recheck:
            self.dispatch(outcome)

    def dispatch(self, outcome: Outcome) -> None:
        """An outcome of the engine (a result, a reload, a maintenance change) to everyone who hears it."""
        if self.engine.inventory.shard[1] > 1:  # another shard's checks: known for root cause, reported by theirs
            checks = self.engine.checks
            outcome.transitions = [t for t in outcome.transitions if t.kind != "check" or checks[t.id].check.exported]
            outcome.flapping = [f for f in outcome.flapping if checks[f[0]].check.exported]
        self.state.on_outcome(outcome)
        for t in outcome.transitions:
            log.info(
                "state_changed",
                subject=t.kind,
                id=t.id,
                old=t.old.value,
                new=t.new.value,
                reason=t.reason,
                root_cause=t.root_cause,
            )
            self.metrics.transitions.labels(t.kind, t.new.value).inc()
        if outcome.transitions and self.leading:
            self.recorder.record(outcome.transitions)
        for check_id, event in outcome.flapping:
            log.warning(
                "flapping_started" if event.flapping else "flapping_stopped", check=check_id, changes=event.changes
            )
        if outcome.recheck and self.recheck is not None:
            self.recheck(outcome.recheck)
        if self.leading:
            for actor in self.actors:
                actor.on_outcome(outcome)
        for observer in self.observers:
            observer.on_outcome(outcome)
