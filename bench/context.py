"""What every phase shares: the options, the running target farm, the temp dir, and the measured window.

`Farm` starts one farm process per kind (TCP, HTTP and DNS listeners are separate processes, so
each stays well under the 20,000 open-file limit) and reads how many connections they served.
`measure()` reads CPU of the given processes, of the farm and of the whole machine at the start
and the end of a window.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.configs import FarmPorts
from bench.procs import Proc, Processes, free_port, machine_busy, wait_line

REPO = Path(__file__).resolve().parent.parent
MONITOR = Path(sys.executable).parent / "monitor"
PROMETHEUS = "/usr/bin/prometheus"
BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"


def prometheus_argv(config: Path, listen: str) -> list[str]:
    """Prometheus with its TSDB next to its config file."""
    return [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={config.parent / 'tsdb'}",
        f"--web.listen-address={listen}",
        "--log.level=warn",
    ]


@dataclass(frozen=True)
class Options:
    warmup: float  # seconds from "ready" to the first measured window
    duration: float  # seconds of each measured window
    prom_warmup: float  # seconds from starting the daemon's Prometheus to its window
    quiet_cores: float = 0.25  # before a phase, wait until other work uses at most this many cores ...
    quiet_wait: float = 900.0  # ... for up to this many seconds (a shared machine), then go on anyway


class Farm:
    def __init__(self, procs: Processes, workdir: Path, tcp: int, http: int, dns: int = 0) -> None:
        self.counts = {"tcp": tcp, "http": http, "dns": dns}
        self.ports = FarmPorts(tcp=free_port(), http=free_port(), dns=free_port())
        self.procs: dict[str, Proc] = {}
        self._stats: dict[str, Path] = {}
        for kind, count in self.counts.items():
            if not count:
                continue
            stats = workdir / f"farm-{kind}.stats"
            port = getattr(self.ports, kind)
            argv = [sys.executable, "-m", "bench.farm", "--kind", kind, "--count", str(count), "--port", str(port)]
            proc = procs.start(f"farm-{kind}", [*argv, "--stats", str(stats)], stdout_pipe=True)
            self.procs[kind], self._stats[kind] = proc, stats
        for proc in self.procs.values():
            wait_line(proc, lambda line: line.startswith("ready"))

    def served(self) -> dict[str, int]:
        """Connections each farm process has served so far (asks by SIGUSR1, waits for the file)."""
        out: dict[str, int] = {}
        for kind, proc in self.procs.items():
            path = self._stats[kind]
            before = path.read_text().split()[0] if path.exists() else "0"
            os.kill(proc.pid, signal.SIGUSR1)
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                if path.exists() and (fields := path.read_text().split()) and fields[0] != before:
                    out[kind] = int(fields[1])
                    break
                time.sleep(0.01)
            else:
                raise RuntimeError(f"farm-{kind} did not report its connection count")
        return out

    def cpu(self) -> float:
        return sum(p.cpu() for p in self.procs.values())


@dataclass
class Context:
    options: Options
    procs: Processes
    workdir: Path
    farm: Farm
    log: Callable[[str], None] = print
    daemon_env: dict[str, str] | None = None  # PYTHONPATH of an exported revision (--rev)
    counter: dict[str, int] = field(default_factory=dict)

    def dir(self, name: str) -> Path:
        """A fresh directory under the work dir for one process's data."""
        n = self.counter[name] = self.counter.get(name, 0) + 1
        path = self.workdir / f"{name}-{n}"
        path.mkdir(parents=True)
        return path


@dataclass
class Window:
    seconds: float
    cpu: dict[str, float]  # CPU seconds per measured process in the window
    farm_cpu: float
    farm_served: dict[str, int]  # connections the farm served in the window, by kind
    machine_busy: float  # share of all cores busy in the window (0..1)
    other_cores: float  # cores busy with anything but the measured processes, the farm and this harness
    before: Any = None  # what the caller's snapshot returned at the start
    after: Any = None  # ... and at the end
    snapshot_span: float = 0.0  # seconds between the two snapshot requests (what counter deltas cover)
    snapshot_seconds: float = 0.0  # how long the first snapshot took (a whole /metrics for the daemon)

    def rate(self, delta: float) -> float:
        """Per second, for a counter delta between the two snapshots."""
        return delta / self.snapshot_span if self.snapshot_span > 0 else delta / self.seconds


def measure(
    ctx: Context,
    procs: Mapping[str, Proc],
    snapshot: Callable[[], Any] | None = None,
    seconds: float | None = None,
) -> Window:
    """Snapshot (counters) -> CPU -> sleep -> CPU -> snapshot, so the caller's own reads (scraping
    /metrics) fall outside the CPU window."""
    seconds = ctx.options.duration if seconds is None else seconds
    s0 = time.monotonic()  # counters are read when the request arrives, before a slow body is rendered
    before = snapshot() if snapshot else None
    snapshot_seconds = time.monotonic() - s0
    served0 = ctx.farm.served()
    cpu0 = {name: p.cpu() for name, p in procs.items()}
    farm0, (busy0, total0), own0, t0 = ctx.farm.cpu(), machine_busy(), _own_cpu(), time.monotonic()
    time.sleep(seconds)
    cpu1 = {name: p.cpu() for name, p in procs.items()}
    farm1, (busy1, total1), own1, t1 = ctx.farm.cpu(), machine_busy(), _own_cpu(), time.monotonic()
    served1 = ctx.farm.served()
    s1 = time.monotonic()
    after = snapshot() if snapshot else None
    for name, proc in procs.items():
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{name} died during the window:\n{proc.log_tail()}")
    cores = (total1 - total0) / (t1 - t0)
    busy_cores = (busy1 - busy0) / (t1 - t0)
    ours = sum(cpu1[n] - cpu0[n] for n in procs) + (farm1 - farm0) + (own1 - own0)
    return Window(
        seconds=t1 - t0,
        cpu={name: cpu1[name] - cpu0[name] for name in procs},
        farm_cpu=farm1 - farm0,
        farm_served={k: served1[k] - served0[k] for k in served1},
        machine_busy=busy_cores / max(cores, 1e-9),
        other_cores=max(0.0, busy_cores - ours / (t1 - t0)),
        before=before,
        after=after,
        snapshot_span=s1 - s0 if snapshot else 0.0,
        snapshot_seconds=snapshot_seconds if snapshot else 0.0,
    )


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def other_load(ctx: Context, seconds: float = 5.0) -> float:
    """Cores busy with anything but the farm and this harness, over `seconds` (run between phases)."""
    (busy0, _), farm0, own0, t0 = machine_busy(), ctx.farm.cpu(), _own_cpu(), time.monotonic()
    time.sleep(seconds)
    (busy1, _), farm1, own1, t1 = machine_busy(), ctx.farm.cpu(), _own_cpu(), time.monotonic()
    return max(0.0, (busy1 - busy0 - (farm1 - farm0) - (own1 - own0)) / (t1 - t0))


def wait_quiet(ctx: Context) -> dict[str, float]:
    """Wait (bounded) until the machine is quiet enough to measure; say how long and how busy it was."""
    started = time.monotonic()
    load = other_load(ctx)
    while load > ctx.options.quiet_cores and time.monotonic() - started < ctx.options.quiet_wait:
        ctx.log(f"  other work uses {load:.2f} cores (> {ctx.options.quiet_cores}): waiting for a quiet machine")
        time.sleep(25.0)
        load = other_load(ctx)
    return {"waited_s": round(time.monotonic() - started, 1), "other_cores_at_start": round(load, 3)}
