"""HA end to end: two daemons on one real PostgreSQL store; only the leader pages; kill -9 the leader and
the standby takes over within 30 s, with no lost and no duplicate page."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import psycopg
import pytest

from monitor.availability.rules import render
from monitor.config.loader import load_config
from tests import pg
from tests.e2e.peers import (
    Process,
    Receiver,
    daemon_process,
    free_port,
    http_get,
    http_post,
    prom_query,
    prometheus,
    prometheus_available,
    wait_for,
)
from tests.e2e.test_daemon_process import TCPGate

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not pg.available(), reason="postgresql not installed")]
OPERATOR = "ha-operator-5d1e"


def leader(base: str) -> float | None:
    status, body = http_get(f"{base}/metrics")
    if status != 200:
        return None
    match = re.search(r"^monitor_ha_leader (\S+)$", body.decode(), re.MULTILINE)
    return float(match[1]) if match else None


def pair_member(config: Path, tmp: Path, ports: list[int], i: int) -> AbstractContextManager[Process]:
    """Daemon i of an HA pair on one config, listening on ports[i], with a data dir of its own."""
    args = ["run", "--config", str(config), "--listen", f"127.0.0.1:{ports[i]}", "--data-dir", str(tmp / f"d{i}")]
    return daemon_process(args, tmp, f"daemon{i}")


def pages(hook: Receiver, target: str, event: str = "firing") -> list[dict[str, object]]:
    return [d for d in hook.deliveries if d["json"]["event"] == event and target in json.dumps(d["json"])]


@pytest.fixture
def gates() -> Iterator[dict[str, TCPGate]]:
    made = {"alpha": TCPGate(), "bravo": TCPGate()}
    yield made
    for gate in made.values():
        gate.close()


def test_leader_failover_without_lost_or_duplicate_pages(
    tmp_path: Path, gates: dict[str, TCPGate], monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = Receiver()
    dsn = pg.fresh_database()
    monkeypatch.setenv("HA_PG_DSN", dsn)
    monkeypatch.setenv("HA_HOOK_SECRET", "ha-hook-secret")
    monkeypatch.setenv("HA_OPERATOR", OPERATOR)
    targets = "\n".join(
        f"  - {{name: {name}, address: 127.0.0.1, checks: [{{module: tcp, port: {gate.port}}}]}}"
        for name, gate in gates.items()
    )
    config = tmp_path / "monitor.yml"
    config.write_text(
        f"""
daemon: {{postgresql: "${{HA_PG_DSN}}", lease: 15s}}
defaults: {{interval: 1s, timeout: 500ms, retry_interval: 200ms, failures_to_down: 2, successes_to_up: 1}}
modules:
  tcp: {{kind: tcp, reachability: true}}
targets:
{targets}
incidents: {{group_wait: 1s}}
notifiers:
  hook: {{kind: webhook, url: "{hook.url}", secret: "${{HA_HOOK_SECRET}}", timeout: 2s}}
contacts:
  noc: {{name: 監視オペレータ当番, webhook: hook}}
playbooks:
  default:
    levels:
      - {{notify: [{{contacts: [noc], via: [hook]}}]}}
auth:
  tokens:
    - {{name: yamada, role: operator, token: "${{HA_OPERATOR}}"}}
