"""The generated capacity rules: in sync with the shipped config, accepted by promtool, and alerting as the
promtool unit tests in config/prometheus/rules-tests/capacity-rules.test.yml expect (a forecast within the
configured days, a day's 95th percentile over the threshold, a standby's series ignored)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from monitor.availability.capacity_rules import DAYS, render, rules
from monitor.config.loader import load_config
from tests.conftest import Loader

ROOT = Path(__file__).parents[2]
RULES = ROOT / "config" / "prometheus" / "rules" / "capacity-rules.yml"
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (package prometheus) missing")


def test_committed_rules_match_the_generator() -> None:
    """config/prometheus/rules/capacity-rules.yml is exactly what `monitor rules` makes of config/monitor.yml."""
    assert RULES.read_text(encoding="utf-8") == render(load_config(ROOT / "config" / "monitor.yml").inventory)


@needs_promtool
def test_promtool_check_and_unit_tests() -> None:
    checked = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        ["promtool", "test", "rules", "capacity-rules.test.yml"],
        cwd=ROOT / "config" / "prometheus" / "rules-tests", capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_alert_follows_the_config(load_yaml_config: Loader) -> None:
    """capacity.threshold and alert_within_days are the alerts' numbers."""
    inventory = load_yaml_config(
        """
        modules: {ping: {kind: icmp}}
        targets: [{name: a, address: 127.0.0.1, modules: [ping]}]
        capacity: {threshold: 0.7, alert_within_days: 30}
        """
    ).inventory
    alerts = {a["alert"]: a for a in rules(inventory)["groups"][1]["rules"]}
    assert alerts["CircuitSaturationForecast"]["expr"] == f"{DAYS} <= 30"
    assert (
        alerts["CircuitSaturated"]["expr"].endswith(">= 0.7")
        and "70%" in alerts["CircuitSaturated"]["annotations"]["summary"]
    )
