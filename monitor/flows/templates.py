"""Templates (RFC 3954 5.2 / RFC 7011 3.4), each compiled once into the decoder of its data records.

A data set is decoded at the speed of `struct.iter_unpack` plus one `FlowRecord` per record: when a
template is learned its fields become one struct format (the fields we do not read become pad bytes) and
the loop that turns the unpacked tuples into records is generated for exactly that layout, so the
per-record work has no branches on field types. Templates with variable-length fields (IPFIX, RFC 7011
7) are walked field by field into the same tuples and share the generated loop.

A template that cannot describe records (zero length, an address that is not 4 or 16 bytes, an integer
wider than 8 bytes) raises TemplateError: its data is then counted as missing its template, never guessed.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from monitor.flows import fields as ie
from monitor.flows.records import FlowRecord

NTP_EPOCH = 2208988800  # seconds from 1900 (NTP's era 0) to 1970
_INT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


class TemplateError(ValueError):
    """A template whose records could not be decoded: `reason` is the metric's label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FieldSpec:
    type: int  # information element number (the enterprise bit removed)
    length: int  # bytes, or fields.VARIABLE
    enterprise: int = 0  # 0: IANA's; others are skipped

    @property
    def variable(self) -> bool:
        return self.length == ie.VARIABLE


# What a FlowRecord's attribute is read from: information elements in order of preference (the first
# present in the template wins; a template naming one twice is read at its first occurrence).
_ROLES: dict[str, tuple[int, ...]] = {
    "src4": (ie.SRC_V4,),
    "dst4": (ie.DST_V4,),
    "src6": (ie.SRC_V6,),
    "dst6": (ie.DST_V6,),
    "protocol": (ie.PROTOCOL,),
    "src_port": (ie.SRC_PORT,),
    "dst_port": (ie.DST_PORT, ie.ICMP_TYPE_CODE_V4, ie.ICMP_TYPE_CODE_V6),
    "octets": (ie.OCTET_DELTA, ie.OCTET_TOTAL, ie.OUT_OCTETS),
    "packets": (ie.PACKET_DELTA, ie.PACKET_TOTAL, ie.OUT_PACKETS),
    "tcp_flags": (ie.TCP_FLAGS,),
    "input_if": (ie.INPUT_IF,),
    "output_if": (ie.OUTPUT_IF,),
    "sampler": (ie.FLOW_SAMPLER_ID, ie.SELECTOR_ID),
    "interval": (ie.SAMPLING_INTERVAL,),
    "system_init": (ie.SYSTEM_INIT_MILLISECONDS,),
    "start": (ie.START_MILLISECONDS, ie.START_SECONDS, ie.START_MICROSECONDS, ie.START_NANOSECONDS,
              ie.START_DELTA_MICROSECONDS, ie.FIRST_UPTIME),
    "end": (ie.END_MILLISECONDS, ie.END_SECONDS, ie.END_MICROSECONDS, ie.END_NANOSECONDS,
            ie.END_DELTA_MICROSECONDS, ie.LAST_UPTIME),
}  # fmt: skip
_ADDRESS_LENGTH = {"src4": 4, "dst4": 4, "src6": 16, "dst6": 16}


class SamplingState:
    """What one observation domain announced about its sampling (options data records), which the
    data records of every template of that domain are scaled by."""

    __slots__ = ("configured", "interval", "samplers", "system_init")

    def __init__(self, configured: int | None = None) -> None:
        self.configured = configured  # flows.exporters[].sampling: for exporters that never announce it
        self.interval: int | None = None  # announced without a sampler id: the domain's own rate
        self.samplers: dict[int, int] = {}  # sampler / selector id -> 1-in-N
        self.system_init: int | None = None  # systemInitTimeMilliseconds, for IPFIX sysUpTime fields

    def rate(self) -> int:
        return self.interval or self.configured or 1

    def sampler_rate(self, sampler: int) -> int:
        return self.samplers.get(sampler) or self.rate()


# body, export time (epoch s), the v9 header's sysUptime (ms; 0 for IPFIX), the domain's sampling
# -> the records, and True when the set ended inside a record (the complete ones before it are kept)
Decode = Callable[[bytes, float, int, SamplingState], tuple[list[FlowRecord], bool]]


