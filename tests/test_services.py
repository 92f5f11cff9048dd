"""Service state from member states by rule: all, any, at least N of M."""

from __future__ import annotations

import pytest

from monitor.core.services import service_state
from monitor.core.state import State

UP, DN, DG, UR, MT, UK = State.UP, State.DOWN, State.DEGRADED, State.UNREACHABLE, State.MAINTENANCE, State.UNKNOWN

CASES = [
    ("any: both circuits up", "any", [UP, UP], UP),
    ("any: primary down, backup up is DEGRADED", "any", [DN, UP], DG),
    ("any: both circuits down is DOWN", "any", [DN, DN], DN),
    ("all: one member down is DOWN", "all", [UP, DN, UP], DN),
    ("all: a degraded member makes it DEGRADED", "all", [UP, DG], DG),
    ("at least 2 of 3: one down is DEGRADED", 2, [UP, DN, UP], DG),
    ("at least 2 of 3: two down is DOWN", 2, [UP, DN, DN], DN),
    ("members down only because of upstream: UNREACHABLE", "any", [UR, UR], UR),
    ("a real DOWN member among unreachable ones: DOWN", "any", [UR, DN], DN),
    ("failing only because of maintenance: MAINTENANCE", "all", [UP, MT], MT),
    ("any: backup in maintenance, primary up: DEGRADED", "any", [UP, MT], DG),
    ("not probed yet and cannot decide: UNKNOWN", "all", [UP, UK], UK),
    ("any: one up, one not probed yet: UP (no false DEGRADED at start-up)", "any", [UP, UK], UP),
    ("down even if the unknown ones were up: DOWN", 3, [DN, DN, UK], DN),
    ("no members: UNKNOWN", "all", [], UK),
]


@pytest.mark.parametrize(("rule", "members", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_service_rules(rule: str | int, members: list[State], expected: State) -> None:
    """The rule over member states gives the expected service state."""
    assert service_state(rule, members) == expected
