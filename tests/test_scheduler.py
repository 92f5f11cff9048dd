"""The probe scheduler, on real time with short intervals: spread, no overlap, fast re-probe, limits."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections import defaultdict

import pytest
from prometheus_client import CollectorRegistry

from monitor.core.inventory import Check
from monitor.scheduling.scheduler import Scheduler, SchedulerMetrics, phase
from tests.conftest import Loader


def checks(load: Loader, count: int, interval: str = "400ms", extra: str = "") -> dict[str, Check]:
    targets = "\n".join(f"  - {{name: t{i}, address: 127.0.0.1, modules: [ping]}}" for i in range(count))
    text = f"modules:\n  ping: {{kind: icmp, interval: {interval}, timeout: 200ms, retry_interval: 100ms{extra}}}\ntargets:\n{targets}\n"
    return dict(load(text).inventory.checks)


def metric(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value(name) or 0.0


def test_phase_is_stable_and_spread() -> None:
    """The offset of a check is the same every time and 10,000 checks spread evenly over the interval."""
    assert phase("tokyo-edge/icmp") == phase("tokyo-edge/icmp")
    buckets = [0] * 10
    for i in range(10_000):
        buckets[int(phase(f"t{i}/icmp") * 10)] += 1
    assert min(buckets) > 850 and max(buckets) < 1150


async def test_runs_on_interval_and_records_lag(load_yaml_config: Loader) -> None:
    """Each check runs about every interval; lag samples are recorded and small."""
    runs: dict[str, list[float]] = defaultdict(list)
    loop = asyncio.get_running_loop()

    async def execute(check: Check) -> None:
        runs[check.id].append(loop.time())

    registry = CollectorRegistry()
    sched = Scheduler(execute, lambda _: False, SchedulerMetrics(registry), 100)
    sched.set_checks(checks(load_yaml_config, 5))
    await asyncio.sleep(2.3)
    await sched.stop()
    for times in runs.values():
        assert len(times) >= 4
        gaps = [b - a for a, b in itertools.pairwise(times[1:])]  # the first run is at a start-up offset
        assert statistics.median(gaps) == pytest.approx(0.4, abs=0.05)
    assert metric(registry, "monitor_scheduler_lag_seconds_count") >= 20
    assert (
        metric(registry, "monitor_scheduler_lag_seconds_sum") / metric(registry, "monitor_scheduler_lag_seconds_count")
        < 0.05
    )


async def test_slow_run_never_overlaps_and_counts_skips(load_yaml_config: Loader) -> None:
    """A run longer than the interval is never overlapped by the next one; the skipped slots are counted."""
    running = 0
    overlap = False

    async def execute(check: Check) -> None:
        nonlocal running, overlap
        running += 1
        overlap |= running > 1
        await asyncio.sleep(0.9)
        running -= 1

    registry = CollectorRegistry()
    sched = Scheduler(execute, lambda _: False, SchedulerMetrics(registry), 100)
    sched.set_checks(checks(load_yaml_config, 1, interval="300ms"))
    await asyncio.sleep(2.5)
    await sched.stop(grace=2)
    assert not overlap
    assert metric(registry, "monitor_probes_skipped_total") >= 3


async def test_run_as_long_as_its_interval_is_not_probed_half_as_often(load_yaml_config: Loader) -> None:
    """The slot rule: a probe that takes its whole timeout, timeout == interval (a dead target), ends just
    after its next slot; that slot runs at once, late, instead of being skipped: every interval, not every
    other one. A run that overruns its slot by more than half an interval still skips it (counted)."""
    starts: list[float] = []
    loop = asyncio.get_running_loop()

    async def execute(check: Check) -> None:
        starts.append(loop.time())
        await asyncio.sleep(0.3)  # the whole timeout, as long as the interval

    registry = CollectorRegistry()
    sched = Scheduler(execute, lambda _: False, SchedulerMetrics(registry), 100)
    sched.set_checks(checks(load_yaml_config, 1, interval="300ms"))
    await asyncio.sleep(3.2)
    await sched.stop(grace=1)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(starts) >= 9, gaps  # ~10 intervals after the start-up offset; skipping would give ~5
    assert statistics.median(gaps) == pytest.approx(0.3, abs=0.05)
    assert metric(registry, "monitor_probes_skipped_total") <= 1


async def test_failing_check_is_reprobed_after_retry_interval(load_yaml_config: Loader) -> None:
    """While confirming a change, the next run comes after retry_interval (100 ms), not the interval (2 s)."""
    runs: list[float] = []
    loop = asyncio.get_running_loop()

    async def execute(check: Check) -> None:
        runs.append(loop.time())

    registry = CollectorRegistry()
    sched = Scheduler(execute, lambda _: True, SchedulerMetrics(registry), 100)
    sched.set_checks(checks(load_yaml_config, 1, interval="2s"))
    await asyncio.sleep(2.5)
    await sched.stop()
    assert len(runs) >= 8
    assert max(b - a for a, b in itertools.pairwise(runs)) < 0.3


async def test_global_and_module_concurrency_limits(load_yaml_config: Loader) -> None:
    """No more probes run at once than the global limit, nor than the module's max_concurrency."""
    peak = {"all": 0}
    now = {"all": 0}

    async def execute(check: Check) -> None:
        now["all"] += 1
        peak["all"] = max(peak["all"], now["all"])
        await asyncio.sleep(0.15)
        now["all"] -= 1

    all_checks = checks(load_yaml_config, 30, interval="1s")
    sched = Scheduler(execute, lambda _: False, SchedulerMetrics(CollectorRegistry()), 5)
    sched.set_checks(all_checks)
    await asyncio.sleep(1.2)
    await sched.stop()
    assert peak["all"] == 5

    peak["all"] = 0
    limited = checks(load_yaml_config, 30, interval="1s", extra=", max_concurrency: 2")
    sched = Scheduler(execute, lambda _: False, SchedulerMetrics(CollectorRegistry()), 50, {"ping": 2})
    sched.set_checks(limited)
    await asyncio.sleep(1.2)
    await sched.stop()
    assert peak["all"] == 2


