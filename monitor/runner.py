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
from monitor.inventory import Check
from probes import base, registry
from probes.base import Limit, Measure, ProbeKind, ProbeResult, Progress

log = structlog.get_logger()


def degraded_reason(
    result: ProbeResult, limits: Thresholds, now: float, rules: tuple[tuple[Measure, Limit], ...]
) -> str | None:
    """Why an ok result still counts as DEGRADED, or None: the probe took too long, or a measured value
    is past the threshold its kind declares on it (`rules`: registry.limits())."""
    if not result.ok:
        return None
    if limits.latency is not None and result.duration > limits.latency:
        return f"slow: {result.duration:.3f}s (limit {format_duration(limits.latency)})"
    values = result.values
    given: dict[str, Any] | None = None
    for measure, rule in rules:
        value = values.get(measure.key)
        if value is None:
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


class ProbeRunner:
    def __init__(self, probes: Mapping[str, ProbeKind[Any]], clock: Clock) -> None:
        self.probes = probes
        self.clock = clock
        self._limits = registry.limits()

    async def run(self, check: Check) -> ProbeResult:
        started = time.perf_counter()
        progress = Progress()  # per run: the probe writes how far it got, read below if the timeout cuts it off
        request = check.request.with_progress(progress)
        try:
            async with asyncio.timeout(check.timeout):
                result = await self.probes[check.kind].run(request, check.settings)
        except TimeoutError:
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
        if result.degraded is None or not result.ok:  # a probe's own verdict (an SNMP threshold) stands
            result.degraded = degraded_reason(result, check.degraded, result.finished_at, self._limits)
        return result
