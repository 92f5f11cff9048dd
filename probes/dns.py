"""DNS probe: ask a server for a name and type; check the rcode, the answers and the time taken.

The target is the DNS server; the name comes from the check (``query_name``) or the module. A
truncated UDP answer is retried over TCP. A malformed answer is a failure with its reason, not a
crash; a server that never answers costs the runner's timeout. A UDP datagram that is not the answer
(another id or question) is discarded and the wait goes on (dns_wire); bytes after the last record
are ignored on every path, as blackbox_exporter does.

`validate_answer` (also spelt `validate_answer_rrs`, blackbox_exporter's name) keeps blackbox's
meaning for blackbox's keys: `fail_if_matches_regexp` fails when any answer RR matches any pattern,
`fail_if_not_matches_regexp` when any RR does not match a pattern (or there is no RR),
`fail_if_none_matches_regexp` when no RR matches any pattern (or there is no RR), and
`fail_if_all_match_regexp` as blackbox's code does it: when not every RR matches every pattern.
"""

from __future__ import annotations

import asyncio
import re
from functools import cached_property
from typing import Literal

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
from pydantic import AliasChoices, Field, field_validator

from probes import base, dns_wire
from probes.base import Family, Measure, PhaseTimer, ProbeRequest, ProbeResult, ProbeSettings, Regex
from probes.net import IPProtocol, ResolveError, resolve

ANSWERS = Measure("monitor_dns_answer_rrs", "Answer records in the last DNS response.", "dns_answer_rrs")
RCODE = Measure("monitor_dns_rcode", "Rcode of the last DNS response (0 is NOERROR).", "dns_rcode")


class AnswerRules(ProbeSettings):
    """blackbox_exporter's validate_answer_rrs, with its semantics (probes/dns.py docstring)."""

    fail_if_matches_regexp: list[Regex] = []  # any RR matches any pattern -> fail
    fail_if_not_matches_regexp: list[Regex] = []  # any RR does not match a pattern, or no RR -> fail
    fail_if_none_matches_regexp: list[Regex] = []  # no RR matches any pattern, or no RR -> fail
    fail_if_all_match_regexp: list[Regex] = []  # blackbox's code: not every RR matches every pattern -> fail

    @cached_property
    def active(self) -> bool:
        """Whether any pattern is set (checked per probe: the common module has none)."""
        return bool(
            self.fail_if_matches_regexp
            or self.fail_if_not_matches_regexp
            or self.fail_if_none_matches_regexp
            or self.fail_if_all_match_regexp
        )

    def violation(self, answers: list[str]) -> str | None:
        """Why these answer RRs fail the rules, or None. A pattern matches an RR written either way:
        as dnspython writes it ("name. 300 IN A 192.0.2.1", what `info` shows) or as blackbox_exporter
        (miekg/dns) does, with tabs between the fields: a ported pattern with \\t keeps working."""
        if not self.active:
            return None
        forms = [(line, "\t".join(line.split(" ", 4))) for line in answers]

        def hit(pattern: str, form: tuple[str, str]) -> bool:
            return re.search(pattern, form[0]) is not None or re.search(pattern, form[1]) is not None

        for pattern in self.fail_if_matches_regexp:
            if any(hit(pattern, form) for form in forms):
                return f"an answer matches /{pattern}/"
        if self.fail_if_not_matches_regexp:
            if not answers:
                return "no answer RR to match fail_if_not_matches_regexp"
            for pattern in self.fail_if_not_matches_regexp:
                for form in forms:
                    if not hit(pattern, form):
                        return f"an answer does not match /{pattern}/: {form[0][:120]}"
        if self.fail_if_none_matches_regexp:
            if not answers:
                return "no answer RR to match fail_if_none_matches_regexp"
            patterns = self.fail_if_none_matches_regexp
            if not any(hit(pattern, form) for pattern in patterns for form in forms):
                return "no answer matches " + " or ".join(f"/{p}/" for p in patterns)
        for pattern in self.fail_if_all_match_regexp:
            for form in forms:
                if not hit(pattern, form):
                    return f"not every answer matches /{pattern}/ (fail_if_all_match_regexp): {form[0][:120]}"
        return None


