"""Real exporters and the oracle for the collector's tests: softflowd and pmacct's pmacctd (nfprobe)
replaying pcaps made with scapy (no root needed), and nfdump's nfcapd receiving the same export (it
mirrors every datagram to our collector with -R), read back with nfdump -r."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

CLIENT = "10.1.0.5"  # a municipal terminal
ASP = "203.0.113.10"  # an LGWAN-ASP service: HTTPS allowed
SCANNED = [f"10.2.0.{h}" for h in range(1, 21)]  # another organisation's hosts, probed on SMB


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/system-deps.sh installs them)")


def make_pcap(path: Path, keepalive: bool = False) -> Path:
    """Three HTTPS connections to the ASP, an SMB scan of 20 hosts, one IPv6 DNS query. With
    `keepalive`, a later trickle of NTP: exporters that age flows by packet time (pmacct) then expire them."""
    packets = []
    t = 1_700_000_000.0

    def add(packet: Ether) -> None:
        nonlocal t
        packet.time = t
        t += 0.01
        packets.append(packet)

    for c in range(3):
        for flags, load in (("S", b""), ("SA", b""), ("A", b""), ("PA", b"x" * 500), ("FA", b"")):
            add(Ether() / IP(src=CLIENT, dst=ASP) / TCP(sport=40000 + c, dport=443, flags=flags) / load)
    for h, host in enumerate(SCANNED, start=1):
        add(Ether() / IP(src=CLIENT, dst=host) / TCP(sport=50000 + h, dport=445, flags="S"))
    add(Ether() / IPv6(src="2001:db8::5", dst="2001:db8:1::10") / UDP(sport=5353, dport=53) / (b"q" * 40))
    if keepalive:
        for k in range(12):
            packet = Ether() / IP(src="10.9.9.9", dst="10.9.9.8") / UDP(sport=123, dport=123)
            packet.time = t + 2 + k
            packets.append(packet)
    wrpcap(str(path), packets)
    return path


def softflowd(pcap: Path, port: int, version: int, sampling: int | None = None) -> None:
    """Replay `pcap` and export every flow in it to 127.0.0.1:port; returns once it has exited (-D: in the
    foreground, and it flushes its flows at the end of the file)."""
    # short relative names for the pcap and the control socket: with longer ones softflowd 1.1.0 was seen to
    # truncate -r's path and to block in accept() on its control socket instead of reading the file
    # -a: the export's clock is the pcap's (without it softflowd exports sysUptime 0 with flow times weeks away,
    # which no two collectors read alike: nfdump does not take uptime differences modulo 2^32, we do)
    args = ["softflowd", "-r", pcap.name, "-a", "-n", f"127.0.0.1:{port}", "-v", str(version), "-6", "-D"]
    args += ["-p", "sf.pid", "-c", "sf.ctl"]
    if sampling:
        args += ["-s", str(sampling)]
    with (pcap.parent / "softflowd.log").open("w") as log:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=pcap.parent
        )
        try:
            process.wait(3)  # usually it exits at the end of the file, having exported every flow...
        except subprocess.TimeoutExpired:
            # ...should it wait on its control socket instead (above), `softflowctl shutdown` is what it waits
            # for, and it too exports every flow before exiting
            subprocess.run(["softflowctl", "-c", "sf.ctl", "shutdown"], cwd=pcap.parent, timeout=10,
                           capture_output=True, check=False)  # fmt: skip
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise
    if process.returncode != 0:
        raise RuntimeError(f"softflowd failed ({process.returncode}): see {pcap.parent / 'softflowd.log'}")


@contextmanager
def pmacctd(pcap: Path, port: int, version: int, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    conf = workdir / "pmacctd.conf"
    conf.write_text(
        f"daemonize: false\npcap_savefile: {pcap}\npcap_savefile_wait: true\nplugins: nfprobe\n"
        f"nfprobe_receiver: 127.0.0.1:{port}\nnfprobe_version: {version}\n"
        "nfprobe_timeouts: tcp=1:tcp.rst=1:tcp.fin=1:udp=1:icmp=1:general=1:maxlife=1:expint=1\n"
    )
    process = subprocess.Popen(["pmacctd", "-f", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Nfcapd:
    """nfdump's collector on 127.0.0.1:port, writing to `directory`, mirroring to `mirror` (our collector)."""

    def __init__(self, port: int, directory: Path, mirror: int | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.port = port
        args = ["nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w", str(directory), "-t", "3600"]
        if mirror is not None:
            args += ["-R", f"127.0.0.1/{mirror}"]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(0.5)  # its socket is bound before it says anything: no line to wait for
        if self.process.poll() is not None:
            raise RuntimeError(f"nfcapd exited: {self.process.stdout.read() if self.process.stdout else ''!r}")

    def stop(self) -> list[dict[str, object]]:
        """Stop it (it writes its file on SIGTERM) and read every flow back with nfdump."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(15)
        files = [p for p in self.directory.iterdir() if p.name.startswith("nfcapd.") and "current" not in p.name]
        flows: list[dict[str, object]] = []
        for path in files:
            out = subprocess.run(["nfdump", "-r", str(path), "-o", "json"], check=True, capture_output=True, timeout=30)
            text = out.stdout.decode().strip()
            if text:
                flows.extend(json.loads(text))
        return flows

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
