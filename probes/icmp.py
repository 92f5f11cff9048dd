"""ICMP echo probe: several packets per probe; RTT min/avg/max, jitter and loss; IPv4 and IPv6.

Which socket to use is decided once: ICMP datagram sockets ("unprivileged ping") when the kernel's
net.ipv4.ping_group_range admits our group (cheaper at scale: the kernel hands each socket only its
own replies), raw sockets when we are root or hold CAP_NET_RAW, and otherwise every probe fails with
an error that says how to fix the host. Raw sockets are shared (`RawSockets`): the kernel hands every
raw ICMP socket a copy of every ICMP packet, so a socket per probe in flight costs N^2 reads.

The echo loop is ours, on icmplib's sockets: icmplib's ping swallows a refused send and reports
"100% packet loss (0 sent)" with a loss ratio of 0. Here a send refused by this host (EPERM from its
firewall, ENOBUFS) is a local failure (a monitoring gap), any other send error is the reason given,
and a probe that sent nothing exports no loss ratio at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from functools import lru_cache
from pathlib import Path
from typing import Literal

import icmplib
from pydantic import Field

from monitor.config.types import format_duration
from probes import base
from probes.base import Family, Limit, Measure, ProbeRequest, ProbeResult, ProbeSettings
from probes.net import IPProtocol, ResolveError, resolve

CAP_NET_RAW = 13
RAW_RECEIVE_BUFFER = 8 * 1024 * 1024  # bytes: the shared raw socket's, for the replies of ~8,000 echoes at once
NOT_PERMITTED = (
    "ICMP not permitted: run as root or with CAP_NET_RAW, or allow ICMP datagram sockets with "
    "sysctl net.ipv4.ping_group_range"
)


def _high_rtt(rtt: float, limit: float, now: float) -> str | None:
    return f"high round-trip time: {rtt * 1000:.1f}ms (limit {format_duration(limit)})" if rtt > limit else None


def _loss(loss: float, limit: float, now: float) -> str | None:
    return f"packet loss {loss:.0%} (limit {limit:.0%})" if loss >= limit else None


RTT = "ICMP round-trip time of the last probe."
RTT_MIN = Measure("monitor_icmp_rtt_seconds", RTT, "rtt_min_seconds", ("stat", "min"))
RTT_AVG = Measure("monitor_icmp_rtt_seconds", RTT, "rtt_avg_seconds", ("stat", "avg"), Limit("rtt", _high_rtt))
RTT_MAX = Measure("monitor_icmp_rtt_seconds", RTT, "rtt_max_seconds", ("stat", "max"))
JITTER = Measure("monitor_icmp_jitter_seconds", "ICMP round-trip jitter of the last probe.", "jitter_seconds")
LOSS = Measure("monitor_icmp_packet_loss_ratio", "Share of ICMP echo requests unanswered in the last probe.",
               "loss_ratio", limit=Limit("loss_ratio", _loss))  # fmt: skip
PACKETS_SENT = "packets_sent"  # a value shown by the API and `monitor probe`, not exported


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


class RawSockets:
    """One raw ICMP socket per address family for all of this process's probes, and its replies handed
    to the probe waiting for each (by identifier and sequence number, as icmplib matches them).

    Why: every raw ICMP socket receives a copy of every ICMP packet the host receives. With one socket per
    probe in flight, hundreds in flight at the national estate's ~500 echoes/s meant each reply copied and
    read hundreds of times: the event loop saturated, replies were read after their probe's timeout or
    dropped from full buffers, and every ICMP check went DOWN from our own load (a local failure shown as
    the targets'). Here each packet is read once. Parsing is icmplib's (`_parse_reply`: echo replies and the
    ICMP errors that quote our request)."""

    READ_BURST = 256  # packets read per readiness callback before yielding to the loop

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sockets: dict[bool, icmplib.ICMPv4Socket | icmplib.ICMPv6Socket] = {}
        self._waiting: dict[tuple[bool, int, int], tuple[str, asyncio.Future[icmplib.ICMPReply]]] = {}

    def open(self, v6: bool) -> icmplib.ICMPv4Socket | icmplib.ICMPv6Socket:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests, `monitor probe`): the old readers are gone
            self.close()
            self._loop = loop
        sock = self._sockets.get(v6)
        if sock is None:
            sock = (icmplib.ICMPv6Socket if v6 else icmplib.ICMPv4Socket)(None, True)
            raw = sock._sock  # icmplib has no public non-blocking read
            raw.setblocking(False)
            _grow_receive_buffer(raw)
            loop.add_reader(raw.fileno(), self._read, v6, sock)
            self._sockets[v6] = sock
        return sock

    def send(self, request: icmplib.ICMPRequest, v6: bool) -> None:
        self.open(v6).send(request)

    async def receive(self, request: icmplib.ICMPRequest, v6: bool, seconds: float) -> icmplib.ICMPReply:
        key = (v6, request.id, request.sequence)
        future: asyncio.Future[icmplib.ICMPReply] = asyncio.get_running_loop().create_future()
        self._waiting[key] = (request.destination, future)
        try:
            return await asyncio.wait_for(future, seconds)
        except TimeoutError:
            raise icmplib.TimeoutExceeded(seconds) from None
        finally:
            if self._waiting.get(key, (None, None))[1] is future:
                del self._waiting[key]

    def _read(self, v6: bool, sock: icmplib.ICMPv4Socket | icmplib.ICMPv6Socket) -> None:
        raw = sock._sock
        for _ in range(self.READ_BURST):
            try:
                packet, address = raw.recvfrom(1024)
            except OSError:  # BlockingIOError: read out
                return
            reply = sock._parse_reply(packet, address[0], time.time())
            if reply is None:  # not an echo reply nor an error about an echo (another host's traffic)
                continue
            waiting = self._waiting.get((v6, reply.id, reply.sequence))
            if waiting is None:
                continue
            destination, future = waiting
            # an echo reply from another address is another process's ping with the same identifier
            if reply.type in (0, 129) and reply.source != destination:
                continue
            if not future.done():
                future.set_result(reply)

    def close(self) -> None:
        for sock in self._sockets.values():
            raw = sock._sock
            if self._loop is not None and not self._loop.is_closed() and raw is not None:
                self._loop.remove_reader(raw.fileno())
            sock.close()
        self._sockets.clear()
        self._waiting.clear()


class ICMPProbe:
    name = "icmp"
    settings_model = ICMPSettings
    measures: tuple[Measure, ...] = (RTT_MIN, RTT_AVG, RTT_MAX, JITTER, LOSS)
    series: tuple[Family, ...] = ()
    phases: tuple[str, ...] = ()  # one exchange of echoes: its duration is the probe's
    polls_agent = False

    def __init__(self) -> None:
        self._modes: dict[str, str | None] = {}
        self._raw = RawSockets()

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
            host, send_error = await _ping(ip, settings, per_packet, self._raw if mode == "raw" else None)
        except icmplib.SocketPermissionError:
            return ProbeResult.failure(NOT_PERMITTED)
        except icmplib.ICMPLibError as exc:
            base.raise_if_local(exc)  # the socket could not be opened: EMFILE, ENOBUFS
            return ProbeResult.failure(f"icmp error: {exc}")
        except OSError as exc:
            return ProbeResult.failure(base.describe_os_error(exc))
        result = ProbeResult(ok=host.packets_received > 0)
        result.values[PACKETS_SENT] = float(host.packets_sent)
        if host.packets_sent:  # no packet sent, no loss measured: 0 would claim a clean path
            result.values[LOSS.key] = float(host.packet_loss)
        if host.packets_received:
            result.values[RTT_MIN.key] = host.min_rtt / 1000
            result.values[RTT_AVG.key] = host.avg_rtt / 1000
            result.values[RTT_MAX.key] = host.max_rtt / 1000
            result.values[JITTER.key] = host.jitter / 1000
        elif send_error is not None and not host.packets_sent:
            result.error = f"send failed: {send_error}"
        else:
            result.error = f"100% packet loss ({host.packets_sent} sent)"
        result.info["socket"] = mode
        result.info["address"] = ip
        return result


def _grow_receive_buffer(sock: socket.socket) -> None:
    """Room for the replies of every probe in flight (~1 KiB each in the kernel): the default ~200 KiB
    overflows when a thousand probes send at once, and a reply dropped here is loss we would report."""
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):  # FORCE: past rmem_max, as root
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, RAW_RECEIVE_BUFFER)
            return
        except OSError:
            continue


class _Shared:
    """The shared raw socket of one address family, with an AsyncSocket's send and receive."""

    def __init__(self, raw: RawSockets, v6: bool) -> None:
        self.raw, self.v6 = raw, v6

    def send(self, request: icmplib.ICMPRequest) -> None:
        self.raw.send(request, self.v6)

    async def receive(self, request: icmplib.ICMPRequest, seconds: float) -> icmplib.ICMPReply:
        return await self.raw.receive(request, self.v6, seconds)


@lru_cache(maxsize=64)
def payload(size: int) -> bytes:
    """The echo payload: a fixed pattern, as iputils ping sends (bytes counting up from 0x10 after its
    timestamp). icmplib draws random bytes per echo otherwise, 6 % of the event loop in the national
    estate's profile (~500 echoes/s); replies are matched by identifier and sequence, never by payload."""
    return bytes((0x10 + i) & 0xFF for i in range(size))


async def _ping(
    ip: str, settings: ICMPSettings, per_packet: float, raw: RawSockets | None
) -> tuple[icmplib.Host, str | None]:
    """icmplib's async_ping without its blind spot: a send error is classified, not swallowed.

    Returns the host's figures and the last non-local send error (None when every send went out).
    A send refused by this host raises LocalFailure unless a reply already came: then the target
    has answered and its figures stand."""
    v6 = ":" in ip
    ident = icmplib.utils.unique_identifier()
    sent, rtts, send_error = 0, list[float](), None
    with contextlib.ExitStack() as stack:
        sock: icmplib.AsyncSocket | _Shared
        if raw is None:  # a datagram socket of our own: the kernel gives it only its replies
            socket_class = icmplib.ICMPv6Socket if v6 else icmplib.ICMPv4Socket
            sock = stack.enter_context(icmplib.AsyncSocket(socket_class(None, False)))
        else:
            raw.open(v6)  # here, not at the first send: a socket that cannot be opened is not a lost echo
            sock = _Shared(raw, v6)
        for sequence in range(settings.count):
            if sequence:
                await asyncio.sleep(settings.packet_interval)
            request = icmplib.ICMPRequest(ip, ident, sequence, payload=payload(settings.payload_size))
            try:
                sock.send(request)
            except icmplib.ICMPLibError as exc:  # icmplib keeps the OSError as the context
                if not rtts:
                    base.raise_if_local(exc)
                elif base.local_failure(exc) is not None:
                    break
                cause = exc.__context__
                send_error = base.describe_os_error(cause) if isinstance(cause, OSError) else str(exc)
                continue
            sent += 1
            try:
                reply = await sock.receive(request, per_packet)
                reply.raise_for_status()
            except icmplib.ICMPLibError:  # a timeout or an ICMP error answer: a lost packet
                continue
            rtts.append((reply.time - request.time) * 1000)
    return icmplib.Host(ip, sent, rtts), send_error
