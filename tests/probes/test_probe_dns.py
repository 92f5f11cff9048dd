"""DNS probe against a real DNS server (asyncio UDP+TCP with dnspython messages) on loopback."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from pydantic import ValidationError

from probes import dns as dns_probe
from probes import dns_wire
from probes.base import ProbeRequest, ProbeResult
from probes.dns import DNSProbe, DNSSettings

DNS_ANSWERS, DNS_RCODE = dns_probe.ANSWERS.key, dns_probe.RCODE.key  # keys of ProbeResult.values

LOOPBACK4 = "127.0.0.1"
ADDRESSES = ("192.0.2.10", "192.0.2.11")  # answer data only: nothing ever connects to these


def answer_a(query: dns.message.Message, transport: str = "udp", rcode: int = dns.rcode.NOERROR) -> dns.message.Message:
    """A reply with the two A records above (or, for another rcode, none)."""
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    if rcode == dns.rcode.NOERROR:
        question = query.question[0]
        response.answer.append(dns.rrset.from_text(question.name, 300, "IN", question.rdtype, *ADDRESSES))
    return response


def dns_settings(**kw: Any) -> DNSSettings:
    kw.setdefault("query_name", "www.example.jp")
    return DNSSettings.model_validate(kw)


async def run(port: int, settings: DNSSettings, *, address: str = LOOPBACK4, **kw: Any) -> ProbeResult:
    """Run the probe, bounded so that a probe bug fails the test instead of hanging it."""
    timeout = kw.pop("timeout", 1.0)
    async with asyncio.timeout(3):
        return await DNSProbe().run(ProbeRequest(address, None, port, timeout, kw.pop("params", {})), settings)


# ---------------------------------------------------------------------------------------- answers


async def test_a_record_noerror(peers: Any) -> None:
    """An A query answered NOERROR is ok with the answer count, rcode, answers text and phases."""
    server = await peers.dns(answer_a)
    result = await run(server.port, dns_settings())
    assert result.ok, result.error
    assert result.values[DNS_ANSWERS] == 2
    assert result.values[DNS_RCODE] == 0
    assert result.info["rcode"] == "NOERROR"
    # an RRset has no order: compare the records as a set
    assert sorted(result.info["answers"].split("; ")) == [f"www.example.jp. 300 IN A {a}" for a in ADDRESSES]
    assert set(result.phases) == {"resolve", "query"}
    [(transport, query)] = server.queries
    assert transport == "udp"
    assert query.question[0].name.to_text() == "www.example.jp."
    assert query.question[0].rdtype == dns.rdatatype.A
    assert query.flags & dns.flags.RD


async def test_query_type_and_recursion_flag(peers: Any) -> None:
    """query_type (any case) is asked for, and recursion_desired false clears RD."""
    server = await peers.dns(lambda q, t: answer_a(q, t, dns.rcode.NXDOMAIN))
    await run(server.port, dns_settings(query_type="aaaa", recursion_desired=False, valid_rcodes=["NXDOMAIN"]))
    [(_, query)] = server.queries
    assert query.question[0].rdtype == dns.rdatatype.AAAA
    assert not query.flags & dns.flags.RD


async def test_nxdomain_fails_by_default(peers: Any) -> None:
    """NXDOMAIN fails with 'rcode NXDOMAIN, expected NOERROR' and reports the rcode."""
    server = await peers.dns(lambda q, t: answer_a(q, t, dns.rcode.NXDOMAIN))
    result = await run(server.port, dns_settings())
    assert not result.ok
    assert result.error == "rcode NXDOMAIN, expected NOERROR"
    assert result.values[DNS_RCODE] == dns.rcode.NXDOMAIN
    assert result.values[DNS_ANSWERS] == 0


async def test_nxdomain_accepted_by_valid_rcodes(peers: Any) -> None:
    """valid_rcodes (case-insensitive) can make NXDOMAIN the expected answer."""
    server = await peers.dns(lambda q, t: answer_a(q, t, dns.rcode.NXDOMAIN))
    result = await run(server.port, dns_settings(valid_rcodes=["nxdomain", "NOERROR"]))
    assert result.ok, result.error
    assert result.info["rcode"] == "NXDOMAIN"


async def test_servfail_lists_all_valid_rcodes(peers: Any) -> None:
    """An rcode outside valid_rcodes names all the valid ones."""
    server = await peers.dns(lambda q, t: answer_a(q, t, dns.rcode.SERVFAIL))
    result = await run(server.port, dns_settings(valid_rcodes=["NOERROR", "NXDOMAIN"]))
    assert result.error == "rcode SERVFAIL, expected NOERROR/NXDOMAIN"


@pytest.mark.parametrize(("minimum", "error"), [(2, None), (3, "2 answers, expected at least 3")])
async def test_min_answers(peers: Any, minimum: int, error: str | None) -> None:
    """Fewer answer records than min_answers fail."""
    server = await peers.dns(answer_a)
    result = await run(server.port, dns_settings(min_answers=minimum))
    assert result.error == error
    assert result.ok is (error is None)


@pytest.mark.parametrize(
    ("rules", "error"),
    [
        ({"fail_if_matches_regexp": [r"IN A 198\.51\."]}, None),
        ({"fail_if_matches_regexp": [r"IN A 192\.0\.2\.11$"]}, r"an answer matches /IN A 192\.0\.2\.11$/"),
        # blackbox_exporter's meaning: every RR must match every pattern
        ({"fail_if_not_matches_regexp": [r"192\.0\.2\.1[01]$", r"\b300\b"]}, None),
        (
            {"fail_if_not_matches_regexp": [r"192\.0\.2\.10$"]},
            r"an answer does not match /192\.0\.2\.10$/: www.example.jp. 300 IN A 192.0.2.11",
        ),
        # the old meaning of fail_if_not_matches_regexp, under blackbox's name for it: no RR matches any pattern
        ({"fail_if_none_matches_regexp": [r"192\.0\.2\.10$"]}, None),
        (
            {"fail_if_none_matches_regexp": [r"192\.0\.2\.99", r"nothing"]},
            r"no answer matches /192\.0\.2\.99/ or /nothing/",
        ),
        (
            {"fail_if_matches_regexp": [r"192\.0\.2\.10"], "fail_if_not_matches_regexp": [r"nothing"]},
            r"an answer matches /192\.0\.2\.10/",
        ),
    ],
)
async def test_validate_answer(peers: Any, rules: dict[str, list[str]], error: str | None) -> None:
    """validate_answer patterns are matched against each answer record's text."""
    server = await peers.dns(answer_a)
    result = await run(server.port, dns_settings(validate_answer=rules))
    assert result.error == error
    assert result.ok is (error is None)


