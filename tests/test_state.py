"""The per-check state machine, table-driven: verdict sequences and the states they must produce."""

from __future__ import annotations

import pytest

from monitor.core.state import (
    CheckState,
    FlappingChanged,
    State,
    StateChanged,
    StatePolicy,
    effective_state,
    step,
)

POLICY = StatePolicy(failures_to_down=3, successes_to_up=2, flap_window=100.0, flap_transitions=4)
U, D, G = "up", "down", "degraded"


def run(verdicts: list[str], policy: StatePolicy = POLICY) -> tuple[CheckState, list[State]]:
    """Feed verdicts one second apart; return the final state and the state after each step."""
    state = CheckState()
    seen = []
    for i, verdict in enumerate(verdicts):
        state, _ = step(state, verdict, policy, float(i), reason=f"r{i}")  # type: ignore[arg-type]
        seen.append(state.state)
    return state, seen


CASES = [
    # (description, verdicts, expected state after each)
    ("a first success leaves UNKNOWN at once", [U], [State.UP]),
    ("failures before confirmation keep UNKNOWN", [D, D], [State.UNKNOWN, State.UNKNOWN]),
    ("N failures from UNKNOWN confirm DOWN", [D, D, D], [State.UNKNOWN, State.UNKNOWN, State.DOWN]),
    ("N failures from UP confirm DOWN", [U, D, D, D], [State.UP, State.UP, State.UP, State.DOWN]),
    ("a success in between resets the failure count", [U, D, D, U, D, D], [State.UP] * 6),
    ("M successes bring DOWN back UP", [D, D, D, U, U], [State.UNKNOWN] * 2 + [State.DOWN, State.DOWN, State.UP]),
    ("one success is not enough to leave DOWN", [D, D, D, U, D], [State.UNKNOWN] * 2 + [State.DOWN] * 3),
    ("recovering with degraded results lands in DEGRADED", [D, D, D, G, G], [State.UNKNOWN] * 2 + [State.DOWN] * 2 + [State.DEGRADED]),
    ("degraded results must be confirmed too", [U, G, G, G], [State.UP, State.UP, State.UP, State.DEGRADED]),
    ("mixed degraded and down results confirm DEGRADED, not DOWN", [U, G, D, G], [State.UP] * 3 + [State.DEGRADED]),
    ("M ups bring DEGRADED back to UP", [G, U, U], [State.DEGRADED, State.DEGRADED, State.UP]),
    ("failures confirm DOWN from DEGRADED", [G, D, D, D], [State.DEGRADED] * 3 + [State.DOWN]),
]  # fmt: skip


@pytest.mark.parametrize(("verdicts", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_state_sequences(verdicts: list[str], expected: list[State]) -> None:
    """Each verdict sequence produces exactly the expected states, step by step."""
    _, seen = run(verdicts)
    assert seen == expected


def test_state_change_event_carries_time_and_reason() -> None:
    """Confirming DOWN emits one StateChanged dated from the first failure of the run (the SLA counts from
    when the service failed), with the confirmation time and the failure reason of the confirming probe."""
    state = CheckState()
    events_all = []
    for t in range(3):
        state, events = step(state, "down", POLICY, 100.0 + t, reason="connection refused")
        events_all.extend(events)
    assert events_all == [StateChanged(State.UNKNOWN, State.DOWN, 100.0, "connection refused", 102.0)]
    assert state.since == 100.0 and state.reason == "connection refused"


def test_newest_failure_reason_kept_while_down() -> None:
    """While DOWN, the reason follows the newest failure (an operator sees what fails now)."""
    state, _ = run([D, D, D])
    state, events = step(state, "down", POLICY, 10.0, reason="timeout after 5s")
    assert events == [] and state.reason == "timeout after 5s"


def test_confirming_flag_drives_fast_reprobe() -> None:
    """`confirming` is true exactly while the latest verdict disagrees with the state."""
    state, _ = run([U])
    assert not state.confirming
    state, _ = step(state, "down", POLICY, 1.0)
    assert state.confirming
    state, _ = run([D, D, D])
    assert not state.confirming
    state, _ = step(state, "up", POLICY, 5.0)
    assert state.confirming


def test_flapping_detected_and_cleared_with_hysteresis() -> None:
    """Four state changes inside the window start flapping; it stops only after changes age out."""
    policy = StatePolicy(failures_to_down=1, successes_to_up=1, flap_window=100.0, flap_transitions=4)
    state = CheckState()
    flap_events = []
    t = 0.0
    for verdict in [U, D, U, D, U]:  # UNKNOWN->UP, then 4 more changes
        state, events = step(state, verdict, policy, t)  # type: ignore[arg-type]
        flap_events += [e for e in events if isinstance(e, FlappingChanged)]
        t += 1.0
    assert state.flapping
    assert [e.flapping for e in flap_events] == [True]
    # Stable UP for longer than the window: the changes age out and flapping stops once.
    state, events = step(state, "up", policy, t + 200.0)
    assert not state.flapping
    assert [e.flapping for e in events if isinstance(e, FlappingChanged)] == [False]


def test_steady_state_is_not_flapping() -> None:
    """A check that is simply down (one change) never counts as flapping."""
    state, _ = run([D] * 50)
    assert not state.flapping and state.state == State.DOWN


@pytest.mark.parametrize(
    ("own", "parent_down", "maintenance", "expected"),
    [
        (State.DOWN, True, False, State.UNREACHABLE),
        (State.DOWN, False, False, State.DOWN),
        (State.UP, True, False, State.UP),
        (State.DEGRADED, True, False, State.DEGRADED),
        (State.DOWN, True, True, State.MAINTENANCE),
        (State.UP, False, True, State.MAINTENANCE),
        (State.UNKNOWN, True, False, State.UNKNOWN),
    ],
)
def test_effective_state(own: State, parent_down: bool, maintenance: bool, expected: State) -> None:
    """Maintenance wins, then a down parent turns DOWN into UNREACHABLE; other states show as they are."""
    assert effective_state(own, parent_down, maintenance) == expected


def test_changes_are_dated_from_the_start_of_their_confirming_run() -> None:
    """Each confirmed change begins at the start of the first result of its run: DOWN at the first failure
    (not the earlier blip), UP at the first success of the recovering run, DEGRADED and back likewise."""
    state = CheckState()
    seen: list[tuple[State, float, float | None]] = []
    # (verdict, probe started, result in): every probe takes 2 s
    for verdict, started in [(U, 0), (D, 10), (U, 20), (D, 30), (D, 40), (D, 50), (U, 60), (D, 70), (U, 80),
                             (U, 90), (G, 100), (G, 110), (G, 120), (U, 130), (U, 140)]:  # fmt: skip
        state, events = step(state, verdict, POLICY, started + 2.0, reason=verdict, started=float(started))  # type: ignore[arg-type]
        seen += [(e.new, e.at, e.confirmed_at) for e in events if isinstance(e, StateChanged)]
    assert seen == [
        (State.UP, 0.0, 2.0),
        (State.DOWN, 30.0, 52.0),  # the blip at 10 is not part of the run
        (State.UP, 80.0, 92.0),  # the good result at 60 was followed by a failure: not the recovering run
        (State.DEGRADED, 100.0, 122.0),
        (State.UP, 130.0, 142.0),
    ]
    assert state.since == 130.0
