"""`monitor run`: the daemon on a config file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.cli.common import DEFAULT_LISTEN, LOG_LEVELS, load_or_complain, run_async

if TYPE_CHECKING:
    from monitor.cli.common import Subparsers


def add_parser(sub: Subparsers) -> None:
    run = sub.add_parser("run", help="run the daemon on a config file")
    run.add_argument("--config", required=True, type=Path)
    run.add_argument("--listen", help=f"HOST:PORT for metrics and API (default: config, else {DEFAULT_LISTEN})")
    run.add_argument("--data-dir", type=Path, help="store directory (default: config daemon.data_dir)")
    run.add_argument("--log-level", choices=LOG_LEVELS)
    run.add_argument("--no-uvloop", action="store_true", help="use the default asyncio event loop")
    run.add_argument("--shard", metavar="i/N", help="probe and export only share i of N (stable hash; see README)")
    run.add_argument("--trap-listen", metavar="HOST:PORT", help="receive SNMP traps here (overrides traps.listen)")
    run.add_argument("--flow-listen", metavar="HOST:PORT", help="receive flow export here (overrides flows.listen)")
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.cluster.sharding import parse_shard
    from monitor.daemon import Daemon  # the whole daemon: loaded only by the verb that runs it
    from monitor.logs import setup_logging

    loaded = load_or_complain(args.config)
    if loaded is None:
        return 1
    setup_logging(args.log_level or loaded.config.daemon.log_level)
    try:
        shard = parse_shard(args.shard) if args.shard else (1, 1)
    except ValueError as exc:
        print(f"monitor run: {exc}", file=sys.stderr)
        return 2
    daemon = Daemon(loaded, listen=args.listen, data_dir=args.data_dir, trap_listen=args.trap_listen,
                    flow_listen=args.flow_listen, shard=shard)  # fmt: skip

    async def main() -> int:
        await daemon.run()
        return 0

    return run_async(main(), use_uvloop=not args.no_uvloop)
