"""A lab organisation edge router: a network namespace with net-snmp snmpd (write access through a
v2c community and an SNMPv3 authPriv user) and two veth pairs to the host:

    host mg-h 198.18.5.1/30  <->  mg-n 198.18.5.2  (management: SNMP, traps)
    host cn-h 198.18.6.1/30  <->  cn-n 198.18.6.2  (the organisation's LGWAN connection)

Cutting the connection sets cn-n down inside the namespace (ifAdminStatus via SNMP), so the host
really loses 198.18.6.2 while management stays up. 198.18.0.0/15 is the benchmarking range: traffic
stays between the host and this namespace.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

MGMT_HOST, MGMT_EDGE = "198.18.5.1", "198.18.5.2"
CONN_HOST, CONN_EDGE = "198.18.6.1", "198.18.6.2"
V3_USER, V3_AUTH, V3_PRIV = "cutter", "lab-auth-pass-1", "lab-priv-pass-1"


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
