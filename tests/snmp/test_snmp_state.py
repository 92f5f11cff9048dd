"""SNMP checks in the state pipeline: an SNMP agent that stops answering on a device that still answers
ICMP is "SNMP agent down", a different problem from "device down"."""

from __future__ import annotations

import os

from monitor.engine import Engine
from monitor.state import State
from probes import registry
from probes.base import AGENT_NOT_RESPONDING, ProbeResult
from tests.conftest import Loader

os.environ.setdefault("TEST_STATE_COMMUNITY", "public")
CONFIG = """
defaults: {failures_to_down: 2, successes_to_up: 1}
modules:
  ping: {kind: icmp}
  snmp: {kind: snmp, snmp: {community: "${TEST_STATE_COMMUNITY}"}}
targets:
  - {name: tokyo-edge, address: 127.0.0.1, modules: [ping, snmp]}
  - {name: tokyo-core, address: 127.0.0.2, parent: tokyo-edge, modules: [ping, snmp]}
  - {name: lonely, address: 127.0.0.3, modules: [snmp]}
"""
NO_ANSWER = "SNMP agent not responding: no SNMP response from 127.0.0.1:161 after 2 tries"


def fail(engine: Engine, check: str, now: float, error: str = NO_ANSWER) -> None:
    info = {AGENT_NOT_RESPONDING: "timeout"} if error == NO_ANSWER else {}
    engine.observe(check, ProbeResult(ok=False, error=error, info=info), now)


def test_snmp_down_while_icmp_answers_is_an_agent_problem(load_yaml_config: Loader) -> None:
    """The SNMP check is DOWN with the reason prefixed "SNMP agent down (device answers ICMP)"; the
    device is not down, so its children stay reachable."""
    engine = Engine(load_yaml_config(CONFIG).inventory)
    engine.observe("tokyo-edge/ping", ProbeResult(ok=True), 1.0)
    engine.observe("tokyo-core/ping", ProbeResult(ok=True), 1.0)
    fail(engine, "tokyo-edge/snmp", 1.0)
    fail(engine, "tokyo-edge/snmp", 2.0)
    rt = engine.checks["tokyo-edge/snmp"]
    assert rt.state == State.DOWN
    assert rt.reason == f"SNMP agent down (device answers ICMP): {NO_ANSWER}"
    assert not engine.target_down("tokyo-edge")
    fail(engine, "tokyo-core/snmp", 3.0)
    fail(engine, "tokyo-core/snmp", 4.0)
    assert engine.checks["tokyo-core/snmp"].state == State.DOWN  # not UNREACHABLE: its parent is up


def test_when_icmp_fails_too_the_device_is_down(load_yaml_config: Loader) -> None:
    """Once ICMP fails as well the device is down: the SNMP reason loses the agent prefix, and the
    child's failing checks become UNREACHABLE with the device as root cause."""
    engine = Engine(load_yaml_config(CONFIG).inventory)
    for now in (1.0, 2.0):
        fail(engine, "tokyo-edge/snmp", now)
    assert engine.checks["tokyo-edge/snmp"].reason is not None
    assert engine.checks["tokyo-edge/snmp"].reason.startswith("SNMP agent down")
    for now in (3.0, 4.0):
        fail(engine, "tokyo-edge/ping", now, "100% packet loss (3 sent)")
    assert engine.target_down("tokyo-edge")
    assert engine.checks["tokyo-edge/snmp"].reason == NO_ANSWER
    for now in (5.0, 6.0):
        fail(engine, "tokyo-core/snmp", now)
    assert engine.checks["tokyo-core/snmp"].state == State.UNREACHABLE
    assert engine.checks["tokyo-core/snmp"].root_cause == "tokyo-edge"


def test_a_link_down_is_not_an_agent_problem(load_yaml_config: Loader) -> None:
    """An SNMP check that fails because of what the agent said (a link down) keeps its own reason."""
    engine = Engine(load_yaml_config(CONFIG).inventory)
    engine.observe("tokyo-edge/ping", ProbeResult(ok=True), 1.0)
    link = "Gi0/1 [ifIndex 1]: link down: admin up, oper down"
    for now in (1.0, 2.0):
        fail(engine, "tokyo-edge/snmp", now, link)
    assert engine.checks["tokyo-edge/snmp"].reason == link


