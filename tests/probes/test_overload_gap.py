"""A probe timeout caused by this daemon's own overloaded event loop is a monitoring gap, not the target's
failure (monitor.scheduling.loopwatch, runner.starved): found on the national estate, where a saturated
loop read echo replies and HTTP answers after their probes' timeouts and every such check went DOWN.

Real peers on loopback: an HTTP server that answers at once, and one that accepts and never answers.
The overload is real too: the loop is blocked by CPU work in another task while the probe waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from monitor.clock import SystemClock
from monitor.config.loader import load_config
from monitor.core.inventory import Check
from monitor.scheduling.loopwatch import LoopWatch
from monitor.scheduling.runner import OVERLOADED, ProbeRunner
from probes.base import ProbeResult
from probes.registry import close_probes, create_probes


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    await writer.drain()
    writer.close()


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)  # accepts, reads nothing, answers nothing: a hung server
    writer.close()


@pytest.fixture
async def checks(tmp_path: Path) -> AsyncIterator[Mapping[str, Check]]:
    fast = await asyncio.start_server(_answer, "127.0.0.1", 0)
    hung = await asyncio.start_server(_silent, "127.0.0.1", 0)
    ports = [s.sockets[0].getsockname()[1] for s in (fast, hung)]
    (tmp_path / "monitor.yml").write_text(
        "defaults: {interval: 10s, timeout: 1s}\n"
        "modules:\n"
        f"  up: {{kind: http, http: {{port: {ports[0]}, path: /}}}}\n"
        f"  hung: {{kind: http, http: {{port: {ports[1]}, path: /}}}}\n"
        "targets:\n  - {name: host, address: 127.0.0.1, modules: [up, hung]}\n",
        encoding="utf-8",
    )
    yield load_config(tmp_path / "monitor.yml").inventory.checks
    for server in (fast, hung):
        server.close()


async def _hog(seconds: float) -> None:
    """CPU work holding the event loop, as a long rendering or a burst of results does: from the probe's first
    wait on (the task starts when the runner first yields)."""
    await asyncio.sleep(0)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def _run(checks: Mapping[str, Check], name: str, hog: float | None) -> ProbeResult:
    watch = LoopWatch()
    watch.start()
    probes = create_probes()
    try:
        runner = ProbeRunner(probes, SystemClock(), watch)
        hogging = asyncio.create_task(_hog(hog)) if hog else None
        result = await runner.run(checks[f"host/{name}"])
        if hogging is not None:
            await hogging
        return result
    finally:
        watch.stop()
        await close_probes(probes)


async def test_a_hung_server_on_a_free_loop_is_the_targets_timeout(checks: Mapping[str, Check]) -> None:
    result = await _run(checks, "hung", None)
    assert not result.ok and result.local is None
    assert result.error is not None and result.error.startswith("timeout after 1s")


async def test_a_timeout_while_the_loop_was_starved_is_a_gap(checks: Mapping[str, Check]) -> None:
    """The loop is held for 1.5 s of a 1 s timeout: whether the server would have answered is unknown."""
    result = await _run(checks, "hung", 1.5)
    assert not result.ok
    assert result.local == OVERLOADED
    assert result.error is not None
    assert "overloaded" in result.error and "monitoring gap" in result.error


async def test_an_answer_read_late_still_counts_and_a_short_stall_is_not_a_gap(checks: Mapping[str, Check]) -> None:
    """A server that answered is up even if we read it late; a stall of a quarter of the timeout leaves a
    hung server's timeout the target's."""
    late = await _run(checks, "up", 0.6)
    assert late.ok, late.error
    hung = await _run(checks, "hung", 0.25)
    assert not hung.ok and hung.local is None


async def test_loop_watch_counts_a_stall_once() -> None:
    watch = LoopWatch()
    watch.start()
    try:
        await asyncio.sleep(0.2)
        quiet = watch.behind()
        await _hog(0.5)
        await asyncio.sleep(0.1)
        stalled = watch.behind() - quiet
    finally:
        watch.stop()
    assert quiet < 0.05
    assert 0.4 < stalled < 0.6


async def test_latency_inflated_by_our_loop_is_not_degraded(checks: Mapping[str, Check], tmp_path: Path) -> None:
    """A server that answers at once, read after a 0.6 s stall of our loop: up, and not DEGRADED by the
    latency threshold that the stall alone crossed; on a free loop the same threshold still judges."""
    text = (tmp_path / "monitor.yml").read_text(encoding="utf-8")
    (tmp_path / "monitor.yml").write_text(text.replace("timeout: 1s}", "timeout: 1s, degraded: {latency: 300ms}}"))
    strict = load_config(tmp_path / "monitor.yml").inventory.checks
    late = await _run(strict, "up", 0.6)
    assert late.ok and late.duration > 0.3
    assert late.degraded is None
    free = await _run(strict, "up", None)
    assert free.ok and free.degraded is None and free.duration < 0.3
