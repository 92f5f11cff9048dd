"""The lab's own flow exporter, for where softflowd cannot run (no root, no namespace): it encodes flows
the lab generates as NetFlow v9 (RFC 3954) or IPFIX (RFC 7011) datagrams, as a router would send them,
and sends them over UDP. It is an encoder only, written from the RFCs independently of the daemon's
decoder; tests hold it to nfdump's reading of the same datagrams.

What it sends, like a router: a template set before the first data and again every `template_every`
datagrams (collectors over UDP re-learn templates from the refresh), one template per address family,
sequence numbers as each RFC counts them (v9: datagrams; IPFIX: data records), and with `sampling`
an options template and record announcing the 1-in-N interval (NetFlow v9 only; counts in the
records are then what a sampling router would report: unscaled).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_DATAGRAM = 1400  # below a typical path MTU: export datagrams are never fragmented by design
TEMPLATE_V4, TEMPLATE_V6, TEMPLATE_OPTIONS = 256, 257, 258

# (field type / information element id, length): RFC 3954 section 8 numbers equal the IPFIX IANA ids
_V9_FIELDS = {
    4: [(1, 4), (2, 4), (4, 1), (6, 1), (7, 2), (8, 4), (10, 2), (11, 2), (12, 4), (14, 2), (22, 4), (21, 4)],
    6: [(1, 4), (2, 4), (4, 1), (6, 1), (7, 2), (27, 16), (10, 2), (11, 2), (28, 16), (14, 2), (22, 4), (21, 4)],
}
# IPFIX: 64-bit counters, 32-bit interfaces, absolute millisecond timestamps (flowStart/EndMilliseconds)
_IPFIX_FIELDS = {
    4: [(1, 8), (2, 8), (4, 1), (6, 2), (7, 2), (8, 4), (10, 4), (11, 2), (12, 4), (14, 4), (152, 8), (153, 8)],
    6: [(1, 8), (2, 8), (4, 1), (6, 2), (7, 2), (27, 16), (10, 4), (11, 2), (28, 16), (14, 4), (152, 8), (153, 8)],
}


@dataclass(frozen=True)
class Flow:
    src: Address
    dst: Address
    protocol: int
    src_port: int
    dst_port: int
    octets: int
    packets: int
    first: float  # epoch seconds of the first packet
    last: float
    input_if: int = 0
    output_if: int = 0
    tcp_flags: int = 0


def flow(src: str, dst: str, protocol: int, src_port: int, dst_port: int, octets: int, packets: int,
         first: float, last: float | None = None, input_if: int = 0, output_if: int = 0,
         tcp_flags: int = 0) -> Flow:  # fmt: skip
    return Flow(ipaddress.ip_address(src), ipaddress.ip_address(dst), protocol, src_port, dst_port, octets, packets,
                first, first if last is None else last, input_if, output_if, tcp_flags)  # fmt: skip


class Encoder:
    def __init__(
        self,
        version: int = 9,
        observation_domain: int = 1,
        template_every: int = 20,
        sampling: int | None = None,
        boot: float | None = None,
    ) -> None:
        if version not in (9, 10):
            raise ValueError("version must be 9 (NetFlow v9) or 10 (IPFIX)")
        if sampling is not None and version != 9:
            raise ValueError("the lab exporter announces sampling in NetFlow v9 only")
        self.version = version
        self.domain = observation_domain
        self.template_every = max(1, template_every)
        self.sampling = sampling
        self.boot = float(int(time.time()) - 3600) if boot is None else boot  # sysUptime counts from here (v9)
        self.sequence = 0  # v9: datagrams sent; IPFIX: data records sent (RFC 7011 3.1)
        self._since_templates = self.template_every  # templates go out with the first datagram

    @property
    def fields(self) -> dict[int, list[tuple[int, int]]]:
        return _V9_FIELDS if self.version == 9 else _IPFIX_FIELDS

    def encode(self, flows: Iterable[Flow], now: float | None = None) -> list[bytes]:
        """Datagrams carrying these flows (and templates when they are due)."""
        now = time.time() if now is None else now
        pending = list(flows)
        out: list[bytes] = []
        while pending or not out:
            sets: list[bytes] = []
            records = 0
            room = MAX_DATAGRAM - (20 if self.version == 9 else 16)
            if self._since_templates >= self.template_every:
                templates, count = self._templates()
                sets.append(templates)
                records += count
                room -= len(templates)
                if self.sampling is not None:
                    options = self._sampling_data()
                    sets.append(options)
                    records += 1
                    room -= len(options)
                self._since_templates = 0
            data_records = 0
            for family in (4, 6):
                chosen = [f for f in pending if f.src.version == family]
                if not chosen:
                    continue
                size = sum(length for _, length in self.fields[family])
                fit = max(0, (room - 4 - 3) // size)
                take = chosen[:fit]
                if not take:
                    continue
                body = b"".join(self._record(f, now) for f in take)
                sets.append(_set(TEMPLATE_V4 if family == 4 else TEMPLATE_V6, body))
                room -= len(sets[-1])
                records += len(take)
                data_records += len(take)
                taken = set(map(id, take))
                pending = [f for f in pending if id(f) not in taken]
            if not sets:
                break
            out.append(self._header(b"".join(sets), records, data_records, now))
            self._since_templates += 1
            if not pending:
                break
        return out

    def _header(self, body: bytes, records: int, data_records: int, now: float) -> bytes:
        if self.version == 9:
            # the header's instant is its whole second (unix_secs has no fraction): sysUptime at that instant,
            # so a collector's unix_secs - (sysUptime - FIRST_SWITCHED) is the flow's own time to the millisecond
            uptime = int((int(now) - self.boot) * 1000) & 0xFFFFFFFF
            head = struct.pack("!HHIIII", 9, records, uptime, int(now), self.sequence, self.domain)
            self.sequence = (self.sequence + 1) & 0xFFFFFFFF
            return head + body
        head = struct.pack("!HHIII", 10, 16 + len(body), int(now), self.sequence, self.domain)
        self.sequence = (self.sequence + data_records) & 0xFFFFFFFF
        return head + body

    def _templates(self) -> tuple[bytes, int]:
        body = b""
        for template_id, family in ((TEMPLATE_V4, 4), (TEMPLATE_V6, 6)):
            spec = self.fields[family]
            body += struct.pack("!HH", template_id, len(spec)) + b"".join(struct.pack("!HH", t, n) for t, n in spec)
        count = 2
        template_set = _set(0 if self.version == 9 else 2, body, pad=False)
        if self.sampling is None:
            return template_set, count
        # v9 options template (flowset 1): scope System (type 1, 4 bytes); SAMPLING_INTERVAL (34),
        # SAMPLING_ALGORITHM (35: 2 = random)
        option = struct.pack("!HHH", TEMPLATE_OPTIONS, 4, 8) + struct.pack("!HHHHHH", 1, 4, 34, 4, 35, 1)
        return template_set + _set(1, option), count + 1

    def _sampling_data(self) -> bytes:
        assert self.sampling is not None
        return _set(TEMPLATE_OPTIONS, struct.pack("!IIB", self.domain, self.sampling, 2))

    def _record(self, f: Flow, now: float) -> bytes:
        src, dst = f.src.packed, f.dst.packed
        if self.version == 9:
            first = int((f.first - self.boot) * 1000) & 0xFFFFFFFF
            last = int((f.last - self.boot) * 1000) & 0xFFFFFFFF
            return struct.pack(
                f"!IIBBH{len(src)}sHH{len(dst)}sHII",
                f.octets & 0xFFFFFFFF, f.packets & 0xFFFFFFFF, f.protocol, f.tcp_flags & 0xFF, f.src_port, src,
                f.input_if & 0xFFFF, f.dst_port, dst, f.output_if & 0xFFFF, first, last,
            )  # fmt: skip
        return struct.pack(
            f"!QQBHH{len(src)}sIH{len(dst)}sIQQ",
            f.octets, f.packets, f.protocol, f.tcp_flags, f.src_port, src, f.input_if, f.dst_port, dst, f.output_if,
            int(f.first * 1000), int(f.last * 1000),
        )  # fmt: skip


def _set(set_id: int, body: bytes, pad: bool = True) -> bytes:
    """A FlowSet / Set: id, length, body, padded to 4 bytes (RFC 3954 5.3 / RFC 7011 3.3.1)."""
    padding = (-len(body)) % 4 if pad else 0
    return struct.pack("!HH", set_id, 4 + len(body) + padding) + body + b"\0" * padding


class Sender:
    """Sends an encoder's datagrams to a collector over UDP (from `source`, when given: the collector
    believes exporters by their source address)."""

    def __init__(self, encoder: Encoder, collector: tuple[str, int], source: str | None = None) -> None:
        self.encoder = encoder
        self.collector = collector
        family = socket.AF_INET6 if ":" in collector[0] else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        if source is not None:
            self._sock.bind((source, 0))

    def send(self, flows: Iterable[Flow], now: float | None = None) -> int:
        datagrams = self.encoder.encode(flows, now)
        for datagram in datagrams:
            self._sock.sendto(datagram, self.collector)
        return len(datagrams)

    def close(self) -> None:
        self._sock.close()


def chunks(flows: list[Flow], size: int) -> Iterator[list[Flow]]:
    for start in range(0, len(flows), size):
        yield flows[start : start + size]
