"""A lab organisation edge router (and the daemon config and client the lab tests and benchmark use): a network namespace with net-snmp snmpd (write access through a
v2c community and an SNMPv3 authPriv user) and two veth pairs to the host:

    host mg-h 198.18.5.1/30  <->  mg-n 198.18.5.2  (management: SNMP, traps)
    host cn-h 198.18.6.1/30  <->  cn-n 198.18.6.2  (the organisation's LGWAN connection)

Cutting the connection sets cn-n down inside the namespace (ifAdminStatus via SNMP), so the host
really loses 198.18.6.2 while management stays up. 198.18.0.0/15 is the benchmarking range: traffic
stays between the host and this namespace.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.peers import Process, Receiver, daemon_process, free_port, http_get, http_post, wait_for

MGMT_HOST, MGMT_EDGE = "198.18.5.1", "198.18.5.2"
CONN_HOST, CONN_EDGE = "198.18.6.1", "198.18.6.2"
V3_USER, V3_AUTH, V3_PRIV = "cutter", "lab-auth-pass-1", "lab-priv-pass-1"
ROOT = Path(__file__).parents[2]
ALICE, BOB, IDS, VIEWER, ADMIN = "sec-alice-5e1f", "sec-bob-91ac", "ids-feed-33d0", "viewer-7b2e", "admin-0c4d"
TRAP_OID = "1.3.6.1.4.1.99999.1.1"
CONSOLE_PASSWORD = "alice console password"
LAB_ENV = {"SEC_ALICE": ALICE, "SEC_BOB": BOB, "SEC_IDS": IDS, "SEC_VIEWER": VIEWER, "SEC_ADMIN": ADMIN,
           "LAB_AUTH": V3_AUTH, "LAB_PRIV": V3_PRIV, "LAB_READ": "lab-read", "HOOK_SECRET": "hook-secret-1"}  # fmt: skip


def need_lab() -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab router needs root (network namespaces)")
    for tool in ("ip", "snmpd", "snmpget", "snmptrap"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=15)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Lab:
    ns: str
    directory: Path
    snmpd: subprocess.Popen[bytes]

    def link_state(self) -> str:
        """UP or DOWN: the connection interface inside the router, as the kernel has it."""
        out = run("ip", "-netns", self.ns, "-o", "link", "show", "cn-n")
        return "UP" if ",UP" in out.split(">")[0] or "<UP" in out else "DOWN"

    def set_link(self, up: bool) -> None:
        run("ip", "-netns", self.ns, "link", "set", "cn-n", "up" if up else "down")

    def in_ns(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.ns, *args], capture_output=True, text=True, timeout=15)

    def pause_agent(self, paused: bool) -> None:
        self.snmpd.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)


def start_lab(directory: Path) -> Lab:
    ns = f"lab-{uuid.uuid4().hex[:6]}"
    run("ip", "netns", "add", ns)
    try:
        for host, edge, host_ip, edge_ip in (
            ("mg-h", "mg-n", MGMT_HOST, MGMT_EDGE),
            ("cn-h", "cn-n", CONN_HOST, CONN_EDGE),
        ):
            subprocess.run(["ip", "link", "del", host], capture_output=True)  # left over from a killed run
            run("ip", "link", "add", host, "type", "veth", "peer", "name", edge, "netns", ns)
            run("ip", "addr", "add", f"{host_ip}/30", "dev", host)
            run("ip", "link", "set", host, "up")
            run("ip", "-netns", ns, "addr", "add", f"{edge_ip}/30", "dev", edge)
            run("ip", "-netns", ns, "link", "set", edge, "up")
        run("ip", "-netns", ns, "link", "set", "lo", "up")
        directory.mkdir(parents=True, exist_ok=True)
        conf = directory / "snmpd.conf"
        conf.write_text(
            f"agentAddress udp:{MGMT_EDGE}:161\n"
            f"rwcommunity lab-write {MGMT_HOST}\n"
            f"rocommunity lab-read {MGMT_HOST}\n"
            "sysName org-edge\n"
            f'createUser {V3_USER} SHA-256 "{V3_AUTH}" AES "{V3_PRIV}"\nrwuser {V3_USER} priv\n',
            encoding="utf-8",
        )
        env = {**os.environ, "SNMP_PERSISTENT_DIR": str(directory / "persist"), "MIBS": ""}
        snmpd = subprocess.Popen(
            ["ip", "netns", "exec", ns, "snmpd", "-f", "-Lo", "-C", "-c", str(conf), "-I",
             "-smux,mteTrigger,mteTriggerConf", "-p", str(directory / "snmpd.pid")],
            stdout=(directory / "snmpd.log").open("ab"), stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        lab = Lab(ns, directory, snmpd)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            got = subprocess.run(["snmpget", "-v2c", "-c", "lab-read", "-t", "0.5", "-r", "0", MGMT_EDGE,
                                  "1.3.6.1.2.1.1.3.0"], capture_output=True)  # fmt: skip
            if got.returncode == 0:
                return lab
            time.sleep(0.2)
        raise RuntimeError("snmpd in the lab namespace did not answer")
    except Exception:
        stop_lab_ns(ns)
        raise


def stop_lab(lab: Lab) -> None:
    lab.pause_agent(False)
    lab.snmpd.terminate()
    try:
        lab.snmpd.wait(10)
    except subprocess.TimeoutExpired:
        lab.snmpd.kill()
    stop_lab_ns(lab.ns)


def stop_lab_ns(ns: str) -> None:
    subprocess.run(["ip", "netns", "pids", ns], capture_output=True)
    for host in ("mg-h", "cn-h"):
        subprocess.run(["ip", "link", "del", host], capture_output=True)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def flood(seconds: float, rate_bytes: float) -> int:
    """UDP toward the organisation's side for `seconds` at about `rate_bytes` per second (bounded):
    it arrives on the router's connection interface (ifInOctets of cn-n)."""
    payload = b"x" * 1400
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < seconds:
            if sent < rate_bytes * elapsed:
                try:
                    sock.sendto(payload, (CONN_EDGE, 9))
                    sent += len(payload)
                except OSError:  # ICMP unreachable answers surface as errors on the next send
                    pass
            else:
                time.sleep(0.002)
    return sent


