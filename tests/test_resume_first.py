"""After a restart, the checks whose outage was open when the last run ended are probed first, not at their
slot of the start-up spread: until each is probed, whether its outage went on or ended during the gap is
unknown time in the month's figure (the lab's ground truth caught a fire-wall whose first probe after a
restart came 10 s late, just after its cut ended: the outage was cut short by 17 s)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from monitor.config.loader import load_config
from monitor.core.state import State
from monitor.daemon import Daemon
from monitor.scheduling.scheduler import STARTUP_SPREAD, phase
from tests.snmp.conftest import free_tcp_port

CHECK = "edge/closed-2"  # late in the start-up spread: phase ~0.94, first probe ~9.4 s after a start
CONFIG = """\
daemon: {{listen: 127.0.0.1:{port}}}
defaults: {{interval: {interval}, timeout: 500ms, retry_interval: 200ms, failures_to_down: 2, successes_to_up: 1}}
modules:
  tcp: {{kind: tcp}}
targets:
  - name: edge
    address: 127.0.0.1
    checks: [{{module: tcp, name: closed-2, port: {closed}}}]
"""


async def _state_within(daemon: Daemon, seconds: float) -> tuple[State, float]:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        state = daemon.engine.checks[CHECK].state
        if state != State.UNKNOWN:
            return state, time.monotonic() - start
        await asyncio.sleep(0.05)
    return daemon.engine.checks[CHECK].state, seconds


async def test_an_outage_open_at_the_last_stop_is_probed_first_after_a_restart(tmp_path: Path) -> None:
    assert phase(CHECK) * STARTUP_SPREAD > 8  # without the rule it would wait out most of the spread
    closed = free_tcp_port()  # nothing listens: connection refused, a fast and certain failure
    path = tmp_path / "monitor.yml"
    path.write_text(CONFIG.format(port=free_tcp_port(), interval="1s", closed=closed), encoding="utf-8")
    first = Daemon(load_config(path), data_dir=tmp_path / "data")
    await first.start()
    try:
        for _ in range(200):  # probed every second: DOWN after two failures
            if first.engine.checks[CHECK].state == State.DOWN:
                break
            await asyncio.sleep(0.05)
    finally:
        first.stop()
        await first.shutdown()
    assert first.engine.checks[CHECK].state == State.DOWN
    # the same check probed every 10 s now: its start-up slot would be ~9.4 s after the start
    path.write_text(CONFIG.format(port=free_tcp_port(), interval="10s", closed=closed), encoding="utf-8")
    second = Daemon(load_config(path), data_dir=tmp_path / "data")
    await second.start()
    try:
        state, took = await _state_within(second, 8)
    finally:
        second.stop()
        await second.shutdown()
    assert state == State.DOWN and took < 3, (state, took)  # the outage goes on, known at once
