"""Flow export as a load beside the probes (issue 19, Speed): a sender process pacing IPFIX / NetFlow v9 at
a given rate of records per second to the daemon's flow collector, for as long as a phase runs, and the
config sections that make the daemon decode *and judge* them (a connection with an allow-list and the
disallowed, scan and bytes detectors, as bench.flow_policy_cpu).

The records come from 200 hosts of the connection's range (10.13.0.0/16) to 2,000 allowed destinations
(10.200.0.0/16, tcp/443); `bad_share` of them go to tcp/445, outside the allow-list (a finding, kept as
evidence on one security incident). Each datagram carries 30 records with the current time and the next
sequence number; the template is re-sent every 20 datagrams, as softflowd does more often still.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.sharedctypes
import multiprocessing.synchronize
import random
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.flow_bench import FIELDS, RECORDS_PER_DATAGRAM, cpu_of

CONNECTION_RANGE = "10.13.0.0/16"
ALLOWED = "10.200.0.0/16"
HOSTS = 200
TEMPLATE_EVERY = 20
_RECORD = struct.Struct(">4s4sBHHIIHHQQB")


SECRET_FILE = "bench-flows.secret"
SECRET = {"file": SECRET_FILE}  # the webhook's key and the edge check's community (secrets are references)


def daemon_sections(port: int, config_dir: Path) -> dict[str, Any]:
    """What a daemon config needs for the load: the collector, one connection judging the flows, and the
    security page (to a webhook nothing listens on: the page fails fast, the finding is still recorded)."""
    secret = config_dir / SECRET_FILE
    secret.write_text("bench-flows-secret-value\n", encoding="utf-8")
    secret.chmod(0o600)
    return {
        "flows": {
            "listen": f"127.0.0.1:{port}",
            "exporters": [{"address": "127.0.0.1"}],
            "rate_limit": {"per_second": 100_000, "burst": 200_000},
        },
        "notifiers": {"hook": {"kind": "webhook", "url": "http://127.0.0.1:9/", "secret": SECRET}},
        "contacts": {"sec": {"name": "sec", "webhook": "hook"}},
        "playbooks": {"default": {"levels": [{"notify": [{"contacts": ["sec"], "via": ["hook"]}]}]}},
        "security": {
            "playbooks": {"default": {"page": "default", "action": {"kind": "command", "argv": ["/bin/true"]}}},
            "connections": [
                {
                    "name": "city-a",
                    "organisation": "A",
                    "check": "edge/uplink",
                    "addresses": [CONNECTION_RANGE],
                    "anomaly": None,
                    "flows": {
                        "allow": [
                            {"name": "web", "to": [ALLOWED], "protocol": "tcp", "ports": [443, 8443]},
                            {"name": "dns", "to": ["10.1.1.53"], "protocol": "udp", "ports": [53]},
                            {"name": "icmp", "to": ["10.0.0.0/8"], "protocol": "icmp"},
                        ],
                        "detectors": {
                            "scan": {"hosts_per_minute": 5000, "ports_per_minute": 5000},
                            "bytes": {"bytes_per_minute": 1e12},
                        },
                    },
                }
            ],
        },
    }


def edge_target() -> dict[str, Any]:
    """The connection's SNMP interface check (nothing answers it: one failing check among thousands)."""
    return {
        "name": "edge",
        "address": "127.0.0.1",
        "checks": [{"module": "edge_snmp", "name": "uplink", "interface": "ge-0/0/1"}],
    }


EDGE_MODULE = {"kind": "snmp", "snmp": {"version": "2c", "community": SECRET, "port": 9}}


def _template(version: int) -> bytes:
    body = struct.pack(">HH", 256, len(FIELDS)) + b"".join(struct.pack(">HH", t, n) for t, n in FIELDS)
    return struct.pack(">HH", 2 if version == 10 else 0, 4 + len(body)) + body


def _datagram(version: int, index: int, rng: random.Random, bad_share: float, template: bytes) -> bytes:
    now_ms = int(time.time() * 1000)
    parts = []
    for r in range(RECORDS_PER_DATAGRAM):
        src = (0x0A0D0001 + rng.randrange(HOSTS)).to_bytes(4, "big")  # 10.13.0.x
        dst = (0x0AC80001 + rng.randrange(2000)).to_bytes(4, "big")  # 10.200.x.y
        port = 445 if rng.random() < bad_share else 443
        parts.append(_RECORD.pack(src, dst, 6, 32768 + r, port, 4000, 6, 3, 7, now_ms - 1000, now_ms, 0x1B))
    records = b"".join(parts)
    sets = (template if index % TEMPLATE_EVERY == 0 else b"") + struct.pack(">HH", 256, 4 + len(records)) + records
    if version == 10:
        header = struct.pack(">HHIII", 10, 16 + len(sets), int(time.time()), index * RECORDS_PER_DATAGRAM, 1)
    else:
        header = struct.pack(">HHIIII", 9, RECORDS_PER_DATAGRAM, 3_600_000, int(time.time()), index, 1)
    return header + sets


def _send(
    port: int,
    rate: float,
    version: int,
    bad_share: float,
    sent: multiprocessing.sharedctypes.Synchronized[int],
    stop: multiprocessing.synchronize.Event,
) -> None:
    """Paced every millisecond; `sent` counts records handed to the kernel (what the collector must see)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
    rng = random.Random(19)
    template = _template(version)
    per_second = rate / RECORDS_PER_DATAGRAM
    start = time.perf_counter()
    index = 0
    while not stop.is_set():
        due = int((time.perf_counter() - start) * per_second) + 1
        while index < due:
            try:
                sock.sendto(_datagram(version, index, rng, bad_share, template), ("127.0.0.1", port))
            except BlockingIOError:
                time.sleep(0.0005)
                continue
            index += 1
            with sent.get_lock():
                sent.value += RECORDS_PER_DATAGRAM
        time.sleep(0.001)
    sock.close()


@dataclass
class FlowSender:
    """The sender process; `records_sent()` is read at a window's edges like the daemon's counters."""

    port: int
    rate: float
    version: int = 10
    bad_share: float = 0.01

    def __post_init__(self) -> None:
        self._sent = multiprocessing.Value("q", 0)
        self._stop = multiprocessing.Event()
        self._process = multiprocessing.Process(
            target=_send, args=(self.port, self.rate, self.version, self.bad_share, self._sent, self._stop)
        )

    def start(self) -> FlowSender:
        self._process.start()
        return self

    def records_sent(self) -> int:
        return int(self._sent.value)

    def cpu(self) -> float:
        return cpu_of(self._process.pid) if self._process.pid else 0.0

    def stop(self) -> None:
        self._stop.set()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
