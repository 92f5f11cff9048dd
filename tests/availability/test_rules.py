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
    by_group = {g["name"]: g["rules"] for g in generated["groups"]}
    assert list(by_group) == [
        "monitor-slo-sli",
        "monitor-slo-99.9%/month",
        "monitor-slo-99.95%/month/degraded-down/office",
    ]
    office = by_group["monitor-slo-99.95%/month/degraded-down/office"]
    goods = [r for g in by_group.values() for r in g if r.get("record") == GOOD]
    assert (
        len(goods) == 1
        and goods[0] in office
        and 'state="degraded"' in goods[0]["expr"]
        and "monitor_service_in_service_time" in goods[0]["expr"]
    )
    portal = [r for r in by_group["monitor-slo-99.9%/month"] if r.get("record", "").endswith("rate5m")]
    assert portal[0]["expr"] == '1 - avg_over_time(service:monitor_service_up:leader{slo="99.9%/month"}[5m])'
    pages = [a for a in office if a.get("alert") and a["labels"].get("burn_factor") == "14.4"]
    assert "> 0.0072" in pages[0]["expr"] and pages[0]["labels"]["objective"] == "0.9995"
    assert "portal" not in render(inventory) and "office-app" not in render(inventory)  # selected by label only
    yaml.safe_dump(generated)  # plain data


def estate(services: int) -> str:
    """A config of `services` services over three SLO variants (the default, DEGRADED-down, office hours)."""
    targets = "\n".join(
        f"  - {{name: t{i}, address: 127.0.{i // 250}.{i % 250 + 1}, modules: [ping]}}" for i in range(services)
    )
    rows = "\n".join(
        f"  - {{name: svc-{i:05d}, targets: [t{i}], labels: {{tier: {TIERS[i % 3]}}}}}" for i in range(services)
    )
    return f"""
modules: {{ping: {{kind: icmp}}}}
targets:
{targets}
services:
{rows}
slo:
  hours: {{office: {{start: "09:00", end: "17:00"}}}}
  rules:
    - {{match: {{tier: national}}, objective: 0.9995, degraded: down}}
    - {{match: {{tier: asp}}, service_hours: office}}
"""


TIERS = ("municipality", "national", "asp")


def test_rule_size_does_not_grow_with_the_services(load_yaml_config: Loader) -> None:
    """10 or 2,000 services over the same SLO variants: the same rules, byte for byte (no service name in
    them); more variants do add rules."""
    small = render(load_yaml_config(estate(10)).inventory)
    large = render(load_yaml_config(estate(2000)).inventory)
    assert small == large and "svc-" not in large
    assert len(large.encode()) < 25_000
    fewer = render(load_yaml_config(estate(1)).inventory)  # one service: only the default variant
    assert len(fewer) < len(small)