def write_config(path: Path, hook: str, trap_port: int, approvals: int = 1, automatic: str = "[]") -> None:
    path.write_text(
        f"""
defaults: {{interval: 1s, timeout: 1s, retry_interval: 500ms, failures_to_down: 2, successes_to_up: 1}}
modules:
  edge_snmp: {{kind: snmp, snmp: {{version: 2c, community: "${{LAB_READ}}", timeout: 500ms, retries: 1}}}}
  ping: {{kind: icmp, timeout: 1s, icmp: {{count: 1}}}}
targets:
  - name: org-edge
    address: {MGMT_EDGE}
    labels: {{tier: lgwan, prefecture: 13}}
    checks: [{{module: edge_snmp, name: uplink, interface: cn-n}}]
  - {{name: city-a-gw, address: {CONN_EDGE}, modules: [ping], parent: org-edge}}
notifiers:
  hook: {{kind: webhook, url: "{hook}", secret: "${{HOOK_SECRET}}", timeout: 2s}}
contacts:
  sec: {{name: セキュリティ当番, webhook: hook}}
  city: {{name: A市情報政策課, webhook: hook}}
playbooks:
  default: {{levels: [{{notify: [{{contacts: [sec], via: [hook]}}]}}]}}
  security: {{levels: [{{notify: [{{contacts: [sec], via: [hook]}}]}}]}}
auth:
  tokens:
    - {{name: alice, role: security, token: "${{SEC_ALICE}}"}}
    - {{name: bob, role: security, token: "${{SEC_BOB}}"}}
    - {{name: ids-feed, role: ids, token: "${{SEC_IDS}}"}}
    - {{name: watcher, role: viewer, token: "${{SEC_VIEWER}}"}}
    - {{name: auditor, role: admin, token: "${{SEC_ADMIN}}"}}
  users: [{{name: alice, role: security, password_hash: "{console_hash()}"}}]
traps:
  listen: {MGMT_HOST}:{trap_port}
  communities: ["${{LAB_READ}}"]
  mappings: [{{oid: {TRAP_OID}, name: fwIntrusion, event: security}}]
security:
  connections:
    - name: city-a
      organisation: A市
      organisation_en: City A
      check: org-edge/uplink
      addresses: [{CONN_EDGE}/30]
      targets: [city-a-gw]
      notify: {{contacts: [city], via: [hook]}}
      anomaly: {{ceiling_bytes: 300000, duration: 2s, severity: major}}
      playbook: lgwan
  playbooks:
    lgwan:
      page: security
      approvals: {approvals}
      automatic: {automatic}
      action:
        kind: snmp_set
        snmp:
          version: 3
          timeout: 2s
          v3: {{username: {V3_USER}, auth_protocol: SHA-256, auth_key: "${{LAB_AUTH}}", priv_key: "${{LAB_PRIV}}"}}
      verify: {{timeout: 15s}}
""",
        encoding="utf-8",
    )


class Daemon:
    def __init__(self, tmp: Path, hook: Receiver) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.trap_port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.config = tmp / "monitor.yml"
        self.hook = hook

    def start(self, name: str = "daemon") -> Any:
        args = ["run", "--config", str(self.config), "--listen", f"127.0.0.1:{self.port}",
                "--data-dir", str(self.tmp / "data")]  # fmt: skip
        return daemon_process(args, self.tmp, name)

    def get(self, path: str, token: str = VIEWER) -> Any:
        status, body = http_get(self.base + path, token=token)
        assert status == 200, body
        return json.loads(body)

    def post(self, path: str, body: dict[str, Any] | None = None, token: str = ALICE) -> tuple[int, Any]:
        status, raw = http_post(self.base + path, json.dumps(body or {}).encode(), token=token, timeout=30)
        return status, json.loads(raw) if raw else None

    def security(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/security-incidents")["security_incidents"])

    def wait_ready(self, proc: Process) -> None:
        def ready() -> bool:
            assert proc.proc.poll() is None, proc.output()[-3000:]
            checks = self.get("/api/v1/targets")["targets"]
            return all(c["state"] == "up" for t in checks for c in t["checks"])

        wait_for(ready, 30, what="the lab's checks up")

    def wait_phase(self, phase: str, timeout: float = 30.0) -> dict[str, Any]:
        return dict(wait_for(lambda: next((s for s in self.security() if s["phase"] == phase), None), timeout,
                             what=f"a security incident in phase {phase}"))  # fmt: skip


def pages(hook: Receiver, event: str) -> list[dict[str, Any]]:
    return [d for d in hook.deliveries if d["json"].get("event") == event]


@functools.cache
def console_hash() -> str:
    from monitor.access.sessions import hash_password

    return hash_password(CONSOLE_PASSWORD)
