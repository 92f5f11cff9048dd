"""The CLI surface as data: every verb, sub-verb and flag `monitor --help` and each `monitor VERB --help` show.

`python -m tests.cli.surface --write` records it in surface.json (tests/cli/test_cli_layout.py compares the
parser with that file, so a renamed verb, flag, choice or default is a failing test, not a surprise). The
parser is walked rather than its --help text parsed: the text wraps with the terminal width."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

SURFACE = Path(__file__).with_name("surface.json")
# the API verbs' --url and --token default to these; the surface is recorded and compared without them
ENVIRONMENT = ("MONITOR_URL", "MONITOR_TOKEN")


def _plain(value: Any) -> Any:
    """A default or choice as JSON: paths and other objects by their text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def _action(action: argparse.Action) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "flags": list(action.option_strings),
        "dest": action.dest,
        "kind": type(action).__name__,
        "required": action.required,
        "nargs": _plain(action.nargs),
        "default": None if action.default is argparse.SUPPRESS else _plain(action.default),
        "choices": _plain(list(action.choices)) if action.choices is not None else None,
        "metavar": _plain(action.metavar),
        "help": action.help,
    }
    if isinstance(action, argparse._VersionAction):
        entry["version"] = action.version
    return entry


def _exclusive(parser: argparse.ArgumentParser) -> list[dict[str, Any]]:
    return [
        {"required": group.required, "dests": [a.dest for a in group._group_actions]}
        for group in parser._mutually_exclusive_groups
    ]


def surface(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The parser and its subparsers, in the order --help lists them."""
    node: dict[str, Any] = {
        "prog": parser.prog,
        "description": parser.description,
        "arguments": [],
        "exclusive": _exclusive(parser),
        # which function runs a verb is not surface (it moves between modules); other defaults are
        "defaults": {k: _plain(v) for k, v in sorted(parser._defaults.items()) if k != "func"},
    }
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            node["subcommands"] = {
                "dest": action.dest,
                "required": action.required,
                "verbs": [
                    {"name": name, "help": helps.get(name), **surface(sub)} for name, sub in action.choices.items()
                ],
            }
        else:
            node["arguments"].append(_action(action))
    return node


def current() -> dict[str, Any]:
    """The surface of the installed CLI, read with the environment defaults unset."""
    from monitor.cli.main import build_parser

    saved = {name: os.environ.pop(name) for name in ENVIRONMENT if name in os.environ}
    try:
        return surface(build_parser())
    finally:
        os.environ.update(saved)


def main(argv: list[str]) -> int:
    text = json.dumps(current(), ensure_ascii=False, indent=1) + "\n"
    if argv == ["--write"]:
        SURFACE.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
