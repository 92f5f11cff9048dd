"""The DNS probe's own UDP answer parser gives what dnspython gives, or hands the answer to dnspython."""

from __future__ import annotations

import random
import time

import dns.edns
import dns.message
import dns.name
import dns.rcode
import dns.rrset
import pytest

from probes import dns_wire
from probes.base import ProbeRequest
from probes.dns import DNSProbe, DNSSettings


def _exchange(name: str, qtype: str, build: object) -> tuple[dns_wire.Query, int, bytes]:
    query = dns_wire.query_template(name, qtype, True)
    qid = 4242
    asked = dns.message.from_wire(qid.to_bytes(2, "big") + query.body)
    response = dns.message.make_response(asked)
    build(response)  # type: ignore[operator]
    return query, qid, response.to_wire()


def _dnspython_answers(wire: bytes) -> list[str]:
    message = dns.message.from_wire(wire)
    return [line for rrset in message.answer for line in rrset.to_text().splitlines()]


CASES = {
    "two A": lambda r: r.answer.append(
        dns.rrset.from_text(r.question[0].name, 300, "IN", "A", "192.0.2.1", "192.0.2.2")
    ),
    "AAAA": lambda r: r.answer.append(dns.rrset.from_text(r.question[0].name, 60, "IN", "AAAA", "2001:db8::1")),
    "CNAME chain": lambda r: r.answer.extend(
        [
            dns.rrset.from_text(r.question[0].name, 30, "IN", "CNAME", "alias.example.jp."),
            dns.rrset.from_text("alias.example.jp.", 30, "IN", "A", "192.0.2.7"),
        ]
    ),
    "NS and PTR": lambda r: r.answer.extend(
        [
            dns.rrset.from_text(r.question[0].name, 86400, "IN", "NS", "ns1.example.jp."),
            dns.rrset.from_text(r.question[0].name, 86400, "IN", "PTR", "host.example.jp."),
        ]
    ),
    "escaped labels": lambda r: r.answer.append(
        dns.rrset.from_text(r.question[0].name, 5, "IN", "CNAME", r"we\.ird\"\;\(\@\$\032\255.jp.")
    ),
    "no answers, SOA in authority, EDNS": lambda r: (
        r.authority.append(dns.rrset.from_text("example.jp.", 900, "IN", "SOA", "ns. host. 1 2 3 4 5")),
        r.use_edns(0, 0, 1232),
        r.set_rcode(dns.rcode.NXDOMAIN),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_parser_matches_dnspython(case: str) -> None:
    """Answers of the common types are written out exactly as dnspython writes them."""
    query, qid, wire = _exchange("www.example.jp", "A", CASES[case])
    answer = dns_wire.parse(wire, qid, query)
    assert answer.answers == _dnspython_answers(wire)
    assert answer.rcode == dns.message.from_wire(wire).rcode()
    assert not answer.truncated


def test_other_record_types_go_to_dnspython() -> None:
    """An MX in the answer is not written out by the fast parser: it says so (Unusual)."""
    query, qid, wire = _exchange(
        "example.jp",
        "MX",
        lambda r: r.answer.append(dns.rrset.from_text("example.jp.", 60, "IN", "MX", "10 mx.example.jp.")),
    )
    with pytest.raises(dns_wire.Unusual):
        dns_wire.parse(wire, qid, query)


def test_question_case_does_not_matter() -> None:
    """A server that answers the question in another letter case (0x20 mixing) is still answering it."""
    query, qid, wire = _exchange("www.example.jp", "A", CASES["two A"])
    upper = wire[:12] + wire[12 : 12 + len(query.question)].upper() + wire[12 + len(query.question) :]
    assert len(dns_wire.parse(upper, qid, query).answers) == 2


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda w: w[:2] + bytes([w[2] & 0x7F]) + w[3:], "not a response"),
        (lambda w: w[:12] + b"\x03xyz" + w[16:], "not the one asked"),
        (lambda w: w[:4] + b"\x00\x02" + w[6:], "2 questions"),
        (lambda w: w[:-1], "past the end"),
    ],
)
def test_malformed_answers_say_why(mangle: object, reason: str) -> None:
    query, qid, wire = _exchange("www.example.jp", "A", CASES["two A"])
    with pytest.raises(dns_wire.Malformed, match=reason):
        dns_wire.parse(mangle(wire), qid, query)  # type: ignore[operator]


def test_trailing_bytes_after_the_last_record_are_ignored() -> None:
    """Padding after the last record (some middleboxes add it) is ignored, as dnspython's
    ignore_trailing and blackbox_exporter do: the answer is the same."""
    query, qid, wire = _exchange("www.example.jp", "A", CASES["two A"])
    assert dns_wire.parse(wire + b"JUNK", qid, query) == dns_wire.parse(wire, qid, query)


def test_fuzzed_answers_raise_only_malformed_or_unusual() -> None:
    """Random corruption of real answers (seeded) gives an answer, Malformed or Unusual: nothing else."""
    rng = random.Random(7)
    query, qid, wire = _exchange("www.example.jp", "A", CASES["CNAME chain"])
    outcomes = {"ok": 0, "malformed": 0, "unusual": 0}
    for _ in range(3000):
        data = bytearray(wire)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(2, len(data))] = rng.randrange(256)
        try:
            dns_wire.parse(bytes(data), qid, query)
            outcomes["ok"] += 1
        except dns_wire.Malformed:
            outcomes["malformed"] += 1
        except dns_wire.Unusual:
            outcomes["unusual"] += 1
    assert outcomes["malformed"] > 100 and outcomes["ok"] > 100


async def test_closed_udp_port_is_refused_at_once(refused_port: int) -> None:
    """The connected socket sees the ICMP port unreachable: 'connection refused', not a timeout."""
    started = time.perf_counter()
    result = await DNSProbe().run(
        ProbeRequest("127.0.0.1", None, refused_port, 2.0), DNSSettings(query_name="www.example.jp")
    )
    assert result.error == "connection refused"
    assert time.perf_counter() - started < 1.0
