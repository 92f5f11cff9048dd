"""docs/metrics.md, generated from where the metric families are declared.

`python -m monitor.docs_metrics` prints the page, `--write` writes it, `--check` exits 1 when the committed
page differs (tests/test_docs_metrics.py does the same). The source of monitor/ and probes/ is read with
`ast`, nothing is imported or run, so a family is documented however rarely it is exported (a probe's
series appear only once a probe of that kind ran). A family is found where it is declared:

- a prometheus-client metric: `Counter/Gauge/Histogram/Summary/Info/Enum("monitor_...", "help", [labels])`;
- a custom collector's family: `GaugeMetricFamily/CounterMetricFamily/...("monitor_...", "help", labels=...)`;
- any other call with a metric name and its help first: a probe's `Series("monitor_...", help, "counter",
  ...)`, a collector's `fam.add(...)`, a declaration of the series a probe kind produces; also with a name
  formatted from the keys of a module-level help table (`f"monitor_if_{key}_total"`, `_HELP[key]`);
- a table row: `("monitor_...", "help", ...)` or a dict entry `"monitor_...": "help"` or `: ("help", "type")`,
  or `: ("help", "type", LABELS)` with the label names (a tuple, or a module-level tuple of names) for a
  family that is not per check or service (a circuit's capacity).
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("monitor", "probes")
PAGE = ROOT / "docs" / "metrics.md"
PREFIX = "monitor_"

CLIENT_TYPES = {"Counter": "counter", "Gauge": "gauge", "Histogram": "histogram", "Summary": "summary",
                "Info": "info", "Enum": "stateset"}  # fmt: skip
FAMILY_TYPES = {  # a custom collector's families
    "GaugeMetricFamily": "gauge",
    "CounterMetricFamily": "counter",
    "HistogramMetricFamily": "histogram",
    "SummaryMetricFamily": "summary",
    "InfoMetricFamily": "info",
    "StateSetMetricFamily": "stateset",
}
TYPES = frozenset(CLIENT_TYPES.values())


@dataclass
class Family:
    name: str  # as exported (counters with _total, info with _info)
    type: str
    help: str
    labels: tuple[str, ...] | None  # None: not given where declared (per-check families, probe series)
    files: list[str] = field(default_factory=list)


def exported_name(name: str, kind: str) -> str:
    """The name in the exposition: prometheus-client adds `_total` to counters and `_info` to infos."""
    if kind == "counter" and not name.endswith("_total"):
        return f"{name}_total"
    if kind == "info" and not name.endswith("_info"):
        return f"{name}_info"
    return name


def _is_name(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(PREFIX)


def _callee(node: ast.Call) -> str:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return ""


class ModuleScan:
    """The families one module declares."""

    def __init__(self, path: Path, root: Path) -> None:
        self.rel = path.relative_to(root).as_posix()
        self.tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        self.strings: dict[str, str] = {}  # module-level NAME = "text"
        self.tables: dict[str, dict[str, str]] = {}  # module-level NAME = {"key": "text", ...}
        self.label_sets: dict[str, tuple[str, ...]] = {}  # module-level NAME = ("label", ...)
        for node in self.tree.body:
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and node.value is not None:
                        self._remember(target.id, node.value)
        self.found: list[Family] = []

    def _remember(self, name: str, value: ast.expr) -> None:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            self.strings[name] = value.value
        elif isinstance(value, ast.Tuple) and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts
        ):
            self.label_sets[name] = tuple(str(e.value) for e in value.elts if isinstance(e, ast.Constant))
        elif isinstance(value, ast.Dict):
            table = {}
            for key, item in zip(value.keys, value.values, strict=True):
                text = self.text(item)
                if isinstance(key, ast.Constant) and isinstance(key.value, str) and text is not None:
                    table[key.value] = text
            if table and len(table) == len(value.keys):
                self.tables[name] = table

    def text(self, node: ast.expr | None) -> str | None:
        """A string the node stands for: a literal, a module constant, a module table's entry."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return self.strings.get(node.id)
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            return self.tables.get(node.value.id, {}).get(node.slice.value)
        return None

    def metric_name(self, node: ast.expr | None) -> str | None:
        if _is_name(node):
            assert isinstance(node, ast.Constant)
            return str(node.value)
        if isinstance(node, ast.Name) and self.strings.get(node.id, "").startswith(PREFIX):
            return self.strings[node.id]
        return None

    def add(self, name: str, kind: str, help_text: str, labels: tuple[str, ...] | None) -> None:
        if " " not in help_text:  # a list of names, not a name and its help
            return
        self.found.append(Family(exported_name(name, kind), kind, help_text, labels, [self.rel]))

    def scan(self) -> list[Family]:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call):
                self._call(node)
            elif isinstance(node, ast.Tuple) and len(node.elts) >= 2 and (name := self.metric_name(node.elts[0])):
                help_text = self.text(node.elts[1])
                if help_text is not None:
                    self.add(name, "gauge", help_text, None)
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if (name := self.metric_name(key)) is not None:
                        self._entry(name, value)
        return self.found

    def _entry(self, name: str, value: ast.expr) -> None:
        help_text = self.text(value)
        if help_text is not None:
            self.add(name, "gauge", help_text, None)
        elif isinstance(value, ast.Tuple) and len(value.elts) in (2, 3):
            help_text, kind = self.text(value.elts[0]), self.text(value.elts[1])
            labels = self._labels(value.elts[2]) if len(value.elts) == 3 else None
            if help_text is not None and kind in TYPES and (len(value.elts) == 2 or labels is not None):
                self.add(name, kind, help_text, labels)

    def _labels(self, node: ast.expr | None) -> tuple[str, ...] | None:
        if isinstance(node, ast.Name):
            return self.label_sets.get(node.id)
        if isinstance(node, ast.List | ast.Tuple):
            names = [self.text(e) for e in node.elts]
            if all(n is not None for n in names):
                return tuple(n for n in names if n is not None)
        return None

    def _call(self, node: ast.Call) -> None:
        callee = _callee(node)
        args = node.args
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        first = args[0] if args else keywords.get("name")
        second = args[1] if len(args) > 1 else keywords.get("documentation", keywords.get("help"))
        if callee in CLIENT_TYPES and (name := self.metric_name(first)) is not None:
            help_text = self.text(second)
            if help_text is not None:
                labels = self._labels(args[2] if len(args) > 2 else keywords.get("labelnames"))
                self.add(name, CLIENT_TYPES[callee], help_text, labels or ())
        elif callee in FAMILY_TYPES and (name := self.metric_name(first)) is not None:
            help_text = self.text(second)
            if help_text is not None:
                labels = self._labels(keywords.get("labels") or (args[2] if len(args) > 2 else None))
                self.add(name, FAMILY_TYPES[callee], help_text, labels or ())
        elif first is not None and second is not None:
            # any other declaration: a probe's Series(name, help, type, ...), a collector's fam.add(name,
            # help, ...), a spec of the series a probe kind produces; the type is the first type name among
            # the other arguments (a counter's name ends in _total otherwise)
            others = [*args[2:], *(k.value for k in node.keywords if k.arg in ("type", "kind", "typ"))]
            kinds = [t for t in (self.text(a) for a in others) if t in TYPES]
            if (name := self.metric_name(first)) is not None:
                help_text = self.text(second)
                kind = kinds[0] if kinds else "counter" if name.endswith("_total") else "gauge"
                if help_text is not None:
                    self.add(name, kind, help_text, None)
            elif kinds:
                self._formatted_series(first, second, kinds[0])

    def _formatted_series(self, name: ast.expr, help_node: ast.expr, kind: str) -> None:
        """`Series(f"monitor_if_{key}_total", _HELP[key], ...)`: one family per key of the help table."""
        if not (
            isinstance(name, ast.JoinedStr)
            and isinstance(help_node, ast.Subscript)
            and isinstance(help_node.value, ast.Name)
            and isinstance(help_node.slice, ast.Name)
            and help_node.value.id in self.tables
        ):
            return
        key_var, table = help_node.slice.id, self.tables[help_node.value.id]
        parts = name.values
        for key, help_text in table.items():
            text = []
            for part in parts:
                if isinstance(part, ast.Constant):
                    text.append(str(part.value))
                elif isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name):
                    if part.value.id != key_var:
                        return
                    text.append(key)
                else:
                    return
            full = "".join(text)
            if full.startswith(PREFIX):
                self.add(full, kind, help_text, None)


