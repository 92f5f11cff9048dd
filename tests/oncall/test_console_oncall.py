"""The console's on-call views in headless Chromium against the daemon on loopback: the board shows who
is on call at each level now, the on-call page lists the slots, and a manager swaps two of them from the
page (the API then pages by the swap). Screenshots in artifacts/console-oncall-*.png."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from monitor.access.sessions import hash_password
from tests.console.cdp import Browser
from tests.e2e.peers import daemon_process, free_port, http_get, wait_for
from tests.oncall.world import JST

pytestmark = [pytest.mark.slow]
ARTIFACTS = Path(__file__).parents[2] / "artifacts"
PASSWORD = "swap the night shift 1"


def write_config(path: Path, password_hash: str) -> None:
    start = (datetime.now(JST).date() - timedelta(days=3)).isoformat()
    path.write_text(
        f"""
modules: {{tcp: {{kind: tcp}}}}
targets:
  - {{name: core, address: 127.0.0.1, checks: [{{module: tcp, port: 9}}]}}
notifiers:
  mail: {{kind: email, host: 127.0.0.1, port: 1, sender: monitor@example.lg.jp}}
contacts:
  yamada: {{name: 山田, email: yamada@example.lg.jp}}
  suzuki: {{name: 鈴木, email: suzuki@example.lg.jp}}
  boss: {{name: 統括責任者, email: boss@example.lg.jp}}
auth:
  users: [{{name: lead, role: operator, password_hash: "{password_hash}"}}]
schedules:
  noc:
    name: NOC 当番
    managers: [lead]
    layers:
      - name: base
        rotation_start: {start}
        shifts: [{{name: 日勤, start: "08:30", end: "20:30"}}, {{name: 夜勤, start: "20:30", end: "08:30"}}]
        members: [yamada, suzuki]
playbooks:
  default:
    levels:
      - {{notify: [{{schedule: noc, via: [mail]}}], ack_timeout: 10m}}
      - {{notify: [{{contacts: [boss], via: [mail]}}]}}
""",
        encoding="utf-8",
    )


async def test_board_shows_who_is_on_call_and_a_manager_swaps_from_the_page(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = tmp_path / "monitor.yml"
    write_config(config, hash_password(PASSWORD))
    args = ["run", "--config", str(config), "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")]
    with daemon_process(args, tmp_path):
        wait_for(lambda: http_get(base + "/readyz")[0] == 200, 20, what="daemon ready")
        now = json.loads(http_get(base + "/api/v1/oncall")[1])
        on_duty = now["levels"][0]["people"][0]["name"]
        async with Browser() as browser:
            await browser.goto(base + "/")
            await browser.wait("document.querySelector('#oncall-now') !== null")
            row = await browser.js("document.querySelector('#oncall-now tr[data-level=\"1\"] .people').textContent")
            assert row == on_duty
            assert "統括責任者" in await browser.js("document.querySelector('#oncall-now').textContent")
            await browser.screenshot(ARTIFACTS / "console-oncall-board.png")

            await browser.js("document.querySelector('#login-open').click()")
            await browser.js(f"""(() => {{ const f = document.querySelector('#login-form');
                f.name.value = 'lead'; f.password.value = {json.dumps(PASSWORD)}; f.requestSubmit(); }})()""")
            await browser.wait("document.querySelector('#who').textContent.includes('lead')")
            await browser.goto(base + "/#/oncall")
            await browser.wait("document.querySelectorAll('.schedule .pick').length > 4")
            # the second and third slots from now: different people (two members, one shift each in turn)
            keys = await browser.js("""(() => { const p = [...document.querySelectorAll('.schedule .pick')];
                p[1].checked = true; p[2].checked = true; return [p[1].value, p[2].value]; })()""")
            before = {
                s["key"]: s["person"]
                for s in json.loads(http_get(base + "/api/v1/oncall/schedules/noc/slots")[1])["slots"]
            }
            await browser.js("document.querySelector('.schedule .why').value = '通院のため'")
            await browser.js("document.querySelector('.do-swap').click()")
            await browser.wait("document.querySelector('#view').textContent.includes('通院のため')")
            await browser.screenshot(ARTIFACTS / "console-oncall-page.png")
        after = {
            s["key"]: s["person"] for s in json.loads(http_get(base + "/api/v1/oncall/schedules/noc/slots")[1])["slots"]
        }
        assert after[keys[0]] == before[keys[1]] and after[keys[1]] == before[keys[0]] != before[keys[1]]
        changes = json.loads(http_get(base + "/api/v1/oncall/changes")[1])["changes"]
        assert [(c["kind"], c["actor"], c["reason"]) for c in changes] == [("swap", "lead", "通院のため")]
