"""The engine: results through the state machine, topology (UNREACHABLE, root cause), services, reload."""

from __future__ import annotations

from monitor.core.engine import Engine, Transition
from monitor.core.state import State
from probes.base import ProbeResult
from tests.conftest import Loader

TOPOLOGY = """
defaults: {failures_to_down: 2, successes_to_up: 1, interval: 10s, timeout: 2s}
modules:
  ping: {kind: icmp}
  web: {kind: http}
targets:
  - {name: core, address: 127.0.0.1, modules: [ping, web]}
  - {name: edge, address: 127.0.0.2, parent: core, modules: [ping]}
  - {name: fw, address: 127.0.0.3, parent: edge, modules: [ping]}
{children}
services:
  - {name: link, rule: any, select: {labels: {role: circuit}}}
"""


def topology(load: Loader, children: int | list[int] = 20) -> Engine:
    indexes = range(children) if isinstance(children, int) else children
    rows = "\n".join(
        f"  - {{name: child-{i}, address: 127.0.1.{i + 1}, parent: fw, modules: [ping], labels: {{role: circuit}}}}"
        for i in indexes
    )
    return Engine(load(TOPOLOGY.replace("{children}", rows)).inventory)


OK = ProbeResult(ok=True)
FAIL = ProbeResult(ok=False, error="100% packet loss (3 sent)")


def feed(engine: Engine, check: str, result: ProbeResult, times: int, start: float) -> list[Transition]:
    out: list[Transition] = []
    for i in range(times):
        out += engine.observe(check, result, start + i).transitions
    return out


def test_children_of_a_down_parent_are_unreachable_with_root_cause(load_yaml_config: Loader) -> None:
    """All 20 children failing behind a down parent are UNREACHABLE, and their root cause is that parent."""
    engine = topology(load_yaml_config)
    for cid in engine.checks:
        feed(engine, cid, OK, 1, 0.0)
    feed(engine, "edge/ping", FAIL, 2, 10.0)
    for cid in ["fw/ping", *(f"child-{i}/ping" for i in range(20))]:
        feed(engine, cid, FAIL, 2, 20.0)
    states = {cid: rt.state for cid, rt in engine.checks.items()}
    assert states["edge/ping"] == State.DOWN
    assert states["fw/ping"] == State.UNREACHABLE
    assert all(states[f"child-{i}/ping"] == State.UNREACHABLE for i in range(20))
    assert {engine.checks[f"child-{i}/ping"].root_cause for i in range(20)} == {"edge"}
    assert engine.services["link"].state == State.UNREACHABLE


def test_child_confirmed_before_parent_is_reattributed(load_yaml_config: Loader) -> None:
    """A child that went DOWN first becomes UNREACHABLE (with a transition) once its parent is confirmed down."""
    engine = topology(load_yaml_config, children=1)
    for cid in engine.checks:
        feed(engine, cid, OK, 1, 0.0)
    first = feed(engine, "child-0/ping", FAIL, 2, 10.0)
    assert [(t.id, t.new) for t in first if t.kind == "check"] == [("child-0/ping", State.DOWN)]
    feed(engine, "fw/ping", FAIL, 2, 20.0)
    reattributed = [t for t in engine.observe("fw/ping", FAIL, 22.0).transitions]
    assert reattributed == []  # already down: nothing new
    assert engine.checks["child-0/ping"].state == State.UNREACHABLE
    assert engine.checks["child-0/ping"].root_cause == "fw"


def test_root_cause_moves_up_to_the_topmost_down_ancestor(load_yaml_config: Loader) -> None:
    """When the grandparent goes down too, descendants' root cause becomes the grandparent."""
    engine = topology(load_yaml_config, children=2)
    for cid in engine.checks:
        feed(engine, cid, OK, 1, 0.0)
    for cid in ["fw/ping", "child-0/ping", "child-1/ping"]:
        feed(engine, cid, FAIL, 2, 10.0)
    assert engine.checks["child-0/ping"].root_cause == "fw"
    changes = feed(engine, "edge/ping", FAIL, 2, 20.0)
    assert engine.checks["fw/ping"].state == State.UNREACHABLE
    assert {engine.checks[c].root_cause for c in ("fw/ping", "child-0/ping", "child-1/ping")} == {"edge"}
    moved = {t.id for t in changes if t.kind == "check" and t.root_cause == "edge"}
    assert {"fw/ping", "child-0/ping", "child-1/ping"} <= moved


