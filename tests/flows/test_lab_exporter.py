"""The lab's own exporter (monitor.demo.flow_exporter) against nfdump: what nfcapd stores of its
NetFlow v9 and IPFIX datagrams is what was encoded (5-tuple, counters, interfaces, times), over many
datagrams with templates re-sent, IPv4 and IPv6. nfcapd is the independent reader here."""

from __future__ import annotations

import ipaddress
import json
import shutil
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from monitor.demo.flow_exporter import Encoder, Flow, Sender, flow
from tests.e2e.peers import free_port, wait_for


def generated(now: float) -> list[Flow]:
    out = [
        flow(f"10.13.{i // 200}.{i % 200 + 1}", "10.200.0.80", 6, 40000 + i, 445, 60 + i, 1 + i % 7, now - 20 + i % 10,
             now - 5, input_if=7, output_if=3)
        for i in range(150)
    ]  # fmt: skip
    out += [flow(f"2001:db8:13::{i + 1:x}", "2001:db8:200::53", 17, 5353, 53, 1000 + i, 2, now - 3, now - 1,
                 input_if=8) for i in range(40)]  # fmt: skip
    return out


def nfdump_flows(directory: Path) -> list[dict[str, object]]:
    out = subprocess.run(["nfdump", "-R", str(directory), "-o", "json"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout or "[]"))


def epoch(text: str) -> float:
    return datetime.fromisoformat(str(text)).timestamp()


@pytest.mark.parametrize("version", [9, 10])
def test_nfcapd_reads_what_the_lab_exporter_encoded(tmp_path: Path, version: int) -> None:
    if shutil.which("nfcapd") is None or shutil.which("nfdump") is None:
        pytest.skip("nfdump is not installed")
    port = free_port()
    store = tmp_path / "nf"
    store.mkdir()
    nfcapd = subprocess.Popen(["nfcapd", "-w", str(store), "-b", "127.0.0.1", "-p", str(port), "-t", "3600"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        time.sleep(0.5)  # nfcapd binds after it starts; what arrives before is lost to the test, not hidden
        now = time.time()
        flows = generated(now)
        encoder = Encoder(version=version, observation_domain=3, template_every=2)
        sender = Sender(encoder, ("127.0.0.1", port))
        sent = sum(sender.send(part, now) for part in (flows[:100], flows[100:]))
        sender.close()
        assert sent >= 4  # several datagrams: templates re-sent along the way
        time.sleep(0.5)
    finally:
        nfcapd.send_signal(signal.SIGTERM)
        output = nfcapd.communicate(timeout=15)[0].decode(errors="replace")
    wait_for(lambda: list(store.glob("nfcapd.*")), 5, what="nfcapd's file")
    got = nfdump_flows(store)
    assert "Sequence Errors: 0" in output, output
    assert len(got) == len(flows), output
    by_key = {(str(r.get("src4_addr") or r.get("src6_addr")), int(str(r["src_port"]))): r for r in got}
    for f in flows:
        r = by_key[(str(f.src), f.src_port)]
        dst = r.get("dst4_addr") or r.get("dst6_addr")
        assert ipaddress.ip_address(str(dst)) == f.dst
        assert (r["proto"], r["dst_port"], r["in_bytes"], r["in_packets"]) == (f.protocol, f.dst_port, f.octets,
                                                                               f.packets)  # fmt: skip
        assert (r["input_snmp"], r["output_snmp"]) == (f.input_if, f.output_if)
        assert abs(epoch(str(r["first"])) - f.first) < 0.002 and abs(epoch(str(r["last"])) - f.last) < 0.002