def test_snmp_only_target_decides_for_itself(load_yaml_config: Loader) -> None:
    """A target with no ICMP check: its SNMP check decides reachability, so no agent-down prefix."""
    engine = Engine(load_yaml_config(CONFIG).inventory)
    fail(engine, "lonely/snmp", 1.0)
    fail(engine, "lonely/snmp", 2.0)
    assert engine.checks["lonely/snmp"].reason == NO_ANSWER
    assert engine.target_down("lonely")


def test_no_agent_down_wording_on_a_failure_from_before_the_device_came_back(load_yaml_config: Loader) -> None:
    """A cut device comes back (ICMP answers): its SNMP check's last failure is from the cut, so it is not called
    "SNMP agent down (device answers ICMP)", and its child's SNMP check stays UNREACHABLE (no DOWN, no agent
    wording) until fresh results; a fresh SNMP failure while ICMP answers is an agent problem again."""
    engine = Engine(load_yaml_config(CONFIG).inventory)
    for now in (1.0, 2.0):
        for check in ("tokyo-edge/ping", "tokyo-core/ping"):
            engine.observe(check, ProbeResult(ok=True), now)
    for now in (3.0, 4.0):
        fail(engine, "tokyo-edge/ping", now, "100% packet loss (3 sent)")
        for check in ("tokyo-edge/snmp", "tokyo-core/snmp", "tokyo-core/ping"):
            fail(engine, check, now, NO_ANSWER if check.endswith("snmp") else "100% packet loss (3 sent)")
    assert engine.checks["tokyo-core/snmp"].state == State.UNREACHABLE
    back = engine.observe("tokyo-edge/ping", ProbeResult(ok=True), 10.0)
    assert {"tokyo-edge/snmp", "tokyo-core/snmp", "tokyo-core/ping"} <= set(back.recheck)
    edge_snmp, core_snmp = engine.checks["tokyo-edge/snmp"], engine.checks["tokyo-core/snmp"]
    assert edge_snmp.reason is not None and "agent down" not in edge_snmp.reason
    assert core_snmp.state == State.UNREACHABLE and "agent down" not in (core_snmp.reason or "")
    transitions = [(t.id, t.new, t.reason) for t in back.transitions]
    assert not [t for t in transitions if "agent down" in (t[2] or "") or t[1] == State.DOWN], transitions
    late = ProbeResult(
        ok=False, error=NO_ANSWER, info={AGENT_NOT_RESPONDING: "timeout"}, duration=4.0, finished_at=11.0
    )
    engine.observe("tokyo-edge/snmp", late, 11.0)  # started at 7, before the device was seen up: still stale
    assert "agent down" not in (edge_snmp.reason or "")
    fail(engine, "tokyo-edge/snmp", 12.0)  # fresh: the agent really does not answer
    assert edge_snmp.reason == f"SNMP agent down (device answers ICMP): {NO_ANSWER}"


def test_the_agent_rule_follows_the_kinds_that_declare_polling_an_agent(load_yaml_config: Loader) -> None:
    """The engine names no kind: the rule applies to the kinds whose class declares `polls_agent` (SNMP);
    for a kind that does not, the same unanswered failure is the check's own reason."""
    assert registry.agent_kinds() == frozenset({"snmp"})
    engine = Engine(load_yaml_config(CONFIG).inventory, agent_kinds=frozenset())
    engine.observe("tokyo-edge/ping", ProbeResult(ok=True), 1.0)
    fail(engine, "tokyo-edge/snmp", 1.0)
    fail(engine, "tokyo-edge/snmp", 2.0)
    assert engine.checks["tokyo-edge/snmp"].state == State.DOWN
    assert engine.checks["tokyo-edge/snmp"].reason == NO_ANSWER
