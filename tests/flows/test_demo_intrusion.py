"""`monitor demo` end to end, without root: the access points' flow export (the lab's own exporter, NetFlow
v9 over UDP) reaches the daemon's collector; an intrusion (`intrude --kind scan`) is detected from the flows,
opens a security incident naming the rule and the flows (evidence, audit log, page), the cut is approved,
really carried out by SNMP SET on the demo's agent and verified by interface and flows; the reconnect is
verified the same way. The demo's exporter timeouts are 10 s active / 2 s inactive (a router's 60 s / 15 s
scaled down), so the latency bound here is 10 s + 5 s."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.demo.flow_lab import ACTIVE_TIMEOUT
from tests.e2e.peers import ROOT, daemon_process, free_port, http_get, http_post, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("monitor.flows.collector") is None,
        reason="the flow collector (issue 19, the other half) is not in this build",
    ),
]


def metric(base: str, name: str, **labels: str) -> float:
    text = http_get(f"{base}/metrics")[1].decode()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_an_intrusion_seen_in_flows_is_cut_verified_and_reconnected(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    args = ["demo", "--listen", f"127.0.0.1:{port}", "--prefectures", "2", "--no-faults",
            "--trap-listen", f"127.0.0.1:{free_port()}", "--data-dir", str(data)]  # fmt: skip
    with daemon_process(args, tmp_path, "demo") as demo:
        wait_for(lambda: http_get(f"{base}/readyz")[0] == 200, 60, what="demo ready")
        admin = (data / "demo-tokens" / "admin.token").read_text().strip()

        def incidents() -> list[dict[str, Any]]:
            status, body = http_get(f"{base}/api/v1/security-incidents", token=admin)
            assert status == 200, body
            return list(json.loads(body)["security_incidents"])

        # the organisations' usual traffic arrives and passes their policy
        wait_for(lambda: metric(base, "monitor_flow_policy_records_total", connection="city-01-01", verdict="allowed")
                 > 5, 30, what="allowed flows from city-01-01")  # fmt: skip
        assert incidents() == []

        status, body = http_post(f"{base}/demo/faults", json.dumps(
            {"target": "city-01-01", "mode": "intrude", "kind": "scan"}).encode())  # fmt: skip
        assert status == 200, body
        first_packet = json.loads(body)["at"]
        incident = wait_for(lambda: next((s for s in incidents() if s["phase"] == "proposed"), None), 30,
                            what="a proposed cut")  # fmt: skip
        latency = incident["evidence"][0]["at"] - first_packet
        assert incident["source"] == "flows" and incident["connection"] == "city-01-01"
        assert "rule disallowed" in incident["summary"] and "10.1.1.66" in incident["summary"]
        assert latency <= ACTIVE_TIMEOUT + 5.0, latency
        flow = incident["evidence"][0]["detail"]["flows"][0]
        assert (flow["dst_port"], flow["protocol"], flow["exporter"], flow["input_if"]) == (445, "tcp", "127.20.1.4", 5)
        assert {"src", "dst", "src_port", "bytes", "packets", "first_seen", "last_seen", "rule"} <= set(flow)
        # the scan itself (64 hosts within ~10 s) is added to the same incident
        wait_for(lambda: any(e["detail"].get("rule") == "scan_hosts" for e in incidents()[0]["evidence"]), 30,
                 what="the scan finding")  # fmt: skip
        pages = json.loads(http_get(f"{base}/demo/pages")[1])["pages"]
        assert any("rule disallowed" in p["page"]["incident"]["reason"] for p in pages if p["page"].get("incident"))

        status, body = http_post(f"{base}/api/v1/security-incidents/{incident['id']}/approve", b"{}", token=admin)
        assert status == 200, body
        cut = wait_for(lambda: next((s for s in incidents() if s["phase"] in ("cut", "cut_failed")), None), 40,
                       what="the cut")  # fmt: skip
        findings = cut["executions"][-1]["findings"]
        assert cut["phase"] == "cut", cut["executions"]
        assert any(f.startswith("interface: down") for f in findings), findings
        assert any(f.startswith("flows: none from the organisation") for f in findings), findings
        before = metric(base, "monitor_flow_policy_records_total", connection="city-01-01", verdict="allowed")
        time.sleep(3.0)  # longer than the inactive timeout: anything still cached has been exported
        assert metric(base, "monitor_flow_policy_records_total", connection="city-01-01", verdict="allowed") == before

        status, body = http_post(f"{base}/api/v1/security-incidents/{incident['id']}/reconnect",
                                 json.dumps({"reason": "terminal re-imaged"}).encode(), token=admin)  # fmt: skip
        assert status == 200, body
        done = wait_for(lambda: next((s for s in incidents() if s["phase"] in ("reconnected", "reconnect_failed")),
                                     None), 40, what="the reconnect")  # fmt: skip
        assert done["phase"] == "reconnected", done["executions"]
        assert any(f.startswith("flows: from the organisation again") for f in done["executions"][-1]["findings"])

        status, body = http_get(f"{base}/api/v1/audit?limit=500", token=admin)
        audit = json.loads(body)
        assert audit["chain_valid"] is True
        violations = [e for e in audit["entries"] if e["action"] == "security.flows.violation"]
        assert {e["detail"]["rule"] for e in violations} >= {"disallowed", "scan_hosts"}
        assert demo.proc.poll() is None, demo.output()
    timings = ROOT / "artifacts" / "flow-timings.json"
    timings.parent.mkdir(exist_ok=True)
    timings.write_text(json.dumps({"demo_first_packet_to_proposed_s": latency, "active_timeout_s": ACTIVE_TIMEOUT}))