def _v4(value: int) -> IPv4Address:
    return IPv4Address(value)


def _v6(value: bytes) -> IPv6Address:
    return IPv6Address(value)


def _uint(value: bytes) -> int:
    return int.from_bytes(value, "big")


def _ntp(value: int) -> float:
    return (value >> 32) - NTP_EPOCH + (value & 0xFFFFFFFF) / 4294967296.0


def _v9_uptime(export_time: float, uptime: int, value: int) -> float:
    """A v9 FIRST/LAST_SWITCHED (ms of sysUptime) as epoch seconds. Differences are taken modulo 2^32
    (uptime wraps after 49.7 days); a value slightly after the header's uptime (exporters round) is read
    as after it, not as 49 days before."""
    delta = (uptime - value) & 0xFFFFFFFF
    if delta >= 0x80000000:
        delta -= 0x100000000
    return export_time - delta / 1000.0


def _ipfix_uptime(system_init: int | None, export_time: float, value: int) -> float:
    if system_init is None:  # no systemInitTimeMilliseconds announced: the export time is the best bound
        return export_time
    return (system_init + value) / 1000.0


_TIME_EXPR = {
    ie.START_MILLISECONDS: "t[{k}] / 1000.0",
    ie.END_MILLISECONDS: "t[{k}] / 1000.0",
    ie.START_SECONDS: "float(t[{k}])",
    ie.END_SECONDS: "float(t[{k}])",
    ie.START_MICROSECONDS: "_ntp(t[{k}])",
    ie.END_MICROSECONDS: "_ntp(t[{k}])",
    ie.START_NANOSECONDS: "_ntp(t[{k}])",
    ie.END_NANOSECONDS: "_ntp(t[{k}])",
    ie.START_DELTA_MICROSECONDS: "export_time - t[{k}] / 1e6",
    ie.END_DELTA_MICROSECONDS: "export_time - t[{k}] / 1e6",
}


@dataclass(slots=True)
class _Column:
    index: int  # position in the unpacked tuple
    kind: str  # "u": int from struct, "b": int from bytes, "v4": int -> IPv4Address, "v6": bytes -> IPv6Address
    field: FieldSpec
    position: int  # of the field in the template