# each verdict as blackbox_exporter 0.23 (Debian) gave it against the same two A records, 192.0.2.10 and .11
BLACKBOX_CASES = [
    ({"fail_if_all_match_regexp": [r"192\.0\.2\."]}, None),  # blackbox's code: fails unless all match
    ({"fail_if_all_match_regexp": [r"192\.0\.2\.10"]}, "not every answer matches"),
    ({"fail_if_all_match_regexp": [r"nothing"]}, "not every answer matches"),
    ({"fail_if_not_matches_regexp": [r"192\.0\.2\.10"]}, "an answer does not match"),
    ({"fail_if_none_matches_regexp": [r"nothing", r"192\.0\.2\.11"]}, None),
    ({"fail_if_not_matches_regexp": ["IN\tA\t192"]}, None),  # blackbox writes RRs with tabs
]


@pytest.mark.parametrize(("rules", "error"), BLACKBOX_CASES)
async def test_validate_answer_rrs_as_blackbox_exporter(
    peers: Any, rules: dict[str, list[str]], error: str | None
) -> None:
    """blackbox_exporter's key, validate_answer_rrs, with blackbox's verdicts."""
    server = await peers.dns(answer_a)
    result = await run(server.port, dns_settings(validate_answer_rrs=rules))
    assert result.ok is (error is None), result.error
    assert (result.error or "").startswith(error or "")


async def test_no_answer_rr_fails_not_matches_and_none_matches(peers: Any) -> None:
    """With no answer RR, blackbox fails fail_if_not_matches_regexp and fail_if_none_matches_regexp."""
    server = await peers.dns(lambda q, t: dns.message.make_response(q))
    for key in ("fail_if_not_matches_regexp", "fail_if_none_matches_regexp"):
        result = await run(server.port, dns_settings(validate_answer={key: ["x"]}))
        assert (result.ok, result.error) == (False, f"no answer RR to match {key}")


async def test_query_name_from_check_overrides_module(peers: Any) -> None:
    """A query_name in the check's params is asked instead of the module's."""
    server = await peers.dns(answer_a)
    result = await run(
        server.port, dns_settings(query_name="module.example.jp"), params={"query_name": "check.example.jp"}
    )
    assert result.ok, result.error
    assert [q.question[0].name.to_text() for _, q in server.queries] == ["check.example.jp."]


