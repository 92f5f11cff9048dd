"""A prefecture's variant of the monthly report carries its own circuits' capacity only (issue 22's variants
met issue 22's capacity section: the nationwide rows leaked into every liaison's PDF), and every section of
`Report` is accounted for by the variant (a test that fails when a new section is added unnamed)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from monitor.availability import variants
from monitor.availability.capacity import SLOT, Sample
from monitor.availability.html_report import render_html
from monitor.availability.periods import month_span
from monitor.availability.report import Report, ReportBuilder, to_json
from monitor.availability.variants import prefecture_variant
from monitor.core.engine import Transition
from monitor.core.state import State
from monitor.store.sqlite import SQLiteStore
from tests.conftest import Loader

os.environ.setdefault("TEST_SNMP_COMMUNITY", "public")  # the config refers to it (secrets are references)
CONFIG = """
modules:
  sw: {kind: snmp, snmp: {community: "${TEST_SNMP_COMMUNITY}"}}
targets:
  - {name: core-tokyo, address: 127.0.0.1, labels: {tier: national, system: backbone}, modules: [sw]}
  - {name: pref13-edge, address: 127.0.0.2, labels: {prefecture: "13", system: lgwan}, modules: [sw]}
  - {name: pref27-edge, address: 127.0.0.3, labels: {prefecture: "27", system: lgwan}, modules: [sw]}
services:
  - {name: pref-net-13, targets: [pref13-edge], labels: {prefecture: "13", system: lgwan}}
  - {name: pref-net-27, targets: [pref27-edge], labels: {prefecture: "27", system: lgwan}}
  - {name: backbone, targets: [core-tokyo], labels: {tier: national, system: backbone}}
capacity:
  circuits:
    - {name: backbone-east, display_name: 全国バックボーン東, ports: [{check: core-tokyo/sw, interface: Te0/1}],
       capacity_bps: 10000000000}
    - {name: lgwan-13-chiyoda, display_name: LGWAN回線（千代田区）, ports: [{check: pref13-edge/sw, interface: Gi0/1}],
       capacity_bps: 200000000}
    - {name: lgwan-27-kita, display_name: LGWAN回線（大阪市北区）, ports: [{check: pref27-edge/sw, interface: Gi0/1}],
       capacity_bps: 200000000}
"""
NAMES = {
    "backbone-east": "全国バックボーン東",
    "lgwan-13-chiyoda": "LGWAN回線（千代田区）",
    "lgwan-27-kita": "LGWAN回線（大阪市北区）",
}


async def _report(load_yaml_config: Loader, tmp_path: Path) -> Report:
    inventory = load_yaml_config(CONFIG).inventory
    store = SQLiteStore(tmp_path / "m.db")
    start, end = month_span(2026, 11)
    store.open(now=start - 86400)
    store.record([Transition("service", s, State.UNKNOWN, State.UP, start - 86400) for s in inventory.services])
    await store.flush()
    batch = [Sample(name, way, start + k * SLOT, 0.3 * capacity, capacity)
             for name, capacity in (("backbone-east", 1e10), ("lgwan-13-chiyoda", 2e8), ("lgwan-27-kita", 2e8))
             for way in ("in", "out") for k in range(288)]  # fmt: skip
    await store.save_capacity_samples(batch)
    report = await ReportBuilder(store, inventory).build("2026-11", end + 3600)
    await store.close(now=end + 3600)
    return report


def circuits_of(report: Report) -> set[str]:
    assert report.capacity is not None
    return {r.circuit.name for r in report.capacity.rows}


async def test_each_variant_has_its_own_circuits_and_no_nationwide_ones(
    load_yaml_config: Loader, tmp_path: Path
) -> None:
    report = await _report(load_yaml_config, tmp_path)
    assert circuits_of(report) == set(NAMES)  # the nationwide report: all of them
    assert report.capacity is not None
    threshold = report.capacity.threshold
    for code, own in (("13", "lgwan-13-chiyoda"), ("27", "lgwan-27-kita")):
        variant = prefecture_variant(report, code)
        assert circuits_of(variant) == {own}
        assert variant.capacity is not None and variant.capacity.threshold == threshold
        assert {c["circuit"] for c in json.loads(to_json(variant))["capacity"]["circuits"]} == {own}
        page = render_html(variant, "ja")
        assert NAMES[own] in page
        assert not [name for circuit, name in NAMES.items() if circuit != own and name in page]
    assert circuits_of(prefecture_variant(report, "01")) == set()  # a prefecture without circuits: none of others'


def test_every_section_of_the_report_is_filtered_or_the_same_for_all() -> None:
    """A section added to `Report` must be named in variants.py: filtered to the prefecture, or the same for
    every prefecture. Unnamed, it would go to every liaison as it is, nationwide figures and all."""
    fields = {f.name for f in dataclasses.fields(Report)}
    assert not variants.FILTERED & variants.SAME_FOR_EVERY_PREFECTURE
    assert fields == variants.FILTERED | variants.SAME_FOR_EVERY_PREFECTURE
