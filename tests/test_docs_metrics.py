"""docs/metrics.md is generated from the code (monitor.docs_metrics): it fails here when a family is added,
renamed or re-described without regenerating the page, and when the generator misses a family the daemon
really exports."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from monitor import docs_metrics
from monitor.daemon import Daemon
from monitor.metrics.exposition import exposition
from probes.base import ProbeResult
from probes.http import HTTPProbe
from probes.icmp import ICMPProbe
from tests.conftest import Loader

CONFIG = """
modules:
  ping: {kind: icmp}
  web: {kind: http}
targets:
  - {name: tokyo-edge, address: 127.0.0.1, labels: {prefecture: "13"}, modules: [ping, web]}
services:
  - {name: pref-net, rule: all, targets: [tokyo-edge]}
"""


def test_metrics_page_is_up_to_date() -> None:
    page = docs_metrics.PAGE
    assert page.exists(), "docs/metrics.md is missing: run python -m monitor.docs_metrics --write"
    assert page.read_text(encoding="utf-8") == docs_metrics.render(docs_metrics.collect()), (
        "docs/metrics.md is out of date: run python -m monitor.docs_metrics --write"
    )
    assert docs_metrics.main(["--check"]) == 0


def test_every_family_a_daemon_exports_is_documented(load_yaml_config: Loader, tmp_path: Path) -> None:
    """A real (not started) daemon's /metrics body, with results in: every monitor_* family and its type
    is on the page, so a declaration the generator cannot read is caught."""
    daemon = Daemon(load_yaml_config(CONFIG), data_dir=tmp_path / "data")
    ping = ProbeResult(ok=True, duration=0.01, finished_at=1_700_000_000.0)
    ping.values.update({m.key: 0.001 for m in ICMPProbe.measures})  # every value each kind declares
    web = ProbeResult(ok=False, error="HTTP status 503", duration=0.05, finished_at=1_700_000_001.0)
    web.values.update({m.key: 503.0 for m in HTTPProbe.measures})
    web.phases.update({"connect": 0.001})
    daemon.engine.observe("tokyo-edge/ping", ping, 1.0)
    daemon.engine.observe("tokyo-edge/web", web, 1.0)
    text = exposition(daemon.registry, daemon.state_collector).decode()
    exported = {f.name: f.type for f in text_string_to_metric_families(text) if f.name.startswith("monitor_")}
    # the text format's parser names a counter without _total and reads an info as a gauge; the _created
    # families prometheus-client adds beside each counter are its own, not declared by us
    documented = {}
    for f in docs_metrics.collect():
        if f.type == "counter":
            documented[f.name.removesuffix("_total")] = "counter"
            documented[f"{f.name.removesuffix('_total')}_created"] = "gauge"
        else:
            documented[f.name] = "gauge" if f.type == "info" else f.type
            if f.type in ("histogram", "summary") and f.labels == ():  # unlabelled: exported from the start
                documented[f"{f.name}_created"] = "gauge"
    assert len(exported) > 30, sorted(exported)
    missing = {n: t for n, t in exported.items() if documented.get(n) != t}
    assert not missing, f"exported but not documented (or with another type): {missing}"


def test_the_generator_reads_each_kind_of_declaration(tmp_path: Path) -> None:
    """prometheus-client objects, collector families, probe series (also formatted from a help table), any
    other call naming a family and its help, table rows and dict entries; lists of names are not families."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(
        """
HELP_X = "Help of x."
_HELP = {"in_a": "Help of in a.", "out_a": "Help of out a."}
ROWS = (("monitor_row", "Help of a row.", "key", None),)
FIXED = {"monitor_fixed": ("Help of fixed.", "counter"), "monitor_plain": "Help of plain."}
NAMES = ("monitor_row", "monitor_fixed")
c = Counter("monitor_requests", "Requests served.", ["code"], registry=r)
i = Info("monitor_build", "Build info.", registry=r)
GaugeMetricFamily("monitor_open", "Open things.", labels=["kind"])
Series("monitor_x", HELP_X, "gauge", (), 1.0)
for key in _HELP:
    Series(f"monitor_if_{key}_total", _HELP[key], "counter", (), 1.0)
SeriesSpec("monitor_spec_total", "Help of spec.", labels=("if_index",))
fam.add("monitor_added", "Help of added.", NAMES, values, 1.0, kind="counter")
name.startswith("monitor_if_")
""",
        encoding="utf-8",
    )
    found = {f.name: (f.type, f.help, f.labels) for f in docs_metrics.collect(tmp_path, ("pkg",))}
    assert found == {
        "monitor_build_info": ("info", "Build info.", ()),
        "monitor_fixed_total": ("counter", "Help of fixed.", None),
        "monitor_added_total": ("counter", "Help of added.", None),
        "monitor_if_in_a_total": ("counter", "Help of in a.", None),
        "monitor_if_out_a_total": ("counter", "Help of out a.", None),
        "monitor_open": ("gauge", "Open things.", ("kind",)),
        "monitor_plain": ("gauge", "Help of plain.", None),
        "monitor_requests_total": ("counter", "Requests served.", ("code",)),
        "monitor_row": ("gauge", "Help of a row.", None),
        "monitor_spec_total": ("counter", "Help of spec.", None),
        "monitor_x": ("gauge", "Help of x.", None),
    }
