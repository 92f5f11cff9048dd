"""The clock is passed in, never read from a global: tests drive time, the daemon uses the system's."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock time, UTC epoch seconds."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()
