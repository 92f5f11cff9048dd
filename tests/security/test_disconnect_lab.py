"""The disconnect playbook end to end, against a real router: a network namespace running net-snmp
snmpd whose connection interface is really set down by SNMP SET and really comes back.

The daemon runs as a process with a config naming the lab; pages go to a webhook receiver on
loopback. Times measured here (detection to page, approval to verified cut) are printed and kept in
artifacts/security-timings.json for BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.peers import Receiver, http_post, wait_for
from tests.security.lab import (
    ADMIN,
    ALICE,
    BOB,
    CONN_EDGE,
    CONSOLE_PASSWORD,
    IDS,
    LAB_ENV,
    MGMT_HOST,
    ROOT,
    TRAP_OID,
    VIEWER,
    Daemon,
    Lab,
    flood,
    need_lab,
    pages,
    start_lab,
    stop_lab,
    write_config,
)

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    need_lab()
    made = start_lab(tmp_path_factory.mktemp("lab"))
    yield made
    stop_lab(made)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in LAB_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def daemon(tmp_path: Path, env: None, lab: Lab) -> Iterator[Daemon]:
    lab.set_link(True)
    hook = Receiver()
    made = Daemon(tmp_path, hook)
    write_config(made.config, hook.url, made.trap_port)
    yield made
    hook.server.shutdown()
    lab.set_link(True)


def keep_timings(**figures: float) -> None:
    path = ROOT / "artifacts" / "security-timings.json"
    path.parent.mkdir(exist_ok=True)
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **figures}, indent=2))


def test_flood_is_detected_paged_cut_after_approval_and_reconnected(daemon: Daemon, lab: Lab) -> None:
    """Traffic above the ceiling for 2 s opens a security incident and pages at once; a dry run
    changes nothing; a viewer cannot approve; the approval cuts the interface for real, verified
    (ifOperStatus, traffic, the organisation's target unreachable), the organisation is told; the
    reconnect restores the link. Every step is in the hash-chained audit log."""
    with daemon.start() as proc:
        daemon.wait_ready(proc)
        flood(8.0, 2_000_000)
        incident = daemon.wait_phase("proposed", 15)
        assert incident["source"] == "anomaly" and incident["connection"] == "city-a"
        assert incident["proposal"]["method"] == "snmp_set" and incident["proposal"]["interface"] == "cn-n"
        assert incident["proposal"]["oid"].startswith("1.3.6.1.2.1.2.2.1.7.")
        page = wait_for(lambda: pages(daemon.hook, "firing"), 10, what="the security page")[0]
        detected_at = incident["evidence"][0]["at"]
        page_latency = page["at"] - detected_at
        assert page["json"]["incident"]["labels"]["connection"] == "city-a"
        assert page_latency < 2.0, page_latency

        status, plan = daemon.post(f"/api/v1/security-incidents/{incident['id']}/execute", {"dry_run": True})
        assert status == 200 and plan["dry_run"] is True and "ifAdminStatus" in plan["text"]
        time.sleep(1.5)
        assert lab.link_state() == "UP"
        assert daemon.security()[0]["phase"] == "proposed"

        status, _ = daemon.post(f"/api/v1/security-incidents/{incident['id']}/approve", token=VIEWER)
        assert status == 403
        status, _ = daemon.post(f"/api/v1/security-incidents/{incident['id']}/execute")
        assert status == 409  # not approved yet

        approved_at = time.time()
        status, body = daemon.post(f"/api/v1/security-incidents/{incident['id']}/approve")
        assert status == 200, body
        cut = daemon.wait_phase("cut", 20)
        assert lab.link_state() == "DOWN"
        findings = cut["executions"][-1]["findings"]
        assert any(f.startswith("interface: down") for f in findings) and any("unreachable" in f for f in findings)
        notice = wait_for(lambda: pages(daemon.hook, "security_cut"), 10, what="the organisation's notice")
        assert notice[0]["json"]["recipient"] == "A市情報政策課"
        # the deliberate cut pages nobody as an outage: the target's checks are in the desk's window
        target_incidents = [i for i in daemon.get("/api/v1/incidents?status=open")["incidents"]
                            if i["key"].startswith("target:")]  # fmt: skip
        assert target_incidents == []

        status, body = daemon.post(f"/api/v1/security-incidents/{incident['id']}/reconnect", {"reason": "cleared"})
        assert status == 200, body
        done = wait_for(lambda: next((s for s in daemon.security() if s["phase"] == "reconnected"), None), 30,
                        what="the reconnect")  # fmt: skip
        assert lab.link_state() == "UP"
        assert done["closed_at"] is not None
        wait_for(lambda: pages(daemon.hook, "security_reconnect"), 10, what="the reconnect notice")
        # the desk's window is lifted once the checks are up by their own probes: no stale DOWN, no page
        wait_for(lambda: all(c["state"] == "up" for t in daemon.get("/api/v1/targets")["targets"] for c in t["checks"]),
                 15, what="the connection's checks up again")  # fmt: skip
        time.sleep(1.0)
        assert [
            i for i in daemon.get("/api/v1/incidents?status=resolved")["incidents"] if i["key"].startswith("target:")
        ] == []

        audit = daemon.get("/api/v1/audit?limit=1000", token=ADMIN)
    assert audit["chain_valid"] is True
    actions = [(e["action"], e["outcome"], e["actor"]) for e in reversed(audit["entries"])]
    for step in [("security.detected", "ok", "system"), ("security.approve", "denied", "watcher"),
                 ("security.cut.dry_run", "ok", "alice"), ("security.approve", "ok", "alice"),
                 ("security.cut.executed", "ok", "system"), ("security.cut.notified", "ok", "system"),
                 ("security.reconnect", "ok", "alice"), ("security.reconnect.executed", "ok", "system")]:  # fmt: skip
        assert step in actions, step
    cut_seconds = _cut_seconds(cut, approved_at)
    assert cut_seconds < 5.0, cut_seconds
    keep_timings(
        detection_to_page_seconds=round(page_latency, 3), approval_to_verified_cut_seconds=round(cut_seconds, 3)
    )
    print(f"detection -> page {page_latency:.3f} s; approval -> verified cut {cut_seconds:.3f} s")


def _cut_seconds(cut: dict[str, Any], approved_at: float) -> float:
    from datetime import datetime

    return datetime.fromisoformat(cut["cut_at"]).timestamp() - approved_at


def test_security_trap_opens_the_incident_for_the_connection(daemon: Daemon, lab: Lab) -> None:
    """A firewall trap (mapped as a security event) sent by the router with snmptrap names the
    organisation's address in a varbind: the incident opens for that connection and pages."""
    with daemon.start() as proc:
        daemon.wait_ready(proc)
        sent = lab.in_ns("snmptrap", "-v2c", "-c", "lab-read", f"{MGMT_HOST}:{daemon.trap_port}", "",
                         TRAP_OID, f"{TRAP_OID}.2", "a", CONN_EDGE)  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        incident = daemon.wait_phase("proposed", 10)
        assert incident["source"] == "trap" and incident["severity"] == "critical"
        assert "fwIntrusion" in incident["summary"]
        wait_for(lambda: pages(daemon.hook, "firing"), 10, what="the security page")
        assert lab.link_state() == "UP"  # nothing is cut without approval


def test_ids_events_need_the_ids_role_and_a_known_organisation(daemon: Daemon, lab: Lab) -> None:
    """No token (anonymous: a viewer), a wrong token and a viewer token are refused (and audited); an event for no known
    connection is a clear 422; a good one opens the incident, a second one adds evidence to it."""
    event = {"signature": "ET TROJAN beacon", "severity": "major", "source": CONN_EDGE}
    with daemon.start() as proc:
        daemon.wait_ready(proc)
        assert daemon.post("/api/v1/security-events", event, token="")[0] == 403  # anonymous is a viewer here
        assert daemon.post("/api/v1/security-events", event, token="not-a-token")[0] == 401
        assert daemon.post("/api/v1/security-events", event, token=VIEWER)[0] == 403
        status, problem = daemon.post("/api/v1/security-events", {**event, "source": "192.0.2.1"}, token=IDS)
        assert status == 422 and problem["title"] == "no connection matches"
        status, problem = daemon.post("/api/v1/security-events", {"severity": "bad"}, token=IDS)
        assert status == 422 and "signature" in problem["detail"]
        status, first = daemon.post("/api/v1/security-events", event, token=IDS)
        assert status == 201 and first["new"] is True and first["connection"] == "city-a"
        status, second = daemon.post("/api/v1/security-events", {**event, "organisation": "A市", "source": None},
                                     token=IDS)  # fmt: skip
        assert status == 200 and second["new"] is False and second["security_incident"] == first["security_incident"]
        assert len(daemon.security()[0]["evidence"]) == 2
        audit = daemon.get("/api/v1/audit?limit=100", token=ADMIN)["entries"]
    outcomes = [(e["action"], e["outcome"]) for e in audit if e["action"] == "security.event"]
    assert ("security.event", "unauthenticated") in outcomes and ("security.event", "denied") in outcomes
    assert ("security.event", "unmapped") in outcomes and ("security.event", "invalid") in outcomes


def test_kill_9_in_mid_cut_resumes_without_sending_twice(daemon: Daemon, lab: Lab) -> None:
    """The router's agent is frozen, so the SET is in flight when the daemon is killed with SIGKILL.
    The agent then takes the queued SET; the restarted daemon finds the step started, reads
    ifAdminStatus, sends nothing again, verifies and finishes the cut."""
    with daemon.start() as proc:
        daemon.wait_ready(proc)
        # one whole cut and reconnect first: the daemon's SNMPv3 engine knows the router's engine id,
        # so the frozen agent holds the SET itself (not the discovery before it)
        _, warm = daemon.post("/api/v1/security-events", {"signature": "scan", "source": CONN_EDGE}, token=IDS)
        assert daemon.post(f"/api/v1/security-incidents/{warm['security_incident']}/approve")[0] == 200
        daemon.wait_phase("cut", 20)
        assert daemon.post(f"/api/v1/security-incidents/{warm['security_incident']}/reconnect")[0] == 200
        daemon.wait_phase("reconnected", 30)
        status, opened = daemon.post("/api/v1/security-events", {"signature": "exfil", "source": CONN_EDGE}, token=IDS)
        assert status == 201
        lab.pause_agent(True)
        try:
            code, _ = http_post(f"{daemon.base}/api/v1/security-incidents/{opened['security_incident']}/approve",
                                b"{}", token=ALICE)  # fmt: skip
            assert code == 200
            daemon.wait_phase("cutting", 5)
            time.sleep(0.3)
            proc.stop(signal.SIGKILL)
        finally:
            lab.pause_agent(False)
    wait_for(lambda: lab.link_state() == "DOWN", 10, what="the queued SET to reach the router")
    with daemon.start("daemon-2") as proc:
        cut = daemon.wait_phase("cut", 30)
        cut["object"] = f"security:{cut['id']}"
        assert cut["id"] == opened["security_incident"]
        executions = cut["executions"]
        assert len(executions) == 1 and executions[0]["outcome"] == "verified"
        assert "not sent again" in executions[0]["result"]
        audit = daemon.get("/api/v1/audit?limit=200", token=ADMIN)["entries"]
        assert proc.proc.poll() is None
    executed = [e for e in audit if e["action"] == "security.cut.executed" and e["object"] == cut["object"]]
    assert len(executed) == 1 and executed[0]["detail"]["resumed"] is True
    assert any(e["action"] == "security.resume" for e in audit)


def test_two_approvers_and_deny(daemon: Daemon, lab: Lab) -> None:
    """With approvals: 2 the same person cannot approve twice; a second person's approval cuts.
    A denied reconnect keeps the connection cut; a denied proposal closes the incident and resolves
    its page."""
    write_config(daemon.config, daemon.hook.url, daemon.trap_port, approvals=2)
    with daemon.start() as proc:
        daemon.wait_ready(proc)
        _, false_alarm = daemon.post("/api/v1/security-events", {"signature": "scan", "source": CONN_EDGE}, token=IDS)
        status, denied = daemon.post(
            f"/api/v1/security-incidents/{false_alarm['security_incident']}/deny", {"reason": "pen test"}
        )
        assert status == 200 and denied["phase"] == "denied" and denied["closed_at"] is not None
        page = daemon.get(f"/api/v1/incidents/{denied['incident_id']}")
        assert page["status"] == "resolved" and page["resolve_reason"] == "denied: pen test"

        _, opened = daemon.post("/api/v1/security-events", {"signature": "scan", "source": CONN_EDGE}, token=IDS)
        assert opened["new"] is True
        sid = opened["security_incident"]
        assert daemon.post(f"/api/v1/security-incidents/{sid}/approve")[0] == 200
        status, problem = daemon.post(f"/api/v1/security-incidents/{sid}/approve")
        assert status == 409 and "2 different approvers" in problem["detail"]
        assert lab.link_state() == "UP"
        assert daemon.post(f"/api/v1/security-incidents/{sid}/approve", token=BOB)[0] == 200
        daemon.wait_phase("cut", 20)
        assert lab.link_state() == "DOWN"
        assert daemon.post(f"/api/v1/security-incidents/{sid}/reconnect", {"reason": "cleared"})[0] == 200
        assert daemon.wait_phase("reconnect_requested", 5)
        status, body = daemon.post(f"/api/v1/security-incidents/{sid}/deny", {"reason": "not cleared"}, token=BOB)
        assert status == 200 and body["phase"] == "cut"
        assert lab.link_state() == "DOWN"
        lab.set_link(True)  # put the lab back by hand for the next case

        _, second = daemon.post("/api/v1/security-events", {"signature": "x", "connection": "city-b"}, token=IDS)
        assert second["title"] == "no connection matches"
    del proc


def test_automatic_cut_for_configured_severity(daemon: Daemon, lab: Lab) -> None:
    """A playbook with automatic: [critical] cuts on a critical event without waiting for anyone."""
    write_config(daemon.config, daemon.hook.url, daemon.trap_port, automatic="[critical]")
    with daemon.start() as proc:
        daemon.wait_ready(proc)
        event = {"signature": "ransomware C2", "severity": "critical", "source": CONN_EDGE}
        assert daemon.post("/api/v1/security-events", event, token=IDS)[0] == 201
        cut = daemon.wait_phase("cut", 20)
        assert cut["approvals"][0]["actor"] == "system" and cut["approvals"][0]["automatic"] is True
        assert lab.link_state() == "DOWN"
        assert daemon.post(f"/api/v1/security-incidents/{cut['id']}/deny", {"reason": "too late"})[0] == 409
        status, _ = daemon.post(f"/api/v1/security-incidents/{cut['id']}/reconnect")
        assert status == 200
        daemon.wait_phase("reconnected", 30)
        assert lab.link_state() == "UP"
    del proc


def cli(daemon: Daemon, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "security", *args, "--url", daemon.base, "--token", token],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip


def test_cli_drives_the_playbook(daemon: Daemon, lab: Lab) -> None:
    """`monitor security event|list|execute --dry-run|approve|reconnect` through the API, with its roles."""
    with daemon.start() as proc:
        daemon.wait_ready(proc)
        made = cli(daemon, IDS, "event", "--signature", "worm", "--source", CONN_EDGE, "--severity", "critical")
        assert made.returncode == 0 and "opened, proposed" in made.stdout, made.stderr
        sid = daemon.security()[0]["id"]
        listed = cli(daemon, VIEWER, "list", "--open")
        assert listed.returncode == 0 and f"{sid}" in listed.stdout and "city-a" in listed.stdout
        refused = cli(daemon, VIEWER, "approve", str(sid))
        assert refused.returncode != 0 and "HTTP 403" in refused.stderr
        dry = cli(daemon, ALICE, "execute", str(sid), "--dry-run")
        assert dry.returncode == 0 and dry.stdout.startswith("dry run, nothing changed: Proposed cut of A市")
        assert lab.link_state() == "UP"
        approved = cli(daemon, ALICE, "approve", str(sid))
        assert approved.returncode == 0, approved.stderr
        daemon.wait_phase("cut", 20)
        assert lab.link_state() == "DOWN"
        again = cli(daemon, ALICE, "execute", str(sid))
        assert again.returncode != 0 and "HTTP 409" in again.stderr
        back = cli(daemon, BOB, "reconnect", str(sid), "cleared by the city")
        assert back.returncode == 0, back.stderr
        daemon.wait_phase("reconnected", 30)
        assert lab.link_state() == "UP"


async def test_a_disconnect_approved_in_the_console(daemon: Daemon, lab: Lab) -> None:
    """The security officer logs in to the console, sees the pending cut with its exact proposal and
    approves it there: the router's interface really goes down (artifacts/console-security.png)."""
    from tests.console.cdp import Browser

    with daemon.start() as proc:
        await asyncio.to_thread(daemon.wait_ready, proc)
        status, opened = daemon.post("/api/v1/security-events", {"signature": "beacon", "source": CONN_EDGE}, token=IDS)
        assert status == 201
        async with Browser() as browser:
            await browser.goto(daemon.base + "/#/security")
            await browser.wait("document.querySelector('#login-open') !== null")
            await browser.js("document.querySelector('#login-open').click()")
            await browser.js(f"""(() => {{ const f = document.querySelector('#login-form');
                f.name.value = 'alice'; f.password.value = {json.dumps(CONSOLE_PASSWORD)}; f.requestSubmit(); }})()""")
            await browser.wait("document.querySelector('#who').textContent.includes('alice')")
            row = f"#security tr[data-security='{opened['security_incident']}']"
            await browser.wait(f"document.querySelector(\"{row}\")?.textContent.includes('ifAdminStatus')")
            await browser.wait(
                f"document.querySelector(\"{row} button[data-sec='approve']\") !== null"
            )  # drawn after the login
            await browser.js(f"document.querySelector(\"{row} button[data-sec='approve']\").click()")
            await asyncio.to_thread(daemon.wait_phase, "cut", 20)
            await browser.wait(f"document.querySelector(\"{row} b\")?.textContent === 'cut'", 10)  # live, no reload
            await browser.screenshot(ROOT / "artifacts" / "console-security.png")
        assert lab.link_state() == "DOWN"
        approvals = daemon.security()[0]["approvals"]
        assert [(a["actor"], a["step"]) for a in approvals] == [("alice", "cut")]
        assert daemon.post(f"/api/v1/security-incidents/{opened['security_incident']}/reconnect")[0] == 200
        await asyncio.to_thread(daemon.wait_phase, "reconnected", 30)
