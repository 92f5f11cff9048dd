"""DNS probe: ask a server for a name and type; check the rcode, the answers and the time taken.

The target is the DNS server; the name comes from the check (``query_name``) or the module. A
truncated UDP answer is retried over TCP. A malformed answer is a failure with its reason, not a
crash; a server that never answers costs the runner's timeout.
"""

from __future__ import annotations

import asyncio
import re
from typing import Literal

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
from pydantic import Field, field_validator

from probes import base, dns_wire
from probes.base import PhaseTimer, ProbeRequest, ProbeResult, ProbeSettings, Regex
from probes.net import IPProtocol, ResolveError, resolve


class AnswerRules(ProbeSettings):
    fail_if_matches_regexp: list[Regex] = []  # any answer RR matching -> fail
    fail_if_not_matches_regexp: list[Regex] = []  # a pattern no answer RR matches -> fail


class DNSSettings(ProbeSettings):
    query_name: str | None = None  # default for checks that do not name one
    query_type: str = "A"
    transport: Literal["udp", "tcp"] = "udp"
    port: int = Field(default=53, ge=1, le=65535)
    recursion_desired: bool = True
    valid_rcodes: list[str] = ["NOERROR"]
    min_answers: int = Field(default=0, ge=0)
    validate_answer: AnswerRules = AnswerRules()
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

    async def run(self, request: ProbeRequest, settings: DNSSettings) -> ProbeResult:
        name = request.params.get("query_name") or settings.query_name
        if not name:
            return ProbeResult.failure("no query name: set query_name on the check or the module")
        timer = PhaseTimer()
        try:
            server = await resolve(request.address, settings.ip_protocol)
        except ResolveError as exc:
            return ProbeResult.failure(str(exc))
        timer.mark("resolve")
        port = request.port or settings.port
        try:
            if settings.transport == "udp":
                async with asyncio.timeout(request.timeout):
                    result = await self._udp(str(name), server, port, settings, timer)
                if result is not None:
                    return result
            query = dns.message.make_query(str(name), settings.query_type, dns.rdataclass.IN)
            if not settings.recursion_desired:
                query.flags &= ~dns.flags.RD
            response = await dns.asyncquery.tcp(query, server, timeout=request.timeout, port=port)
        except (dns.exception.Timeout, TimeoutError):
            return ProbeResult.failure("timeout: no DNS answer", phases=timer.phases)
        except dns.exception.DNSException as exc:
            return ProbeResult.failure(f"malformed DNS answer: {exc}", phases=timer.phases)
        except OSError as exc:
            return ProbeResult.failure(base.describe_os_error(exc), phases=timer.phases)
        timer.mark("query")
        return self._judge(response, settings, ProbeResult(ok=True, phases=timer.phases))

    async def _udp(
        self, name: str, server: str, port: int, settings: DNSSettings, timer: PhaseTimer
    ) -> ProbeResult | None:
        """The query over UDP: a result, or None when the answer is truncated (ask again over TCP)."""
        query = dns_wire.query_template(name, settings.query_type, settings.recursion_desired)
        qid, data = await dns_wire.exchange(query, server, port)
        try:
            answer = dns_wire.parse(data, qid, query)
        except dns_wire.Malformed as exc:
            return ProbeResult.failure(f"malformed DNS answer: {exc}", phases=timer.phases)
        except dns_wire.Unusual:  # record types the fast parser does not write out: dnspython's turn
            response = dns.message.from_wire(data)
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
        result.values[base.DNS_RCODE] = float(code)
        result.values[base.DNS_ANSWERS] = float(len(answers))
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
        else:
            for pattern in settings.validate_answer.fail_if_matches_regexp:
                if any(re.search(pattern, line) for line in answers):
                    result.ok, result.error = False, f"an answer matches /{pattern}/"
                    break
            for pattern in settings.validate_answer.fail_if_not_matches_regexp:
                if result.ok and not any(re.search(pattern, line) for line in answers):
                    result.ok, result.error = False, f"no answer matches /{pattern}/"
        return result
