"""What every probe kind shares: the request it gets, the result it returns, and the kind protocol.

A probe returns its outcome as data. A failing target is ``ProbeResult(ok=False, error=...)``; an
exception escaping a probe is a bug (the runner catches it, logs it and reports it as a failure, so
one broken probe never takes the scheduler down). The runner, not the probe, owns the overall
timeout and the timing of the whole probe.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Generic, Literal, NamedTuple, Protocol, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict

# Well-known keys of ProbeResult.values. The metrics collector maps these to metric families,
# so a new key needs a line there too.
RTT_MIN = "rtt_min_seconds"
RTT_AVG = "rtt_avg_seconds"
RTT_MAX = "rtt_max_seconds"
JITTER = "jitter_seconds"
LOSS = "loss_ratio"
PACKETS_SENT = "packets_sent"
HTTP_STATUS = "http_status_code"
HTTP_VERSION = "http_version"
HTTP_REDIRECTS = "http_redirects"
CONTENT_LENGTH = "content_length_bytes"
TLS_NOT_AFTER = "tls_cert_not_after_timestamp_seconds"
TLS_EARLIEST_NOT_AFTER = "tls_earliest_cert_not_after_timestamp_seconds"
CRL_NEXT_UPDATE = "crl_next_update_timestamp_seconds"
CRL_THIS_UPDATE = "crl_this_update_timestamp_seconds"
OCSP_NEXT_UPDATE = "ocsp_next_update_timestamp_seconds"
DNS_ANSWERS = "dns_answer_rrs"
DNS_RCODE = "dns_rcode"
# Well-known key of ProbeResult.info: set when the failure is that a management agent (SNMP) did not
# answer, as opposed to what it reported (a link down, a threshold): the engine words the reason by it.
AGENT_NOT_RESPONDING = "agent_not_responding"


def _valid_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f'invalid regular expression "{pattern}": {exc}') from None
    return pattern


Regex = Annotated[str, AfterValidator(_valid_regex)]  # a regular expression, checked when the config loads


class ProbeSettings(BaseModel):
    """Base of every kind's module settings: strict, so a typo in a module is a config error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @cached_property
    def cache_key(self) -> str:
        """Identity of these settings for caches of expensive objects (SSL contexts, sessions)."""
        return self.model_dump_json()


class Progress:
    """How far one run of a probe got, for the runner to say where its timeout cut the probe off.

    The runner makes one per run and hands it in on the request; the probe moves it on as it goes
    (`enter`) and keeps what it learnt on the way in `facts` (HTTP status, bytes read). Moving on is
    an attribute store or two, cheap on the fast path; the operator's text is written only when the
    runner needs it, from a callable that reads the probe's state at that moment."""

    __slots__ = ("_where", "facts", "phase", "phases")

    def __init__(self) -> None:
        self.phase = ""  # the phase reached: "connect", "tls", "head", "body", "step 2", "query"
        self.facts: dict[str, str] = {}  # partial facts, shown with a timeout ("http_status": "200")
        self.phases: dict[str, float] = {}  # the probe's PhaseTimer.phases, so the runner keeps its timings
        self._where: str | Callable[[], str] = ""

    def enter(self, phase: str, where: str | Callable[[], str]) -> None:
        """Now in `phase`; `where` words it after "timeout after 5s " ("in TLS handshake")."""
        self.phase = phase
        self._where = where

    def where(self) -> str:
        where = self._where
        return where() if callable(where) else where


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    """What to probe: the resolved target, check parameters and the time the probe may take."""

    address: str  # IP address or DNS name to connect to
    hostname: str | None  # name for SNI, Host header and certificate checks (None: use address)
    port: int | None
    timeout: float  # seconds; the runner enforces it, probes use it to budget their phases
    params: dict[str, Any] = field(default_factory=dict)  # per-check parameters (url, query name, interface)
    check_id: str = ""  # "target/check": the key of state a probe keeps between runs (SNMP counters)
    # this run's progress: the runner passes a fresh one per run (with_progress) and reads it on timeout
    progress: Progress = field(default_factory=Progress, compare=False, repr=False)

    @property
    def server_name(self) -> str:
        return self.hostname or self.address

    def with_progress(self, progress: Progress) -> ProbeRequest:
        """This request for one run (the constructor, not dataclasses.replace: 1 us instead of 6 per probe)."""
        return ProbeRequest(self.address, self.hostname, self.port, self.timeout, self.params, self.check_id, progress)


class Series(NamedTuple):
    """One labelled sample a probe measured (a table row: an interface's counter, a sensor's value).

    The metrics collector renders it with the check's labels plus `labels`; every sample of one
    metric name must carry the same label names, help and type."""

    name: str  # full metric name; counters end in _total
    help: str
    type: Literal["counter", "gauge"]
    labels: tuple[tuple[str, str], ...]  # extra labels, e.g. (("if_index", "3"), ("if_name", "Gi0/1"))
    value: float


@dataclass(slots=True)
class ProbeResult:
    """The outcome of one probe, as data."""

    ok: bool
    error: str | None = None  # why it failed, short and operator-readable ("connection refused")
    duration: float = 0.0  # seconds, whole probe; set by the runner
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase (connect, tls, ...)
    values: dict[str, float] = field(default_factory=dict)  # measurements, keys above
    info: dict[str, str] = field(default_factory=dict)  # facts worth showing (tls_version, final_url)
    degraded: str | None = None  # why an ok result is DEGRADED: the probe's own verdict, else the runner's thresholds
    series: list[Series] = field(default_factory=list)  # labelled samples (tables), rendered as metric families
    finished_at: float = 0.0  # wall clock (UTC epoch seconds); set by the runner
    phase: str = ""  # the phase the probe reached ("done" when ok); set by the runner from the request's Progress

    @classmethod
    def failure(cls, error: str, **kw: Any) -> ProbeResult:
        return cls(ok=False, error=error, **kw)


S = TypeVar("S", bound=ProbeSettings)


class ProbeKind(Protocol, Generic[S]):
    """One probe kind: a name, the model of its module settings, and the probe itself."""

    name: str
    settings_model: type[S]

    async def run(self, request: ProbeRequest, settings: S) -> ProbeResult: ...


class PhaseTimer:
    """Records named phases of a probe with a monotonic clock."""

    __slots__ = ("_last", "phases")

    def __init__(self, progress: Progress | None = None) -> None:
        self.phases: dict[str, float] = {}
        self._last = time.perf_counter()
        if progress is not None:  # the runner keeps the timings of a probe its timeout cuts off
            progress.phases = self.phases

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = self.phases.get(phase, 0.0) + (now - self._last)
        self._last = now


def describe_os_error(exc: BaseException) -> str:
    """Turn a socket-level exception into the short reason an operator reads."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = str(exc) or type(exc).__name__
    return text[:200]
