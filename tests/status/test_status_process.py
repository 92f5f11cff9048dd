"""The status page, notices and recovery-time objectives end to end: the daemon as a process, TCP
targets the test closes and reopens, pages and notices delivered to a webhook receiver on loopback,
the page drawn by headless Chromium (artifacts/status-page.png)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.peers import Receiver, daemon_process, free_port, http_get, http_post, wait_for
from tests.e2e.test_daemon_process import TCPGate

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).parents[2]
OPERATOR, VIEWER, ADMIN = "status-op-41aa", "status-viewer-0b2c", "status-admin-9d9e"


@pytest.fixture
def gates() -> Iterator[dict[str, TCPGate]]:
    made = {name: TCPGate() for name in ("juki-east-api", "juki-west-api", "lgwan-13-gw", "lgwan-27-gw")}
    yield made
    for gate in made.values():
        gate.close()


def write_config(path: Path, hook: str, gates: dict[str, TCPGate], status_port: int) -> None:
    starts = (datetime.now().astimezone() + timedelta(days=2)).replace(microsecond=0)
    targets = "\n".join(
        f"  - {{name: {name}, address: 127.0.0.1, checks: [{{module: tcp, port: {gate.port}}}], labels: {labels}}}"
        for (name, gate), labels in zip(gates.items(), [
            "{tier: national, system: juki-net}", "{tier: national, system: juki-net}",
            "{tier: lgwan, system: lgwan, prefecture: 13}", "{tier: lgwan, system: lgwan, prefecture: 27}"], strict=True)
    )  # fmt: skip
    path.write_text(
        f"""
defaults: {{interval: 1s, timeout: 500ms, retry_interval: 200ms, failures_to_down: 2, successes_to_up: 1}}
modules:
  tcp: {{kind: tcp}}
targets:
{targets}
services:
  - {{name: juki-net, rule: any, select: {{labels: {{system: juki-net}}}}, labels: {{tier: national, system: juki-net}}}}
  - {{name: lgwan-13, rule: all, targets: [lgwan-13-gw], labels: {{tier: lgwan, system: lgwan, prefecture: 13}}}}
  - {{name: lgwan-27, rule: all, targets: [lgwan-27-gw], labels: {{tier: lgwan, system: lgwan, prefecture: 27}}}}
incidents:
  group_wait: 1s
  severity: [{{match: {{tier: national}}, severity: critical}}, {{match: {{tier: lgwan}}, severity: major}}]
notifiers:
  hook: {{kind: webhook, url: "{hook}", secret: "${{STATUS_HOOK_SECRET}}", timeout: 2s}}
contacts:
  noc: {{name: 監視オペレータ当番, webhook: hook}}
  boss: {{name: 統括責任者, webhook: hook}}
  osaka: {{name: 大阪府 情報政策課, webhook: hook}}
  tokyo: {{name: 東京都 デジタルサービス局, webhook: hook}}
playbooks:
  default:
    levels:
      - {{notify: [{{contacts: [noc], via: [hook]}}], ack_timeout: 1h}}
      - {{notify: [{{contacts: [boss], via: [hook]}}]}}
maintenance:
  - {{name: lgwan-27-router-swap, reason: "internal: swap router lgwan-27-gw (rack B3)", targets: [lgwan-27-gw],
     start: "{starts.isoformat()}", end: "{(starts + timedelta(hours=2)).isoformat()}"}}
auth:
  tokens:
    - {{name: yamada, role: operator, token: "${{STATUS_OPERATOR}}"}}
    - {{name: watcher, role: viewer, token: "${{STATUS_VIEWER}}"}}
    - {{name: auditor, role: admin, token: "${{STATUS_ADMIN}}"}}
status_page:
  listen: 127.0.0.1:{status_port}
  services:
    - {{id: juki, name: 住民基本台帳ネットワークシステム, name_en: Resident Registry Network, group: 全国サービス,
       services: [juki-net]}}
    - {{id: lgwan, name: 総合行政ネットワーク, name_en: LGWAN, select: {{system: lgwan}}, prefectures: true}}
notices:
  auto_draft: [critical]
  subscribers:
    - {{contact: tokyo, via: [hook], services: [juki]}}
    - {{contact: osaka, via: [hook], services: [lgwan], prefectures: ["27"]}}
