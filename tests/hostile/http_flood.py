"""A hostile HTTP client on loopback, for tests/hostile/test_http_attacks.py and for measuring any running
daemon (before/after figures in BENCHMARKS.md):

    python -m tests.hostile.http_flood --base http://127.0.0.1:9310 --pid PID [--idle 1000] [--seconds 10]

opens idle connections from several loopback source addresses (127.0.0.2 ...) and counts how many the
daemon keeps and the descriptors it then holds, then floods /api/v1/board while sampling /healthz on
fresh connections. Everything is bounded in count and time and goes only to loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

ROOT = Path(__file__).resolve().parents[2]


def raise_nofile(wanted: int) -> int:
    """This process may open `wanted` descriptors (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def daemon_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def loopback_sources(count: int, first: int = 2) -> list[str]:
    return [f"127.0.0.{first + i}" for i in range(count)]


@dataclass
class IdleConnections:
    writers: list[asyncio.StreamWriter]
    readers: list[asyncio.StreamReader]
    failed: int  # connect() itself failed

    def alive(self) -> int:
        """Still open from the daemon's side (no EOF, no reset)."""
        return sum(not r.at_eof() and r.exception() is None for r in self.readers)

    async def close(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        await asyncio.sleep(0.2)


async def open_idle(host: str, port: int, count: int, sources: list[str], request: bytes = b"") -> IdleConnections:
    """`count` connections spread over `sources`, each sending `request` (nothing: idle before any header)."""
    readers, writers, failed = [], [], 0
    for i in range(count):
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=(sources[i % len(sources)], 0))
        except OSError:
            failed += 1
            continue
        if request:
            writer.write(request)
        readers.append(reader)
        writers.append(writer)
        if i % 50 == 49:
            await asyncio.sleep(0)  # let the reads of resets in
    await asyncio.sleep(0.5)  # the daemon's resets (over a cap) arrive
    if request:  # read each answer, so that what is left to see is the daemon closing (or not)
        for reader in readers:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
                length = next(
                    (int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")), 0
                )
                await asyncio.wait_for(reader.readexactly(length), 5.0)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                continue
    return IdleConnections(writers, readers, failed)


async def raw_request(host: str, port: int, data: bytes, source: str = "127.0.0.1", wait: float = 5.0) -> bytes:
    """Send `data` as it is; the whole answer, read until the daemon closes (send Connection: close)."""
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    try:
        writer.write(data)
        async with asyncio.timeout(wait):
            return await reader.read()
    finally:
        writer.transport.abort()


async def healthz_latencies(
    host: str, port: int, samples: int, interval: float, source: str = "127.0.0.1"
) -> list[float]:
    """/healthz on a fresh connection each time (what a load balancer or a second monitor does)."""
    out: list[float] = []
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    for _ in range(samples):
        start = time.perf_counter()
        try:
            answer = await raw_request(host, port, request, source)
            ok = answer.startswith(b"HTTP/1.1 200")
        except (OSError, TimeoutError):
            ok = False
        out.append(time.perf_counter() - start if ok else float("inf"))
        await asyncio.sleep(interval)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def flood(url: str, concurrency: int, seconds: float, source: str) -> dict[str, int]:
    """`concurrency` keep-alive clients asking for `url` as fast as they are answered."""
    statuses: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency, local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while time.monotonic() < deadline:
                try:
                    async with session.get(url) as response:
                        await response.read()
                        key = str(response.status)
                except aiohttp.ClientError:
                    key = "error"
                statuses[key] = statuses.get(key, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


async def flood_process(url: str, concurrency: int, seconds: float, source: str) -> asyncio.Future[dict[str, int]]:
    """flood() in a process of its own, so that it does not slow down whoever measures beside it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.hostile.http_flood", "--flood", url, "--concurrency", str(concurrency),
        "--seconds", str(seconds), "--source", source, stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )  # fmt: skip

    async def result() -> dict[str, int]:
        out, _ = await proc.communicate()
        return json.loads(out)  # type: ignore[no-any-return]

    return asyncio.ensure_future(result())


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        series, _, rest = head.partition("{")
        if series != name or not all(f'{k}="{v}"' in rest for k, v in labels.items()):
            continue
        total += float(value)
    return total


async def measure(base: str, pid: int, idle: int, seconds: float) -> dict[str, Any]:
    raise_nofile(idle + 1024)
    url = URL(base)
    host, port = url.host or "127.0.0.1", url.port or 80
    before = daemon_fds(pid)
    conns = await open_idle(host, port, idle, loopback_sources(max(1, idle // 100)))
    held = daemon_fds(pid)
    alive = conns.alive()
    await conns.close()
    quiet = await healthz_latencies(host, port, 100, 0.01)
    flooder = await flood_process(f"{base}/api/v1/board", 64, seconds, "127.0.0.250")
    await asyncio.sleep(0.5)
    loaded = await healthz_latencies(host, port, int((seconds - 1) / 0.05), 0.04)
    statuses = await flooder
    return {
        "idle_connections_opened": idle,
        "idle_connections_kept": alive,
        "daemon_fds_before": before,
        "daemon_fds_with_idle": held,
        "healthz_quiet_ms": {"p50": percentile(quiet, 0.5) * 1e3, "p99": percentile(quiet, 0.99) * 1e3},
        "healthz_under_board_flood_ms": {
            "p50": percentile(loaded, 0.5) * 1e3,
            "p99": percentile(loaded, 0.99) * 1e3,
            "failed": sum(v == float("inf") for v in loaded),
            "mean": statistics.fmean(v for v in loaded if v != float("inf")) * 1e3,
        },
        "board_flood_answers": statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="the daemon, on loopback: http://127.0.0.1:PORT")
    parser.add_argument("--pid", type=int, help="the daemon's pid (its descriptors are counted)")
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--flood", metavar="URL", help="only flood URL and print the answers' statuses")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--source", default="127.0.0.250")
    args = parser.parse_args()
    if not str(args.base or args.flood).startswith(("http://127.", "http://[::1]", "http://localhost")):
        parser.error("loopback only")
    if args.flood:
        print(
            json.dumps(asyncio.run(flood(args.flood, min(args.concurrency, 512), min(args.seconds, 60.0), args.source)))
        )
        return
    if args.pid is None:
        parser.error("--pid is required")
    print(
        json.dumps(asyncio.run(measure(args.base, args.pid, min(args.idle, 20_000), min(args.seconds, 60.0))), indent=2)
    )


if __name__ == "__main__":
    main()
