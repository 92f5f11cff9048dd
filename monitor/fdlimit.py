"""The daemon's file descriptor budget: every probe needs one (or two), so a daemon that runs out
cannot watch anything. At start the soft RLIMIT_NOFILE is raised to the hard limit (the default
soft limit of 1,024 is reached by a few hundred concurrent probes plus the API's clients), and the
count and the limits are exported in a way that still works when none is left."""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

NR_OPEN = Path("/proc/sys/fs/nr_open")  # the kernel's ceiling when the hard limit is "unlimited"


def _ceiling(hard: int) -> int:
    if hard != resource.RLIM_INFINITY:
        return hard
    try:
        return int(NR_OPEN.read_text())
    except (OSError, ValueError):
        return 1 << 20  # Linux's default nr_open


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft limit to the hard one; return (soft, hard) as they are afterwards. An
    unprivileged process may always do this, so a failure (a container's seccomp) only keeps the old limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _ceiling(hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return open_files_limits()


def open_files_limits() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


class DescriptorCollector(Collector):
    """monitor_open_files and monitor_open_files_limit{limit="soft"|"hard"}.

    prometheus-client's process_open_fds and process_max_fds vanish from /metrics when the process is
    out of descriptors (it must open /proc files to read them): exactly when they matter. Here the
    limits come from getrlimit (no descriptor) and the count uses one descriptor kept in reserve for
    it, released for the listing and taken back after."""

    def __init__(self, fd_dir: str = "/proc/self/fd") -> None:
        self._fd_dir = fd_dir
        self._spare = self._reserve()

    @staticmethod
    def _reserve() -> int | None:
        try:
            return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None

    def open_files(self) -> int | None:
        if self._spare is not None:
            os.close(self._spare)
            self._spare = None
        try:
            return len(os.listdir(self._fd_dir))  # counts the listing's own descriptor, as the spare's place
        except OSError:
            return None
        finally:
            self._spare = self._reserve()  # lost to a race with another thread at worst: tried again next time

    def collect(self) -> Iterator[Metric]:
        soft, hard = open_files_limits()
        limits = GaugeMetricFamily(
            "monitor_open_files_limit",
            "RLIMIT_NOFILE of the daemon (the soft limit is raised to the hard one at start); -1: unlimited.",
            labels=["limit"],
        )
        for name, value in (("soft", soft), ("hard", hard)):
            limits.add_metric([name], -1.0 if value == resource.RLIM_INFINITY else float(value))
        yield limits
        count = self.open_files()
        if count is not None:
            yield GaugeMetricFamily("monitor_open_files", "File descriptors the daemon holds open.", value=count)

    def close(self) -> None:
        if self._spare is not None:
            with contextlib.suppress(OSError):
                os.close(self._spare)
            self._spare = None
