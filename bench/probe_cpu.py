"""In-process CPU per probe: run N probes of one kind through the daemon's ProbeRunner on uvloop
against a farm (bench.farm, a separate process, so its CPU is not counted) and divide this
process's CPU time by N.

This is the figure quoted in BENCHMARKS.md as "measured in-process" (HTTP 0.21 ms, DNS 0.10 ms);
it leaves out the scheduler, the state machine and /metrics, so it isolates the probe's own cost.

    python -m bench.probe_cpu --kind http --probes 5000
    python -m bench.probe_cpu --kind https --probes 2000   # a throw-away certificate (openssl) for the farm
    python -m bench.probe_cpu --kind dns --probes 20000
    python -m bench.probe_cpu --kind http-steps --probes 2000  # a 3-step transaction (steps:) per probe
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.farm import address
from monitor.clock import SystemClock
from monitor.config.model import Thresholds
from monitor.core.inventory import Check, Target
from monitor.core.state import StatePolicy
from monitor.scheduling.runner import ProbeRunner
from probes.base import ProbeRequest, ProbeSettings
from probes.dns import DNSSettings
from probes.http import HTTPSettings
from probes.registry import close_probes, create_probes

LISTENERS = 50  # farm addresses probed round-robin (one fresh connection per probe, as in the daemon)
# --kind http-steps: login (JSON body, a value extracted by regexp), token (the value in the url, a header
# assertion), call (the value in a header, a body check)
STEPS: list[dict[str, Any]] = [
    {"name": "login", "method": "POST", "url": "/login", "body": {"user": "noc"},
     "extract": {"sid": {"regexp": "o(k)"}}},
    {"name": "token", "url": "/token?sid=${sid}",
     "fail_if_header_not_matches": [{"header": "Content-Type", "regexp": "^text/"}]},
    {"name": "call", "url": "/call", "headers": {"X-Session": "${sid}"}, "fail_if_body_not_matches_regexp": ["ok"]},
]  # fmt: skip


def _check(kind: str, settings: ProbeSettings, index: int, port: int, params: dict[str, Any]) -> Check:
    host = address(index % LISTENERS)
    target = Target(f"t{index}", host, None, None, None, {}, None)
    return Check(
        id=f"t{index}/{kind}",
        target=target,
        name=kind,
        module=kind,
        kind=kind,
        settings=settings,
        request=ProbeRequest(host, None, port, 5.0, params),
        interval=10.0,
        retry_interval=5.0,
        timeout=5.0,
        policy=StatePolicy(),
        degraded=Thresholds(),
        reachability=False,
    )


async def measure(kind: str, probes: int, concurrency: int, port: int, ca_file: str = "") -> dict[str, float]:
    settings: ProbeSettings
    params: dict[str, Any] = {}
    if kind == "http":
        settings = HTTPSettings()
    elif kind == "https":  # certificate verified against the farm's self-signed certificate
        settings = HTTPSettings(scheme="https", tls_config={"ca_file": ca_file})
    elif kind == "http-steps":  # the farm answers "ok" to anything: each step still checks and extracts
        settings = HTTPSettings.model_validate({"steps": STEPS})
    else:
        settings = DNSSettings(min_answers=1)
        params = {"query_name": "bench.test"}
    probe_kind = "dns" if kind == "dns" else "http"
    checks = [_check(probe_kind, settings, i, port, params) for i in range(LISTENERS)]
    kinds = create_probes()
    runner = ProbeRunner(kinds, SystemClock())
    failures = 0

    async def worker(start: int, count: int) -> None:
        nonlocal failures
        for i in range(count):
            result = await runner.run(checks[(start + i) % LISTENERS])
            failures += not result.ok

    try:
        await asyncio.gather(*(worker(i, 50) for i in range(concurrency)))  # warm-up: caches, sessions
        failures = 0
        per_worker = probes // concurrency
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(i, per_worker) for i in range(concurrency)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await close_probes(kinds)
    done = per_worker * concurrency
    return {"probes": done, "failures": failures, "cpu_ms_per_probe": cpu / done * 1000, "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["http", "https", "dns", "http-steps"], required=True)
    parser.add_argument("--probes", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--port", type=int, default=18480)
    parser.add_argument("--repeat", type=int, default=3, help="runs; each is printed, the lowest is the figure")
    args = parser.parse_args(argv)
    import uvloop

    folder = tempfile.TemporaryDirectory()
    command = [sys.executable, "-m", "bench.farm", "--count", str(LISTENERS), "--port", str(args.port)]
    command += ["--kind", "dns" if args.kind == "dns" else "http"]
    ca_file = ""
    if args.kind == "https":
        ca_file = _certificate(Path(folder.name))
        command += ["--tls-cert", ca_file, "--tls-key", str(Path(folder.name) / "key.pem")]
    farm = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert farm.stdout is not None
        line = farm.stdout.readline()
        if not line.startswith("ready"):
            print(f"farm did not start: {line!r}", file=sys.stderr)
            return 1
        best = float("inf")
        for _ in range(args.repeat):
            figures = uvloop.run(measure(args.kind, args.probes, args.concurrency, args.port, ca_file))
            print(
                f"{args.kind}: {figures['probes']:.0f} probes, {figures['failures']:.0f} failed, "
                f"{figures['cpu_ms_per_probe']:.3f} ms CPU per probe, {figures['wall_s']:.1f} s"
            )
            best = min(best, figures["cpu_ms_per_probe"])
        print(f"{args.kind}: lowest {best:.3f} ms CPU per probe")
    finally:
        farm.terminate()
        farm.wait(timeout=5)
        folder.cleanup()
    return 0


def _certificate(folder: Path) -> str:
    """A self-signed certificate for the farm's addresses (it is its own CA); returns its path."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    names = ",".join(f"IP:{address(i)}" for i in range(LISTENERS))
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=farm",
         "-addext", f"subjectAltName={names}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert)


if __name__ == "__main__":
    raise SystemExit(main())