async def test_no_query_name_is_a_failure() -> None:
    """Without query_name on the check or the module the probe fails without sending anything."""
    result = await DNSProbe().run(ProbeRequest(LOOPBACK4, None, 9, 1.0), DNSSettings())
    assert result.error == "no query name: set query_name on the check or the module"


async def test_port_from_module_settings(peers: Any) -> None:
    """Without a port on the request, the module's port is used."""
    server = await peers.dns(answer_a)
    async with asyncio.timeout(3):
        result = await DNSProbe().run(ProbeRequest(LOOPBACK4, None, None, 1.0), dns_settings(port=server.port))
    assert result.ok, result.error


async def test_ipv6_server(peers: Any, ipv6_loopback: str) -> None:
    """A DNS server on ::1 is queried over IPv6."""
    server = await peers.dns(answer_a, host=ipv6_loopback)
    result = await run(server.port, dns_settings(), address=ipv6_loopback)
    assert result.ok, result.error


def test_unknown_type_and_rcode_are_config_errors() -> None:
    """An unknown query_type or rcode name is rejected when the settings are validated."""
    with pytest.raises(ValidationError, match="unknown DNS record type"):
        dns_settings(query_type="NOPE")
    with pytest.raises(ValidationError, match="unknown DNS rcode"):
        dns_settings(valid_rcodes=["NOTANRCODE"])


# -------------------------------------------------------------------------------------- transports


async def test_truncated_udp_answer_is_retried_over_tcp(peers: Any) -> None:
    """A UDP answer with TC set is asked again over TCP, and the TCP answer is judged."""

    def truncating(query: dns.message.Message, transport: str) -> dns.message.Message:
        if transport == "udp":
            response = dns.message.make_response(query)
            response.flags |= dns.flags.TC
            return response
        return answer_a(query)

    server = await peers.dns(truncating)
    result = await run(server.port, dns_settings())
    assert result.ok, result.error
    assert result.values[DNS_ANSWERS] == 2
    assert [transport for transport, _ in server.queries] == ["udp", "tcp"]


async def test_tcp_transport(peers: Any) -> None:
    """transport tcp asks over TCP only."""
    server = await peers.dns(answer_a)
    result = await run(server.port, dns_settings(transport="tcp"))
    assert result.ok, result.error
    assert [transport for transport, _ in server.queries] == ["tcp"]


async def test_tcp_connection_refused(refused_port: int) -> None:
    """A closed TCP port fails with 'connection refused'."""
    result = await run(refused_port, dns_settings(transport="tcp"))
    assert result.error == "connection refused"


# -------------------------------------------------------------------------------- broken servers


def _header(query: dns.message.Message, counts: bytes) -> bytes:
    """A response header for `query` (its id, QR+RD+RA, NOERROR) with the given section counts."""
    return query.id.to_bytes(2, "big") + b"\x81\x80" + counts


def _question(query: dns.message.Message) -> bytes:
    return query.question[0].name.to_wire() + b"\x00\x01\x00\x01"


