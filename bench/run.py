"""Entry point: runs every phase one after another against one loopback target farm, writes
bench/results/<time>.json and prints the Markdown tables.

    .venv/bin/python -m bench.run                  # full run (~17 minutes)
    .venv/bin/python -m bench.run --quick          # small sizes (~2-3 minutes)
    .venv/bin/python -m bench.run --phases tcp,mixed --checks 2000 --duration 30

Phases: `tcp` and `http` run the daemon and then the peer on `--checks` checks of that kind;
`mixed` runs the daemon on `--mixed-checks` (half TCP, half HTTP); `scaling` runs the daemon on
each `--scaling` number of TCP checks. Every process the run starts is stopped at the end, also
on Ctrl-C or an error, and its temp dir is removed (`--keep` keeps it, with the logs).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

from bench import daemon_phase, peer_phase, report
from bench.configs import Scenario
from bench.context import REPO, Context, Farm, Options, wait_quiet
from bench.procs import Processes

PHASES = ("tcp", "http", "icmp", "mixed", "scaling")
MAX_LISTENERS_PER_FARM = 16_000  # the open-file limit is 20,000: leave room for connections in flight


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and short windows (~2-3 minutes)")
    parser.add_argument("--checks", type=int, help="checks per protocol in the tcp and http phases (5000)")
    parser.add_argument("--mixed-checks", type=int, help="checks in the mixed phase, half TCP half HTTP (10000)")
    parser.add_argument("--scaling", help="comma-separated TCP check counts for the scaling phase (1000,10000)")
    parser.add_argument("--duration", type=float, help="seconds per measured window (60)")
    parser.add_argument("--warmup", type=float, help="seconds from start to the first window (30)")
    parser.add_argument("--prom-warmup", type=float, help="seconds from starting the daemon's Prometheus (35)")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"subset of {','.join(PHASES)}")
    parser.add_argument(
        "--daemon-prometheus",
        help="phases whose daemon is also measured with a Prometheus scraping it (tcp,http,mixed; quick: mixed)",
    )
    parser.add_argument("--quiet-cores", type=float, default=0.25, help="wait for other load below this (0.25)")
    parser.add_argument("--quiet-wait", type=float, help="seconds to wait for that before each phase (900)")
    parser.add_argument("--out", type=Path, help="results file (default bench/results/<time>.json)")
    parser.add_argument(
        "--rev", help="benchmark this git revision's monitor/ and probes/ (exported to the temp dir), not the work tree"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir with configs and logs")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults: dict[str, Any] = {
        "checks": 300 if quick else 5000,
        "mixed_checks": 600 if quick else 10000,
        "scaling": "" if quick else "1000,10000",
        "duration": 10.0 if quick else 60.0,
        "warmup": 11.0 if quick else 30.0,
        "prom_warmup": 16.0 if quick else 35.0,
        "daemon_prometheus": "mixed" if quick else "tcp,http,mixed",
        "quiet_wait": 60.0 if quick else 900.0,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.phases = [p for p in args.phases.split(",") if p]
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    args.scaling = [int(n) for n in args.scaling.split(",") if n]
    args.daemon_prometheus = {p for p in args.daemon_prometheus.split(",") if p}
    return args


def farm_sizes(args: argparse.Namespace) -> tuple[int, int]:
    tcp = http = 0
    if "tcp" in args.phases:
        tcp = args.checks
    if "http" in args.phases:
        http = args.checks
    if "mixed" in args.phases:
        tcp, http = max(tcp, args.mixed_checks - args.mixed_checks // 2), max(http, args.mixed_checks // 2)
    if "scaling" in args.phases and args.scaling:
        tcp = max(tcp, *args.scaling)
    for kind, count in (("TCP", tcp), ("HTTP", http)):
        if count > MAX_LISTENERS_PER_FARM:
            raise SystemExit(f"{count} {kind} listeners exceed {MAX_LISTENERS_PER_FARM} per farm process")
    return tcp, http


def plan(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """(label, step) for every phase in order; a step takes the context and returns a result dict."""
    steps: list[tuple[str, Any]] = []
    for kind in ("tcp", "http", "icmp"):
        if kind in args.phases:
            count = {k: args.checks if k == kind else 0 for k in ("tcp", "http", "icmp")}
            scenario = Scenario(kind, **count)
            with_prom = kind in args.daemon_prometheus
            steps.append(
                (
                    f"daemon {kind} x{args.checks}",
                    partial(daemon_phase.run, scenario=scenario, with_prometheus=with_prom),
                )
            )
            steps.append((f"peer {kind} x{args.checks}", partial(peer_phase.run, scenario=scenario)))
    if "mixed" in args.phases:
        half = args.mixed_checks // 2
        scenario = Scenario("mixed", args.mixed_checks - half, half)
        with_prom = "mixed" in args.daemon_prometheus
        steps.append(
            (
                f"daemon mixed x{args.mixed_checks}",
                partial(daemon_phase.run, scenario=scenario, with_prometheus=with_prom),
            )
        )
    if "scaling" in args.phases:
        for count in args.scaling:
            if "tcp" in args.phases and count == args.checks:
                continue  # the tcp phase measured this size already
            scenario = Scenario(f"tcp-{count}", count, 0)
            steps.append((f"daemon tcp x{count}", partial(daemon_phase.run, scenario=scenario, with_prometheus=False)))
    return steps


def export_revision(rev: str, target: Path) -> Path:
    """`git archive` of the daemon's packages at `rev` (read-only for the repository)."""
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "monitor", "probes"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _interrupt(_signum: int, _frame: object) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    tcp, http = farm_sizes(args)
    steps = plan(args)
    options = Options(args.warmup, args.duration, args.prom_warmup, args.quiet_cores, args.quiet_wait)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "machine": report.machine(),
        "git": report.git_revision(args.rev),
        "options": {**vars(args), "out": str(args.out), "daemon_prometheus": sorted(args.daemon_prometheus)},
        "farm": {"tcp_listeners": tcp, "http_listeners": http},
        "phases": [],
    }
    out = args.out or REPO / "bench" / "results" / f"{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    interrupted = False
    try:
        with Processes(workdir) as procs:
            log(f"farm: {tcp} TCP + {http} HTTP listeners on 127.50.0.0/16")
            farm = Farm(procs, workdir, tcp, http)
            results["farm"]["ports"] = {"tcp": farm.ports.tcp, "http": farm.ports.http}
            ctx = Context(options, procs, workdir, farm, log=lambda m: log(m))
            if args.rev:
                ctx.daemon_env = {"PYTHONPATH": str(export_revision(args.rev, workdir / "src"))}
            for index, (label, step) in enumerate(steps, start=1):
                log(f"phase {index}/{len(steps)}: {label}")
                try:
                    quiet = wait_quiet(ctx)
                    results["phases"].append({"phase": label, "machine_before": quiet, **step(ctx)})
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # record it and go on with the next phase
                    log(f"  failed: {exc}")
                    traceback.print_exc()
                    results["phases"].append({"phase": label, "error": str(exc)[:2000]})
                out.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping everything")
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    out.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    print(report.markdown(results))
    log(f"results: {out}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