class Template:
    """One template (data or options) of one observation domain, with its compiled record decoder."""

    __slots__ = (
        "columns", "decode", "definition", "fields", "id", "ip", "min_length", "options", "record_length",
        "scope_count", "struct", "version",
    )  # fmt: skip

    def __init__(
        self,
        template_id: int,
        specs: Sequence[FieldSpec],
        *,
        version: int,
        exporter: str,
        domain: int,
        options: bool = False,
        scope_count: int = 0,
    ) -> None:
        self.id = template_id
        self.version = version
        self.definition = b""  # the template record as sent: a refresh is recognised by comparing bytes
        self.fields = tuple(specs)
        self.options = options  # an options template: its records describe the exporter (sampling), not flows
        self.scope_count = scope_count  # its first scope_count fields are scopes
        self.record_length: int | None = None  # None: variable-length fields, records are walked
        self.min_length = sum(1 if f.variable else f.length for f in self.fields)
        if self.min_length == 0:  # records of no bytes: a set of them would never end
            raise TemplateError("invalid_template", f"template {template_id} describes records of zero length")
        self.columns: dict[str, _Column] = {}
        self.struct: struct.Struct | None = None
        self._layout(version)
        self.ip = any(role in self.columns for role in ("src4", "src6")) and any(
            role in self.columns for role in ("dst4", "dst6")
        )
        self.decode: Decode = self._compile(version, exporter, domain) if self.ip and not options else _nothing

    def same_as(self, other: Template) -> bool:
        return self.fields == other.fields and self.options == other.options and self.scope_count == other.scope_count

    # --- layout --------------------------------------------------------------------------------

    def _layout(self, version: int) -> None:
        """Which field each role is read from, and the struct format of a fixed-length record."""
        wanted: dict[int, str] = {}
        for role, numbers in _ROLES.items():
            for number in reversed(numbers):  # the most preferred last: it overwrites
                wanted[number] = role
        taken: dict[str, tuple[int, FieldSpec]] = {}  # role -> (preference rank, field)
        # in an options template of NetFlow v9 the scope fields are scope types (1 System, 2 Interface...),
        # not field types: they must not be read as IN_BYTES, IN_PKTS...
        skip_scopes = self.scope_count if version == 9 else 0
        chosen: dict[int, str] = {}  # field position -> role
        for position, spec in enumerate(self.fields):
            if position < skip_scopes or spec.enterprise or spec.length == 0:
                continue
            found = wanted.get(spec.type)
            if found is None:
                continue
            rank = _ROLES[found].index(spec.type)
            if found in taken and taken[found][0] <= rank:
                continue  # an earlier occurrence, or a more preferred element, is already read
            taken[found] = (rank, spec)
            chosen = {p: r for p, r in chosen.items() if r != found}
            chosen[position] = found
        codes = [">"]
        index = 0
        fixed = not any(f.variable for f in self.fields)
        for position, spec in enumerate(self.fields):
            assigned = chosen.get(position)
            if assigned is None:
                if fixed and spec.length:
                    codes.append(f"{spec.length}x")
                continue
            kind = self._kind(assigned, spec)
            if fixed:
                codes.append(
                    {"u": _INT_CODES.get(spec.length, ""), "v4": "I", "v6": "16s", "b": f"{spec.length}s"}[kind]
                )
            self.columns[assigned] = _Column(index, kind, spec, position)
            index += 1
        if fixed:
            self.struct = struct.Struct("".join(codes))
            self.record_length = self.struct.size

    def _kind(self, role: str, spec: FieldSpec) -> str:
        if role in _ADDRESS_LENGTH:
            if spec.length != _ADDRESS_LENGTH[role]:
                raise TemplateError(
                    "invalid_template",
                    f"template {self.id}: field {spec.type} (an address) is {spec.length} bytes, "
                    f"not {_ADDRESS_LENGTH[role]}",
                )
            return "v4" if _ADDRESS_LENGTH[role] == 4 else "v6"
        if spec.variable:
            return "b"
        if spec.length > 8:
            raise TemplateError(
                "invalid_template",
                f"template {self.id}: field {spec.type} is {spec.length} bytes, too long for its integer",
            )
        return "u" if spec.length in _INT_CODES else "b"  # reduced-size encoding (RFC 7011 6.2): 3, 5, 6, 7 bytes

    # --- decoding ------------------------------------------------------------------------------

    def rows(self, body: bytes) -> tuple[list[tuple[Any, ...]], bool]:
        """The records of a data set as tuples of the columns; True when the set ended inside a record
        (a truncated set: the complete records before it are kept). Trailing bytes shorter than a
        record are padding (RFC 3954 5.3, RFC 7011 3.3.1)."""
        if self.struct is not None:
            size = self.struct.size
            usable = len(body) - len(body) % size
            return list(self.struct.iter_unpack(memoryview(body)[:usable])), False
        return self._walk(body)

    def _walk(self, body: bytes) -> tuple[list[tuple[Any, ...]], bool]:
        by_position = {column.position: column for column in self.columns.values()}
        positions = [by_position.get(p) for p in range(len(self.fields))]
        out: list[tuple[Any, ...]] = []
        offset, end = 0, len(body)
        width = len(self.columns)
        while end - offset >= self.min_length:
            values: list[Any] = [0] * width
            for spec, column in zip(self.fields, positions, strict=True):
                length = spec.length
                if length == ie.VARIABLE:
                    if offset >= end:
                        return out, True
                    length = body[offset]
                    offset += 1
                    if length == 255:
                        if offset + 2 > end:
                            return out, True
                        length = int.from_bytes(body[offset : offset + 2], "big")
                        offset += 2
                if offset + length > end:
                    return out, True
                if column is not None:
                    raw = body[offset : offset + length]
                    values[column.index] = raw if column.kind in ("b", "v6") else int.from_bytes(raw, "big")
                offset += length
            out.append(tuple(values))
        # what is left is shorter than the smallest record: padding, unless it is not zeros
        return out, any(body[offset:end])

    def _compile(self, version: int, exporter: str, domain: int) -> Decode:
        """Generate the loop from this template's tuples to FlowRecords. Only integers (tuple indexes,
        field numbers) and fixed names are interpolated into the source: nothing the exporter sent."""
        c = self.columns

        def col(role: str) -> str | None:
            column = c.get(role)
            if column is None:
                return None
            k = column.index
            return {"u": f"t[{k}]", "b": f"_uint(t[{k}])", "v4": f"_v4(t[{k}])", "v6": f"_v6(t[{k}])"}[column.kind]

        def address(v4: str, v6: str, other4: str) -> str:
            a4, a6, o4 = col(v4), col(v6), col(other4)
            if a4 and a6:  # both families in one template: the IPv4 fields are zero in an IPv6 flow
                k4, ko = c[v4].index, c[other4].index if o4 else c[v4].index
                return f"({a4} if t[{k4}] or t[{ko}] else {a6})"
            return a4 or a6 or "None"

        def when(role: str) -> str:
            column = c.get(role)
            if column is None:
                return "export_time"
            value = col(role)
            number = column.field.type
            if number in (ie.FIRST_UPTIME, ie.LAST_UPTIME):
                if version == 9:
                    return f"_v9_uptime(export_time, uptime, {value})"
                init = col("system_init") or "system_init"
                return f"_ipfix_uptime({init}, export_time, {value})"
            return _TIME_EXPR[number].replace("t[{k}]", str(value))

        if "sampler" in c:
            scale = f"s = state.sampler_rate({col('sampler')})"
        elif "interval" in c:
            scale = f"s = {col('interval')} or rate"
        else:
            scale = "s = rate"
        zero = "0"
        source = "\n".join(
            [
                "def decode(body, export_time, uptime, state):",
                "    rows, truncated = template.rows(body)",
                "    rate = state.rate()",
                "    system_init = state.system_init",
                "    out = []",
                "    append = out.append",
                "    for t in rows:",
                f"        {scale}",
                "        append(FlowRecord(exporter, domain, version,",
                f"            {address('src4', 'src6', 'dst4')}, {address('dst4', 'dst6', 'src4')},",
                f"            {col('protocol') or zero}, {col('src_port') or zero}, {col('dst_port') or zero},",
                f"            {col('octets') or zero} * s, {col('packets') or zero} * s,",
                f"            {when('start')}, {when('end')},",
                f"            {col('input_if') or 'None'}, {col('output_if') or 'None'},",
                f"            {col('tcp_flags') or zero}, s))",
                "    return out, truncated",
            ]
        )
        namespace: dict[str, Any] = {
            "FlowRecord": FlowRecord,
            "template": self,
            "exporter": exporter,
            "domain": domain,
            "version": version,
            "_v4": _v4,
            "_v6": _v6,
            "_uint": _uint,
            "_ntp": _ntp,
            "_v9_uptime": _v9_uptime,
            "_ipfix_uptime": _ipfix_uptime,
        }
        exec(compile(source, f"<flow template {self.id}>", "exec"), namespace)
        decode: Decode = namespace["decode"]
        return decode

    def option_values(self, body: bytes) -> tuple[list[dict[int, int]], bool]:
        """An options data set's records as {information element: value} of the elements the sampler
        tables are read from (options sets are rare: walked, not compiled)."""
        skip = self.scope_count if self.version == 9 else 0  # v9 scopes are scope types, not field types
        out: list[dict[int, int]] = []
        offset, end = 0, len(body)
        while end - offset >= self.min_length:
            values: dict[int, int] = {}
            for position, spec in enumerate(self.fields):
                length = spec.length
                if length == ie.VARIABLE:
                    if offset >= end:
                        return out, True
                    length = body[offset]
                    offset += 1
                    if length == 255:
                        if offset + 2 > end:
                            return out, True
                        length = int.from_bytes(body[offset : offset + 2], "big")
                        offset += 2
                if offset + length > end:
                    return out, True
                if position >= skip and not spec.enterprise and spec.type in ie.OPTION_FIELDS and length <= 8:
                    values.setdefault(spec.type, int.from_bytes(body[offset : offset + length], "big"))
                offset += length
            out.append(values)
        return out, False


def _nothing(body: bytes, export_time: float, uptime: int, state: SamplingState) -> tuple[list[FlowRecord], bool]:
    return [], False
