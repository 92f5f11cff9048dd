"""A service's state from its member checks by its rule: all, any, or at least N of M. Pure.

An LGWAN link with primary and backup circuits (rule "any") is DEGRADED with one circuit down and
DOWN with both. A service that fails only because members are in planned maintenance is
MAINTENANCE (taken out of the availability), and one whose down members are all UNREACHABLE is
UNREACHABLE (down, but the root cause is upstream and is paged there).
"""

from __future__ import annotations

from collections.abc import Iterable

from monitor.core.state import State

Rule = str | int  # "all", "any", or N for "at least N"


def needed(rule: Rule, members: int) -> int:
    if rule == "all":
        return members
    if rule == "any":
        return min(1, members)
    return int(rule)


def service_state(rule: Rule, member_states: Iterable[State]) -> State:
    counts = dict.fromkeys(State, 0)
    for state in member_states:
        counts[state] += 1
    total = sum(counts.values())
    if total == 0:
        return State.UNKNOWN
    need = needed(rule, total)
    working = counts[State.UP] + counts[State.DEGRADED]
    if working >= need:
        # members not probed yet (UNKNOWN) do not make a working service DEGRADED at start-up
        all_fine = counts[State.UP] + counts[State.UNKNOWN] == total
        return State.UP if all_fine else State.DEGRADED
    if working + counts[State.MAINTENANCE] + counts[State.UNKNOWN] < need:
        if counts[State.DOWN] == 0 and counts[State.UNREACHABLE] > 0:
            return State.UNREACHABLE
        return State.DOWN
    if working + counts[State.MAINTENANCE] >= need:
        return State.MAINTENANCE
    return State.UNKNOWN
