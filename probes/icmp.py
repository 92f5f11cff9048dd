"""ICMP echo probe: several packets per probe; RTT min/avg/max, jitter and loss; IPv4 and IPv6.

Which socket to use is decided once: ICMP datagram sockets ("unprivileged ping") when the kernel's
net.ipv4.ping_group_range admits our group (cheaper at scale: the kernel hands each socket only its
own replies), raw sockets when we are root or hold CAP_NET_RAW, and otherwise every probe fails with
an error that says how to fix the host.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import icmplib
from pydantic import Field

from probes import base
from probes.base import ProbeRequest, ProbeResult, ProbeSettings
from probes.net import IPProtocol, ResolveError, resolve

CAP_NET_RAW = 13
NOT_PERMITTED = (
    "ICMP not permitted: run as root or with CAP_NET_RAW, or allow ICMP datagram sockets with "
    "sysctl net.ipv4.ping_group_range"
)


class ICMPSettings(ProbeSettings):
    count: int = Field(default=3, ge=1, le=20)
    packet_interval: float = Field(default=0.2, ge=0.0, le=5.0)  # seconds between packets
    payload_size: int = Field(default=56, ge=0, le=1472)
    ip_protocol: IPProtocol = "auto"
    sockets: Literal["auto", "datagram", "raw"] = "auto"


def _ping_group_allows(range_file: Path = Path("/proc/sys/net/ipv4/ping_group_range")) -> bool:
    try:
        low, high = (int(x) for x in range_file.read_text().split())
    except (OSError, ValueError):
        return False
    return any(low <= gid <= high for gid in {os.getegid(), *os.getgroups()})


def _has_net_raw() -> bool:
    if os.geteuid() == 0:
        return True
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << CAP_NET_RAW))
    except (OSError, ValueError):
        pass
    return False


def socket_mode(preference: str = "auto") -> str | None:
    """'datagram', 'raw', or None when this process may not send ICMP at all."""
    datagram, raw = _ping_group_allows(), _has_net_raw()
    if preference == "datagram":
        return "datagram" if datagram else None
    if preference == "raw":
        return "raw" if raw else None
    return "datagram" if datagram else "raw" if raw else None


class ICMPProbe:
    name = "icmp"
    settings_model = ICMPSettings

    def __init__(self) -> None:
        self._modes: dict[str, str | None] = {}

    def _mode(self, preference: str) -> str | None:
        if preference not in self._modes:
            self._modes[preference] = socket_mode(preference)
        return self._modes[preference]

    async def run(self, request: ProbeRequest, settings: ICMPSettings) -> ProbeResult:
        mode = self._mode(settings.sockets)
        if mode is None:
            return ProbeResult.failure(NOT_PERMITTED)
        try:
            ip = await resolve(request.address, settings.ip_protocol)
        except ResolveError as exc:
            return ProbeResult.failure(str(exc))
        gaps = (settings.count - 1) * settings.packet_interval
        per_packet = max(0.05, (request.timeout * 0.9 - gaps) / settings.count)
        try:
            host = await icmplib.async_ping(
                ip,
                count=settings.count,
                interval=settings.packet_interval,
                timeout=per_packet,
                payload_size=settings.payload_size,
                privileged=(mode == "raw"),
            )
        except icmplib.SocketPermissionError:
            return ProbeResult.failure(NOT_PERMITTED)
        except icmplib.ICMPLibError as exc:
            return ProbeResult.failure(f"icmp error: {exc}")
        except OSError as exc:
            return ProbeResult.failure(base.describe_os_error(exc))
        result = ProbeResult(ok=host.packets_received > 0)
        result.values[base.PACKETS_SENT] = float(host.packets_sent)
        result.values[base.LOSS] = float(host.packet_loss)
        if host.packets_received:
            result.values[base.RTT_MIN] = host.min_rtt / 1000
            result.values[base.RTT_AVG] = host.avg_rtt / 1000
            result.values[base.RTT_MAX] = host.max_rtt / 1000
            result.values[base.JITTER] = host.jitter / 1000
        else:
            result.error = f"100% packet loss ({host.packets_sent} sent)"
        result.info["socket"] = mode
        result.info["address"] = ip
        return result
