"""NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) export messages into FlowRecords.

State lives per exporter and observation domain (v9's source id, IPFIX's observation domain id), as
both RFCs scope template ids and sequence numbers: templates, the sampling the domain announced in
options data records, and the next sequence number expected. A datagram's outcome says what happened to
everything in it, so the collector can count it; nothing raises out of `decode`.

Sequence numbers differ between the two: v9 counts export packets (RFC 3954 5.1), IPFIX counts data
records sent before this message (RFC 7011 3.1), so a gap is "packets lost" for one and "records lost"
for the other.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.flows import fields as ie
from monitor.flows.records import FlowRecord
from monitor.flows.templates import FieldSpec, SamplingState, Template, TemplateError

V9, IPFIX = 9, 10
V9_HEADER = struct.Struct(">HHIIII")  # version, count, sysUptime (ms), unix secs, sequence, source id
IPFIX_HEADER = struct.Struct(">HHIII")  # version, length, export time, sequence, observation domain
SET_HEADER = struct.Struct(">HH")
MAX_TEMPLATES = 4096  # per domain: a (spoofed) exporter must not grow the cache without bound
MAX_DOMAINS = 256  # per exporter
HALF = 0x80000000


@dataclass(slots=True)
class Outcome:
    """What one datagram held and what became of it."""

    version: int = 0  # 0: not NetFlow v9 / IPFIX at all (undecodable)
    domain: int = 0
    records: list[FlowRecord] = field(default_factory=list)  # decoded flows, for the sinks
    options: int = 0  # options data records read (sampling, system init time)
    not_ip: int = 0  # data records of templates without IP addresses (MPLS, L2): not flows we can judge
    rate_limited: int = 0  # data records not decoded: the exporter was over its rate limit
    missing_template: int = 0  # data sets whose template is unknown or expired: counted, not guessed
    malformed: list[str] = field(default_factory=list)  # reasons, one per malformed set or template
    templates: list[str] = field(default_factory=list)  # learned, refreshed, replaced, withdrawn, expired
    lost: int = 0  # sequence gap: export packets (v9) or data records (IPFIX) missing before this one
    gap: bool = False
    reset: bool = False  # the sequence went backwards: the exporter restarted (or reordering)


class Domain:
    """One observation domain of one exporter."""

    __slots__ = ("next_sequence", "sampling", "templates")

    def __init__(self, sampling: int | None) -> None:
        self.templates: dict[int, tuple[Template, float]] = {}  # id -> (template, last learned or refreshed)
        self.sampling = SamplingState(sampling)
        self.next_sequence: int | None = None


class FlowDecoder:
    def __init__(self, template_timeout: float, sampling: Callable[[str], int | None] | None = None) -> None:
        self.template_timeout = template_timeout
        self.sampling = sampling or _unsampled  # exporter address -> configured 1-in-N (flows.exporters[].sampling)
        self.domains: dict[str, dict[tuple[int, int], Domain]] = {}  # exporter -> (version, domain id) -> state

    # --- state ---------------------------------------------------------------------------------

    def _domain(self, exporter: str, version: int, domain_id: int) -> Domain | None:
        domains = self.domains.get(exporter)
        if domains is None:
            domains = self.domains[exporter] = {}
        domain = domains.get((version, domain_id))
        if domain is None:
            if len(domains) >= MAX_DOMAINS:
                return None
            domain = domains[(version, domain_id)] = Domain(self.sampling(exporter))
        return domain

    def template_count(self, exporter: str) -> int:
        return sum(len(d.templates) for d in self.domains.get(exporter, {}).values())

    def expire(self, now: float) -> dict[str, int]:
        """Forget templates not refreshed within the timeout; returns how many each exporter lost."""
        expired: dict[str, int] = {}
        for exporter, domains in self.domains.items():
            for domain in domains.values():
                stale = [i for i, (_t, seen) in domain.templates.items() if now - seen > self.template_timeout]
                for template_id in stale:
                    del domain.templates[template_id]
                if stale:
                    expired[exporter] = expired.get(exporter, 0) + len(stale)
        return expired

    def forget(self, exporter: str) -> None:
        self.domains.pop(exporter, None)

    # --- messages ------------------------------------------------------------------------------

    def decode(self, data: bytes, exporter: str, now: float, decode_data: bool = True) -> Outcome:
        """One datagram from `exporter`, received at `now` (epoch seconds: template ages). With
        `decode_data` False (over the rate limit) templates and options are still learned, as losing
        them would make the exporter's next minutes of data undecodable, but flows are only counted."""
        outcome = Outcome()
        if len(data) < 2:
            return outcome
        version = int.from_bytes(data[:2], "big")
        if version == V9 and len(data) >= V9_HEADER.size:
            _v, _count, uptime, secs, sequence, domain_id = V9_HEADER.unpack_from(data)
            start, end, export_time = V9_HEADER.size, len(data), float(secs)
        elif version == IPFIX and len(data) >= IPFIX_HEADER.size:
            _v, length, secs, sequence, domain_id = IPFIX_HEADER.unpack_from(data)
            if length < IPFIX_HEADER.size:
                return outcome
            if length > len(data):
                outcome.malformed.append("truncated_message")
            start, end, export_time, uptime = IPFIX_HEADER.size, min(length, len(data)), float(secs), 0
        else:
            return outcome
        outcome.version, outcome.domain = version, domain_id
        domain = self._domain(exporter, version, domain_id)
        if domain is None:
            outcome.malformed.append("too_many_domains")
            return outcome
        self._check_sequence(domain, sequence, outcome)
        counted = self._sets(
            data, start, end, version, exporter, domain, export_time, uptime, now, decode_data, outcome
        )
        if version == V9:
            domain.next_sequence = (sequence + 1) & 0xFFFFFFFF
        else:  # the next message's sequence: this one's plus its data records, when all of them were counted
            domain.next_sequence = None if counted is None else (sequence + counted) & 0xFFFFFFFF
        return outcome

    @staticmethod
    def _check_sequence(domain: Domain, sequence: int, outcome: Outcome) -> None:
        expected = domain.next_sequence
        if expected is None or sequence == expected:
            return
        ahead = (sequence - expected) & 0xFFFFFFFF
        if ahead < HALF:
            outcome.gap, outcome.lost = True, ahead
        else:
            outcome.reset = True

    def _sets(
        self,
        data: bytes,
        offset: int,
        end: int,
        version: int,
        exporter: str,
        domain: Domain,
        export_time: float,
        uptime: int,
        now: float,
        decode_data: bool,
        outcome: Outcome,
    ) -> int | None:
        """Every set of the message; returns the number of data records in it (None if a set's count
        could not be known: its template was missing)."""
        counted: int | None = 0
        template_set, options_set = (0, 1) if version == V9 else (2, 3)
        while end - offset >= SET_HEADER.size:
            set_id, length = SET_HEADER.unpack_from(data, offset)
            if length < SET_HEADER.size:  # cannot step over it: the rest of the message is lost
                outcome.malformed.append("bad_set_length")
                break
            if offset + length > end:
                outcome.malformed.append("truncated_set")
                length = end - offset  # the complete records before the cut are still read
            body = data[offset + SET_HEADER.size : offset + length]
            offset += length
            if set_id == template_set:
                self._templates(body, version, exporter, domain, now, False, outcome)
            elif set_id == options_set:
                self._templates(body, version, exporter, domain, now, True, outcome)
            elif set_id < 256:
                outcome.malformed.append("reserved_set")
            else:
                n = self._data(body, set_id, domain, export_time, uptime, now, decode_data, outcome)
                counted = None if n is None or counted is None else counted + n
        if end - offset > 0 and any(data[offset:end]):  # not a set header, and not padding either
            outcome.malformed.append("trailing_bytes")
        return counted

    def _data(
        self,
        body: bytes,
        set_id: int,
        domain: Domain,
        export_time: float,
        uptime: int,
        now: float,
        decode_data: bool,
        outcome: Outcome,
    ) -> int | None:
        entry = domain.templates.get(set_id)
        if entry is not None and now - entry[1] > self.template_timeout:
            del domain.templates[set_id]  # expired since the last sweep: not to be used any more
            outcome.templates.append("expired")
            entry = None
        if entry is None:
            outcome.missing_template += 1
            return None
        template = entry[0]
        if template.options:
            values, truncated = template.option_values(body)
            if truncated:
                outcome.malformed.append("truncated_record")
            for record in values:
                _learn_sampling(domain.sampling, record)
            outcome.options += len(values)
            return len(values)
        if not template.ip or not decode_data:
            rows, truncated = template.rows(body)
            if truncated:
                outcome.malformed.append("truncated_record")
            if template.ip:
                outcome.rate_limited += len(rows)
            else:
                outcome.not_ip += len(rows)
            return len(rows)
        records, truncated = template.decode(body, export_time, uptime, domain.sampling)
        if truncated:  # the complete records before the cut are kept
            outcome.malformed.append("truncated_record")
        outcome.records.extend(records)
        return len(records)

    def _templates(
        self,
        body: bytes,
        version: int,
        exporter: str,
        domain: Domain,
        now: float,
        options: bool,
        outcome: Outcome,
    ) -> None:
        """A (options) template set: each record learned, refreshed, replaced or (IPFIX) withdrawn."""
        offset, end = 0, len(body)
        while end - offset >= 4:
            template_id, count = struct.unpack_from(">HH", body, offset)
            record_start = offset
            known = domain.templates.get(template_id)
            if known is not None and count:
                definition = known[0].definition
                if body[offset : offset + len(definition)] == definition:
                    # a refresh, compared as bytes (exporters re-send templates every few packets): the
                    # compiled decoder is kept and nothing is parsed again
                    domain.templates[template_id] = (known[0], now)
                    outcome.templates.append("refreshed")
                    offset += len(definition)
                    continue
            scope_count = 0
            if options and (count or version == V9) and end - offset < 6:
                if any(body[offset:end]):
                    outcome.malformed.append("truncated_template")
                return
            if options and version == V9:  # template id, scope length and option length, in bytes
                scope_bytes, option_bytes = count, struct.unpack_from(">H", body, offset + 4)[0]
                if scope_bytes % 4 or option_bytes % 4:
                    outcome.malformed.append("invalid_template")
                    return  # the lengths are all there is to find the next record by
                scope_count, count = scope_bytes // 4, (scope_bytes + option_bytes) // 4
                offset += 6
            elif options:
                scope_count = struct.unpack_from(">H", body, offset + 4)[0]
                offset += 6 if count else 4  # a withdrawal has no scope field count (RFC 7011 8.1)
            else:
                offset += 4
            if count == 0:
                if version == V9:  # v9 has no withdrawal; zero fields is a template of nothing
                    if template_id == 0 and not any(body[offset - (6 if options else 4) : end]):
                        return  # padding at the end of the set
                    outcome.malformed.append("invalid_template")
                    continue
                self._withdraw(domain, template_id, options, outcome)
                continue
            specs: list[FieldSpec] = []
            for _ in range(count):
                if end - offset < 4:
                    outcome.malformed.append("truncated_template")
                    return
                number, length = struct.unpack_from(">HH", body, offset)
                offset += 4
                enterprise = 0
                if version == IPFIX and number & ie.ENTERPRISE_BIT:
                    if end - offset < 4:
                        outcome.malformed.append("truncated_template")
                        return
                    enterprise = int.from_bytes(body[offset : offset + 4], "big")
                    number &= ~ie.ENTERPRISE_BIT
                    offset += 4
                if version == V9 and length == ie.VARIABLE:  # v9 has no variable-length fields
                    length = -1
                specs.append(FieldSpec(number, length, enterprise))
            if (
                template_id < 256
                or any(s.length < 0 for s in specs)
                or (options and version == IPFIX and not 0 < scope_count <= count)
            ):
                outcome.malformed.append("invalid_template")
                continue
            try:
                template = Template(
                    template_id, specs, version=version, exporter=exporter, domain=outcome.domain,
                    options=options, scope_count=scope_count,
                )  # fmt: skip
            except TemplateError as exc:
                outcome.malformed.append(exc.reason)
                domain.templates.pop(template_id, None)  # the old layout no longer describes this id's data
                continue
            template.definition = bytes(body[record_start:offset])
            self._learn(domain, template, now, outcome)

    @staticmethod
    def _learn(domain: Domain, template: Template, now: float, outcome: Outcome) -> None:
        old = domain.templates.get(template.id)
        if old is not None and old[0].same_as(template):
            domain.templates[template.id] = (old[0], now)  # the compiled decoder is kept
            outcome.templates.append("refreshed")
            return
        if old is None and len(domain.templates) >= MAX_TEMPLATES:
            outcome.malformed.append("too_many_templates")
            return
        domain.templates[template.id] = (template, now)
        outcome.templates.append("learned" if old is None else "replaced")

    @staticmethod
    def _withdraw(domain: Domain, template_id: int, options: bool, outcome: Outcome) -> None:
        """RFC 7011 8.1: a template record of no fields withdraws its id; id 2 (3) withdraws every
        (options) template of the domain."""
        if template_id == (3 if options else 2):
            ids = [i for i, (t, _seen) in domain.templates.items() if t.options == options]
        elif template_id >= 256 and template_id in domain.templates:
            ids = [template_id]
        else:
            ids = []
            if template_id < 256:
                outcome.malformed.append("invalid_template")
        for i in ids:
            del domain.templates[i]
            outcome.templates.append("withdrawn")


