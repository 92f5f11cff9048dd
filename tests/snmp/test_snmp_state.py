"""SNMP checks in the state pipeline: an SNMP agent that stops answering on a device that still answers
ICMP is "SNMP agent down", a different problem from "device down"."""

from __future__ import annotations

import os

from monitor.engine import Engine
from monitor.state import State
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
