"""Current state of every check and service: feeds probe results through the state machine, layers
topology over it, derives services, and reports every change as a Transition. No I/O, no clock
reads: callers pass `now` and ship the transitions to the log, the store and (later) incidents.

A result with `local` set (the probe failed because of this host: EMFILE, a local firewall) says
nothing about the target: it does not enter the state machine, the counters or the history; the
check keeps its state and shows the monitoring gap as its reason until a real result arrives.

Topology: a target is down when all its reachability checks are (own state) DOWN. A DOWN check
whose target's parent is down is UNREACHABLE, its root cause the topmost down ancestor. When a
target's down-ness changes, its whole subtree is re-evaluated.

Recovery: when a target stops being down, a failure that started before that moment says nothing
about what is behind it (the path was cut). Its subtree is re-probed at once, every check there is
judged only on results started after the target was seen up, and a check that was DOWN behind it
starts over: it stays UNREACHABLE (behind the recovered root cause) until fresh results decide.

Restart: `resume` seeds the checks that were DOWN when the previous run ended; they show UNKNOWN
until their first fresh result, which either confirms them DOWN at once (one outage across the
restart) or starts them over.

Times: a change is dated from the start of its confirming run (`finished_at - duration` of the
results); the caller passes `now`, the engine never reads a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from monitor.inventory import Check, Inventory, Service, reachability_checks
from monitor.services import service_state
from monitor.state import CheckState, FlappingChanged, State, StateChanged, Verdict, effective_state, step
from probes import registry
from probes.base import AGENT_NOT_RESPONDING, ProbeResult

OUTAGE_STATES = frozenset({State.DOWN, State.UNREACHABLE})  # what `resume` carries across a restart

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
    confirmed_at: float | None = None  # when the change was confirmed (`at` is when it began)


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
    fresh_after: float | None = None  # a target above (or its own) was seen up then: older failures are stale
    pending_root: str | None = None  # was DOWN behind this recovered root cause; UNREACHABLE till fresh results
    pending_since: float | None = None  # when that root cause came back (a first fresh good result dates from it)
    resumed: bool = False  # DOWN when the previous run ended, not probed yet in this one
    last_ok_at: float | None = None  # when a good result last came in (the check was reachable then)

    @property
    def reason(self) -> str | None:
        """Why the check is in its state, as operators read it (None when UP)."""
        if self.state == State.UNREACHABLE and self.pending_root is not None:
            return f"parent {self.root_cause} recovered: re-probing"
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


def started_at(result: ProbeResult, now: float) -> float:
    """When the probe started: the runner sets finished_at and duration (results built by hand may not)."""
    return (result.finished_at or now) - result.duration


def verdict_of(result: ProbeResult) -> Verdict:
    if not result.ok:
        return "down"
    return "degraded" if result.degraded else "up"


class Engine:
    def __init__(self, inventory: Inventory, agent_kinds: frozenset[str] | None = None) -> None:
        self.inventory = inventory
        # the kinds whose failure can be their agent's alone ("SNMP agent down"): declared by the kinds
        self.agent_kinds = registry.agent_kinds() if agent_kinds is None else agent_kinds
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
        started = started_at(result, now)
        if result.ok:
            rt.last_ok_at = result.finished_at or now
        target = rt.check.target.name
        was_down = self.target_down(target)
        news = False  # the effective state may change without a state-machine event
        if rt.fresh_after is not None:
            if verdict == "down" and started < rt.fresh_after:
                return outcome  # stale: it failed on the way to a target that was down, not on its own
            rt.fresh_after, news = None, True
        if rt.resumed:
            rt.resumed, news = False, True
            if verdict != "down":  # back during the restart: the outage ended when we last saw it
                rt.machine = CheckState(changes=rt.machine.changes, flapping=rt.machine.flapping)
        reason = result.error or result.degraded
        rt.machine, events = step(rt.machine, verdict, rt.check.policy, now, reason, started)
        for event in events:
            if isinstance(event, FlappingChanged):
                outcome.flapping.append((check_id, event))
        changed = [e for e in events if isinstance(e, StateChanged)]
        if verdict == "down" and rt.machine.fails == 1:
            outcome.recheck.extend(self._parent_rechecks(target))
        if not changed and not news:
            return outcome
        affected = {check_id: rt}
        if self.target_down(target) != was_down:
            for cid in self.inventory.checks_by_target.get(target, ()):  # its SNMP checks' reason changes
                affected[cid] = self.checks[cid]
            for name in self._subtree(target):
                for cid in self.inventory.checks_by_target.get(name, ()):
                    affected[cid] = self.checks[cid]
            if was_down:
                outcome.recheck.extend(self._recovered(target, check_id, now, changed[0].at if changed else now))
        self._refresh(affected, now, outcome, {check_id: (changed[0].at if changed else started, now)})
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

    def _recovered(self, target: str, seen: str, now: float, back: float) -> list[str]:
        """`target` was just seen up: what is behind it (and its own other checks) is judged from now on
        only on fresh results. Checks DOWN behind it start over, UNREACHABLE behind it meanwhile; all are
        probed at once. Returns the checks to re-probe."""
        recheck = [cid for cid in self.inventory.checks_by_target.get(target, ()) if cid != seen]
        for cid in recheck:  # its own: DOWN in their own right, but their last failure predates the recovery
            self.checks[cid].fresh_after = now
        for name in self._subtree(target):
            for cid in self.inventory.checks_by_target.get(name, ()):
                rt = self.checks[cid]
                rt.fresh_after = now
                if rt.machine.state == State.DOWN or rt.pending_root is not None:
                    root = rt.pending_root or rt.root_cause or target
                    rt.machine = CheckState(changes=rt.machine.changes, flapping=rt.machine.flapping)
                    rt.pending_root, rt.pending_since = root, back
                elif rt.machine.fails:  # failures counted towards DOWN were the cut's, not its own
                    rt.machine = replace(rt.machine, fails=0, fails_from=None, not_ups=0, not_ups_from=None)
                recheck.append(cid)
        return recheck

    def resume(self, prior: Mapping[str, tuple[State, float, str | None]]) -> None:
        """Seed the checks that were DOWN or UNREACHABLE (state, since, reason) when the previous run ended.
        They count as down for topology at once (their children stay UNREACHABLE), show UNKNOWN until
        probed, and their first fresh failure confirms them DOWN again without a new confirming run."""
        for cid, (state, since, reason) in prior.items():
            rt = self.checks.get(cid)
            if rt is None or state not in OUTAGE_STATES:
                continue
            rt.machine = CheckState(state=State.DOWN, since=since, reason=reason)
            rt.resumed = True

    def _down_since(self, target: str) -> float:
        """When a down target went down: when the last of its reachability checks did."""
        return max((self.checks[i].machine.since or 0.0) for i in self._reach.get(target, ()))

    def _parent_rechecks(self, target: str) -> list[str]:
        """On a first failure, probe the parent's reachability checks now (unless already failing):
        if the parent is the real problem we learn it before this check is confirmed DOWN."""
        parent = self.inventory.targets[target].parent
        if parent is None:
            return []
        return [i for i in self._reach.get(parent, ()) if self.checks[i].machine.fails == 0]

    def _refresh(
        self,
        runtimes: Mapping[str, CheckRuntime],
        now: float,
        outcome: Outcome,
        began: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        """Re-derive the effective state of `runtimes`. `began`: check id -> (when its own change began,
        when it was confirmed); other changes (topology, maintenance) happen at `now`."""
        touched_services: dict[str, float] = {}
        for cid, rt in runtimes.items():
            target = rt.check.target.name
            back_since = None
            if rt.pending_root is not None and rt.machine.state != State.UNKNOWN:
                back_since = rt.pending_since  # fresh results have decided
                rt.pending_root = rt.pending_since = None
            rt.agent_down = self._agent_down(rt)
            root = self.root_cause(target) if rt.machine.state == State.DOWN else None
            new = effective_state(rt.machine.state, root is not None, in_maintenance=cid in self.maintenance)
            if rt.resumed and new != State.MAINTENANCE:
                new, root = State.UNKNOWN, None  # not seen in this run yet
            elif rt.pending_root is not None and new == State.UNKNOWN:
                new, root = State.UNREACHABLE, rt.pending_root
            if new == rt.state and root == rt.root_cause:
                continue
            old = rt.state
            at, confirmed = (began or {}).get(cid, (now, now))
            if new == State.UNREACHABLE and root is not None and began and cid in began:
                # cut off by its root cause: unreachable since that went down, unless seen working after
                at = min(at, max(self._down_since(root), rt.last_ok_at or 0.0))
            elif new in (State.UP, State.DEGRADED) and back_since is not None and began and cid in began:
                at = min(at, back_since)  # its first fresh result is good: reachable since its root cause came back
            at = max(at, rt.since) if rt.since is not None else at  # never before the state it leaves began
            if new != old:
                rt.since = at
            rt.state, rt.root_cause = new, root
            outcome.transitions.append(Transition("check", cid, old, new, at, rt.reason, root, confirmed))
            for name in self.inventory.services_by_check.get(cid, ()):
                touched_services[name] = max(at, touched_services.get(name, at))
        for name in sorted(touched_services):
            self._refresh_service(self.services[name], touched_services[name], now, outcome)

    def _agent_down(self, rt: CheckRuntime) -> str | None:
        """A DOWN check of an agent-polling kind (SNMP) on a target whose reachability checks (ICMP) are
        not down: a lower-severity "SNMP agent down" problem, not "device down". Returns how the device
        still answers."""
        check = rt.check
        if check.kind not in self.agent_kinds or rt.machine.state != State.DOWN or rt.fresh_after is not None:
            return None  # (no result since the device was seen up: its last failure is from the cut)
        if rt.last is None or AGENT_NOT_RESPONDING not in rt.last.info:  # it answered: a link down, a threshold
            return None
        deciders = self._reach.get(check.target.name, ())
        if not deciders or check.id in deciders or self.target_down(check.target.name):
            return None
        return "/".join(sorted({self.checks[c].check.kind.upper() for c in deciders}))

    def _refresh_service(self, srt: ServiceRuntime, at: float, now: float, outcome: Outcome) -> None:
        members = [self.checks[cid] for cid in srt.service.check_ids]
        new = service_state(srt.service.rule, (m.state for m in members))
        if new == srt.state:
            return
        down = [m.check.id for m in members if m.state in (State.DOWN, State.UNREACHABLE)]
        reason = f"{len(down)} of {len(members)} checks down: {', '.join(down[:5])}" if down else None
        roots = {m.root_cause for m in members if m.root_cause}
        at = max(at, srt.since) if srt.since is not None else at
        outcome.transitions.append(
            Transition(
                "service",
                srt.service.name,
                srt.state,
                new,
                at,
                reason,
                next(iter(roots)) if len(roots) == 1 else None,
                now,
            )
        )
        srt.state, srt.since = new, at

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
