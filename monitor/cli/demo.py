"""`monitor demo`: the daemon on the built-in simulated network (monitor/demo/run.py), in one process."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.cli.common import DEFAULT_LISTEN, DEFAULT_TRAP_LISTEN, LOG_LEVELS, run_async

if TYPE_CHECKING:
    from monitor.cli.common import Subparsers


def add_parser(sub: Subparsers) -> None:
    demo = sub.add_parser("demo", help="run the daemon on the built-in simulated network (loopback)")
    demo.add_argument("--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT (default {DEFAULT_LISTEN})")
    demo.add_argument("--data-dir", type=Path, help="keep the store here (default: a temporary directory)")
    demo.add_argument("--prefectures", type=int, default=47, help="how many prefectures to simulate (1-47)")
    demo.add_argument("--no-faults", action="store_true", help="do not inject the scheduled faults")
    demo.add_argument(
        "--alertmanager-url", help="send the demo's alerts to this Alertmanager (e.g. http://127.0.0.1:9093)"
    )
    demo.add_argument(
        "--trap-listen",
        default=DEFAULT_TRAP_LISTEN,
        help=f"HOST:PORT where the daemon receives SNMP traps (v2c community public; default {DEFAULT_TRAP_LISTEN})",
    )
    demo.add_argument("--log-level", default="info", choices=LOG_LEVELS)
    demo.add_argument("--no-uvloop", action="store_true")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo.run import DemoOptions, run_demo  # the daemon and the simulated network: only for this verb
    from monitor.logs import setup_logging

    options = DemoOptions(
        listen=args.listen,
        data_dir=args.data_dir,
        prefectures=args.prefectures,
        faults=not args.no_faults,
        alertmanager_url=args.alertmanager_url,
        trap_listen=args.trap_listen,
    )
    setup_logging(args.log_level)
    return run_async(run_demo(options), use_uvloop=not args.no_uvloop)
