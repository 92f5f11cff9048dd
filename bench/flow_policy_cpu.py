"""CPU of the flow policy (monitor.flows.watch) per record: N records in batches of 30 (one export datagram's
worth) through FlowWatch.on_flows, one connection with a 4-rule allow-list and the disallowed, scan and bytes
detectors, from 200 source hosts to 2,000 destinations (mostly allowed, 2 % outside the allow-list); the
collector's decoding is not included (bench of the collector: the other half of issue 19).

    python -m bench.flow_policy_cpu [--records 200000]
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import resource
import sys
import tempfile
import textwrap
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor.config.loader import load_config
from monitor.flows.policy_metrics import FlowPolicyMetrics
from monitor.flows.records import FlowRecord
from monitor.flows.watch import FlowWatch

CONFIG = """
modules:
  ping: {kind: icmp}
  edge_snmp: {kind: snmp, snmp: {version: 2c, community: "${BENCH_COMMUNITY}"}}
targets:
  - {name: edge, address: 192.0.2.1, checks: [{module: edge_snmp, name: uplink, interface: ge-0/0/1}]}
notifiers: {hook: {kind: webhook, url: "http://127.0.0.1:9/", secret: "${BENCH_COMMUNITY}"}}
contacts: {sec: {name: sec, webhook: hook}}
playbooks: {default: {levels: [{notify: [{contacts: [sec], via: [hook]}]}]}}
security:
  playbooks: {default: {page: default, action: {kind: command, argv: ["/bin/true"]}}}
  connections:
    - name: city-a
      organisation: A
      check: edge/uplink
      addresses: [10.13.0.0/16]
      flows:
        allow:
          - {name: web, to: ["10.200.0.0/16"], protocol: tcp, ports: [443, 8443]}
          - {name: mail, to: ["10.201.0.25"], protocol: tcp, ports: [25, 587]}
          - {name: dns, to: ["10.1.1.53"], protocol: udp, ports: [53]}
          - {name: icmp, to: ["10.0.0.0/8"], protocol: icmp}
        detectors: {scan: {hosts_per_minute: 5000, ports_per_minute: 5000}, bytes: {bytes_per_minute: 1e12}}
"""


class Clock:
    t = 1_800_000_000.0

    def now(self) -> float:
        return self.t


def records(n: int) -> list[FlowRecord]:
    r = random.Random(1)
    out = []
    for i in range(n):
        bad = r.random() < 0.02
        out.append(FlowRecord("192.0.2.1", 0, 9, ipaddress.ip_address(f"10.13.{r.randint(0, 1)}.{r.randint(1, 100)}"),
                              ipaddress.ip_address(f"10.200.{r.randint(0, 7)}.{r.randint(1, 250)}"), 6,
                              r.randint(32768, 60999), 445 if bad else 443, 4000, 6, 1_800_000_000.0 + i / 5000,
                              1_800_000_000.5 + i / 5000, None, None))  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args(argv)
    import os

    os.environ.setdefault("BENCH_COMMUNITY", "bench")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "monitor.yml"
        path.write_text(textwrap.dedent(CONFIG), encoding="utf-8")
        inventory = load_config(path).inventory
    found: list[object] = []
    clock = Clock()
    watch = FlowWatch(lambda: inventory, lambda _: None, clock, found.append, FlowPolicyMetrics(CollectorRegistry()))
    data = records(args.records)
    batches = [data[i : i + 30] for i in range(0, len(data), 30)]
    before = resource.getrusage(resource.RUSAGE_SELF)
    for batch in batches:
        clock.t += 0.006
        watch.on_flows(batch)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"{args.records} records: {cpu:.2f} s CPU, {cpu / args.records * 1e6:.1f} us/record, "
          f"{args.records / cpu:,.0f} records/s on one core; {len(found)} findings reported")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
