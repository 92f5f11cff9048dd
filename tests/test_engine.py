"""The engine: results through the state machine, topology (UNREACHABLE, root cause), services, reload."""

from __future__ import annotations

from monitor.engine import Engine, Transition
from monitor.state import State
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


def test_parent_recovery_turns_still_failing_children_down(load_yaml_config: Loader) -> None:
    """If the parent comes back but a child still fails, the child is DOWN on its own account."""
    engine = topology(load_yaml_config, children=1)
    for cid in engine.checks:
        feed(engine, cid, OK, 1, 0.0)
    feed(engine, "fw/ping", FAIL, 2, 10.0)
    feed(engine, "child-0/ping", FAIL, 2, 10.0)
    assert engine.checks["child-0/ping"].state == State.UNREACHABLE
    changes = feed(engine, "fw/ping", OK, 1, 30.0)
    assert engine.checks["child-0/ping"].state == State.DOWN
    assert any(t.id == "child-0/ping" and t.old == State.UNREACHABLE and t.new == State.DOWN for t in changes)


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
