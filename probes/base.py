"""What every probe kind shares: the request it gets, the result it returns, and the kind protocol.

A probe returns its outcome as data. A failing target is ``ProbeResult(ok=False, error=...)``; an
exception escaping a probe is a bug (the runner catches it, logs it and reports it as a failure, so
one broken probe never takes the scheduler down). The runner, not the probe, owns the overall
timeout and the timing of the whole probe.

A failure of this host rather than of the target (no descriptor left, no kernel buffer, no local
port, a send refused by the local firewall) is a *local failure*: ``describe_os_error`` raises
``LocalFailure`` for it instead of describing it, so every probe path that turns a socket error
into a reason classifies it the same way, here and only here. The runner makes it a result with
``local`` set, which the engine takes as a monitoring gap, never as the target's failure.
"""

from __future__ import annotations

import errno
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Generic, Literal, NamedTuple, Protocol, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict

# Well-known key of ProbeResult.info: set when the failure is that a management agent (SNMP) did not
# answer, as opposed to what it reported (a link down, a threshold): the engine words the reason by it
# for the kinds that declare `polls_agent`.
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


class Limit(NamedTuple):
    """A DEGRADED threshold on a measured value: `degraded: {setting: ...}` in the config."""

    setting: str  # the key under `degraded:` ("rtt"); the config model declares it
    reason: Callable[[float, float, float], str | None]  # (value, limit, now) -> why it is DEGRADED, or None


class Measure(NamedTuple):
    """A number a probe kind measures: its key in ProbeResult.values and the per-check gauge /metrics
    exports it as (the check's labels, plus `label` when several keys share one family).

    A kind declares its measures next to its code (the kind class's `measures`) and writes
    `result.values[MEASURE.key]`; the registry collects them for /metrics, the docs and the runner."""

    name: str  # the metric family
    help: str
    key: str  # the key in ProbeResult.values (what the API and `monitor probe` show)
    label: tuple[str, str] | None = None  # e.g. ("stat", "min"): RTT min, avg and max are one family
    limit: Limit | None = None  # the DEGRADED threshold on it, if the config has one


class Family(NamedTuple):
    """A family of labelled samples (Series: a table's rows) a probe kind produces, declared with the kind
    (its `series`); every sample of it carries the check's labels plus these, with this help and type."""

    name: str
    help: str
    type: Literal["counter", "gauge"]
    labels: tuple[str, ...]  # the sample's own label names, in order

    def sample(self, labels: tuple[tuple[str, str], ...], value: float) -> Series:
        return Series(self.name, self.help, self.type, labels, value)


class Series(NamedTuple):
    """One labelled sample a probe measured (a table row: an interface's counter, a sensor's value), of a
    Family its kind declares.

    /metrics renders it with the check's labels plus `labels`; it carries its family's name, help and
    type itself, so writing millions of them costs no lookup."""

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
    values: dict[str, float] = field(default_factory=dict)  # measurements, by Measure.key
    info: dict[str, str] = field(default_factory=dict)  # facts worth showing (tls_version, final_url)
    degraded: str | None = None  # why an ok result is DEGRADED: the probe's own verdict, else the runner's thresholds
    series: list[Series] = field(default_factory=list)  # labelled samples (tables), rendered as metric families
    finished_at: float = 0.0  # wall clock (UTC epoch seconds); set by the runner
    # Set (to the errno name, "EMFILE") when the probe could not be done because of this host, not the
    # target: ok is False, error reads "monitoring gap: ...", and the engine does not judge the check by it.
    local: str | None = None
    phase: str = ""  # the phase the probe reached ("done" when ok); set by the runner from the request's Progress

    @classmethod
    def failure(cls, error: str, **kw: Any) -> ProbeResult:
        return cls(ok=False, error=error, **kw)


S = TypeVar("S", bound=ProbeSettings)


class ProbeKind(Protocol, Generic[S]):
    """One probe kind: a name, the model of its module settings, what it measures, and the probe itself.

    `polls_agent`: the kind talks to a management agent on the device (SNMP), so a failure can be
    that agent not answering while the device does (the result's info has AGENT_NOT_RESPONDING)."""

    name: str
    settings_model: type[S]
    measures: tuple[Measure, ...]
    series: tuple[Family, ...]  # the labelled families its results' `series` samples belong to
    phases: tuple[str, ...]  # the PhaseTimer phases it marks, exported as monitor_probe_phase_duration_seconds
    polls_agent: bool

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


# The errnos that say "this host could not do it", whatever the target: where they occur in a probe
# (socket(), connect(), send()) only local resources or local policy can cause them. Left out on
# purpose: ENETUNREACH/EHOSTUNREACH (a route withdrawn or an ICMP unreachable: the network's state),
# ECONNREFUSED/ECONNRESET (the target), ETIMEDOUT (the path).
LOCAL_ERRNOS: dict[int, str] = {
    errno.EMFILE: "too many open files in this daemon",
    errno.ENFILE: "too many open files on this host (system file table full)",
    errno.ENOBUFS: "no buffer space left in this host's kernel",
    errno.ENOMEM: "out of memory on this host",
    errno.EADDRNOTAVAIL: "no local address or port free on this host",
    errno.EADDRINUSE: "no local port free on this host",
    # A send refused by this host's kernel: its firewall (nftables/iptables drop in OUTPUT) or policy.
    errno.EPERM: "send refused: operation not permitted",
    errno.EACCES: "send refused: permission denied",
}


class LocalFailure(Exception):
    """A probe could not be done because of this host (see LOCAL_ERRNOS); not the target's failure."""

    def __init__(self, code: int) -> None:
        self.code = code
        self.kind = errno.errorcode.get(code, str(code))  # "EMFILE": a bounded metric label
        self.reason = LOCAL_ERRNOS[code]
        super().__init__(self.reason)

    def result(self) -> ProbeResult:
        return ProbeResult(ok=False, error=f"monitoring gap: {self.reason}", local=self.kind)


def local_failure(exc: BaseException | None) -> LocalFailure | None:
    """The local failure behind `exc` (itself, or an OSError it was raised from or while handling:
    icmplib and pysnmp wrap socket errors in their own types, keeping the OSError as the context),
    or None when the target or the path caused it. A context the raiser suppressed (``from None``)
    is not looked at."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, LocalFailure):
            return exc
        if isinstance(exc, OSError) and exc.errno in LOCAL_ERRNOS:
            return LocalFailure(exc.errno)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        seen += 1
    return None


def raise_if_local(exc: BaseException) -> None:
    """Raise LocalFailure when `exc` is a failure of this host; return otherwise."""
    local = local_failure(exc)
    if local is not None:
        raise local from exc


def describe_os_error(exc: BaseException) -> str:
    """Turn a socket-level exception into the short reason an operator reads.

    Raises LocalFailure instead when the error is this host's (EMFILE, a local firewall): a reason
    for the target would be false, and the runner turns it into a monitoring gap."""
    raise_if_local(exc)
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
