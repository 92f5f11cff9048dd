"""CPU of the HTTP/1.1 response parser alone (issue 17 point 4): probes/http1.py's Exchange fed
typical responses in-process, no socket, no event loop turn, so the parser's own cost is what is timed.

`--rev REV` times that revision's probes/http1.py instead (read with `git show`, loaded as a module
of its own), so the hand-written parser (before httptools) and llhttp run side by side:

    python -m bench.http_parse                 # the work tree
    python -m bench.http_parse --rev ad6ddba   # the hand-written parser

The end-to-end figure (a real probe through the ProbeRunner against bench.farm) is bench.probe_cpu.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

# (name, the response's bytes, how many pieces it arrives in)
CASES: list[tuple[str, bytes, int]] = [
    (  # what bench.farm answers: the probe_cpu figure's response
        "small 200",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nDate: Fri, 04 Dec 2026 10:00:00 GMT\r\n"
        b"Server: farm\r\n\r\nok\n",
        1,
    ),
    (  # a web server's usual head, a 2 KiB page
        "typical page",
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Fri, 04 Dec 2026 10:00:00 GMT\r\nContent-Type: text/html\r\n"
        b"Content-Length: 2048\r\nConnection: close\r\nCache-Control: no-cache\r\nX-Frame-Options: DENY\r\n"
        b"Strict-Transport-Security: max-age=31536000\r\nSet-Cookie: s=" + b"x" * 200 + b"; Path=/; HttpOnly\r\n\r\n"
        b"<html>" + b"a" * 2036 + b"</html>",
        1,
    ),
    (
        "chunked, 3 pieces",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (b'{"status":"ok",', b'"checks":[1,2,3]', b"}"))
        + b"0\r\n\r\n",
        3,
    ),
    ("16 KiB Set-Cookie", b"HTTP/1.1 200 OK\r\nSet-Cookie: " + b"c" * 16384 + b"\r\nContent-Length: 2\r\n\r\nok", 4),
]


def _load(rev: str | None) -> ModuleType:
    if rev is None:
        import probes.http1

        return probes.http1
    source = subprocess.run(["git", "show", f"{rev}:probes/http1.py"], check=True, capture_output=True).stdout
    folder = Path(tempfile.mkdtemp())
    path = folder / "http1_at_rev.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("http1_at_rev", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


async def _time(http1: ModuleType, reply: bytes, pieces: int, rounds: int) -> float:
    """Microseconds of CPU per response: construct an Exchange, feed the pieces, read the result."""
    step = max(1, len(reply) // pieces)
    parts = [reply[i : i + step] for i in range(0, len(reply), step)]
    for _ in range(200):  # warm-up
        exchange = http1.Exchange(b"", None, False, keep_body=False)
        for part in parts:
            exchange.data_received(part)
        exchange.connection_lost(None)
        await exchange.done
    cpu = time.process_time()
    for _ in range(rounds):
        exchange = http1.Exchange(b"", None, False, keep_body=False)
        for part in parts:
            exchange.data_received(part)
        exchange.connection_lost(None)
        response = exchange.done.result()
    cpu = time.process_time() - cpu
    assert response.status == 200, response
    return cpu / rounds * 1e6


async def measure(rev: str | None, rounds: int) -> dict[str, float]:
    http1 = _load(rev)
    return {name: await _time(http1, reply, pieces, rounds) for name, reply, pieces in CASES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="time this revision's probes/http1.py (git show)")
    parser.add_argument("--rounds", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3, help="runs; the lowest of each case is printed")
    args = parser.parse_args(argv)
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, us in asyncio.run(measure(args.rev, args.rounds)).items():
            best[name] = min(best.get(name, float("inf")), us)
    label = args.rev or "work tree"
    for name, us in best.items():
        print(f"{label}: {name}: {us:.1f} us CPU per response")
    return 0


if __name__ == "__main__":
    sys.exit(main())