def test_parent_recovery_judges_children_only_on_fresh_results(load_yaml_config: Loader) -> None:
    """When the parent comes back, a child still failing is not DOWN on its stale result: it stays UNREACHABLE
    behind the recovered parent, is re-probed at once, ignores failures of probes started before the parent
    was seen up, and goes DOWN only on a confirming run of fresh failures (it really is down on its own)."""
    engine = topology(load_yaml_config, children=1)
    for cid in engine.checks:
        feed(engine, cid, OK, 1, 0.0)
    feed(engine, "fw/ping", FAIL, 2, 10.0)
    feed(engine, "child-0/ping", FAIL, 2, 10.0)
    assert engine.checks["child-0/ping"].state == State.UNREACHABLE
    outcome = engine.observe("fw/ping", OK, 30.0)
    child = engine.checks["child-0/ping"]
    assert child.state == State.UNREACHABLE and child.root_cause == "fw"
    assert "child-0/ping" in outcome.recheck
    assert not [t for t in outcome.transitions if t.id == "child-0/ping"]
    stale = ProbeResult(ok=False, error="timeout", duration=2.0, finished_at=31.0)  # started at 29: before
    for at in (31.0, 31.5, 32.0):
        assert engine.observe("child-0/ping", stale, at).transitions == []
    assert child.state == State.UNREACHABLE
    fresh = [ProbeResult(ok=False, error="timeout", duration=2.0, finished_at=t) for t in (33.0, 36.0)]
    assert engine.observe("child-0/ping", fresh[0], 33.0).transitions == []
    changes = engine.observe("child-0/ping", fresh[1], 36.0).transitions
    assert child.state == State.DOWN and child.root_cause is None
    down = [t for t in changes if t.id == "child-0/ping"]
    assert [(t.old, t.new, t.at) for t in down] == [(State.UNREACHABLE, State.DOWN, 31.0)]  # its first fresh failure


def test_parent_recovery_brings_a_fine_child_up_without_a_down(load_yaml_config: Loader) -> None:
    """The usual recovery: the child's first fresh result is good, it goes UNREACHABLE -> UP, never DOWN."""
    engine = topology(load_yaml_config, children=2)
    for cid in engine.checks:
        feed(engine, cid, OK, 1, 0.0)
    feed(engine, "edge/ping", FAIL, 2, 10.0)
    for cid in ("fw/ping", "child-0/ping", "child-1/ping"):
        feed(engine, cid, FAIL, 2, 10.0)
    seen = engine.observe("edge/ping", OK, 30.0).transitions
    in_flight = ProbeResult(ok=False, error="timeout", duration=3.0, finished_at=30.5)  # started at 27.5: stale
    seen += engine.observe("child-1/ping", in_flight, 30.5).transitions
    for cid in ("fw/ping", "child-0/ping", "child-1/ping"):
        seen += engine.observe(cid, OK, 31.0).transitions
    checks = [(t.id, t.old, t.new) for t in seen if t.kind == "check"]
    assert ("edge/ping", State.DOWN, State.UP) in checks
    assert not [c for c in checks if c[2] == State.DOWN], checks
    assert all(engine.checks[c].state == State.UP for c in engine.checks)
    assert engine.services["link"].state == State.UP
    # the children and their service are back from when the parent was: their re-probe only confirmed it
    assert {t.id: t.at for t in seen if t.new == State.UP} == {"edge/ping": 30.0, "fw/ping": 30.0,
                                                               "child-0/ping": 30.0, "child-1/ping": 30.0, "link": 30.0}  # fmt: skip