""",
        encoding="utf-8",
    )
    ports = [free_port(), free_port()]
    bases = [f"http://127.0.0.1:{p}" for p in ports]

    try:
        with pair_member(config, tmp_path, ports, 0) as first:
            wait_for(lambda: leader(bases[0]) == 1.0, 30, what="the first daemon leads")
            with pair_member(config, tmp_path, ports, 1):
                wait_for(lambda: http_get(f"{bases[1]}/readyz")[0] == 200, 30, what="standby ready")
                assert leader(bases[1]) == 0.0
                wait_for(lambda: json.loads(http_get(f"{bases[1]}/api/v1/targets?state=up")[1])["count"] == 2, 20)

                gates["alpha"].close()
                wait_for(lambda: pages(hook, "alpha"), 20, what="alpha paged by the leader")
                incident = json.loads(http_get(f"{bases[0]}/api/v1/incidents?status=open")[1])["incidents"][0]
                status, body = http_post(f"{bases[1]}/api/v1/incidents/{incident['id']}/ack", b"{}", token=OPERATOR)
                assert status == 503, body  # the standby takes no actions

                first.stop(signal.SIGKILL)
                killed = time.time()
                gates["bravo"].close()  # an outage that starts while nobody leads
                wait_for(lambda: leader(bases[1]) == 1.0, 30, what="the standby takes over")
                took_over = time.time() - killed
                assert took_over < 30, took_over
                wait_for(lambda: pages(hook, "bravo"), 20, what="bravo paged by the new leader")
                gates["alpha"].open()
                wait_for(lambda: pages(hook, "alpha", "resolved"), 20, what="alpha resolved by the new leader")
                time.sleep(3)
                assert len(pages(hook, "alpha")) == 1 and len(pages(hook, "bravo")) == 1  # none lost, none twice
                assert len(pages(hook, "alpha", "resolved")) == 1
                keys = [d["key"] for d in hook.deliveries]
                assert len(keys) == len(set(keys))
                status, _ = http_post(f"{bases[1]}/api/v1/incidents/{incident['id']}/ack", b"{}", token=OPERATOR)
                assert status in (200, 409)  # the new leader acts (alpha may be resolved already)
    finally:
        hook.server.shutdown()
    with psycopg.connect(dsn) as conn:  # one open interval per subject, and the leader's handover on record
        assert conn.execute(
            'SELECT count(*) FROM (SELECT subject_id FROM state_intervals WHERE "end" IS NULL '
            "GROUP BY subject, subject_id HAVING count(*) > 1) dup"
        ).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM incidents").fetchone() == (2,)


def test_a_shard_refuses_another_shards_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lease and the state intervals are kept per store: two shards on one database would take each
    other's turn and close each other's intervals, so the second is refused with a clear error."""
    monkeypatch.setenv("HA_PG_DSN", pg.fresh_database())
    gate = TCPGate()
    config = tmp_path / "monitor.yml"
    config.write_text(
        'daemon: {postgresql: "${HA_PG_DSN}"}\nmodules: {tcp: {kind: tcp}}\n'
        f"targets: [{{name: alpha, address: 127.0.0.1, checks: [{{module: tcp, port: {gate.port}}}]}}]\n",
        encoding="utf-8",
    )
    try:
        for shard, ok in (("1/2", True), ("2/2", False)):
            port = free_port()
            args = ["run", "--config", str(config), "--shard", shard, "--listen", f"127.0.0.1:{port}",
                    "--data-dir", str(tmp_path / shard.replace("/", "-"))]  # fmt: skip
            with daemon_process(args, tmp_path, f"shard{shard[0]}") as proc:
                if ok:
                    wait_for(lambda p=port: http_get(f"http://127.0.0.1:{p}/readyz")[0] == 200, 30, what="ready")
                else:
                    wait_for(lambda p=proc: p.proc.poll() is not None, 30, what="refused")
                    assert proc.proc.returncode != 0
                    assert "shard 1/2's store, not shard 2/2's" in proc.output()
    finally:
        gate.close()


@pytest.mark.skipif(not prometheus_available(), reason="prometheus not installed")
def test_an_ha_pair_gives_prometheus_one_series_per_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real Prometheus scrapes both daemons of a pair with the generated SLO rules: the raw series come
    twice (one per instance), the leader records once, without `instance`, and stay one series with the
    same value when the leader is killed and the standby takes over."""
    gate = TCPGate()
    monkeypatch.setenv("HA_PG_DSN", pg.fresh_database())
    config = tmp_path / "monitor.yml"
    config.write_text(
        f"""
daemon: {{postgresql: "${{HA_PG_DSN}}", lease: 4s}}
defaults: {{interval: 1s, timeout: 500ms}}
modules:
  tcp: {{kind: tcp}}
targets:
  - {{name: portal-web, address: 127.0.0.1, checks: [{{module: tcp, port: {gate.port}}}]}}
services:
  - {{name: portal, targets: [portal-web]}}
""",
        encoding="utf-8",
    )
    rules = tmp_path / "slo-rules.yml"
    rules.write_text(render(load_config(config).inventory, interval="1s"), encoding="utf-8")
    ports = [free_port(), free_port()]

    def values(expr: str) -> list[float]:
        return sorted(float(r["value"][1]) for r in prom_query(prom, expr))

    try:
        with (
            pair_member(config, tmp_path, ports, 0) as first,
            pair_member(config, tmp_path, ports, 1),
            prometheus(tmp_path, [f"127.0.0.1:{p}" for p in ports], "1s", [str(rules)]) as prom,
        ):
            wait_for(lambda: values('monitor_service_up{service="portal"}') == [1.0, 1.0], 40, what="both export")
            wait_for(lambda: values("monitor_ha_leader") == [0.0, 1.0], 20, what="one leader")
            leader_up = 'service:monitor_service_up:leader{service="portal"}'
            wait_for(lambda: prom_query(prom, leader_up), 20, what="the rules recorded the leader's series")
            [series] = prom_query(prom, leader_up)
            assert "instance" not in series["metric"]
            first.stop(signal.SIGKILL)
            wait_for(lambda: values("monitor_ha_leader") == [1.0], 30, what="the standby leads, the old one gone")
            time.sleep(3)
            assert values(leader_up) == [1.0]
            # over the whole run, before and after the failover: one series, never down
            assert values(f"min_over_time({leader_up}[5m])") == [1.0]
    finally:
        gate.close()
