"""The packages' import graph has no cycles: data flows one way (config -> scheduling -> probes -> core ->
consumers -> reports), so no module may import, even lazily inside a function, one that imports it back.

The graph is read from the source with `ast` (nothing is imported), every `import` and `from ... import`
counted wherever it stands: at the top, inside a function, under `if TYPE_CHECKING:` (a cycle of types is a
cycle a reader has to hold in their head too)."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).parents[1]
PACKAGES = ("monitor", "probes")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            found[module_name(path, root)] = path
    return found


def resolve(target: str, known: dict[str, Path]) -> str | None:
    """The known module an imported name lives in: `a.b.c` is module a.b.c, or a name in module a.b."""
    while target:
        if target in known:
            return target
        target = target.rpartition(".")[0]
    return None


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, one more level up per extra dot
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            # `from a import b` runs a (a package's __init__ too) and takes b from it, or imports module a.b
            targets = [prefix, *(f"{prefix}.{alias.name}" for alias in node.names)]
        for target in targets:
            found = resolve(target, known)
            if found is not None and found != name:
                out.add(found)
    return out


def import_graph(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, set[str]]:
    known = modules(root, packages)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted, plus one
    concrete loop through it so the message shows who imports whom."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:  # iterative: a deep chain must not hit the recursion limit
        nonlocal counter
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def loop_through(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest import loop from the component's first module back to itself (breadth first)."""
    members = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return component  # not reached: every member of a component lies on a loop


def describe(graph: dict[str, set[str]]) -> str:
    lines = []
    for component in cycles(graph):
        lines.append(f"{len(component)} modules: {', '.join(component)}")
        lines.append(f"    e.g. {' -> '.join(loop_through(component, graph))}")
    return "\n".join(lines)


def test_the_graph_is_read_from_every_import(tmp_path: Path) -> None:
    """The reader itself: top-level, in-function, relative and `from pkg import module` imports all count
    (the last also as an import of the package), and a cycle hidden in a function is found and shown as a
    loop."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import leaf\n")
    (pkg / "a.py").write_text("import pkg.b\n")
    (pkg / "b.py").write_text("def later() -> None:\n    from pkg import c\n")
    (pkg / "c.py").write_text("from .a import thing\nimport json\n")
    (pkg / "sub" / "leaf.py").write_text("from ..a import x\n")
    graph = import_graph(tmp_path, ["pkg"])
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg", "pkg.c"}  # `from pkg import c` runs pkg/__init__.py first
    assert graph["pkg.c"] == {"pkg.a"}
    assert graph["pkg.sub"] == {"pkg.sub.leaf"}
    assert graph["pkg.sub.leaf"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert "pkg.a -> pkg.b -> pkg.c -> pkg.a" in describe(graph)


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert graph, "no modules found under monitor/ and probes/"
    found = describe(graph)
    assert not found, "import cycles in monitor/ and probes/ (imports inside functions count):\n" + found


def test_no_cycle_involves_incidents_security_notifiers_or_config() -> None:
    """Held now (issue 16, the core part): the response side and the config each read one way."""
    graph = import_graph()
    guarded = ("monitor.incidents", "monitor.security", "monitor.notifiers", "monitor.config")
    bad = [c for c in cycles(graph) if any(m == g or m.startswith(g + ".") for m in c for g in guarded)]
    assert not bad, "\n".join(f"{', '.join(c)}: e.g. {' -> '.join(loop_through(c, graph))}" for c in bad)