recovery:
  objectives: [{{match: {{severity: critical}}, objective: 8s}}]
  warn_at: 0.5
""",
        encoding="utf-8",
    )


def test_status_page_notices_and_recovery_objectives(
    tmp_path: Path, gates: dict[str, TCPGate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A critical outage drafts a notice that is not public until an operator publishes it; the
    recovery-time objective pages level 2 at half of it and records the breach; the published notice
    reaches the subscribed government and the page, feed and JSON, which name no target, address,
    window reason or error; notice writes need a token with the right role; the month's report lists
    the breach and the time to the first notice."""
    for name, value in {"STATUS_HOOK_SECRET": "hook-secret-1", "STATUS_OPERATOR": OPERATOR, "STATUS_VIEWER": VIEWER,
                        "STATUS_ADMIN": ADMIN}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    hook = Receiver()
    port, status_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    config = tmp_path / "monitor.yml"
    write_config(config, hook.url, gates, status_port)
    args = ["run", "--config", str(config), "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")]

    def get(path: str, token: str | None = VIEWER, where: str = base) -> Any:
        status, body = http_get(where + path, token=token)
        assert status == 200, body
        return json.loads(body) if path.endswith(".json") or path.startswith("/api") else body.decode()

    def post(path: str, body: dict[str, Any], token: str | None = OPERATOR, method: str = "POST") -> tuple[int, Any]:
        if method == "PATCH":
            import urllib.request

            req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="PATCH",
                                         headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})  # fmt: skip
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        status, raw = http_post(base + path, json.dumps(body).encode(), token=token)
        return status, json.loads(raw) if raw else None

    try:
        with daemon_process(args, tmp_path) as proc:
            wait_for(lambda: get("/api/v1/services")["count"] == 3 and all(
                s["state"] == "up" for s in get("/api/v1/services")["services"]), 20, what="services up")  # fmt: skip

            # notice writes need a token with the operator role
            draft = {"template": "investigating", "services": ["juki"]}
            assert post("/api/v1/notices", draft, token=None)[0] == 403  # anonymous: viewer
            assert post("/api/v1/notices", draft, token="forged")[0] == 401
            assert post("/api/v1/notices", draft, token=VIEWER)[0] == 403
            status, problem = post("/api/v1/notices", {"template": "nope", "services": ["juki"]})
            assert status == 422 and "template must be one of" in problem["detail"]

            # a critical outage: both national servers down
            opened_at = time.time()
            gates["juki-east-api"].close()
            gates["juki-west-api"].close()
            drafted = wait_for(lambda: get("/api/v1/notices?status=draft")["notices"], 15, what="the auto draft")[0]
            time.sleep(1.0)
            assert len(get("/api/v1/notices")["notices"]) == 1  # two servers, one outage: one draft
            # the service went DOWN through both servers: one incident (the second server's joined it)
            listed = get("/api/v1/incidents")["incidents"]
            critical = [i for i in listed if i["severity"] == "critical" and i["merged_into"] is None]
            assert len(critical) == 1 and drafted["incident_id"] == critical[0]["id"], listed
            incident = critical[0]
            assert drafted["services"] == ["juki"]
            assert drafted["title"] == "【障害発生】住民基本台帳ネットワークシステム"
            assert get("/status.json")["notices"] == [] and "住民基本台帳" not in get("/status/feed.xml")

            # the recovery-time objective (8 s, warn at 4 s): level 2 is paged, the breach recorded
            level2 = wait_for(lambda: [d for d in hook.deliveries if d["json"].get("level") == 2
                                       and d["json"]["incident"]["id"] == incident["id"]], 15, what="level 2")  # fmt: skip
            shown = get(f"/api/v1/incidents/{incident['id']}")
            assert shown["recovery_objective_seconds"] == 8.0
            wait_for(lambda: "recovery_breached" in [e["kind"] for e in get(f"/api/v1/incidents/{incident['id']}")["timeline"]],
                     10, what="the breach")  # fmt: skip
            kinds = [e["kind"] for e in get(f"/api/v1/incidents/{incident['id']}")["timeline"]]
            assert kinds.index("recovery_warning") < kinds.index("recovery_breached")
            assert 3.5 < level2[0]["at"] - opened_at < 12

            # published: on the page, in the feed and JSON, and mailed to the subscriber of "juki" only
            status, published = post(f"/api/v1/notices/{drafted['id']}/publish", {})
            assert status == 200 and published["status"] == "published"
            snapshot = get("/status.json")
            assert [n["id"] for n in snapshot["notices"]] == [drafted["id"]]
            juki = next(s for s in snapshot["services"] if s["id"] == "juki")
            assert juki["state"] == "outage" and juki["state_text"] == "停止しています"
            assert drafted["title"] in get("/status/feed.xml", where=f"http://127.0.0.1:{status_port}")
            told = wait_for(lambda: [d for d in hook.deliveries if d["json"].get("event") == "notice"], 10, what="mail")
            assert [d["json"]["recipient"] for d in told] == ["東京都 デジタルサービス局"]
            status, updated = post(f"/api/v1/notices/{drafted['id']}",
                                   {"template": "estimate", "estimate_at": time.time() + 3600}, method="PATCH")  # fmt: skip
            assert status == 200 and updated["revision"] == 1 and updated["title"].startswith("【復旧見込み】")

            # from a shell: a planned-stop notice for LGWAN in Osaka, published and later closed
            made = cli(base, "create", "--template", "planned", "--service", "lgwan", "--prefecture", "27",
                       "--starts", "2030-01-05T01:00", "--ends", "2030-01-05T03:00")  # fmt: skip
            planned_id = int(made.split()[1].lstrip("#"))
            assert "【計画停止のお知らせ】総合行政ネットワーク" in made
            assert "published" in cli(base, "publish", str(planned_id))
            osaka = wait_for(lambda: [d for d in hook.deliveries if d["json"].get("recipient") == "大阪府 情報政策課"],
                             10, what="Osaka's notice")  # fmt: skip
            assert "2030-01-05 01:00" in osaka[0]["json"]["text"]
            assert f"{planned_id}" in cli(base, "list", "--status", "published")
            assert "closed" in cli(base, "close", str(planned_id))

            gates["juki-east-api"].open()
            gates["juki-west-api"].open()
            wait_for(lambda: get(f"/api/v1/incidents/{incident['id']}")["status"] == "resolved", 15, what="recovery")

            # nothing internal leaks: crawl every public view (also on the status page's own listener)
            pages = [get("/status", None), get("/status?lang=en", None), json.dumps(get("/status.json", None)),
                     get("/status/feed.xml", None), get("/status", None, f"http://127.0.0.1:{status_port}")]  # fmt: skip
            planned = get("/status.json")["planned"]
            assert [p["services"] for p in planned] == [["lgwan"]]
            for text in pages:
                for secret in (*gates, "127.0.0.1", "rack B3", "lgwan-27-router-swap", "refused", "yamada",
                               "juki-net", "lgwan-13"):  # fmt: skip
                    assert secret not in text, secret
            report = get(f"/api/v1/reports/{datetime.now().astimezone().strftime('%Y-%m')}?format=json")
            audit = get("/api/v1/audit?limit=200", ADMIN)["entries"]
            screenshot(base + "/status")
            assert proc.proc.poll() is None
    finally:
        hook.server.shutdown()
    recovery = report["recovery"]
    assert recovery["incidents_with_objective"] == 1 and recovery["incidents_with_notice"] == 1, report["incidents"]
    assert incident["id"] in recovery["breached"]
    line = next(i for i in report["incidents"] if i["id"] == incident["id"])
    assert line["recovered_within_objective"] is False and line["duration_minutes"] * 60 > 8.0
    assert line["time_to_first_notice_minutes"] > 0
    actions = {(e["action"], e["outcome"]) for e in audit}
    assert {("notice.create", "unauthenticated"), ("notice.create", "denied"), ("notice.draft", "ok"),
            ("notice.publish", "ok"), ("notice.update", "ok")} <= actions  # fmt: skip


def screenshot(url: str) -> None:
    """The page as a browser draws it, kept as a test artifact."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return
    out = ROOT / "artifacts" / "status-page.png"
    out.parent.mkdir(exist_ok=True)
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                    f"--screenshot={out}", "--window-size=1100,1400", url], capture_output=True, timeout=60)  # fmt: skip
    assert out.exists() and out.stat().st_size > 20_000
    assert re.match(rb"\x89PNG", out.read_bytes()[:4])


def cli(base: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "monitor", "notices", *args, "--url", base, "--token", OPERATOR],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout
