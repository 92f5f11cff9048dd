"""Child processes of the benchmark: start, wait until ready, read CPU and memory from /proc, stop.

Every process is started in its own session (a Ctrl-C at the terminal reaches only the harness)
and registered with a `Processes` group that stops all of them (SIGTERM, then SIGKILL) when the
group is closed, also after an exception or an interrupt. Output goes to a log file per process.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port free on every address right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5), after "pid (comm)"


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) in MiB."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine from /proc/stat, all cores."""
    with open("/proc/stat", encoding="ascii") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already in user
    return (total - idle) / CLK_TCK, total / CLK_TCK


def http_get(url: str, timeout: float = 30.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def wait_http(url: str, proc: Proc, timeout: float = 120.0) -> None:
    """Wait until `url` answers 2xx; fail early if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        try:
            http_get(url, timeout=5.0)
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise RuntimeError(f"{proc.name} not ready at {url} after {timeout:.0f}s:\n{proc.log_tail()}")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def memory(self) -> dict[str, float]:
        return memory_mb(self.pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class Processes:
    """The benchmark's child processes; `close()` stops every one still running."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._procs: list[Proc] = []

    def start(
        self, name: str, argv: Sequence[str], *, stdout_pipe: bool = False, env: Mapping[str, str] | None = None
    ) -> Proc:
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as log_fh:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout_pipe else log_fh,
                stderr=log_fh,
                start_new_session=True,
                env=None if env is None else {**os.environ, **env},
            )
        proc = Proc(name, popen, log)
        self._procs.append(proc)
        return proc

    def stop(self, proc: Proc, grace: float = 15.0) -> None:
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(grace)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(5.0)
        if proc.popen.stdout is not None:
            proc.popen.stdout.close()
        if proc in self._procs:
            self._procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(list(self._procs)):
            self.stop(proc)

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def wait_line(proc: Proc, accept: Callable[[str], bool], timeout: float = 120.0) -> str:
    """Read the process's stdout until a line `accept`s (the farm's `ready N`)."""
    assert proc.popen.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.popen.stdout], [], [], 1.0)
        if not ready:
            if proc.popen.poll() is not None:
                break
            continue
        line = proc.popen.stdout.readline().decode(errors="replace").strip()
        if accept(line):
            return line
        if not line and proc.popen.poll() is not None:
            break
    raise RuntimeError(f"{proc.name} did not get ready:\n{proc.log_tail()}")