def test_a_child_with_failures_short_of_down_starts_counting_again(load_yaml_config: Loader) -> None:
    """A child one failure short of DOWN when its parent recovers does not go DOWN on one more failure."""
    engine = topology(load_yaml_config, children=1)
    for cid in engine.checks:
        feed(engine, cid, OK, 1, 0.0)
    feed(engine, "fw/ping", FAIL, 2, 10.0)
    engine.observe("child-0/ping", FAIL, 11.0)  # failures_to_down is 2: one short
    engine.observe("fw/ping", OK, 30.0)
    engine.observe("child-0/ping", FAIL, 31.0)
    assert engine.checks["child-0/ping"].state == State.UP
    engine.observe("child-0/ping", FAIL, 32.0)
    assert engine.checks["child-0/ping"].state == State.DOWN


def test_a_confirmed_outage_is_dated_from_its_first_failure_and_ends_at_its_first_success(
    load_yaml_config: Loader,
) -> None:
    """Backdating: DOWN begins at the start of the first failed probe of the confirming run, UP at the start of
    the first good probe of the recovering run, for the check and the services it takes down; a blip short of
    confirmation writes nothing."""
    engine = topology(load_yaml_config, children=2)
    for cid in engine.checks:
        feed(engine, cid, OK, 1, 0.0)

    def result(ok: bool, finished: float) -> ProbeResult:
        return ProbeResult(ok=ok, error=None if ok else "timeout", duration=2.0, finished_at=finished)

    assert engine.observe("child-0/ping", result(False, 12.0), 12.0).transitions == []  # a blip
    assert engine.observe("child-0/ping", result(True, 22.0), 22.0).transitions == []
    engine.observe("child-0/ping", result(False, 32.0), 32.0)
    down = engine.observe("child-0/ping", result(False, 35.0), 35.0).transitions
    assert {(t.kind, t.id, t.new, t.at, t.confirmed_at) for t in down} == {
        ("check", "child-0/ping", State.DOWN, 30.0, 35.0),
        ("service", "link", State.DEGRADED, 30.0, 35.0),
    }
    assert engine.checks["child-0/ping"].since == 30.0
    up = engine.observe("child-0/ping", result(True, 45.0), 45.0).transitions
    assert {(t.kind, t.new, t.at) for t in up} == {("check", State.UP, 43.0), ("service", State.UP, 43.0)}


def test_resume_after_restart_keeps_an_ongoing_outage_and_its_children(load_yaml_config: Loader) -> None:
    """After a restart the checks that were DOWN/UNREACHABLE are seeded: UNKNOWN until probed, but down for
    topology, so children failing first are UNREACHABLE; the first fresh failure confirms DOWN at once; a check
    found up starts over (UP on its first good result)."""
    engine = topology(load_yaml_config, children=2)
    engine.resume({
        "fw/ping": (State.DOWN, 5.0, "timeout"),
        "child-0/ping": (State.UNREACHABLE, 6.0, "parent fw is down"),
        "child-1/ping": (State.UNREACHABLE, 6.0, "parent fw is down"),
    })  # fmt: skip
    assert engine.checks["fw/ping"].state == State.UNKNOWN
    first = engine.observe("child-0/ping", FAIL, 100.0).transitions
    assert [(t.id, t.new, t.root_cause) for t in first if t.kind == "check"] == [
        ("child-0/ping", State.UNREACHABLE, "fw")
    ]
    again = engine.observe("fw/ping", FAIL, 101.0).transitions
    assert [(t.id, t.old, t.new) for t in again if t.kind == "check"] == [("fw/ping", State.UNKNOWN, State.DOWN)]
    assert engine.checks["fw/ping"].machine.since == 5.0  # the outage goes on from before the restart
    back = engine.observe("child-1/ping", OK, 102.0).transitions
    assert [(t.id, t.old, t.new) for t in back if t.kind == "check"] == [("child-1/ping", State.UNKNOWN, State.UP)]


