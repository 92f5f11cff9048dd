"""The HTTP layer's shape (issue 16): one package, `monitor/http/`, on no import cycle, handlers that get
`HttpServices` and never the daemon, the console's static files shipped with the package."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.test_architecture import ROOT, cycles, import_graph

HTTP = ROOT / "monitor" / "http"


def test_no_import_cycle_involves_the_http_package() -> None:
    graph = import_graph()
    involved = [c for c in cycles(graph) if any(m == "monitor.http" or m.startswith("monitor.http.") for m in c)]
    assert not involved, involved


def test_the_old_api_modules_are_gone() -> None:
    assert not sorted((ROOT / "monitor").glob("api*.py"))
    assert not (ROOT / "monitor" / "openapi.py").exists()
    assert not (ROOT / "monitor" / "console").exists()


def test_handlers_never_import_the_daemon() -> None:
    """The package reaches the daemon's collaborators through HttpServices only."""
    for path in sorted(HTTP.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "monitor.daemon" not in names, path.name


def test_the_console_files_are_package_data() -> None:
    """pyproject ships monitor/http/static/* (a wheel without them serves a console of 404s)."""
    assert {p.name for p in (HTTP / "static").iterdir()} >= {"index.html", "app.js", "app.css"}
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"http/static/*"' in text


def test_static_path_is_the_package_folder() -> None:
    from monitor.http.console import STATIC

    assert Path(STATIC) == HTTP / "static"
