"""Config loading: every invalid case gives its exact message; valid features resolve as documented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from monitor.config.loader import ConfigError, load_config
from monitor.core.services import service_state
from monitor.core.state import State
from tests.conftest import Loader

INVALID = Path(__file__).parent / "invalid"
EXPECTED: dict[str, list[str]] = yaml.safe_load((INVALID / "expected.yml").read_text(encoding="utf-8"))
ROOT = Path(__file__).parents[2]


def test_every_invalid_file_has_an_expectation() -> None:
    """Each invalid case file is listed in expected.yml (and nothing listed is missing)."""
    files = {p.name for p in INVALID.glob("*.yml")} - {"expected.yml"}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_config_exact_messages(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The invalid file is rejected with exactly the expected errors, each naming file, line and path."""
    monkeypatch.chdir(INVALID)
    with pytest.raises(ConfigError) as info:
        load_config(name)
    assert info.value.messages == EXPECTED[name]


def test_check_config_cli_exit_codes() -> None:
    """`monitor check-config` exits 1 with the errors on stderr for a bad file, 0 for the shipped example."""
    bad = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", "bad_duration.yml"],
        cwd=INVALID,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert EXPECTED["bad_duration.yml"][0] in bad.stderr
    good = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", "config/monitor.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert good.returncode == 0, good.stderr
    assert "OK (" in good.stdout


def test_shipped_example_inventory() -> None:
    """config/monitor.yml covers two national centers, all 47 prefectures and redundant LGWAN links."""
    inv = load_config(ROOT / "config" / "monitor.yml").inventory
    prefectures = {t.labels.get("prefecture") for t in inv.targets.values()} - {None}
    assert prefectures == {f"{i:02d}" for i in range(1, 48)}
    assert {s.id for s in inv.sites.values() if s.kind == "national_center"} == {"center-east", "center-west"}
    links = [s for s in inv.services.values() if s.name.startswith("lgwan-link-")]
    assert links and all(s.rule == "any" and len(s.check_ids) == 2 for s in links)
    for system in ("juki-net", "card-mgmt", "jpki-ocsp", "jpki-crl", "chukan"):
        assert system in inv.services


def test_layering_check_over_module_over_defaults(load_yaml_config: Loader) -> None:
    """interval/timeout/thresholds: the check's value wins, then the module's, then defaults."""
    inv = load_yaml_config(
        """
        defaults: {interval: 60s, timeout: 10s, failures_to_down: 4, degraded: {latency: 2s}}
        modules:
          ping: {kind: icmp, timeout: 3s, degraded: {loss_ratio: 0.5}}
        targets:
          - name: a
            address: 127.0.0.1
            checks:
              - {module: ping, interval: 15s, degraded: {latency: 1s}}
              - {module: ping, name: ping-slow}
        """
    ).inventory
    fast, slow = inv.checks["a/ping"], inv.checks["a/ping-slow"]
    assert (fast.interval, fast.timeout, fast.policy.failures_to_down) == (15.0, 3.0, 4)
    assert (fast.degraded.latency, fast.degraded.loss_ratio) == (1.0, 0.5)
    assert (slow.interval, slow.degraded.latency) == (60.0, 2.0)
    assert fast.retry_interval <= fast.interval


def test_csv_inventory_rows_become_targets_and_services(tmp_path: Path) -> None:
    """A Shift_JIS CSV (as spreadsheets export) adds targets with labels; service/service_rule columns make a service."""
    (tmp_path / "circuits.csv").write_bytes(
        "name,address,prefecture,tier,role,modules,service,service_rule,label.owner\n"
        "c1,127.0.0.1,東京都,municipality,circuit-primary,ping,link-13-01,any,千代田区\n"
        "c2,127.0.0.2,13,municipality,circuit-backup,ping,link-13-01,any,千代田区\n".encode("cp932")
    )
    (tmp_path / "monitor.yml").write_text(
        "modules:\n  ping: {kind: icmp}\ninventories:\n  - csv: circuits.csv\n", encoding="utf-8"
    )
    inv = load_config(tmp_path / "monitor.yml").inventory
    assert inv.targets["c1"].labels == {
        "prefecture": "13",
        "tier": "municipality",
        "role": "circuit-primary",
        "owner": "千代田区",
    }
    link = inv.services["link-13-01"]
    assert link.rule == "any" and link.check_ids == ("c1/ping", "c2/ping")
    assert service_state(link.rule, [State.DOWN, State.UP]) == State.DEGRADED


def test_secret_from_env_and_file_never_printed(
    load_yaml_config: Loader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Secrets resolve from ${ENV} and {file:}; the value never shows in repr or JSON dumps."""
    monkeypatch.setenv("NOC_API_TOKEN", "tok-123456")
    (tmp_path / "smtp-password").write_text("pw-987654\n", encoding="utf-8")
    inv = load_yaml_config(
        """
        modules:
          api: {kind: http, http: {bearer_token: "${NOC_API_TOKEN}", basic_auth: {username: noc, password: {file: smtp-password}}}}
        targets:
          - {name: a, address: 127.0.0.1, modules: [api]}
        """
    ).inventory
    settings = inv.checks["a/api"].settings
    assert settings.bearer_token.get_secret_value() == "tok-123456"  # type: ignore[attr-defined]
    assert settings.basic_auth.password.get_secret_value() == "pw-987654"  # type: ignore[attr-defined]
    for text in (repr(settings), settings.model_dump_json(), str(settings.model_dump())):
        assert "tok-123456" not in text and "pw-987654" not in text


def test_site_gives_tier_and_prefecture_labels(load_yaml_config: Loader) -> None:
    """A target in a prefecture site gets tier=prefecture and the JIS code unless it sets its own."""
    inv = load_yaml_config(
        """
        modules: {ping: {kind: icmp}}
        sites:
          - {id: pref-01, kind: prefecture, prefecture: 北海道}
        targets:
          - {name: a, address: 127.0.0.1, site: pref-01, modules: [ping]}
          - {name: b, address: 127.0.0.2, site: pref-01, labels: {tier: lgwan}, modules: [ping]}
        """
    ).inventory
    assert inv.targets["a"].labels == {"tier": "prefecture", "prefecture": "01", "site": "pref-01"}
    assert inv.targets["b"].labels["tier"] == "lgwan"


def test_all_errors_reported_together(load_yaml_config: Loader) -> None:
    """Several problems in one file are all reported, sorted by line, not just the first."""
    with pytest.raises(ConfigError) as info:
        load_yaml_config(
            """
            modules: {ping: {kind: icmp}}
            targets:
              - {name: a, address: 127.0.0.1, modules: [pong]}
              - {name: b, address: 127.0.0.2, parent: zz, modules: [ping]}
            """
        )
    messages = info.value.messages
    assert len(messages) == 2
    assert 'unknown module "pong"' in messages[0] and 'unknown parent "zz"' in messages[1]


def test_data_dir_relative_to_config_file(tmp_path: Path) -> None:
    """daemon.data_dir is resolved against the config file's folder, not the working directory."""
    (tmp_path / "monitor.yml").write_text("daemon: {data_dir: state}\n", encoding="utf-8")
    inv = load_config(tmp_path / "monitor.yml").inventory
    assert inv.daemon.data_dir == tmp_path / "state"
    assert os.path.isabs(inv.daemon.data_dir)
