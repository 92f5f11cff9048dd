"""The flow collector's peer in the flows phase of bench.run: nfdump's nfcapd receiving the same export
(bench.flow_load's sender) at the same rate, for one window, in the same run as the daemon."""

from __future__ import annotations

import subprocess
import time
from typing import Any

from bench.context import Context
from bench.flow_bench import cpu_of, free_port, interrupt, nfcapd_command, nfcapd_count
from bench.flow_load import FlowSender


def nfcapd_phase(ctx: Context, rate: float) -> dict[str, Any]:
    """The peer, in the same run: nfdump's nfcapd receiving the same export at the same rate for one window
    (it decodes and writes the flows to its files; no probing, no policy: the floor of the collector's side)."""
    port = free_port()
    work = ctx.dir("nfcapd")
    process = subprocess.Popen(nfcapd_command(port, work), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, cwd=work)  # fmt: skip
    try:
        time.sleep(1.5)  # bound and ready (it says so on no line we could wait for)
        sender = FlowSender(port, rate).start()
        time.sleep(2.0)
        sent0, cpu0, t0 = sender.records_sent(), cpu_of(process.pid), time.monotonic()
        time.sleep(ctx.options.duration)
        cpu1, seconds = cpu_of(process.pid), time.monotonic() - t0
        sender.stop()
        sent = sender.records_sent()
        time.sleep(1.0)
    finally:
        interrupt(process)
    received = nfcapd_count(process, work)
    window_records = (sent - sent0) or 1
    return {
        "contender": "nfcapd",
        "window_s": round(seconds, 2),
        "sent": sent,
        "received": received,
        "loss_share": max(0.0, 1 - received / sent) if sent else None,
        "cpu_s": round(cpu1 - cpu0, 3),
        "cpu_s_per_100k": (cpu1 - cpu0) / window_records * 100_000,
        "cores": (cpu1 - cpu0) / seconds,
    }
