"""Entry point: runs every phase one after another against one loopback target farm, writes
bench/results/<time>.json and prints the Markdown tables.

    .venv/bin/python -m bench.run                  # full run (~50 minutes)
    .venv/bin/python -m bench.run --quick          # small sizes (~2-3 minutes)
    .venv/bin/python -m bench.run --phases tcp,mixed --checks 2000 --duration 30

Phases: `tcp`, `http`, `icmp` and `dns` run the daemon and then the peer on `--checks` checks of
that kind; `mixed` runs the daemon on `--mixed-checks` (half TCP, half HTTP); `scaling` runs the
daemon and then the peer on each `--scaling` number of checks, a quarter of each kind, and the
daemon once more as two shards (`--shard 1/2`, `2/2`) at the `--sharded` sizes; `flows` runs the
mixed daemon (scraped) while a sender exports `--flow-rate` IPFIX records per second to its flow collector
and policy (issue 19: 50,000/s on one core with p99 lag < 100 ms), then nfcapd on the same export. Every process
the run starts is stopped at the end, also on Ctrl-C or an error, and its temp dir is removed
(`--keep` keeps it, with the logs).
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

from bench import daemon_phase, flow_peer, peer_phase, report
from bench.configs import Scenario
from bench.context import REPO, Context, Farm, Options, wait_quiet
from bench.procs import Processes

PHASES = ("tcp", "http", "icmp", "dns", "mixed", "flows", "scaling")
KINDS = ("tcp", "http", "icmp", "dns")
MAX_LISTENERS_PER_FARM = 16_000  # the open-file limit is 20,000: leave room for connections in flight


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and short windows (~2-3 minutes)")
    parser.add_argument("--checks", type=int, help="checks per protocol in the tcp and http phases (5000)")
    parser.add_argument("--mixed-checks", type=int, help="checks in the mixed phase, half TCP half HTTP (10000)")
    parser.add_argument(
        "--scaling", help="comma-separated check counts for the scaling phase, a quarter of each kind (1000,...,20000)"
    )
    parser.add_argument("--sharded", help="scaling sizes also measured with the daemon as two shards (20000)")
    parser.add_argument("--flow-rate", type=float, default=50_000.0, help="flow records/s in the flows phase (50000)")
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
        "scaling": "400" if quick else "1000,5000,10000,20000",
        "sharded": "" if quick else "20000",
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
    args.sharded = [int(n) for n in args.sharded.split(",") if n]
    args.daemon_prometheus = {p for p in args.daemon_prometheus.split(",") if p}
    return args


def all_kinds(name: str, count: int, shards: int = 1) -> Scenario:
    """`count` checks, a quarter of each kind (TCP takes the remainder)."""
    quarter = count // 4
    return Scenario(name, tcp=count - 3 * quarter, http=quarter, icmp=quarter, dns=quarter, shards=shards)


def plan(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """(label, step) for every phase in order; a step takes the context and returns a result dict."""
    steps: list[tuple[str, Any]] = []

    def daemon(label: str, scenario: Scenario, with_prom: bool = False) -> None:
        steps.append((f"daemon {label}", partial(daemon_phase.run, scenario=scenario, with_prometheus=with_prom)))

    def both(label: str, scenario: Scenario, with_prom: bool = False) -> None:
        daemon(label, scenario, with_prom)
        steps.append((f"peer {label}", partial(peer_phase.run, scenario=scenario)))

    for kind in KINDS:
        if kind in args.phases:
            scenario = Scenario(kind, **{k: args.checks if k == kind else 0 for k in KINDS})
            both(f"{kind} x{args.checks}", scenario, kind in args.daemon_prometheus)
    if "mixed" in args.phases:
        half = args.mixed_checks // 2
        scenario = Scenario("mixed", tcp=args.mixed_checks - half, http=half)
        daemon(f"mixed x{args.mixed_checks}", scenario, "mixed" in args.daemon_prometheus)
    if "flows" in args.phases:
        half = args.mixed_checks // 2
        scenario = Scenario("flows", tcp=args.mixed_checks - half, http=half, flow_rate=args.flow_rate)
        daemon(f"mixed x{args.mixed_checks} + {args.flow_rate:,.0f} flow records/s", scenario, True)
        steps.append(("peer nfcapd", partial(flow_peer.nfcapd_phase, rate=args.flow_rate)))
    if "scaling" in args.phases:
        for count in args.scaling:
            both(f"all kinds x{count}", all_kinds(f"all-{count}", count))
            if count in args.sharded:
                daemon(f"all kinds x{count}, 2 shards", all_kinds(f"all-{count}-2shards", count, shards=2))
    return steps


def farm_sizes(steps: list[tuple[str, Any]]) -> dict[str, int]:
    """Listeners per farm kind: the most any phase needs."""
    sizes = {"tcp": 0, "http": 0, "dns": 0}
    for _, step in steps:
        scenario: Scenario | None = step.keywords.get("scenario")
        if scenario is None:  # a peer that needs no farm (nfcapd)
            continue
        for kind in sizes:
            sizes[kind] = max(sizes[kind], getattr(scenario, kind))
    for kind, count in sizes.items():
        if count > MAX_LISTENERS_PER_FARM:
            raise SystemExit(f"{count} {kind} listeners exceed {MAX_LISTENERS_PER_FARM} per farm process")
    return sizes


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
    steps = plan(args)
    sizes = farm_sizes(steps)
    options = Options(args.warmup, args.duration, args.prom_warmup, args.quiet_cores, args.quiet_wait)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "machine": report.machine(),
        "git": report.git_revision(args.rev),
        "options": {**vars(args), "out": str(args.out), "daemon_prometheus": sorted(args.daemon_prometheus)},
        "farm": {f"{kind}_listeners": count for kind, count in sizes.items()},
        "phases": [],
    }
    out = args.out or REPO / "bench" / "results" / f"{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    interrupted = False
    try:
        with Processes(workdir) as procs:
            log(f"farm: {sizes['tcp']} TCP + {sizes['http']} HTTP + {sizes['dns']} DNS listeners on 127.50.0.0/16")
            farm = Farm(procs, workdir, **sizes)
            results["farm"]["ports"] = vars(farm.ports)
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