async def test_probe_soon_and_removal(load_yaml_config: Loader) -> None:
    """probe_soon runs a check at once; a check removed by set_checks is not run again."""
    runs: list[str] = []

    async def execute(check: Check) -> None:
        runs.append(check.id)

    all_checks = checks(load_yaml_config, 2, interval="10s")
    sched = Scheduler(execute, lambda _: False, SchedulerMetrics(CollectorRegistry()), 10)
    sched.set_checks(all_checks)
    await asyncio.sleep(0.05)
    runs.clear()
    sched.probe_soon(["t1/ping"])
    await asyncio.sleep(0.05)
    assert runs == ["t1/ping"]
    sched.set_checks({k: v for k, v in all_checks.items() if k != "t1/ping"})
    sched.probe_soon(["t1/ping"])
    await asyncio.sleep(0.05)
    assert runs == ["t1/ping"] and sched.scheduled == 1
    await sched.stop()


def test_uvloop_early_timers_do_not_double_fire(load_yaml_config: Loader) -> None:
    """On uvloop (millisecond timers that may fire early) each check runs once per interval, with no skips."""
    uvloop = pytest.importorskip("uvloop")
    all_checks = checks(load_yaml_config, 50, interval="200ms")
    runs: dict[str, int] = defaultdict(int)
    registry = CollectorRegistry()

    async def main() -> None:
        async def execute(check: Check) -> None:
            runs[check.id] += 1
            await asyncio.sleep(0.01)

        sched = Scheduler(execute, lambda _: False, SchedulerMetrics(registry), 100)
        sched.set_checks(all_checks)
        await asyncio.sleep(3.0)
        await sched.stop()

    uvloop.run(main())
    assert all(n <= 16 for n in runs.values()), sorted(runs.values())  # early timers used to double-fire: 20+
    assert sum(runs.values()) >= 50 * 12  # (a loaded machine may skip a few slots; most run)
    assert metric(registry, "monitor_probes_skipped_total") < 0.1 * sum(runs.values())


async def test_stalled_loop_skips_missed_slots_instead_of_bursting(load_yaml_config: Loader) -> None:
    """After the loop is blocked for several intervals, the missed slots are counted, not run in a burst."""
    runs: list[float] = []
    loop = asyncio.get_running_loop()

    async def execute(check: Check) -> None:
        runs.append(loop.time())

    registry = CollectorRegistry()
    sched = Scheduler(execute, lambda _: False, SchedulerMetrics(registry), 10)
    sched.set_checks(checks(load_yaml_config, 1, interval="200ms"))
    await asyncio.sleep(0.5)
    time.sleep(1.1)  # noqa: ASYNC251 - blocking the event loop on purpose, for more than five intervals
    before = len(runs)
    await asyncio.sleep(0.5)
    await sched.stop()
    assert len(runs) - before <= 4
    assert metric(registry, "monitor_probes_skipped_total") >= 4


