"""In-process CPU of the ICMP probe path: the probe, the runner and the engine, 1,000 probes to 127.0.0.1 (50
checks x 20 rounds), best of 3. Run from a checkout's root with its venv; it imports the old flat layout too, so
the same file compares two revisions (`cd OLD && NEW/bench/icmp_path_cpu.py`):

    .venv/bin/python bench/icmp_path_cpu.py
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.getcwd())  # the checkout it is run from, not the one this file lives in

from monitor.config.loader import load_config
from probes.registry import create_probes

try:
    from monitor.core.engine import Engine
    from monitor.scheduling.runner import ProbeRunner
except ImportError:  # a revision before monitor/core/ and monitor/scheduling/
    from monitor.engine import Engine  # type: ignore[no-redef]
    from monitor.runner import ProbeRunner  # type: ignore[no-redef]

CONFIG = "modules:\n  ping:\n    kind: icmp\n    icmp: {count: 1}\ntargets:\n" + "".join(
    f"  - {{name: t{i}, address: 127.0.0.1, checks: [{{module: ping}}]}}\n" for i in range(50)
)


class WallClock:
    def now(self) -> float:
        return time.time()


async def main() -> None:
    path = Path(tempfile.mkdtemp()) / "monitor.yml"
    path.write_text(CONFIG)
    inventory = load_config(path).inventory
    runner = ProbeRunner(create_probes(), WallClock())
    engine = Engine(inventory)
    checks = list(inventory.checks.values())
    best = float("inf")
    for _ in range(3):
        before, n = resource.getrusage(resource.RUSAGE_SELF), 0
        for _ in range(20):
            for check, result in zip(checks, await asyncio.gather(*(runner.run(c) for c in checks)), strict=True):
                engine.observe(check.id, result, time.time())
                n += 1
        after = resource.getrusage(resource.RUSAGE_SELF)
        best = min(best, (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / n * 1000)
    print(f"{os.getcwd()}: {best:.3f} ms CPU per ICMP probe + runner + engine")


if __name__ == "__main__":
    asyncio.run(main())
