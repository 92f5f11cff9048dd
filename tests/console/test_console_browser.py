"""The operator console in headless Chromium against the daemon on loopback: log in, see a failing
target appear live (no reload), acknowledge its incident, schedule a maintenance window. Screenshots
are kept in artifacts/console-*.png."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.access.sessions import hash_password
from tests.console.cdp import Browser
from tests.e2e.peers import daemon_process, free_port, http_get, wait_for
from tests.e2e.test_daemon_process import TCPGate

pytestmark = [pytest.mark.slow]
ARTIFACTS = Path(__file__).parents[2] / "artifacts"
PASSWORD = "night shift password 1"


@pytest.fixture
def gates() -> Iterator[dict[str, TCPGate]]:
    made = {f"pref13-{name}": TCPGate() for name in ("edge", "core", "fw")}
    yield made
    for gate in made.values():
        gate.close()


def write_config(path: Path, gates: dict[str, TCPGate], password_hash: str) -> None:
    targets = "\n".join(
        f"  - {{name: {name}, address: 127.0.0.1, checks: [{{module: tcp, port: {gate.port}}}], "
        f"labels: {{tier: prefecture, prefecture: 13, system: pref-net}}"
        + ("" if name.endswith("edge") else ", parent: pref13-edge")
        + "}"
        for name, gate in gates.items()
    )
    path.write_text(
        f"""
defaults: {{interval: 1s, timeout: 500ms, retry_interval: 200ms, failures_to_down: 2, successes_to_up: 1}}
modules: {{tcp: {{kind: tcp, reachability: true}}}}
targets:
{targets}
incidents: {{group_wait: 1s}}
auth:
  users: [{{name: yamada, role: operator, password_hash: "{password_hash}"}}]
""",
        encoding="utf-8",
    )


async def test_log_in_see_a_failure_live_acknowledge_and_schedule(tmp_path: Path, gates: dict[str, TCPGate]) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = tmp_path / "monitor.yml"
    write_config(config, gates, hash_password(PASSWORD))
    args = ["run", "--config", str(config), "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")]
    with daemon_process(args, tmp_path):
        wait_for(lambda: http_get(base + "/readyz")[0] == 200, 20, what="daemon ready")
        async with Browser() as browser:
            await browser.goto(base + "/")
            await browser.wait("document.querySelector('#prefectures') !== null")
            await browser.js("document.querySelector('#login-open').click()")
            await browser.js(f"""(() => {{ const f = document.querySelector('#login-form');
                f.name.value = 'yamada'; f.password.value = {json.dumps(PASSWORD)}; f.requestSubmit(); }})()""")
            await browser.wait("document.querySelector('#who').textContent.includes('yamada')")
            await browser.screenshot(ARTIFACTS / "console-board.png")

            await asyncio.to_thread(_post_window, base)  # a window tomorrow shows on the calendar
            await browser.goto(base + "/#/maintenance")
            await browser.wait("document.querySelector('#calendar')?.textContent.includes('night-work')")
            await browser.screenshot(ARTIFACTS / "console-calendar.png")
            await browser.goto(base + "/#/")
            await browser.wait("document.body.dataset.live === 'open'")
            gates["pref13-edge"].close()  # the prefecture's edge router fails: its children become unreachable
            down_at = await asyncio.to_thread(wait_for, lambda: _state(base, "pref13-edge") == "down" and time.time(),
                                              15, 0.05, "edge down")  # fmt: skip
            await browser.wait("document.querySelector('#problems').textContent.includes('pref13-edge')", 5)
            shown_after = time.time() - down_at
            assert shown_after < 1.5, shown_after  # pushed by the event stream, not a reload
            assert await browser.js("document.querySelector('#view').dataset.page") == "board"
            incident = await asyncio.to_thread(wait_for, lambda: _open_incident(base), 15, 0.2, "incident")
            await browser.wait(f"document.querySelector('#incident-list').textContent.includes('#{incident}')", 5)
            await browser.screenshot(ARTIFACTS / "console-outage.png")

            await browser.goto(f"{base}/#/incidents/{incident}")
            await browser.wait("document.querySelector('#act-ack') !== null")
            await browser.js("document.querySelector('#act-ack').click()")
            await browser.wait("document.querySelector('#incident')?.dataset.status === 'acknowledged'")
            shown = json.loads(http_get(f"{base}/api/v1/incidents/{incident}")[1])
            assert shown["status"] == "acknowledged" and shown["acked_by"] == "yamada"
            await browser.screenshot(ARTIFACTS / "console-incident.png")

            await browser.goto(f"{base}/#/maintenance")
            await browser.wait("document.querySelector('#new-window') !== null")
            await browser.js("""(() => { const f = document.querySelector('#new-window');
                f.name.value = 'edge-swap'; f.reason.value = 'ルータ交換'; f.targets.value = 'pref13-edge';
                f.start.value = '2030-01-05T01:00'; f.end.value = '2030-01-05T03:00'; f.requestSubmit(); })()""")
            await browser.wait("document.querySelector('#windows').textContent.includes('edge-swap')")
            await browser.wait("document.querySelector('#calendar') !== null")
            windows = json.loads(http_get(f"{base}/api/v1/maintenance")[1])["maintenance"]
            upcoming = {w["name"]: w["upcoming"] for w in windows}
            assert upcoming["edge-swap"] == [] and len(upcoming["night-work"]) == 1  # 2030 is beyond the 62 days
            assert [(w["name"], w["created_by"]) for w in windows] == [
                ("night-work", "yamada"),
                ("edge-swap", "yamada"),
            ]
            await browser.screenshot(ARTIFACTS / "console-maintenance.png")
    (ARTIFACTS / "console-timings.json").write_text(
        json.dumps({"state_change_to_browser_seconds": round(shown_after, 3)})
    )


def _state(base: str, target: str) -> str | None:
    targets = json.loads(http_get(f"{base}/api/v1/targets?q={target}")[1])["targets"]
    return next((t["state"] for t in targets if t["name"] == target), None)


def _open_incident(base: str) -> int | None:
    items = json.loads(http_get(f"{base}/api/v1/incidents?status=open")[1])["incidents"]
    return items[0]["id"] if items else None


def _post_window(base: str) -> None:
    """Tomorrow 02:00-04:00 JST on a target with no checks failing, by the same operator's session."""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    login = urllib.request.Request(f"{base}/login", data=json.dumps({"name": "yamada", "password": PASSWORD}).encode(),
                                   headers={"Content-Type": "application/json"})  # fmt: skip
    csrf = json.loads(opener.open(login, timeout=10).read())["csrf_token"]
    tomorrow = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 9 * 3600 + 86400))
    body = {"name": "night-work", "reason": "作業", "targets": ["pref13-fw"], "start": f"{tomorrow}T02:00:00",
            "end": f"{tomorrow}T04:00:00"}  # fmt: skip
    request = urllib.request.Request(f"{base}/api/v1/maintenance", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", "X-CSRF-Token": csrf})  # fmt: skip
    assert opener.open(request, timeout=10).status == 201