# answers to our query (its id and question) that are broken further on: judged at once by the parser
GARBAGE = {
    "counts lie": lambda q: _header(q, b"\x00\x01\x00\x05\x00\x00\x00\x00") + _question(q),
    "label runs off": lambda q: _header(q, b"\x00\x01\x00\x01\x00\x00\x00\x00") + _question(q) + b"\x3fabc",
    "pointer loop": lambda q: (
        _header(q, b"\x00\x01\x00\x01\x00\x00\x00\x00") + _question(q) + b"\xc0\x20\x00\x01\x00\x01"
    ),
    "bad A rdata": lambda q: (
        dns.message.make_response(q).to_wire()[:4]
        + b"\x00\x01\x00\x01\x00\x00\x00\x00"
        + q.question[0].name.to_wire()
        + b"\x00\x01\x00\x01"
        + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x03\x01\x02\x03"
    ),
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
async def test_garbage_answer_is_a_failure_not_an_exception(peers: Any, kind: str) -> None:
    """A malformed answer is a failed result saying so, not an exception out of the probe."""
    server = await peers.dns(lambda q, t: GARBAGE[kind](q))
    started = time.perf_counter()
    result = await run(server.port, dns_settings(), timeout=0.5)
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("malformed DNS answer: ")
    assert time.perf_counter() - started < 0.4  # judged at once, not by waiting for the timeout


# datagrams that are not the answer to our query: discarded, the wait goes on (RFC 5452); if nothing
# else comes, the reason says what came instead
NOT_OUR_ANSWER = {
    "wrong id": (
        lambda q: ((q.id + 1) % 65536).to_bytes(2, "big") + answer_a(q).to_wire()[2:],
        "timeout: the server only answers with another id (1 datagrams discarded)",
    ),
    "another question": (
        lambda q: q.id.to_bytes(2, "big") + answer_a(dns.message.make_query("other.example.jp", "A")).to_wire()[2:],
        "timeout: the server only answers another question (1 datagrams discarded)",
    ),
    "one byte": (lambda q: b"\x00", "timeout: no answer to our query (1 not DNS responses discarded)"),
    "text": (
        lambda q: b"this is not a DNS message at all",
        "timeout: no answer to our query (1 not DNS responses discarded)",
    ),
}


@pytest.mark.parametrize("kind", sorted(NOT_OUR_ANSWER))
async def test_datagram_that_is_not_our_answer_is_discarded(peers: Any, kind: str) -> None:
    """A wrong-id (or other-question, or non-DNS) datagram alone fails at the deadline with what came."""
    make, error = NOT_OUR_ANSWER[kind]
    server = await peers.dns(lambda q, t: make(q))
    result = await run(server.port, dns_settings(), timeout=0.4)
    assert (result.ok, result.error) == (False, error)


@pytest.mark.parametrize("kind", sorted(NOT_OUR_ANSWER))
async def test_stray_datagram_before_the_real_answer_is_ignored(peers: Any, kind: str) -> None:
    """The issue's case: a datagram that is not our answer arrives first, the real answer after it. The
    check is UP (it was DOWN 28 times out of 28), on the fast path and through dnspython's."""
    make, _ = NOT_OUR_ANSWER[kind]
    for query_type in ("A", "TXT"):  # TXT answers go through dnspython

        def answer(q: dns.message.Message, t: str) -> bytes:
            if q.question[0].rdtype == dns.rdatatype.TXT:
                reply = dns.message.make_response(q)
                reply.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "TXT", '"v=1"'))
                return reply.to_wire()
            return answer_a(q).to_wire()

        server = await peers.dns(lambda q, t: [make(q), answer(q, t)])  # two datagrams, the stray one first
        result = await run(server.port, dns_settings(query_type=query_type), timeout=1.0)
        assert (result.ok, result.error) == (True, None), query_type
        assert result.values[DNS_ANSWERS] == (2.0 if query_type == "A" else 1.0)


@pytest.mark.parametrize("rcode", ["SERVFAIL", "REFUSED", "NOTIMP", "FORMERR"])
async def test_error_answer_without_question_section(peers: Any, rcode: str) -> None:
    """Some servers answer an error without echoing the question (RFC 1035 does not require it; dnspython
    and blackbox_exporter accept it): the verdict is on the rcode, not "malformed"."""
    code = dns.rcode.from_text(rcode)
    server = await peers.dns(lambda q, t: q.id.to_bytes(2, "big") + bytes([0x81, 0x80 | code]) + b"\x00" * 8)
    result = await run(server.port, dns_settings())
    assert (result.ok, result.error) == (False, f"rcode {rcode}, expected NOERROR")
    result = await run(server.port, dns_settings(valid_rcodes=[rcode]))
    assert (result.ok, result.values[DNS_RCODE]) == (True, float(code))


async def test_noerror_answer_without_question_section_is_not_our_answer(peers: Any) -> None:
    """Only error answers may leave out the question: a NOERROR one without it is not our answer."""
    server = await peers.dns(lambda q, t: q.id.to_bytes(2, "big") + b"\x81\x80" + b"\x00" * 8)
    result = await run(server.port, dns_settings(), timeout=0.4)
    assert (result.ok, result.error) == (
        False,
        "timeout: the server only answers without the question section (1 datagrams discarded)",
    )


async def test_trailing_bytes_after_the_answer_are_ignored(peers: Any) -> None:
    """Bytes after the last record are ignored (dnspython's ignore_trailing, blackbox_exporter), on UDP and TCP."""
    server = await peers.dns(lambda q, t: answer_a(q).to_wire() + b"JUNK")
    for transport in ("udp", "tcp"):
        result = await run(server.port, dns_settings(transport=transport, min_answers=2))
        assert (result.ok, result.error) == (True, None), transport


