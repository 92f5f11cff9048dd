"""How far behind this process's event loop has fallen: a tick every TICK seconds adds its lateness beyond
SLACK to a running total. The probe runner reads the total at a probe's start and at its timeout; a probe
whose time went mostly to waiting for the loop (this daemon overloaded: CPU starved, a long rendering)
timed out because of this host, and is a monitoring gap, not the target's failure.
"""

from __future__ import annotations

import asyncio
import time

TICK = 0.05  # seconds between ticks: a stall shorter than this is not seen (nor does it matter to a timeout)
SLACK = 0.01  # lateness per tick taken as normal jitter of the loop, not a stall


class LoopWatch:
    def __init__(self) -> None:
        self._behind = 0.0
        self._due = 0.0  # when the next tick is due (perf_counter)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._due = time.perf_counter() + TICK
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-watch")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def behind(self) -> float:
        """Seconds the loop has run late in all, since the start; with the lateness of the tick now overdue,
        so a stall still going on (the one that delayed a timeout's own handling) is counted too."""
        return self._behind + max(0.0, time.perf_counter() - self._due - SLACK) if self._task is not None else 0.0

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(max(0.0, self._due - time.perf_counter()))
            now = time.perf_counter()
            self._behind += max(0.0, now - self._due - SLACK)
            self._due = now + TICK
