"""`monitor VERB ...` (also `python -m monitor`): the parser, built from one module per verb group, and dispatch.

The order of the `add_parser` calls is the order `monitor --help` lists the verbs in
(tests/cli/surface.json pins it). Each verb module imports what its verb needs to run inside its handler,
so `monitor --help` or `monitor incidents list` does not load the daemon, the probes or the demo network."""

from __future__ import annotations

import argparse

from monitor import __version__
from monitor.cli import auth, config, demo, lab, notices, oncall, ops, probe, report, run, security


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monitor", description="Network and uptime monitoring daemon")
    parser.add_argument("--version", action="version", version=f"monitor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run.add_parser(sub)
    config.add_check_parser(sub)
    probe.add_parser(sub)
    config.add_rules_parser(sub)
    demo.add_parser(sub)
    auth.add_parser(sub)
    ops.add_parsers(sub)
    report.add_parser(sub)
    security.add_parser(sub)
    lab.add_parser(sub)
    notices.add_parser(sub)
    oncall.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
