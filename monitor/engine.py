"""Current state of every check and service: feeds probe results through the state machine, layers
topology over it, derives services, and reports every change as a Transition. No I/O, no clock
reads: callers pass `now` and ship the transitions to the log, the store and (later) incidents.

A result with `local` set (the probe failed because of this host: EMFILE, a local firewall) says
nothing about the target: it does not enter the state machine, the counters or the history; the
check keeps its state and shows the monitoring gap as its reason until a real result arrives.

Topology: a target is down when all its reachability checks are (own state) DOWN. A DOWN check
whose target's parent is down is UNREACHABLE, its root cause the topmost down ancestor. When a
target's down-ness changes, its whole subtree is re-evaluated.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from monitor.inventory import Check, Inventory, Service, reachability_checks
from monitor.services import service_state
from monitor.state import CheckState, FlappingChanged, State, StateChanged, Verdict, effective_state, step
from probes.base import AGENT_NOT_RESPONDING, ProbeResult

HISTORY = 60  # recent results kept per check, for the API's sparkline and failure reasons


@dataclass(frozen=True, slots=True)
class Transition:
    kind: Literal["check", "service"]
    id: str
    old: State
    new: State
    at: float
    reason: str | None = None
    root_cause: str | None = None  # the down target upstream that makes this UNREACHABLE


@dataclass(slots=True)
class CheckRuntime:
    check: Check
    machine: CheckState = field(default_factory=CheckState)
    state: State = State.UNKNOWN  # effective: what operators see
    since: float | None = None
    root_cause: str | None = None
    last: ProbeResult | None = None
    probes_total: int = 0
    failures_total: int = 0
    recent: deque[tuple[float, bool, float]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    agent_down: str | None = None  # an SNMP check DOWN while its device answers: how it answers ("ICMP")
    gap: str | None = None  # "monitoring gap: ..." while its probes fail because of this host (result.local)
    gap_since: float | None = None

    @property
    def reason(self) -> str | None:
        """Why the check is in its state, as operators read it (None when UP)."""
        if self.state == State.UNREACHABLE:
            return f"parent {self.root_cause} is down"
        if self.state == State.MAINTENANCE:
            return "planned maintenance"
        if self.gap is not None:  # what we know now: nothing, because of us
            return self.gap
        if self.state == State.DOWN and self.agent_down:
            return f"SNMP agent down (device answers {self.agent_down}): {self.machine.reason}"
        return None if self.state == State.UP else self.machine.reason


@dataclass(slots=True)
class ServiceRuntime:
    service: Service
    state: State = State.UNKNOWN
    since: float | None = None


@dataclass(slots=True)
class Outcome:
    transitions: list[Transition] = field(default_factory=list)
    flapping: list[tuple[str, FlappingChanged]] = field(default_factory=list)
    recheck: list[str] = field(default_factory=list)  # checks worth probing now (a parent, to find root cause)


def verdict_of(result: ProbeResult) -> Verdict:
    if not result.ok:
        return "down"
    return "degraded" if result.degraded else "up"


class Engine:
    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.checks: dict[str, CheckRuntime] = {}
        self.services: dict[str, ServiceRuntime] = {}
        self.maintenance: dict[str, str] = {}  # check id -> the window covering it
        self.gaps: dict[str, str] = {}  # check id -> local failure kind ("EMFILE"), while the gap lasts
        self._reach: dict[str, tuple[str, ...]] = {}
        self.apply_inventory(inventory, now=0.0)

    # --- inventory -------------------------------------------------------------------------

    def apply_inventory(self, inventory: Inventory, now: float) -> Outcome:
        """Start or reload: keep the state of checks and services that still exist."""
        self.inventory = inventory
        self.checks = {cid: self._keep(self.checks.get(cid), check) for cid, check in inventory.checks.items()}
        self.services = {
            name: ServiceRuntime(svc, *self._service_prior(name)) for name, svc in inventory.services.items()
        }
        self._reach = {target: reachability_checks(inventory, target) for target in inventory.checks_by_target}
        self.gaps = {cid: kind for cid, kind in self.gaps.items() if cid in self.checks}
        outcome = Outcome()
        self._refresh(self.checks, now, outcome)
        return outcome

    @staticmethod
    def _keep(old: CheckRuntime | None, check: Check) -> CheckRuntime:
        if old is None:
            return CheckRuntime(check)
        old.check = check
        return old

    def _service_prior(self, name: str) -> tuple[State, float | None]:
        old = self.services.get(name)
        return (old.state, old.since) if old else (State.UNKNOWN, None)

    # --- topology --------------------------------------------------------------------------

    def target_down(self, target: str) -> bool:
        ids = self._reach.get(target, ())
        return bool(ids) and all(self.checks[i].machine.state == State.DOWN for i in ids)

    def root_cause(self, target: str) -> str | None:
        """The topmost down ancestor of `target` (contiguously down), or None if the parent is up."""
        root = None
        parent = self.inventory.targets[target].parent
        while parent is not None and self.target_down(parent):
            root = parent
            parent = self.inventory.targets[parent].parent
        return root

    def _subtree(self, target: str) -> Iterable[str]:
        stack = list(self.inventory.children.get(target, ()))
        while stack:
            name = stack.pop()
            yield name
            stack.extend(self.inventory.children.get(name, ()))

    # --- results ---------------------------------------------------------------------------

    def observe(self, check_id: str, result: ProbeResult, now: float) -> Outcome:
        outcome = Outcome()
        rt = self.checks.get(check_id)
        if rt is None:  # removed by a reload while the probe ran
            return outcome
        if result.local is not None:
            self._gap(check_id, rt, result, now)
            return outcome
        if rt.gap is not None:
            rt.gap = rt.gap_since = None
            self.gaps.pop(check_id, None)
        rt.last = result
        rt.probes_total += 1
        rt.failures_total += not result.ok
        rt.recent.append((now, result.ok, result.duration))
        verdict = verdict_of(result)
        target = rt.check.target.name
        was_down = self.target_down(target)
        rt.machine, events = step(rt.machine, verdict, rt.check.policy, now, result.error or result.degraded)
        for event in events:
            if isinstance(event, FlappingChanged):
                outcome.flapping.append((check_id, event))
        changed = [e for e in events if isinstance(e, StateChanged)]
        if verdict == "down" and rt.machine.fails == 1:
            outcome.recheck.extend(self._parent_rechecks(target))
        if not changed:
            return outcome
        affected = {check_id: rt}
        if self.target_down(target) != was_down:
            for cid in self.inventory.checks_by_target.get(target, ()):  # its SNMP checks' reason changes
                affected[cid] = self.checks[cid]
            for name in self._subtree(target):
                for cid in self.inventory.checks_by_target.get(name, ()):
                    affected[cid] = self.checks[cid]
        self._refresh(affected, now, outcome)
        return outcome

    def _gap(self, check_id: str, rt: CheckRuntime, result: ProbeResult, now: float) -> None:
        """A probe that failed because of this host: no verdict on the target. State, counters, history
        and the last real result stay as they were (no incident, nothing charged to availability);
        only the reason tells the operator that the check is not being watched right now."""
        if rt.gap is None:
            rt.gap_since = now
        rt.gap = result.error or f"monitoring gap: {result.local}"
        self.gaps[check_id] = result.local or "unknown"

    def gap_summary(self) -> dict[str, int]:
        """Checks in a monitoring gap now, by local failure kind ({"EMFILE": 282})."""
        summary: dict[str, int] = {}
        for kind in self.gaps.values():
            summary[kind] = summary.get(kind, 0) + 1
        return summary

    def _parent_rechecks(self, target: str) -> list[str]:
        """On a first failure, probe the parent's reachability checks now (unless already failing):
        if the parent is the real problem we learn it before this check is confirmed DOWN."""
        parent = self.inventory.targets[target].parent
        if parent is None:
            return []
        return [i for i in self._reach.get(parent, ()) if self.checks[i].machine.fails == 0]

    def _refresh(self, runtimes: Mapping[str, CheckRuntime], now: float, outcome: Outcome) -> None:
        touched_services: set[str] = set()
        for cid, rt in runtimes.items():
            target = rt.check.target.name
            rt.agent_down = self._agent_down(rt)
            root = self.root_cause(target) if rt.machine.state == State.DOWN else None
            new = effective_state(rt.machine.state, root is not None, in_maintenance=cid in self.maintenance)
            if new == rt.state and root == rt.root_cause:
                continue
            old = rt.state
            if new != old:
                rt.since = now
            rt.state, rt.root_cause = new, root
            outcome.transitions.append(Transition("check", cid, old, new, now, rt.reason, root))
            touched_services.update(self.inventory.services_by_check.get(cid, ()))
        for name in sorted(touched_services):
            self._refresh_service(self.services[name], now, outcome)

    def _agent_down(self, rt: CheckRuntime) -> str | None:
        """A DOWN SNMP check on a target whose reachability checks (ICMP) are not down: a lower-severity
        "SNMP agent down" problem, not "device down". Returns how the device still answers."""
        check = rt.check
        if check.kind != "snmp" or rt.machine.state != State.DOWN:
            return None
        if rt.last is None or AGENT_NOT_RESPONDING not in rt.last.info:  # it answered: a link down, a threshold
            return None
        deciders = self._reach.get(check.target.name, ())
        if not deciders or check.id in deciders or self.target_down(check.target.name):
            return None
        return "/".join(sorted({self.checks[c].check.kind.upper() for c in deciders}))

    def _refresh_service(self, srt: ServiceRuntime, now: float, outcome: Outcome) -> None:
        members = [self.checks[cid] for cid in srt.service.check_ids]
        new = service_state(srt.service.rule, (m.state for m in members))
        if new == srt.state:
            return
        down = [m.check.id for m in members if m.state in (State.DOWN, State.UNREACHABLE)]
        reason = f"{len(down)} of {len(members)} checks down: {', '.join(down[:5])}" if down else None
        roots = {m.root_cause for m in members if m.root_cause}
        outcome.transitions.append(
            Transition(
                "service",
                srt.service.name,
                srt.state,
                new,
                now,
                reason,
                next(iter(roots)) if len(roots) == 1 else None,
            )
        )
        srt.state, srt.since = new, now

    def set_maintenance(self, covered: dict[str, str], now: float) -> Outcome:
        """Checks now inside a maintenance window (check id -> window name); the rest leave maintenance."""
        changed = set(covered) ^ set(self.maintenance)
        self.maintenance = dict(covered)
        outcome = Outcome()
        self._refresh({cid: self.checks[cid] for cid in changed if cid in self.checks}, now, outcome)
        return outcome

    def is_confirming(self, check_id: str) -> bool:
        rt = self.checks.get(check_id)
        return rt is not None and rt.machine.confirming
