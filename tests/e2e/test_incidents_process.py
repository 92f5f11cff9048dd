"""End to end: the daemon as a process pages a real Alertmanager and a webhook receiver; one page per root
cause; ack stops escalation; resolve reaches everyone; Alertmanager down delays but loses nothing;
kill -9 in the middle of an escalation neither loses nor repeats a page; writes need a token and are audited."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests import pg
from tests.e2e.peers import (
    Receiver,
    alertmanager,
    alertmanager_available,
    am_alerts,
    daemon_process,
    free_port,
    http_get,
    http_post,
    wait_for,
)
from tests.e2e.test_daemon_process import TCPGate

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not alertmanager_available(), reason="prometheus-alertmanager (Debian package) not installed"),
]
OPERATOR, ADMIN = "e2e-operator-1c9a", "e2e-admin-77d2"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def write_config(path: Path, am_port: int, hook: str, gates: dict[str, TCPGate], ack_timeout: str = "6s") -> None:
    targets = "\n".join(
        f"  - {{name: {name}, address: 127.0.0.1, checks: [{{module: tcp, port: {gate.port}}}]"
        + (", parent: edge}" if name != "edge" else ", labels: {tier: prefecture, prefecture: 13}}")
        for name, gate in gates.items()
    )
    path.write_text(
        f"""
defaults: {{interval: 1s, timeout: 500ms, retry_interval: 200ms, failures_to_down: 2, successes_to_up: 1}}
modules:
  tcp: {{kind: tcp, reachability: true}}
targets:
{targets}
incidents: {{group_wait: 2s, severity: [{{match: {{tier: prefecture}}, severity: major}}]}}
notifiers:
  am: {{kind: alertmanager, urls: ["http://127.0.0.1:{am_port}"], resend_interval: 2s, timeout: 2s}}
  hook: {{kind: webhook, url: "{hook}", secret: "${{E2E_HOOK_SECRET}}", timeout: 2s}}
contacts:
  noc: {{name: 監視オペレータ当番, webhook: hook}}
  boss: {{name: 統括責任者, webhook: hook}}
playbooks:
  default:
    levels:
      - {{notify: [{{contacts: [noc], via: [am, hook]}}], ack_timeout: {ack_timeout}}}
      - {{notify: [{{contacts: [boss], via: [am, hook]}}]}}
auth:
  tokens:
    - {{name: yamada, role: operator, token: "${{E2E_OPERATOR}}"}}
    - {{name: auditor, role: admin, token: "${{E2E_ADMIN}}"}}
