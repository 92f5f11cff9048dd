"""`monitor check-config` (validate config files offline) and `monitor rules` (the Prometheus SLO rules)."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.cli.common import load_or_complain

if TYPE_CHECKING:
    from monitor.cli.common import Subparsers


def add_check_parser(sub: Subparsers) -> None:
    check = sub.add_parser("check-config", help="validate config files offline (exit 1 if invalid)")
    check.add_argument("files", nargs="+", type=Path)
    check.set_defaults(func=cmd_check_config)


def add_rules_parser(sub: Subparsers) -> None:
    rules = sub.add_parser("rules", help="write the Prometheus SLO recording and burn-rate alert rules")
    rules.add_argument("--config", required=True, type=Path)
    rules.add_argument("--output", required=True, type=Path, help="directory for slo-rules.yml")
    rules.set_defaults(func=cmd_rules)


def cmd_check_config(args: argparse.Namespace) -> int:
    from monitor.cli.oncall import coverage_problems
    from monitor.config.loader import ConfigError, load_config  # pydantic and the probes' models: see common.py

    for stream in (sys.stdout, sys.stderr):  # a Latin-1 terminal still gets the (Japanese) errors, escaped
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    status = 0
    for path in args.files:
        try:
            loaded = load_config(path)
        except ConfigError as exc:
            print("\n".join(exc.messages), file=sys.stderr)
            print(
                f"{path}: INVALID ({len(exc.messages)} problem{'s' if len(exc.messages) != 1 else ''})", file=sys.stderr
            )
            status = 1
            continue
        inv = loaded.inventory
        gaps, notes = coverage_problems(inv)  # on-call coverage of the next 28 days, with stored overrides
        for note in notes:
            print(f"{path}: note: {note}", file=sys.stderr)
        if gaps:
            print("\n".join(f"{where}: {message}" for where, message in gaps), file=sys.stderr)
            print(f"{path}: INVALID ({len(gaps)} coverage gap{'s' if len(gaps) != 1 else ''})", file=sys.stderr)
            status = 1
            continue
        print(f"{path}: OK ({len(inv.targets)} targets, {len(inv.checks)} checks, {len(inv.services)} services)")
    return status


def cmd_rules(args: argparse.Namespace) -> int:
    from monitor.availability.capacity_rules import render as render_capacity
    from monitor.availability.rules import render

    loaded = load_or_complain(args.config)
    if loaded is None:
        return 1
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / "slo-rules.yml"
    path.write_text(render(loaded.inventory), encoding="utf-8")
    print(path)
    capacity = args.output / "capacity-rules.yml"  # circuit capacity: records and the saturation alerts
    capacity.write_text(render_capacity(loaded.inventory), encoding="utf-8")
    print(capacity)
    return 0
