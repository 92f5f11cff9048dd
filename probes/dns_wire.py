"""The DNS probe's fast path over UDP: a query template per question, one connected socket per query,
and a parser for answers made only of the common record types.

dnspython builds and parses a message in ~100 us each way; at thousands of probes every 10 s that was
most of a DNS probe's cost. The query for one (name, type, RD) is the same bytes apart from its id, so
it is built once by dnspython and cached. An answer is parsed here when its answer section holds only
A, AAAA, CNAME, NS or PTR records (what monitoring queries get back); anything else is handed to
dnspython by the caller (`Unusual`), so the result is the same either way. Every inconsistency in an
answer (lying counts, labels or pointers that run off the end or loop, bad rdata) is `Malformed` with
the reason, never an exception of another kind. Bytes after the last record are ignored, as dnspython's
`ignore_trailing` and blackbox_exporter (miekg/dns) do: padding some middleboxes add is not an outage.

A datagram that is not the answer to our query (another id, another question) is discarded and the
wait goes on until the caller's deadline (RFC 5452 section 9.1): one stray or spoofed datagram that
arrives first must not fail the check. What was discarded is counted, so a server that only ever
answers with another id fails with that reason rather than a bare timeout.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
import struct
from dataclasses import dataclass
from functools import lru_cache

import dns.flags
import dns.message
import dns.rdataclass

HEADER = 12
COUNTS = struct.Struct("!HHHH")  # question, answer, authority, additional
RECORD = struct.Struct("!HHIH")  # type, class, TTL, data length
MAX_POINTER_JUMPS = 32  # more than any honest name needs; a loop of pointers ends here
MAX_DISCARDED = 1000  # datagrams that are not our answer, then give up: a flood must not spin the CPU to the deadline
# rcodes a server may answer without echoing the question (as dnspython's Message.is_response allows)
QUESTIONLESS_RCODES = frozenset({1, 2, 4, 5})  # FORMERR, SERVFAIL, NOTIMP, REFUSED
TEXT_TYPES = {1: "A", 28: "AAAA", 5: "CNAME", 2: "NS", 12: "PTR"}
NAME_TYPES = {5, 2, 12}


class Malformed(Exception):
    """The answer is not a well-formed DNS response to our question."""


class Unusual(Exception):
    """Well-formed so far, but with record types this parser does not render: let dnspython parse it."""


@dataclass(frozen=True, slots=True)
class Answer:
    rcode: int
    truncated: bool
    answers: list[str]  # "name. ttl IN TYPE data", as dnspython writes records


@dataclass(slots=True)
class Discarded:
    """Datagrams from the server that were not the answer to our query, by why."""

    other_id: int = 0
    other_question: int = 0
    no_question: int = 0  # a NOERROR answer without the question section (only errors may leave it out)
    not_dns: int = 0  # shorter than a header, or not a response

    @property
    def total(self) -> int:
        return self.other_id + self.other_question + self.no_question + self.not_dns

    def describe(self) -> str:
        """Why no answer was taken, for the failure reason ("" when nothing was discarded)."""
        if not self.total:
            return ""
        if self.other_id == self.total:
            return f"the server only answers with another id ({self.other_id} datagrams discarded)"
        if self.other_question == self.total:
            return f"the server only answers another question ({self.other_question} datagrams discarded)"
        if self.no_question == self.total:
            return f"the server only answers without the question section ({self.no_question} datagrams discarded)"
        parts = [
            f"{count} {why}"
            for count, why in (
                (self.other_id, "with another id"),
                (self.other_question, "to another question"),
                (self.no_question, "without the question"),
                (self.not_dns, "not DNS responses"),
            )
            if count
        ]
        return f"no answer to our query ({', '.join(parts)} discarded)"


class TooManyDiscarded(Exception):
    """More than MAX_DISCARDED datagrams that were not our answer."""


@dataclass(frozen=True, slots=True)
class Query:
    body: bytes  # the query after its 2-byte id
    question: bytes  # the question section, lower-cased, to match the answer's against


@lru_cache(maxsize=4096)
def query_template(name: str, qtype: str, recursion_desired: bool) -> Query:
    query = dns.message.make_query(name, qtype, dns.rdataclass.IN)
    if not recursion_desired:
        query.flags &= ~dns.flags.RD
    wire = query.to_wire()
    end = _skip_name(wire, HEADER) + 4
    return Query(wire[2:], wire[HEADER:end].lower())


async def exchange(query: Query, server: str, port: int, discarded: Discarded) -> tuple[int, bytes]:
    """Send the query from a fresh connected socket (a random source port, as resolvers do; the
    kernel drops datagrams from anyone but the server) and return (id sent, the answer). Datagrams
    that are not the answer are counted in `discarded` and the wait goes on. A closed port answered
    by ICMP raises ConnectionRefusedError. The caller bounds the wait."""
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    qid = random.getrandbits(16)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    loop = asyncio.get_running_loop()
    try:
        sock.setblocking(False)
        sock.connect((server, port))
        sock.send(qid.to_bytes(2, "big") + query.body)
        while True:
            data = await loop.sock_recv(sock, 65535)
            why = _not_our_answer(data, qid, query)
            if why is None:
                return qid, data
            setattr(discarded, why, getattr(discarded, why) + 1)
            if discarded.total >= MAX_DISCARDED:
                raise TooManyDiscarded(discarded.describe())
    finally:
        sock.close()


def _not_our_answer(data: bytes, qid: int, query: Query) -> str | None:
    """None when `data` answers our query, else the Discarded counter it goes to. A message that
    matches but is malformed further on is our answer: parse() then says what is wrong with it."""
    if len(data) < HEADER or not data[2] & 0x80:
        return "not_dns"
    if int.from_bytes(data[0:2], "big") != qid:
        return "other_id"
    if data[5] == 0 and data[4] == 0:
        # an error answer may leave the question out; anything else without it does not answer our query
        return None if data[3] & 0x0F in QUESTIONLESS_RCODES else "no_question"
    if data[HEADER : HEADER + len(query.question)].lower() != query.question:
        return "other_question"
    return None


def parse(data: bytes, qid: int, query: Query) -> Answer:
    try:
        return _parse(data, qid, query)
    except (IndexError, ValueError) as exc:
        raise Malformed(f"cut short or inconsistent ({exc})") from exc


def _parse(data: bytes, qid: int, query: Query) -> Answer:
    if len(data) < HEADER:
        raise Malformed(f"{len(data)} bytes, shorter than a DNS header")
    if int.from_bytes(data[0:2], "big") != qid:
        raise Malformed("the answer's id is not the query's")
    flags = int.from_bytes(data[2:4], "big")
    if not flags & 0x8000:
        raise Malformed("not a response (QR not set)")
    qdcount, ancount, nscount, arcount = COUNTS.unpack_from(data, 4)
    truncated = bool(flags & 0x0200)
    end = HEADER + len(query.question)
    if qdcount == 0 and flags & 0x000F in QUESTIONLESS_RCODES:
        end = HEADER
    elif qdcount != 1:
        raise Malformed(f"{qdcount} questions in the answer, expected 1")
    elif data[HEADER:end].lower() != query.question:
        raise Malformed("the answer's question is not the one asked")
    if truncated:
        return Answer(flags & 0x000F, True, [])
    offset, answers = end, []
    for index in range(ancount + nscount + arcount):
        owner, offset = _read_name(data, offset)
        if offset + 10 > len(data):
            raise Malformed("a record runs past the end")
        rtype, rclass, ttl, length = RECORD.unpack_from(data, offset)
        start, offset = offset + 10, offset + 10 + length
        if offset > len(data):
            raise Malformed("a record's data runs past the end")
        if index < ancount:
            if rtype not in TEXT_TYPES or rclass != dns.rdataclass.IN:
                raise Unusual()
            answers.append(f"{owner} {ttl} IN {TEXT_TYPES[rtype]} {_rdata_text(data, rtype, start, offset)}")
    return Answer(flags & 0x000F, False, answers)


def _rdata_text(data: bytes, rtype: int, start: int, end: int) -> str:
    if rtype in NAME_TYPES:
        name, after = _read_name(data, start)
        if after != end:
            raise Malformed(f"{TEXT_TYPES[rtype]} data length does not match its name")
        return name
    size = 4 if rtype == 1 else 16
    if end - start != size:
        raise Malformed(f"{TEXT_TYPES[rtype]} data of {end - start} bytes, expected {size}")
    return str(ipaddress.ip_address(data[start:end]))


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    """(name with a trailing dot, offset after it in the record), following compression pointers."""
    labels: list[str] = []
    after, jumps, length = -1, 0, 0
    while True:
        size = data[offset]
        if size == 0:
            offset += 1
            break
        if size & 0xC0 == 0xC0:
            jumps += 1
            if jumps > MAX_POINTER_JUMPS:
                raise Malformed("a loop of name pointers")
            if after < 0:
                after = offset + 2
            offset = ((size & 0x3F) << 8) | data[offset + 1]
            continue
        if size & 0xC0:
            raise Malformed(f"unknown label type {size >> 6}")
        label = data[offset + 1 : offset + 1 + size]
        if len(label) != size:
            raise Malformed("a label runs past the end")
        length += size + 1
        if length > 255:
            raise Malformed("a name longer than 255 bytes")
        labels.append(_label_text(label))
        offset += 1 + size
    return ".".join(labels) + ".", offset if after < 0 else after


ESCAPED = b'"().;\\@$'  # written with a backslash in front, as dnspython writes them


def _label_text(label: bytes) -> str:
    if all(0x21 <= b <= 0x7E and b not in ESCAPED for b in label):
        return label.decode("ascii")
    return "".join(("\\" + chr(b) if b in ESCAPED else chr(b)) if 0x21 <= b <= 0x7E else f"\\{b:03d}" for b in label)


def _skip_name(wire: bytes, offset: int) -> int:
    while wire[offset]:
        offset += 1 + wire[offset]
    return offset + 1