""",
        encoding="utf-8",
    )


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2E_HOOK_SECRET", "hook-secret-4411")
    monkeypatch.setenv("E2E_OPERATOR", OPERATOR)
    monkeypatch.setenv("E2E_ADMIN", ADMIN)


@pytest.fixture
def gates() -> Iterator[dict[str, TCPGate]]:
    made = {"edge": TCPGate(), **{f"child-{i}": TCPGate() for i in range(5)}}
    yield made
    for gate in made.values():
        gate.close()


def incidents(base: str, status: str = "open") -> list[dict[str, Any]]:
    return list(json.loads(http_get(f"{base}/api/v1/incidents?status={status}")[1])["incidents"])


def start_daemon(tmp: Path, config: Path, port: int, name: str = "daemon") -> Any:
    args = ["run", "--config", str(config), "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp / "data")]
    return daemon_process(args, tmp, name)


@pytest.mark.usefixtures("env")
def test_one_page_per_root_cause_ack_resolve_and_audit(
    tmp_path: Path, receiver: Receiver, gates: dict[str, TCPGate]
) -> None:
    """Edge router and 5 children cut: one Alertmanager alert and one webhook page (level 1); an operator acks
    (no level 2 follows); recovery resolves the alert and tells the receiver; anonymous writes are refused
    and the audit log holds them all, with a valid hash chain."""
    am_port, port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    write_config(tmp_path / "monitor.yml", am_port, receiver.url, gates)
    with alertmanager(tmp_path, port=am_port) as am, start_daemon(tmp_path, tmp_path / "monitor.yml", port) as daemon:
        wait_for(lambda: http_get(f"{base}/readyz")[0] == 200, 20, what="daemon ready")
        wait_for(lambda: json.loads(http_get(f"{base}/api/v1/targets?state=up")[1])["count"] == 6, 20, what="all up")
        for gate in gates.values():
            gate.close()
        alerts = wait_for(lambda: am_alerts(am, active_only=True), 30, what="alert in Alertmanager")
        time.sleep(3)  # children are confirmed too by now: still one alert, one page
        alerts = am_alerts(am, active_only=True)
        assert len(alerts) == 1, alerts
        labels = alerts[0]["labels"]
        assert (labels["target"], labels["escalation_level"], labels["severity"], labels["prefecture"]) == (
            "edge",
            "1",
            "major",
            "13",
        )
        assert receiver.events() == [("firing", 1, "監視オペレータ当番")]
        [incident] = incidents(base)
        assert incident["affected"]["children_count"] == 5
        # children confirmed before the edge got incidents of their own, merged into the edge's, never paged
        assert {i["merged_into"] for i in incidents(base, "resolved")} <= {incident["id"]}

        assert http_post(f"{base}/api/v1/incidents/{incident['id']}/ack")[0] == 403  # anonymous: read only
        assert http_post(f"{base}/api/v1/incidents/{incident['id']}/ack", token="wrong")[0] == 401
        status, body = http_post(
            f"{base}/api/v1/incidents/{incident['id']}/ack", json.dumps({"comment": "調査中"}).encode(), token=OPERATOR
        )
        assert status == 200 and json.loads(body)["acked_by"] == "yamada"
        time.sleep(8)  # past the 6 s ack timeout
        assert [e for e in receiver.events() if e[1] == 2] == []

        for gate in gates.values():
            gate.open()
        wait_for(lambda: ("resolved", 1, "監視オペレータ当番") in receiver.events(), 30, what="resolve message")
        wait_for(lambda: not am_alerts(am, active_only=True), 30, what="alert resolved in Alertmanager")
        detail = json.loads(http_get(f"{base}/api/v1/incidents/{incident['id']}")[1])
        kinds = [t["kind"] for t in detail["timeline"]]
        assert kinds[0] == "detected" and {"escalated", "notified", "acknowledged", "resolved"} <= set(kinds)
        assert set(kinds) <= {"detected", "absorbed", "escalated", "notified", "acknowledged", "resolved"}

        assert http_get(f"{base}/api/v1/audit", token=OPERATOR)[0] == 403  # only admins read the audit log
        req_status, body = http_get(f"{base}/api/v1/audit", token=ADMIN)
        audit = json.loads(body)
        assert req_status == 200 and audit["chain_valid"] is True
        outcomes = [(e["action"], e["outcome"], e["actor"]) for e in audit["entries"]]
        assert ("incident.ack", "ok", "yamada") in outcomes
        assert ("incident.ack", "denied", "anonymous") in outcomes and (
            "incident.ack",
            "unauthenticated",
            "invalid-token",
        ) in outcomes
        assert daemon.proc.poll() is None


@pytest.mark.usefixtures("env")
def test_alertmanager_down_during_outage_delivers_later_once(
    tmp_path: Path, receiver: Receiver, gates: dict[str, TCPGate]
) -> None:
    """With Alertmanager stopped when the page is due, the alert waits in the outbox and arrives once when it is back."""
    am_port, port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    write_config(tmp_path / "monitor.yml", am_port, receiver.url, {"edge": gates["edge"]}, ack_timeout="1h")
    with start_daemon(tmp_path, tmp_path / "monitor.yml", port):
        wait_for(lambda: http_get(f"{base}/readyz")[0] == 200, 20, what="daemon ready")
        wait_for(lambda: json.loads(http_get(f"{base}/api/v1/targets?state=up")[1])["count"] == 1, 20)
        gates["edge"].close()
        wait_for(lambda: receiver.events() == [("firing", 1, "監視オペレータ当番")], 30, what="webhook page")

        def am_failures() -> float:
            text = http_get(f"{base}/metrics")[1].decode()
            return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith('monitor_notification_failures_total{channel="am"}'))  # fmt: skip

        wait_for(lambda: am_failures() >= 1, 30, what="a failed Alertmanager attempt")
        with alertmanager(tmp_path, port=am_port) as am:
            alerts = wait_for(lambda: am_alerts(am), 60, what="alert delivered after Alertmanager came back")
            time.sleep(4)  # resends happen every 2 s: Alertmanager still holds one alert
            assert len(am_alerts(am)) == 1 and alerts[0]["labels"]["target"] == "edge"
        assert receiver.events() == [("firing", 1, "監視オペレータ当番")]


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_during_level_one_wait_pages_level_two_once_on_time(
    tmp_path: Path, receiver: Receiver, gates: dict[str, TCPGate], backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 while waiting for the level-1 ack: after a restart level 2 is paged once, about ack_timeout after level 1,
    and level 1 is not paged again. On SQLite in the data directory and on a real PostgreSQL server."""
    am_port, port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    write_config(tmp_path / "monitor.yml", am_port, receiver.url, {"edge": gates["edge"]}, ack_timeout="8s")
    if backend == "postgresql":
        if not pg.available():
            pytest.skip("postgresql (Debian package) not installed")
        monkeypatch.setenv("E2E_PG_DSN", dsn := pg.fresh_database())
        with (tmp_path / "monitor.yml").open("a", encoding="utf-8") as config:
            config.write('daemon: {postgresql: "${E2E_PG_DSN}"}\n')
    with alertmanager(tmp_path, port=am_port):
        with start_daemon(tmp_path, tmp_path / "monitor.yml", port, "first") as first:
            wait_for(lambda: http_get(f"{base}/readyz")[0] == 200, 20, what="daemon ready")
            wait_for(lambda: json.loads(http_get(f"{base}/api/v1/targets?state=up")[1])["count"] == 1, 20)
            gates["edge"].close()
            wait_for(lambda: receiver.events() == [("firing", 1, "監視オペレータ当番")], 30, what="level 1 page")
            level1_at = receiver.deliveries[0]["at"]
            time.sleep(1.5)
            first.stop(signal.SIGKILL)
        with start_daemon(tmp_path, tmp_path / "monitor.yml", port, "second"):
            wait_for(lambda: ("firing", 2, "統括責任者") in receiver.events(), 30, what="level 2 after restart")
            level2_at = next(d["at"] for d in receiver.deliveries if d["json"]["level"] == 2)
            assert 7.0 <= level2_at - level1_at <= 12.0
            time.sleep(3)
            assert receiver.events() == [("firing", 1, "監視オペレータ当番"), ("firing", 2, "統括責任者")]
            keys = [d["key"] for d in receiver.deliveries]
            assert len(keys) == len(set(keys))
    if backend == "postgresql":  # everything was in the server, nothing in the data directory
        assert not (tmp_path / "data" / "monitor.db").exists()
        with psycopg.connect(dsn) as conn:
            sent = conn.execute("SELECT level, channel FROM outbox WHERE status = 'sent' ORDER BY 1, 2").fetchall()
            assert sent == [(1, "am"), (1, "hook"), (2, "am"), (2, "hook")]  # each page once, per channel
            assert conn.execute("SELECT count(*) FROM daemon_runs").fetchone() == (2,)
