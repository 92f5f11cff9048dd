"""The deployment files: docker-compose.yml, Dockerfile commands and the Prometheus config are valid."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from monitor.cli.main import build_parser

ROOT = Path(__file__).parents[1]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (Debian package) not installed")
def test_docker_compose_config_is_valid() -> None:
    """`docker-compose config` accepts the compose file (no Docker engine needed)."""
    proc = subprocess.run(["docker-compose", "config", "-q"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_compose_and_dockerfile_commands_parse() -> None:
    """The commands the compose file and the Dockerfile give the daemon are valid CLI invocations."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    build_parser().parse_args(compose["services"]["monitor"]["command"])
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    cmd = next(line for line in dockerfile.splitlines() if line.startswith("CMD "))
    build_parser().parse_args(yaml.safe_load(cmd.removeprefix("CMD ")))


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_prometheus_config_is_valid() -> None:
    """`promtool check config` accepts the Prometheus config the compose file mounts."""
    proc = subprocess.run(
        ["promtool", "check", "config", "config/prometheus/prometheus.yml"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(
    shutil.which("amtool") is None, reason="amtool (Debian package prometheus-alertmanager) not installed"
)
def test_alertmanager_config_is_valid() -> None:
    """`amtool check-config` accepts the Alertmanager config the compose file mounts."""
    proc = subprocess.run(
        ["amtool", "check-config", "config/alertmanager/alertmanager.yml"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_watchdog_rules_fire_always_and_page_when_the_daemon_is_gone() -> None:
    """The dead man's switch: `Watchdog` fires always, `MonitorDaemonDown` after a minute without a scrape of any
    daemon (promtool unit tests in config/prometheus/rules-tests/watchdog.test.yml)."""
    rules = ROOT / "config" / "prometheus" / "rules" / "watchdog.yml"
    proc = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run(
        ["promtool", "test", "rules", "watchdog.test.yml"],
        cwd=ROOT / "config" / "prometheus" / "rules-tests", capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(
    shutil.which("amtool") is None, reason="amtool (Debian package prometheus-alertmanager) not installed"
)
@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=Watchdog", "severity=none"], "deadmans-switch"),  # the heartbeat, outside the stack
        (["alertname=MonitorDaemonDown", "severity=page"], "noc-mail"),  # not to the daemon that is down
        (["alertname=ServiceErrorBudgetBurn", "service=juki-net"], "daemon-and-mail"),
        (["alertname=MonitorIncident", "generator=national-monitor"], "noc-mail"),
    ],
)
def test_alertmanager_routes_the_watchdog_to_the_dead_mans_switch(labels: list[str], receiver: str) -> None:
    """`amtool config routes test`: each kind of alert reaches the receiver the config's header promises."""
    proc = subprocess.run(
        ["amtool", "config", "routes", "test", "--config.file=config/alertmanager/alertmanager.yml", *labels],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == receiver


def test_compose_mounts_exist() -> None:
    """Every file or directory the compose file mounts from the repository is there."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is missing"
