"""`monitor probe`: run one check (or every check of a target) once, verbosely (see probe_once.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.cli.common import load_or_complain, run_async

if TYPE_CHECKING:
    from monitor.cli.common import Subparsers


def add_parser(sub: Subparsers) -> None:
    probe = sub.add_parser("probe", help="run one check (or every check of a target) once, verbosely")
    probe.add_argument("--config", required=True, type=Path)
    probe.add_argument("check", help='check id "target/check", or a target name for all its checks')
    probe.add_argument("--json", action="store_true", help="print the results as JSON")
    probe.set_defaults(func=cmd_probe)


def cmd_probe(args: argparse.Namespace) -> int:
    from monitor.cli.probe_once import probe_once  # the runner and every probe kind: only for this verb
    from monitor.logs import setup_logging

    loaded = load_or_complain(args.config)
    if loaded is None:
        return 1
    setup_logging("debug", json=False)
    return run_async(probe_once(loaded.inventory, args.check, as_json=args.json), use_uvloop=False)