async def test_fuzzed_answers_never_raise(peers: Any) -> None:
    """Randomly corrupted answers (seeded, so repeatable) always give a result, never an exception."""
    rng = random.Random(20240601)
    mutations: list[bytes] = []

    def corrupt(query: dns.message.Message, transport: str) -> bytes:
        wire = bytearray(answer_a(query).to_wire())
        records = 12 + len(_question(query))
        for _ in range(rng.randint(1, 4)):
            # keep the id, flags and question: what is not our answer is discarded, not parsed
            position = rng.choice([rng.randrange(4, 12), rng.randrange(records, len(wire))])
            wire[position] = rng.randrange(256)
        if rng.random() < 0.3:
            del wire[rng.randrange(records, len(wire)) :]
        mutations.append(bytes(wire))
        return bytes(wire)

    server = await peers.dns(corrupt)
    outcomes: dict[str, int] = {}
    async with asyncio.timeout(10):
        for i in range(200):
            transport = "tcp" if i % 2 else "udp"
            try:
                result = await run(server.port, dns_settings(transport=transport), timeout=0.3)
            except Exception as exc:  # the property under test: nothing escapes
                pytest.fail(f"{type(exc).__name__}: {exc} for answer {mutations[-1].hex()}")
            key = "ok" if result.ok else (result.error or "").split(":")[0]
            outcomes[key] = outcomes.get(key, 0) + 1
    assert "malformed DNS answer" in outcomes  # the corruption did reach the parser


# ------------------------------------------------------------------------------------------- hangs


async def test_silent_server_bounded_by_timeout(peers: Any) -> None:
    """A server that never answers costs the request's timeout and gives 'timeout: no DNS answer'."""
    server = await peers.dns(lambda q, t: None)
    started = time.perf_counter()
    result = await run(server.port, dns_settings(), timeout=0.5)
    elapsed = time.perf_counter() - started
    assert result.error == "timeout: no DNS answer"
    assert 0.45 <= elapsed < 0.8
    assert len(server.queries) == 1


async def test_silent_tcp_server_bounded_by_timeout(peers: Any) -> None:
    """Over TCP, a server that accepts the query and never answers is also bounded by the timeout."""
    server = await peers.dns(lambda q, t: None)
    started = time.perf_counter()
    result = await run(server.port, dns_settings(transport="tcp"), timeout=0.5)
    assert result.error == "timeout: no DNS answer"
    assert 0.45 <= time.perf_counter() - started < 0.8


async def test_silent_server_through_runner_does_not_delay_others(peers: Any, check_factory: Any, race: Any) -> None:
    """Through the runner, a silent DNS server costs its timeout while another DNS check completes at once."""
    silent = await peers.dns(lambda q, t: None)
    good = await peers.dns(answer_a)
    hung = check_factory("dns", dns_settings(), port=silent.port, timeout=0.6)
    fast = check_factory("dns", dns_settings(), port=good.port, timeout=0.6, name="fast")
    outcome = await race(hung, fast)
    assert outcome.hung.error in {"timeout: no DNS answer", "timeout after 600ms waiting for the DNS answer"}
    assert outcome.hung.phase == "query"
    assert 0.55 <= outcome.hung_elapsed < 0.9
    assert outcome.fast.ok, outcome.fast.error
    assert outcome.fast_elapsed < 0.3


async def test_wrong_id_only_server_through_runner_says_so(peers: Any, check_factory: Any, runner: Any) -> None:
    """Through the runner (whose timeout fires first) the reason still names what the server sent."""
    wrong = NOT_OUR_ANSWER["wrong id"][0]
    server = await peers.dns(lambda q, t: [wrong(q), wrong(q), wrong(q)])
    result = await runner.run(check_factory("dns", dns_settings(), port=server.port, timeout=0.4))
    assert result.error in {
        "timeout after 400ms waiting for the DNS answer: the server only answers with another id (3 datagrams discarded)",
        "timeout: the server only answers with another id (3 datagrams discarded)",
    }
    assert result.phase == "query"


async def test_flood_of_wrong_ids_gives_up_without_spinning(peers: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that floods wrong-id datagrams is given up on after dns_wire.MAX_DISCARDED (lowered
    here: the kernel's receive buffer would drop most of 1,000 datagrams sent at once), not read until
    the deadline."""
    monkeypatch.setattr(dns_wire, "MAX_DISCARDED", 20)
    wrong = NOT_OUR_ANSWER["wrong id"][0]
    server = await peers.dns(lambda q, t: [wrong(q)] * 40)
    started = time.perf_counter()
    result = await run(server.port, dns_settings(), timeout=2.0)
    assert result.error == "no DNS answer: the server only answers with another id (20 datagrams discarded)"
    assert time.perf_counter() - started < 1.0