def test_only_reachability_checks_decide_if_a_target_is_down(load_yaml_config: Loader) -> None:
    """The parent's HTTP check failing does not make children unreachable; its ICMP check does."""
    engine = topology(load_yaml_config, children=1)
    for cid in engine.checks:
        feed(engine, cid, OK, 1, 0.0)
    feed(engine, "core/web", FAIL, 2, 10.0)
    feed(engine, "edge/ping", FAIL, 2, 10.0)
    assert engine.checks["edge/ping"].state == State.DOWN
    feed(engine, "core/ping", FAIL, 2, 20.0)
    assert engine.checks["edge/ping"].state == State.UNREACHABLE


def test_first_child_failure_asks_to_probe_the_parent_now(load_yaml_config: Loader) -> None:
    """On a child's first failure the engine names the parent's reachability checks to probe at once."""
    engine = topology(load_yaml_config, children=1)
    for cid in engine.checks:
        feed(engine, cid, OK, 1, 0.0)
    assert engine.observe("child-0/ping", FAIL, 10.0).recheck == ["fw/ping"]
    assert engine.observe("child-0/ping", FAIL, 11.0).recheck == []  # only on the first failure


def test_lgwan_link_degraded_then_down(load_yaml_config: Loader) -> None:
    """A primary+backup link (rule any) is DEGRADED with one circuit down and DOWN with both."""
    engine = topology(load_yaml_config, children=2)
    for cid in engine.checks:
        feed(engine, cid, OK, 1, 0.0)
    assert engine.services["link"].state == State.UP
    feed(engine, "child-0/ping", FAIL, 2, 10.0)
    assert engine.services["link"].state == State.DEGRADED
    changes = feed(engine, "child-1/ping", FAIL, 2, 20.0)
    assert engine.services["link"].state == State.DOWN
    assert [(t.id, t.old, t.new) for t in changes if t.kind == "service"] == [("link", State.DEGRADED, State.DOWN)]


def test_reload_keeps_state_of_checks_that_remain(load_yaml_config: Loader) -> None:
    """Reload: kept checks keep their state, removed ones disappear, new ones start UNKNOWN."""
    engine = topology(load_yaml_config, children=2)
    for cid in engine.checks:
        feed(engine, cid, OK, 1, 0.0)
    feed(engine, "child-0/ping", FAIL, 2, 10.0)
    engine.apply_inventory(topology(load_yaml_config, children=[0, 2]).inventory, 30.0)
    assert engine.checks["child-0/ping"].state == State.DOWN
    assert "child-1/ping" not in engine.checks
    assert engine.checks["child-2/ping"].state == State.UNKNOWN
    assert engine.observe("child-1/ping", OK, 31.0).transitions == []  # a late result of a removed check


def test_a_child_cut_off_by_its_root_cause_is_unreachable_from_when_the_root_went_down(
    load_yaml_config: Loader,
) -> None:
    """A child probed less often than its parent fails later: its UNREACHABLE (and its service's downtime) is dated
    from when the root cause went down, not from its own later first failure, unless it was seen working after."""
    engine = topology(load_yaml_config, children=2)
    for cid in engine.checks:
        engine.observe(cid, ProbeResult(ok=True, finished_at=1.0), 1.0)
    engine.observe("child-1/ping", ProbeResult(ok=True, finished_at=13.0), 13.0)  # still fine after fw went down
    for at in (10.0, 12.0):
        engine.observe("fw/ping", ProbeResult(ok=False, error="timeout", finished_at=at + 1.0, duration=1.0), at + 1.0)
    assert engine.target_down("fw") and engine.checks["fw/ping"].since == 10.0
    seen: list[Transition] = []
    for cid in ("child-0/ping", "child-1/ping"):
        for at in (20.0, 22.0):
            result = ProbeResult(ok=False, error="timeout", finished_at=at + 1.0, duration=1.0)
            seen += engine.observe(cid, result, at + 1.0).transitions
    unreachable = {t.id: t.at for t in seen if t.kind == "check" and t.new == State.UNREACHABLE}
    assert unreachable == {"child-0/ping": 10.0, "child-1/ping": 13.0}
    link = [t for t in seen if t.kind == "service" and t.id == "link" and t.new == State.UNREACHABLE]
    assert [t.at for t in link] == [13.0]  # down (rule any) when the last circuit was
