"""Real packet loss and cuts for simulated hosts on loopback, in the kernel (nftables; root only).

Every simulated host has an address of its own on `lo`, so an nftables rule that drops packets to
that address (all of them: a cut; a random share: loss) acts on exactly that host: a probe sees
retransmitted SYNs, late answers and timeouts from the kernel, not a simulation of them.

The drops are on the far side, in the input hook (where the host's end of `lo` receives), not in
the output hook: a packet dropped on output is refused to the sender at once (a UDP or ICMP send
fails with EPERM, which the probes rightly take for a local failure of the monitor), while on a
real cut the packet leaves and nothing comes back. On input the send succeeds and the probe times out.
The rules live in a table of their own (`ip monitor_lab`), rewritten whole and atomically on each change
and deleted at `close()` (and at start, in case a killed lab left one behind).

`tc netem` would add latency too, but kernels without the sch_netem module (this CI machine's) cannot
load it; latency is therefore simulated by the hosts themselves (a late banner or answer).
Without root or without `nft`, `available()` is False and the lab falls back to simulated faults only.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import structlog

log = structlog.get_logger()
TABLE = "monitor_lab"


class KernelFaultError(RuntimeError):
    pass


def available() -> bool:
    return os.geteuid() == 0 and shutil.which("nft") is not None


def _nft(script: str) -> None:
    done = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise KernelFaultError(f"nft: {done.stderr.strip()}")


def clear_leftovers() -> None:
    """Remove the drops a killed lab left behind (they would cut the demo's or the next lab's hosts)."""
    if available():
        KernelFaults._delete()


class KernelFaults:
    def __init__(self) -> None:
        self.loss: dict[str, float] = {}  # address -> percent of packets to it dropped (100 = cut)
        self.ready = False

    def apply(self, loss: dict[str, float]) -> None:
        """Make the kernel drop exactly these shares of the packets to these addresses (all others pass)."""
        if loss == self.loss:
            return
        self.loss = dict(loss)
        self._apply()

    def _apply(self) -> None:
        if not self.ready:
            self._delete()
            self.ready = True
        rules = []
        for address, percent in sorted(self.loss.items()):
            if percent >= 100:
                rules.append(f"add rule ip {TABLE} far ip daddr {address} drop")
            elif percent > 0:
                rules.append(f"add rule ip {TABLE} far ip daddr {address} numgen random mod 100 < {int(percent)} drop")
        _nft(
            f"add table ip {TABLE}\n"
            f"add chain ip {TABLE} far {{ type filter hook input priority 0; policy accept; }}\n"
            f"flush chain ip {TABLE} far\n" + "\n".join(rules) + "\n"
        )
        log.info("kernel_faults_applied", rules=len(rules))

    @staticmethod
    def _delete() -> None:
        subprocess.run(["nft", "delete", "table", "ip", TABLE], capture_output=True, timeout=10)

    def close(self) -> None:
        if self.ready:
            self._delete()
        self.loss.clear()
        self.ready = False