class DNSSettings(ProbeSettings):
    query_name: str | None = None  # default for checks that do not name one
    query_type: str = "A"
    transport: Literal["udp", "tcp"] = "udp"
    port: int = Field(default=53, ge=1, le=65535)
    recursion_desired: bool = True
    valid_rcodes: list[str] = ["NOERROR"]
    min_answers: int = Field(default=0, ge=0)
    validate_answer: AnswerRules = Field(
        default=AnswerRules(), validation_alias=AliasChoices("validate_answer", "validate_answer_rrs")
    )
    ip_protocol: IPProtocol = "auto"

    @field_validator("query_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        try:
            dns.rdatatype.from_text(value)
        except dns.rdatatype.UnknownRdatatype as exc:
            raise ValueError(f"unknown DNS record type {value!r}") from exc
        return value.upper()

    @field_validator("valid_rcodes")
    @classmethod
    def _known_rcodes(cls, value: list[str]) -> list[str]:
        for code in value:
            try:
                dns.rcode.from_text(code)
            except dns.rcode.UnknownRcode as exc:
                raise ValueError(f"unknown DNS rcode {code!r}") from exc
        return [code.upper() for code in value]


class DNSProbe:
    name = "dns"
    settings_model = DNSSettings
    measures: tuple[Measure, ...] = (ANSWERS, RCODE)
    series: tuple[Family, ...] = ()
    phases: tuple[str, ...] = ("resolve", "query")
    polls_agent = False

    async def run(self, request: ProbeRequest, settings: DNSSettings) -> ProbeResult:
        name = request.params.get("query_name") or settings.query_name
        if not name:
            return ProbeResult.failure("no query name: set query_name on the check or the module")
        progress = request.progress
        timer = PhaseTimer(progress)
        progress.enter("resolve", f"while resolving {request.address}")
        try:
            server = await resolve(request.address, settings.ip_protocol)
        except ResolveError as exc:
            return ProbeResult.failure(str(exc))
        timer.mark("resolve")
        port = request.port or settings.port
        discarded = dns_wire.Discarded()

        def waiting() -> str:
            why = discarded.describe()
            return "waiting for the DNS answer" + (f": {why}" if why else "")

        try:
            if settings.transport == "udp":
                progress.enter("query", waiting)
                async with asyncio.timeout(request.timeout):
                    result = await self._udp(str(name), server, port, settings, timer, discarded)
                if result is not None:
                    return result
            progress.enter("query over tcp", "waiting for the DNS answer over TCP")
            query = dns.message.make_query(str(name), settings.query_type, dns.rdataclass.IN)
            if not settings.recursion_desired:
                query.flags &= ~dns.flags.RD
            response = await dns.asyncquery.tcp(query, server, timeout=request.timeout, port=port, ignore_trailing=True)
        except (dns.exception.Timeout, TimeoutError):
            why = discarded.describe()
            return ProbeResult.failure(f"timeout: {why}" if why else "timeout: no DNS answer", phases=timer.phases)
        except dns_wire.TooManyDiscarded as exc:
            return ProbeResult.failure(f"no DNS answer: {exc}", phases=timer.phases)
        except dns.exception.DNSException as exc:
            return ProbeResult.failure(f"malformed DNS answer: {exc}", phases=timer.phases)
        except OSError as exc:
            return ProbeResult.failure(base.describe_os_error(exc), phases=timer.phases)
        timer.mark("query")
        return self._judge(response, settings, ProbeResult(ok=True, phases=timer.phases))

    async def _udp(
        self,
        name: str,
        server: str,
        port: int,
        settings: DNSSettings,
        timer: PhaseTimer,
        discarded: dns_wire.Discarded,
    ) -> ProbeResult | None:
        """The query over UDP: a result, or None when the answer is truncated (ask again over TCP)."""
        query = dns_wire.query_template(name, settings.query_type, settings.recursion_desired)
        qid, data = await dns_wire.exchange(query, server, port, discarded)
        try:
            answer = dns_wire.parse(data, qid, query)
        except dns_wire.Malformed as exc:
            return ProbeResult.failure(f"malformed DNS answer: {exc}", phases=timer.phases)
        except dns_wire.Unusual:  # record types the fast parser does not write out: dnspython's turn
            response = dns.message.from_wire(data, ignore_trailing=True)
            timer.mark("query")
            return self._judge(response, settings, ProbeResult(ok=True, phases=timer.phases))
        if answer.truncated:
            return None
        timer.mark("query")
        return self._check(answer.rcode, answer.answers, settings, ProbeResult(ok=True, phases=timer.phases))

    def _judge(self, response: dns.message.Message, settings: DNSSettings, result: ProbeResult) -> ProbeResult:
        answers = [line for rrset in response.answer for line in rrset.to_text().splitlines()]
        return self._check(response.rcode(), answers, settings, result)

    def _check(self, code: int, answers: list[str], settings: DNSSettings, result: ProbeResult) -> ProbeResult:
        rcode = dns.rcode.to_text(dns.rcode.Rcode.make(code))
        result.values[RCODE.key] = float(code)
        result.values[ANSWERS.key] = float(len(answers))
        result.info["rcode"] = rcode
        if answers:
            result.info["answers"] = "; ".join(answers)[:500]
        if rcode not in settings.valid_rcodes:
            result.ok, result.error = False, f"rcode {rcode}, expected {'/'.join(settings.valid_rcodes)}"
        elif len(answers) < settings.min_answers:
            result.ok, result.error = (
                False,
                f"{len(answers)} answers, expected at least {settings.min_answers}",
            )
        elif settings.validate_answer.active:
            why = settings.validate_answer.violation(answers)
            if why is not None:
                result.ok, result.error = False, why
        return result