def collect(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> list[Family]:
    """Every family declared under the packages, by exported name (first declaration's help and type)."""
    families: dict[str, Family] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            for family in ModuleScan(path, root).scan():
                known = families.get(family.name)
                if known is None:
                    families[family.name] = family
                    continue
                if family.files[0] not in known.files:
                    known.files.append(family.files[0])
                if known.labels is None and family.labels is not None:
                    known.labels = family.labels
    return sorted(families.values(), key=lambda f: f.name)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(families: list[Family]) -> str:
    lines = [
        "# Metrics",
        "",
        "<!-- Generated by `python -m monitor.docs_metrics --write` from the declarations in monitor/ and",
        "probes/; do not edit: tests/test_docs_metrics.py fails when this page and the code differ. -->",
        "",
        "Every family the daemon exports on `/metrics`, with the help text it is exported with. *Labels*",
        "are the ones given where the family is declared; the per-check families (state, probe results,",
        "the values and series a probe measured) carry the check's identity labels (`check`, `target`,",
        "`module`, `kind`) plus their own, the per-service ones `service`. The descriptive labels (`tier`,",
        "`prefecture`, `system`, `role`, `site`; a service's SLO variant `slo`) are only on one",
        "`monitor_check_info` / `monitor_service_info` series per check and service: join on them. How to",
        "read them (label values, joins, which series an HA pair or the shards export) is in",
        "[operations.md](operations.md#reading-the-metrics). A circuit is neither a check nor a service:",
        "the circuit capacity families (`monitor_capacity_*`) carry their circuit's `kind` and `prefecture`",
        "themselves (why: operations.md). prometheus-client adds a `*_created` family beside each counter,",
        "and the standard `process_*` families.",
        "",
        f"{len(families)} families.",
        "",
        "| Metric | Type | Labels | Help | Declared in |",
        "|---|---|---|---|---|",
    ]
    for f in families:
        labels = "per check / service" if f.labels is None else ", ".join(f"`{n}`" for n in f.labels)
        files = ", ".join(f"`{p}`" for p in f.files)
        lines.append(f"| `{f.name}` | {f.type} | {labels} | {_cell(f.help)} | {files} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor.docs_metrics", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"write {PAGE.relative_to(ROOT)}")
    mode.add_argument("--check", action="store_true", help="exit 1 if the committed page is out of date")
    args = parser.parse_args(argv)
    page = render(collect())
    if args.write:
        PAGE.parent.mkdir(parents=True, exist_ok=True)
        PAGE.write_text(page, encoding="utf-8")
    elif args.check:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != page:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run {parser.prog} --write", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
