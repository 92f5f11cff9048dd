"""Schemathesis against the daemon's OpenAPI document, once per role: generated requests (valid and
invalid: wrong types, missing fields, odd content types, unknown ids) must never cause a server error,
whatever the caller may or may not do."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.access.auth import PERMISSIONS
from tests.e2e.peers import daemon_process, free_port, http_get, wait_for

# every role of monitor.access.auth.PERMISSIONS (a test below keeps the two in step): manager signs reports
ROLES = ("viewer", "operator", "security", "admin", "manager", "alertmanager", "ids")


def write_config(path: Path) -> None:
    tokens = "\n".join(f'    - {{name: st-{r}, role: {r}, token: "${{ST_{r.upper()}}}"}}' for r in ROLES)
    path.write_text(
        f"""
defaults: {{interval: 1s, timeout: 500ms, failures_to_down: 1, successes_to_up: 1}}
modules: {{tcp: {{kind: tcp}}}}
targets:
  - {{name: edge, address: 127.0.0.1, checks: [{{module: tcp, port: 9}}], labels: {{tier: prefecture, prefecture: 13}}}}
  - {{name: server, address: 127.0.0.1, checks: [{{module: tcp, port: 9}}], labels: {{tier: national, system: juki}}}}
services:
  - {{name: juki, targets: [server], labels: {{tier: national, system: juki}}}}
incidents: {{group_wait: 0s}}
status_page: {{services: [{{id: juki, name: 住基ネット, services: [juki]}}]}}
# a schedule, so the on-call endpoints have one to read and change: st-operator manages it (oncall.manage
# for this schedule only), the operator role swaps its own slots (oncall.swap)
notifiers: {{mail: {{kind: email, host: 127.0.0.1, port: 9, sender: monitor@example.lg.jp, timeout: 1}}}}
contacts:
  st-operator: {{name: 当番A, email: a@example.lg.jp}}
  st-admin: {{name: 当番B, email: b@example.lg.jp}}
schedules:
  noc:
    layers:
      - {{name: base, rotation_start: 2026-01-01, members: [st-operator, st-admin],
         shifts: [{{name: 日勤, start: "08:30", end: "20:30"}}, {{name: 夜勤, start: "20:30", end: "08:30"}}]}}
    managers: [st-operator]
    handover: {{via: [mail]}}
playbooks:
  default: {{levels: [{{notify: [{{schedule: noc, via: [mail]}}]}}]}}
auth:
  tokens:
{tokens}
""",
        encoding="utf-8",
    )


@pytest.mark.slow
def test_no_generated_request_causes_a_server_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if cli is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    for role in ROLES:
        monkeypatch.setenv(f"ST_{role.upper()}", f"st-token-{role}-0123")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = tmp_path / "monitor.yml"
    write_config(config)
    args = ["run", "--config", str(config), "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")]
    with daemon_process(args, tmp_path) as proc:
        wait_for(lambda: http_get(base + "/readyz")[0] == 200, 20, what="daemon ready")
        wait_for(lambda: http_get(base + "/api/v1/incidents?status=open")[1].count(b'"id"') >= 1, 20, what="incidents")
        for role in (None, *ROLES):
            headers = ["-H", f"Authorization: Bearer st-token-{role}-0123"] if role else []
            done = subprocess.run(
                [cli, "run", f"{base}/api/v1/openapi.json", *headers, "--checks", "not_a_server_error",
                 "--max-examples", "8", "--generation-deterministic", "--exclude-path", "/api/v1/events",
                 "--exclude-path", "/-/reload", "--request-timeout", "10"],
                capture_output=True, text=True, timeout=300, cwd=tmp_path,  # its cache stays out of the repo
            )  # fmt: skip
            assert done.returncode == 0, f"role {role}:\n{done.stdout[-6000:]}"
            assert "passed" in done.stdout
        assert proc.proc.poll() is None, "the daemon died under the generated requests"


def test_every_role_is_exercised() -> None:
    """A role added to the permissions must be added here too, or its endpoints go untested for it."""
    assert set(ROLES) == set(PERMISSIONS)
