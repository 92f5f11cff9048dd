"""Flow collector speed, side by side in one run: our collector, nfdump's nfcapd and pmacct's nfacctd
receive the same IPFIX / NetFlow v9 export (30 records a datagram, templates re-sent every 20 datagrams,
every record 1 packet so a receiver's packet total is its record count) at rising rates; for each, the
highest rate whose every record arrived, and the CPU it spent per 100,000 records.

    python -m bench.flow_bench [--version 10] [--seconds 3] [--rates 25000,50000,100000,200000]

Ours runs in this process on its own event loop (a counting sink: the cost of decoding and accounting,
not of the flow policy); the sender is a separate process pacing datagrams every millisecond. CPU is the
receiver process's user+system time over the run (ours: this process's, the sender excluded).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.synchronize
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor.config.flows import FlowsConfig
from monitor.flows.collector import FlowCollector, FlowMetrics
from monitor.flows.records import FlowRecord

RECORDS_PER_DATAGRAM = 30
FIELDS = [(8, 4), (12, 4), (4, 1), (7, 2), (11, 2), (1, 4), (2, 4), (10, 2), (14, 2), (152, 8), (153, 8), (6, 1)]


def datagrams(version: int, count: int) -> list[bytes]:
    """`count` export datagrams (distinct 5-tuples), the template in every 20th."""
    template = struct.pack(">HH", 256, len(FIELDS)) + b"".join(struct.pack(">HH", t, n) for t, n in FIELDS)
    template_set = struct.pack(">HH", 2 if version == 10 else 0, 4 + len(template)) + template
    now_ms = int(time.time() * 1000)
    out = []
    for i in range(count):
        records = b"".join(
            IPv4Address(0x0A010000 + (i * RECORDS_PER_DATAGRAM + r) % 65536).packed + IPv4Address("203.0.113.10").packed
            + struct.pack(">BHHIIHHQQB", 6, 1024 + r, 443, 1500, 1, 3, 7, now_ms - 1000, now_ms, 0x1B)
            for r in range(RECORDS_PER_DATAGRAM)
        )  # fmt: skip
        sets = (template_set if i % 20 == 0 else b"") + struct.pack(">HH", 256, 4 + len(records)) + records
        if version == 10:
            header = struct.pack(">HHIII", 10, 16 + len(sets), int(time.time()), i * RECORDS_PER_DATAGRAM, 1)
        else:
            header = struct.pack(">HHIIII", 9, RECORDS_PER_DATAGRAM, 3_600_000, int(time.time()), i, 1)
        out.append(header + sets)
    return out


def send(port: int, packets: list[bytes], rate: float, ready: multiprocessing.synchronize.Event) -> None:
    """Paced: every millisecond, as many datagrams as are due."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
    per_second = rate / RECORDS_PER_DATAGRAM
    ready.wait()
    start = time.perf_counter()
    sent = 0
    while sent < len(packets):
        due = min(len(packets), int((time.perf_counter() - start) * per_second) + 1)
        while sent < due:
            try:
                sock.sendto(packets[sent], ("127.0.0.1", port))
            except BlockingIOError:
                time.sleep(0.0005)
                continue
            sent += 1
        time.sleep(0.001)
    sock.close()


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks (10 ms: coarse for short runs)
    return ticks / float(os.sysconf("SC_CLK_TCK"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_sender(port: int, packets: list[bytes], rate: float) -> multiprocessing.Process:
    ready = multiprocessing.Event()
    process = multiprocessing.Process(target=send, args=(port, packets, rate, ready))
    process.start()
    ready.set()
    return process


class Counting:
    def __init__(self) -> None:
        self.records = 0

    def on_flows(self, records: list[FlowRecord]) -> None:
        self.records += len(records)


def ours(packets: list[bytes], rate: float, seconds: float) -> tuple[int, float]:
    async def main() -> tuple[int, float]:
        port = free_port()
        config = FlowsConfig(listen=f"127.0.0.1:{port}", exporters=[{"address": "127.0.0.1"}],
                             rate_limit={"per_second": 1_000_000, "burst": 10_000_000})  # fmt: skip
        sink = Counting()
        collector = FlowCollector(config, FlowMetrics(CollectorRegistry()), [sink])
        await collector.start()
        cpu = time.process_time()
        sender = run_sender(port, packets, rate)
        await asyncio.to_thread(sender.join)  # the loop keeps receiving meanwhile
        await asyncio.sleep(1.0)  # the queue drains
        used = time.process_time() - cpu
        collector.close()
        return sink.records, used

    return asyncio.run(main())


def external(command: Callable[[int, Path], list[str]], count: Callable[[subprocess.Popen[str], Path], int],
             packets: list[bytes], rate: float, seconds: float, settle: float) -> tuple[int, float]:  # fmt: skip
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        process = subprocess.Popen(command(port, work), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   cwd=work)  # fmt: skip
        time.sleep(1.5)  # bound and ready (neither says so on a line we could wait for)
        before = cpu_of(process.pid)
        sender = run_sender(port, packets, rate)
        sender.join()
        time.sleep(settle)
        used = cpu_of(process.pid) - before
        interrupt(process)
        return count(process, work), used


def interrupt(process: subprocess.Popen[str]) -> None:
    """SIGINT (nfcapd and nfacctd write out what they hold on it), then kill if it does not end."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def nfcapd_command(port: int, work: Path) -> list[str]:
    (work / "flows").mkdir()
    return ["nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w", str(work / "flows"), "-B", str(32 * 1024 * 1024)]


def nfcapd_count(process: subprocess.Popen[str], work: Path) -> int:
    out = process.stdout.read() if process.stdout else ""
    found = re.findall(r"Flows: (\d+)", out)
    return int(found[-1]) if found else 0


def nfacctd_command(port: int, work: Path) -> list[str]:
    (work / "nfacctd.conf").write_text(
        f"daemonize: false\nnfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\nnfacctd_pipe_size: {32 * 1024 * 1024}\n"
        f"plugins: print\naggregate: proto\nprint_output: csv\nprint_output_file: {work / 'out.csv'}\n"
        "print_refresh_time: 1\nprint_output_file_append: true\n"
    )
    return ["nfacctd", "-f", str(work / "nfacctd.conf")]


def nfacctd_count(process: subprocess.Popen[str], work: Path) -> int:
    """Every record is 1 packet: the sum of the PACKETS column is the records nfacctd accounted for."""
    path = work / "out.csv"
    if not path.exists():
        return 0
    total = 0
    column = None
    for line in path.read_text().splitlines():
        cells = line.split(",")
        if "PACKETS" in cells:
            column = cells.index("PACKETS")
        elif column is not None and len(cells) > column and cells[column].isdigit():
            total += int(cells[column])
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", type=int, default=10, choices=[9, 10])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rates", default="25000,50000,100000,200000")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    receivers: dict[str, Callable[[list[bytes], float, float], tuple[int, float]]] = {"monitor": ours}
    if shutil.which("nfcapd"):
        receivers["nfcapd"] = lambda p, r, s: external(nfcapd_command, nfcapd_count, p, r, s, 1.0)
    if shutil.which("nfacctd"):
        receivers["nfacctd"] = lambda p, r, s: external(nfacctd_command, nfacctd_count, p, r, s, 3.0)
    print(f"# NetFlow v{args.version if args.version == 9 else '10 (IPFIX)'}, {RECORDS_PER_DATAGRAM} records a "
          f"datagram, {args.seconds:g} s a step")  # fmt: skip
    print(f"{'receiver':<10} {'rate/s':>9} {'sent':>9} {'received':>9} {'loss':>7} {'CPU s/100k':>11}")
    best: dict[str, tuple[float, float]] = {}
    for rate in rates:
        count = int(rate * args.seconds / RECORDS_PER_DATAGRAM)
        packets = datagrams(args.version, count)
        sent = count * RECORDS_PER_DATAGRAM
        for name, receive in receivers.items():
            received, cpu = receive(packets, rate, args.seconds)
            loss = 1 - received / sent
            per_100k = cpu / max(received, 1) * 100_000
            print(f"{name:<10} {rate:>9,.0f} {sent:>9,} {received:>9,} {loss:>7.2%} {per_100k:>11.3f}", flush=True)
            if received >= sent and rate > best.get(name, (0.0, 0.0))[0]:
                best[name] = (rate, per_100k)
    print("\n# highest rate with no loss, CPU per 100,000 records, and ours as a ratio")
    mine = best.get("monitor")
    for name, (rate, per_100k) in best.items():
        ratio = f"  (monitor: {mine[1] / per_100k:.2f}x the CPU)" if mine and name != "monitor" else ""
        print(f"{name:<10} {rate:>9,.0f}/s   {per_100k:.3f} CPU s/100k{ratio}")
    for name in receivers:
        if name not in best:
            print(f"{name:<10} lost records at every rate tried")


if __name__ == "__main__":
    main()
