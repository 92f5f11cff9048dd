"""The README and docs/ stay usable: the README is short and points into docs/, every relative link and
anchor resolves, and every `make` target and `monitor` command (verbs, sub-verbs, --options) they show exists."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from monitor.cli.main import build_parser

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)
# up to a comment, a `;` or the next command on the same line
COMMAND = re.compile(r"(?:^|[\s;`(])(?:\.venv/bin/|python -m )?monitor ((?:(?!\smonitor\s)[^#;`])+)")
MAKE = re.compile(r"`make ([a-z-]+)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


def test_readme_is_short_and_points_into_docs() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.encode()) <= 8 * 1024, f"README.md is {len(text.encode())} bytes; move detail into docs/"
    assert "make demo" in text and "make test" in text
    for page in ("operations.md", "architecture.md", "api.md", "metrics.md"):
        assert f"(docs/{page}" in text, f"README.md does not link docs/{page}"


def test_architecture_has_a_section_per_layer_and_says_where_changes_go() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    headings = anchors(ROOT / "docs" / "architecture.md")
    for layer in ("config", "scheduling", "probes", "core", "consumers", "reports"):
        assert layer in headings, f"docs/architecture.md has no '## {layer.title()}' section"
    for change in ("a probe kind", "a notifier", "a store backend", "a detector", "an HTTP endpoint"):
        assert f"| {change}" in text, f"docs/architecture.md does not say where {change} goes"
    assert "TODO" not in text


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_make_targets_shown_exist() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z-]+):", makefile, re.M))
    shown = {t for page in PAGES for t in MAKE.findall(page.read_text(encoding="utf-8"))}
    assert {"demo", "test"} <= shown
    assert shown <= targets, f"make targets in the docs that the Makefile lacks: {sorted(shown - targets)}"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings}


def commands_shown() -> list[tuple[str, str]]:
    """(page, command line) for every `monitor ...` in the pages' shell blocks and inline code."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        chunks = FENCE.findall(text) + re.findall(r"`([^`\n]*monitor [^`\n]*)`", FENCE.sub("", text))
        for chunk in chunks:
            for line in chunk.splitlines():
                found += [(page.name, m.group(1).strip()) for m in COMMAND.finditer(line)]
    return found


def test_monitor_commands_shown_exist() -> None:
    """Each command's verb (and sub-verb) is a real one and each --option is accepted by it."""
    shown = commands_shown()
    assert len(shown) > 20, shown
    root = build_parser()
    wrong = []
    for page, line in shown:
        words = line.replace("[", " ").replace("]", " ").split()
        verbs = _subcommands(root)
        if not words or words[0] == "...":
            continue
        verb = words[0]
        if verb.startswith("-"):  # `monitor --help`
            if verb not in _options(root):
                wrong.append(f"{page}: monitor {line}: no option {verb}")
            continue
        if verb.isupper():  # a placeholder: `monitor VERB --help`
            continue
        if verb not in verbs:
            wrong.append(f"{page}: monitor {line}: no verb {verb!r}")
            continue
        parsers = [verbs[verb]]
        subs = _subcommands(parsers[0])
        if subs and len(words) > 1 and not words[1].startswith("-"):
            listed = words[1].split("|")  # `monitor notices list|create|...`: options of any of them
            wrong += [f"{page}: monitor {line}: no {verb} {sub!r}" for sub in listed if sub not in subs]
            parsers = [subs[sub] for sub in listed if sub in subs] or parsers
        options = set().union(*(_options(p) for p in parsers))
        for word in words[1:]:
            option = word.split("=")[0].rstrip(",.")
            if option.startswith("--") and option not in options:
                wrong.append(f"{page}: monitor {line}: {verb} has no {option}")
    assert not wrong, "\n".join(wrong)
