"""Runs one probe for one check: owns the timeout and the timing, turns bugs into failed results,
and applies the check's DEGRADED thresholds to an ok result."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import structlog

from monitor.clock import Clock
from monitor.config.model import Thresholds
from monitor.config.types import format_duration
from monitor.core.inventory import Check
from monitor.scheduling.loopwatch import LoopWatch
from probes import base, registry
from probes.base import Limit, Measure, ProbeKind, ProbeResult, Progress

log = structlog.get_logger()
# A probe that timed out after losing more than this share of its timeout to this daemon's late event loop
# could not have been heard in time: its timeout says nothing about the target.
STARVED_SHARE = 0.5
OVERLOADED = "overload"  # result.local (the `reason` of monitor_probe_local_failures_total) for such a probe
# DEGRADED thresholds on what a late loop inflates (the probe's duration, round trips, echoes read too late):
# not judged on a probe that lost more than STARVED_SHARE of its duration to the loop
TIMING_LIMITS = frozenset({"rtt", "loss_ratio"})
MIN_STALL = 0.1  # seconds: a loop this little late is the ordinary jitter of a busy loop, not an overload


def degraded_reason(
    result: ProbeResult,
    limits: Thresholds,
    now: float,
    rules: tuple[tuple[Measure, Limit], ...],
    timing_trusted: bool = True,
) -> str | None:
    """Why an ok result still counts as DEGRADED, or None: the probe took too long, or a measured value
    is past the threshold its kind declares on it (`rules`: registry.limits()). Without `timing_trusted`
    (this daemon's loop ran late during the probe) its timings say nothing of the target's: only the other
    thresholds (certificate expiry, CRL) are judged."""
    if not result.ok:
        return None
    if timing_trusted and limits.latency is not None and result.duration > limits.latency:
        return f"slow: {result.duration:.3f}s (limit {format_duration(limits.latency)})"
    values = result.values
    given: dict[str, Any] | None = None
    for measure, rule in rules:
        value = values.get(measure.key)
        if value is None or (not timing_trusted and rule.setting in TIMING_LIMITS):
            continue
        if given is None:  # only for a result with a value that has a threshold: a dump costs microseconds
            given = limits.model_dump(exclude_none=True)
        limit = given.get(rule.setting)
        if limit is not None and (why := rule.reason(value, limit, now)) is not None:
            return why
    return None


def timed_out(timeout: float, progress: Progress) -> ProbeResult:
    """The result of a probe the timeout cut off: where it was and what it had learnt, not only that
    it took too long ("timeout after 5s while reading the body (HTTP 200, 5 of 100 bytes)")."""
    where = progress.where()
    error = f"timeout after {format_duration(timeout)}" + (f" {where}" if where else "")
    return ProbeResult.failure(error, phases=dict(progress.phases), info=dict(progress.facts), phase=progress.phase)


def starved(timeout: float, stalled: float) -> ProbeResult:
    """A timeout that this daemon's own event loop caused: a monitoring gap (result.local), not the target's."""
    error = (
        f"monitoring gap: this daemon was overloaded (its event loop ran {stalled:.1f}s late during the "
        f"probe's {format_duration(timeout)} timeout): the target was not heard in time, not found down"
    )
    return ProbeResult(ok=False, error=error, local=OVERLOADED)


class ProbeRunner:
    def __init__(self, probes: Mapping[str, ProbeKind[Any]], clock: Clock, loop_watch: LoopWatch | None = None) -> None:
        self.probes = probes
        self.clock = clock
        self.loop_watch = loop_watch
        self._limits = registry.limits()

    async def run(self, check: Check) -> ProbeResult:
        started = time.perf_counter()
        behind = self.loop_watch.behind() if self.loop_watch is not None else 0.0
        progress = Progress()  # per run: the probe writes how far it got, read below if the timeout cuts it off
        request = check.request.with_progress(progress)
        try:
            async with asyncio.timeout(check.timeout):
                result = await self.probes[check.kind].run(request, check.settings)
        except TimeoutError:
            stalled = self._stalled(behind)
            if stalled > STARVED_SHARE * check.timeout:
                result = starved(check.timeout, stalled)
            else:
                result = timed_out(check.timeout, progress)
        except base.LocalFailure as exc:  # this host failed (EMFILE, local firewall): a gap, not the target
            result = exc.result()
        except Exception as exc:  # a bug in a probe must not stop the scheduler
            if (local := base.local_failure(exc)) is not None:  # e.g. socket() failing with EMFILE, unwrapped
                result = local.result()
            else:
                log.exception("probe_crashed", check=check.id, kind=check.kind)
                result = ProbeResult.failure(f"internal error in {check.kind} probe: {type(exc).__name__}")
        if result.error is not None:  # one short line: errors end up in logs, metrics labels and pages
            result.error = " ".join(result.error.split())[:300]
        result.duration = time.perf_counter() - started
        if not result.phase:
            result.phase = "done" if result.ok else progress.phase
        result.finished_at = self.clock.now()
        if not result.ok:
            result.degraded = None
        elif result.degraded is None:  # a probe's own verdict (an SNMP threshold) stands
            stalled = self._stalled(behind)
            trusted = stalled <= STARVED_SHARE * result.duration or stalled < MIN_STALL
            result.degraded = degraded_reason(result, check.degraded, result.finished_at, self._limits, trusted)
        return result

    def _stalled(self, behind_at_start: float) -> float:
        """Seconds this daemon's event loop ran late since `behind_at_start` (LoopWatch.behind)."""
        return self.loop_watch.behind() - behind_at_start if self.loop_watch is not None else 0.0
