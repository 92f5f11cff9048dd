"""The generated Prometheus SLO rules: in sync with the shipped config, accepted by promtool, and
behaving as the promtool unit tests in config/prometheus/rules-tests expect (hard outage, slow burn,
maintenance, recovery, exhausted budget)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from monitor.availability.rules import GOOD, render, rules
from monitor.config.loader import load_config
from tests.conftest import Loader

ROOT = Path(__file__).parents[2]
RULES = ROOT / "config" / "prometheus" / "rules" / "slo-rules.yml"
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed"
)


def test_committed_rules_match_the_generator() -> None:
    """config/prometheus/rules/slo-rules.yml is exactly what `monitor rules` makes of config/monitor.yml."""
    assert RULES.read_text(encoding="utf-8") == render(load_config(ROOT / "config" / "monitor.yml").inventory)


@needs_promtool
def test_promtool_check_rules() -> None:
    """promtool accepts the generated rules (syntax, duplicates)."""
    proc = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_promtool
def test_promtool_unit_tests() -> None:
    """The promtool unit tests of the rules pass (they fail if an alert fires when it should not, or not when it should)."""
    proc = subprocess.run(
        ["promtool", "test", "rules", "slo-rules.test.yml"],
        cwd=ROOT / "config" / "prometheus" / "rules-tests", capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_slo_variants_get_their_own_sli(load_yaml_config: Loader) -> None:
    """A service whose SLO counts DEGRADED as down, or has office hours, gets a recorded "good" SLI; the rest
    read monitor_service_up directly; burn alerts use the objective's thresholds (14.4x of 0.05% = 0.72%)."""
    inventory = load_yaml_config(
        """
        modules: {ping: {kind: icmp}}
        targets:
          - {name: a, address: 127.0.0.1, modules: [ping]}
          - {name: b, address: 127.0.0.2, modules: [ping]}
        services:
          - {name: portal, targets: [a]}
          - {name: office-app, targets: [b]}
        slo:
          hours: {office: {start: "09:00", end: "17:00"}}
          rules:
            - {services: [office-app], objective: 0.9995, degraded: down, service_hours: office}
        """
    ).inventory
    generated = rules(inventory)
    records = generated["groups"][0]["rules"]
    goods = [r for r in records if r["record"] == GOOD]
    assert (
        len(goods) == 1
        and 'state="degraded"' in goods[0]["expr"]
        and "monitor_service_in_service_time" in goods[0]["expr"]
    )
    portal = [r for r in records if r["record"].endswith("rate5m") and "monitor_service_up" in r["expr"]]
    assert portal and portal[0]["expr"] == '1 - avg_over_time(service:monitor_service_up:leader{service=~"portal"}[5m])'
    pages = [
        a
        for a in generated["groups"][1]["rules"]
        if a["labels"].get("burn_factor") == "14.4" and a["labels"]["objective"] == "0.9995"
    ]
    assert "> 0.0072" in pages[0]["expr"]
    yaml.safe_dump(generated)  # plain data
