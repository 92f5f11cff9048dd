"""The per-check state machine: pure, no I/O, no clock reads.

    step(state, verdict, policy, now) -> (state, events)

A check's own state needs `failures_to_down` consecutive failed results to become DOWN and
`successes_to_up` consecutive good ones to leave DOWN; a first good result leaves UNKNOWN at once.
DEGRADED (ok but over a latency/loss threshold) is confirmed the same way. Flapping is counted
from state changes in a sliding window, with hysteresis so it does not flap itself.

A confirmed change is dated from the start of the first result of the run that confirmed it (the
SLA counts from when the service failed, not from when we were sure): each counter keeps the start
time of its run. An unconfirmed blip changes nothing, so it stays out of the record.

Topology and maintenance are not here: `effective_state` layers them over the own state (a DOWN
check whose parent device is down is UNREACHABLE: still probed, never paged, its downtime belongs
to the root cause).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal


class State(StrEnum):
    UNKNOWN = "unknown"  # not probed yet, or a monitoring gap
    UP = "up"
    DEGRADED = "degraded"  # answering, but over a latency/loss threshold (or a service partly down)
    DOWN = "down"
    UNREACHABLE = "unreachable"  # down because a parent in the topology is down
    MAINTENANCE = "maintenance"  # inside a planned maintenance window (計画停止)


ALL_STATES: tuple[State, ...] = tuple(State)
Verdict = Literal["up", "degraded", "down"]
_VERDICT_STATE: dict[str, State] = {"up": State.UP, "degraded": State.DEGRADED, "down": State.DOWN}


@dataclass(frozen=True, slots=True)
class StatePolicy:
    failures_to_down: int = 3
    successes_to_up: int = 2
    flap_window: float = 600.0
    flap_transitions: int = 6  # this many changes within flap_window: flapping


@dataclass(frozen=True, slots=True)
class CheckState:
    state: State = State.UNKNOWN
    since: float | None = None
    reason: str | None = None  # why the state was entered (the failure reason for DOWN)
    last_verdict: Verdict | None = None
    fails: int = 0  # consecutive "down" verdicts
    not_ups: int = 0  # consecutive "degraded" or "down" verdicts
    oks: int = 0  # consecutive "up" or "degraded" verdicts
    ups: int = 0  # consecutive "up" verdicts
    # when each of the four runs above began: the start of its first result (backdates a confirmed change)
    fails_from: float | None = None
    not_ups_from: float | None = None
    oks_from: float | None = None
    ups_from: float | None = None
    changes: tuple[float, ...] = ()  # times of recent state changes, for flapping
    flapping: bool = False

    @property
    def confirming(self) -> bool:
        """The latest result disagrees with the state: a change is being confirmed (re-probe fast)."""
        return self.last_verdict is not None and _VERDICT_STATE[self.last_verdict] != self.state


@dataclass(frozen=True, slots=True)
class StateChanged:
    old: State
    new: State
    at: float  # when the new state began: the start of the first result of the confirming run
    reason: str | None
    confirmed_at: float | None = None  # when the result that confirmed it came in (None: same as `at`)


@dataclass(frozen=True, slots=True)
class FlappingChanged:
    flapping: bool
    at: float
    changes: int  # state changes within the window


Event = StateChanged | FlappingChanged


def _count(state: CheckState, verdict: Verdict, started: float) -> CheckState:
    down, up = verdict == "down", verdict == "up"

    def run_from(count: int, since: float | None) -> float | None:
        return started if count == 1 or since is None else since

    fails = state.fails + 1 if down else 0
    not_ups = 0 if up else state.not_ups + 1
    oks = 0 if down else state.oks + 1
    ups = state.ups + 1 if up else 0
    return replace(
        state,
        last_verdict=verdict,
        fails=fails,
        not_ups=not_ups,
        oks=oks,
        ups=ups,
        fails_from=run_from(fails, state.fails_from) if fails else None,
        not_ups_from=run_from(not_ups, state.not_ups_from) if not_ups else None,
        oks_from=run_from(oks, state.oks_from) if oks else None,
        ups_from=run_from(ups, state.ups_from) if ups else None,
    )


def _began(s: CheckState, old: State, new: State, started: float) -> float:
    """When the confirmed change began: the start of the run that confirmed it."""
    if old == State.UNKNOWN and new != State.DOWN:  # a first good result: nothing to backdate
        return started
    run = {
        State.DOWN: s.fails_from,
        State.UP: s.ups_from if old == State.DEGRADED else s.oks_from,
        State.DEGRADED: s.not_ups_from if old == State.UP else s.oks_from,
    }.get(new)
    return started if run is None else min(run, started)


def _next_state(s: CheckState, verdict: Verdict, policy: StatePolicy) -> State:
    if s.fails >= policy.failures_to_down:
        return State.DOWN
    if s.state == State.UNKNOWN:
        return s.state if verdict == "down" else _VERDICT_STATE[verdict]
    if s.state == State.DOWN:
        return _VERDICT_STATE[verdict] if s.oks >= policy.successes_to_up else State.DOWN
    if s.state == State.UP and s.not_ups >= policy.failures_to_down:
        return State.DEGRADED
    if s.state == State.DEGRADED and s.ups >= policy.successes_to_up:
        return State.UP
    return s.state


def _flapping(s: CheckState, policy: StatePolicy, now: float) -> tuple[CheckState, list[Event]]:
    changes = tuple(t for t in s.changes if now - t <= policy.flap_window)
    flapping = s.flapping
    if not flapping and len(changes) >= policy.flap_transitions:
        flapping = True
    elif flapping and len(changes) < max(1, policy.flap_transitions // 2):
        flapping = False
    events: list[Event] = []
    if flapping != s.flapping:
        events.append(FlappingChanged(flapping, now, len(changes)))
    return replace(s, changes=changes, flapping=flapping), events


def step(
    state: CheckState,
    verdict: Verdict,
    policy: StatePolicy,
    now: float,
    reason: str | None = None,
    started: float | None = None,
) -> tuple[CheckState, list[Event]]:
    """Feed one probe verdict (of a probe that started at `started`, default `now`); return the new
    state and what happened. A change is dated from the start of its confirming run."""
    began_at = now if started is None else min(started, now)
    counted = _count(state, verdict, began_at)
    new = _next_state(counted, verdict, policy)
    events: list[Event] = []
    if new != state.state:
        at = _began(counted, state.state, new, began_at)
        if state.since is not None:
            at = max(at, state.since)  # never before the state it leaves began
        events.append(StateChanged(state.state, new, at, reason, now))
        counted = replace(counted, state=new, since=at, reason=reason, changes=(*counted.changes, now))
    elif new == State.DOWN and reason and verdict == "down":
        counted = replace(counted, reason=reason)  # keep the newest failure reason while down
    counted, flap_events = _flapping(counted, policy, now)
    return counted, events + flap_events


def effective_state(own: State, parent_down: bool, in_maintenance: bool) -> State:
    """The state operators see: maintenance first, then topology over the check's own state."""
    if in_maintenance:
        return State.MAINTENANCE
    if own == State.DOWN and parent_down:
        return State.UNREACHABLE
    return own