def _unsampled(exporter: str) -> int | None:
    return None


def _learn_sampling(state: SamplingState, values: dict[int, int]) -> None:
    """An options data record: the sampling interval of a sampler (by id) or of the whole domain, and the
    exporter's system init time. Intervals of 0 mean "not sampled" in some exporters: read as 1."""
    sampler = values.get(ie.FLOW_SAMPLER_ID, values.get(ie.SELECTOR_ID))
    interval: int | None = None
    if ie.FLOW_SAMPLER_RANDOM_INTERVAL in values:
        interval = values[ie.FLOW_SAMPLER_RANDOM_INTERVAL]
    elif ie.SAMPLING_INTERVAL in values:
        interval = values[ie.SAMPLING_INTERVAL]
    elif ie.SAMPLING_PACKET_INTERVAL in values:
        selected = values[ie.SAMPLING_PACKET_INTERVAL]
        space = values.get(ie.SAMPLING_PACKET_SPACE)
        if space is None:  # the interval alone: exporters that use it as 1-in-N
            interval = selected
        elif selected:
            interval = max(1, round((selected + space) / selected))
    if interval is not None:
        interval = max(1, interval)
        if sampler is not None:
            state.samplers[sampler] = interval
        else:
            state.interval = interval
    if ie.SYSTEM_INIT_MILLISECONDS in values:
        state.system_init = values[ie.SYSTEM_INIT_MILLISECONDS]