async def test_probe_soon_while_running_runs_again_right_after(load_yaml_config: Loader) -> None:
    """probe_soon on a check that is running (a trap arriving mid-poll) runs it once more as soon as the
    current run ends, instead of waiting for the next slot; a check not running starts at once."""
    starts: list[float] = []
    loop = asyncio.get_running_loop()
    started = asyncio.Event()

    async def execute(check: Check) -> None:
        starts.append(loop.time())
        started.set()
        await asyncio.sleep(0.3)

    sched = Scheduler(execute, lambda _: False, SchedulerMetrics(CollectorRegistry()), 10)
    sched.set_checks(checks(load_yaml_config, 1, interval="60s"))
    await asyncio.wait_for(started.wait(), 12)  # the first run comes at its start-up offset
    await asyncio.sleep(0.1)
    sched.probe_soon(["t0/ping"])  # mid-run
    await asyncio.sleep(0.5)
    assert len(starts) == 2 and starts[1] - starts[0] == pytest.approx(0.3, abs=0.08)
    await asyncio.sleep(0.4)
    sched.probe_soon(["t0/ping"])  # idle: now
    await asyncio.sleep(0.1)
    assert len(starts) == 3
    await sched.stop()


async def test_urgent_probe_starts_while_routine_probes_hold_every_slot(load_yaml_config: Loader) -> None:
    """Ten slow routine probes hold the global limit of ten (and more wait); an urgent probe_soon (a link
    trap's re-poll) starts at once on the reserve instead of queueing behind them, and its confirming
    retry is urgent too. Routine probes never exceed the limit."""
    loop = asyncio.get_running_loop()
    started: dict[str, list[float]] = defaultdict(list)
    peak = {"routine": 0, "now": 0}
    all_checks = checks(load_yaml_config, 31, interval="60s")
    urgent_id = "t30/ping"
    confirming = {"on": False}

    async def execute(check: Check) -> None:
        started[check.id].append(loop.time())
        if check.id == urgent_id:
            confirming["on"] = True  # the trap's re-poll saw the link down: confirm it
            return
        peak["now"] += 1
        peak["routine"] = max(peak["routine"], peak["now"])
        await asyncio.sleep(1.0)  # a dead agent: the probe waits out its timeout
        peak["now"] -= 1

    sched = Scheduler(
        execute, lambda cid: cid == urgent_id and confirming["on"], SchedulerMetrics(CollectorRegistry()), 10
    )
    sched.set_checks(all_checks)
    sched.probe_soon([c for c in all_checks if c != urgent_id])  # 30 routine probes: 10 run, 20 wait
    await asyncio.sleep(0.1)
    asked = loop.time()
    sched.probe_soon([urgent_id], urgent=True)
    await asyncio.sleep(0.5)
    await sched.stop()
    runs = started[urgent_id]
    assert runs and runs[0] - asked < 0.05  # not after the first routine probes end (1 s)
    assert len(runs) >= 2 and runs[1] - runs[0] < 0.2  # the retry (100 ms) did not wait for a slot either
    assert peak["routine"] == 10


async def test_urgent_probe_soon_promotes_a_run_already_waiting_for_a_slot(load_yaml_config: Loader) -> None:
    """The check a link trap names is itself queued as a routine probe behind twenty others: probe_soon(urgent)
    moves that waiting run ahead (no second run queued behind the first)."""
    loop = asyncio.get_running_loop()
    started: dict[str, list[float]] = defaultdict(list)
    all_checks = checks(load_yaml_config, 31, interval="60s")
    urgent_id = "t30/ping"

    async def execute(check: Check) -> None:
        started[check.id].append(loop.time())
        if check.id != urgent_id:
            await asyncio.sleep(1.0)

    sched = Scheduler(execute, lambda _: False, SchedulerMetrics(CollectorRegistry()), 10)
    sched.set_checks(all_checks)
    sched.probe_soon([c for c in all_checks if c != urgent_id])  # 30 routine: 10 run, 20 wait
    await asyncio.sleep(0.05)
    sched.probe_soon([urgent_id])  # routine as well: the 21st waiting
    await asyncio.sleep(0.05)
    assert not started[urgent_id]
    asked = loop.time()
    sched.probe_soon([urgent_id], urgent=True)
    await asyncio.sleep(0.3)
    await sched.stop()
    assert len(started[urgent_id]) == 1 and started[urgent_id][0] - asked < 0.05
