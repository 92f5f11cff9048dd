"""The command line's surface and layout: every verb, sub-verb and flag is the one recorded in surface.json
(written from main before the CLI became the package monitor/cli/), one module per verb group, no module of
monitor/demo imports the CLI, no import cycle runs through it, and `monitor --help` loads no verb's machinery."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from monitor.cli.main import build_parser
from tests.cli import surface
from tests.test_architecture import cycles, import_graph

ROOT = Path(__file__).parents[2]


def _parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(verb path, parser) for `monitor` and every verb and sub-verb under it, in --help order."""
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _parsers(sub, (*path, name))
    return found


def test_surface_is_the_recorded_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """No verb, flag, choice, default or help text was renamed, dropped or added without updating
    surface.json (`python -m tests.cli.surface --write` after a deliberate change)."""
    for name in surface.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    recorded = json.loads(surface.SURFACE.read_text(encoding="utf-8"))
    now = surface.surface(build_parser())
    assert [v["name"] for v in now["subcommands"]["verbs"]] == [v["name"] for v in recorded["subcommands"]["verbs"]]
    for verb, old in zip(now["subcommands"]["verbs"], recorded["subcommands"]["verbs"], strict=True):
        assert verb == old, f"monitor {old['name']}: its surface changed"
    assert now == recorded


@pytest.mark.parametrize("path", [p for p, _ in _parsers(build_parser())], ids=" ".join)
def test_each_help_shows_every_flag_and_verb(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    """`monitor [VERB [SUB]] --help` exits 0 and names each of its options and sub-verbs."""
    parser = dict(_parsers(build_parser()))[path]
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*path, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: {' '.join(['monitor', *path])}")
    for action in parser._actions:
        for flag in action.option_strings:
            assert flag in text, f"monitor {' '.join(path)} --help does not show {flag}"
        if isinstance(action, argparse._SubParsersAction):
            for name in action.choices:
                assert name in text, f"monitor {' '.join(path)} --help does not list {name}"


def test_python_dash_m_monitor_and_the_console_script_are_the_same_main() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts == {"monitor": "monitor.cli.main:main"}
    assert "from monitor.cli.main import main" in (ROOT / "monitor" / "__main__.py").read_text(encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "--help"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    for verb in json.loads(surface.SURFACE.read_text(encoding="utf-8"))["subcommands"]["verbs"]:
        assert verb["name"] in done.stdout


def test_one_package_one_module_per_verb_group() -> None:
    """The CLI lives in monitor/cli/ only (no monitor/cli*.py beside it), and its package __init__ imports
    nothing, so importing one verb module does not import the parser and every other verb."""
    assert not sorted((ROOT / "monitor").glob("cli*.py"))
    modules = {p.stem for p in (ROOT / "monitor" / "cli").glob("*.py")}
    verbs = {"main", "run", "config", "probe", "demo", "auth", "ops", "report", "security", "lab", "notices"}
    assert verbs <= modules, sorted(verbs - modules)
    graph = import_graph()
    assert {m for m in graph["monitor.cli"] if m.startswith("monitor")} == set()


def test_the_demo_never_imports_the_cli_and_no_cycle_runs_through_it() -> None:
    graph = import_graph()
    into_cli = {m: sorted(t for t in targets if t.startswith("monitor.cli")) for m, targets in graph.items()}
    assert not {m: t for m, t in into_cli.items() if t and m.startswith("monitor.demo")}
    assert not [c for c in cycles(graph) if any(m.startswith("monitor.cli") for m in c)]
    users = {m for m, t in into_cli.items() if t and not m.startswith("monitor.cli")}
    assert users == {"monitor.__main__"}, "only `python -m monitor` enters the CLI from monitor/"


def test_help_loads_no_verb_machinery() -> None:
    """Building the parser (all `monitor --help` does) imports neither the daemon, the probes, the config
    loader nor the simulated network: each verb imports those when it runs."""
    code = "import sys; from monitor.cli.main import build_parser; build_parser(); print('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    loaded = set(done.stdout.split())
    heavy = {
        "monitor.daemon",
        "monitor.config.loader",
        "probes.registry",
        "monitor.cli.probe_once",
        "monitor.demo.run",
        "monitor.demo.lab",
        "monitor.availability.report",
        "monitor.store",
    }
    assert not heavy & loaded, sorted(heavy & loaded)
