"""The one registry of probe kinds. Adding a kind: a module with a class like these, one line here.

What the rest of the daemon needs to know about kinds comes from here, read off each kind's own
declarations: the settings model (config), the values it measures (the /metrics families, the
runner's DEGRADED thresholds on them), the labelled families its results carry, the phases it times,
and whether it polls a management agent (the engine's "agent down, device up" reason)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from probes.base import Family, Limit, Measure, ProbeKind, ProbeSettings
from probes.dns import DNSProbe
from probes.http import HTTPProbe
from probes.icmp import ICMPProbe
from probes.ocsp import OCSPProbe
from probes.snmp.probe import SnmpProbe
from probes.tcp import TCPProbe

KINDS: dict[str, type[ProbeKind[Any]]] = {
    "icmp": ICMPProbe,
    "tcp": TCPProbe,
    "http": HTTPProbe,
    "dns": DNSProbe,
    "snmp": SnmpProbe,
    "ocsp": OCSPProbe,
}


@runtime_checkable
class _Inheriting(Protocol):
    """A kind whose instance keeps state worth handing to its successor on a reload (SNMP counters)."""

    def inherit(self, old: Any) -> None: ...


@runtime_checkable
class _Closing(Protocol):
    """A kind whose instance holds resources (HTTP sessions, UDP sockets) until closed."""

    async def close(self) -> None: ...


@runtime_checkable
class InterfaceIndex(Protocol):
    """A kind that knows which device interface (ifIndex) each of its checks watches: traps naming an interface
    and the disconnect playbook (which interface to shut) ask it."""

    def ifindex(self, check_id: str) -> int | None: ...
    def checks_for_ifindex(self, check_ids: list[str], ifindex: int) -> list[str]: ...


def interface_index(probes: dict[str, ProbeKind[Any]]) -> InterfaceIndex | None:
    """The running kind that maps checks to interfaces, if any (the daemon asks this, not a kind by name)."""
    return next((p for p in probes.values() if isinstance(p, InterfaceIndex)), None)


def settings_model(kind: str) -> type[ProbeSettings]:
    model: type[ProbeSettings] = KINDS[kind].settings_model
    return model


def measures() -> tuple[Measure, ...]:
    """Every kind's measures, each once, in the order of the kinds; one that several kinds declare (TCP
    and HTTP the TLS ones) stands where the last of them lists it, as /metrics has always listed it."""
    declared = [m for cls in KINDS.values() for m in cls.measures]
    return tuple(reversed(dict.fromkeys(reversed(declared))))


def series() -> tuple[Family, ...]:
    """Every kind's labelled families (SNMP's interfaces and OIDs), each once."""
    return tuple(dict.fromkeys(f for cls in KINDS.values() for f in cls.series))


def phases() -> frozenset[str]:
    """The phases any kind marks: the ones exported (a probe's other timings are not)."""
    return frozenset(p for cls in KINDS.values() for p in cls.phases)


def limits() -> tuple[tuple[Measure, Limit], ...]:
    """The measures with a DEGRADED threshold, in the order the runner applies them."""
    return tuple((m, m.limit) for m in measures() if m.limit is not None)


def agent_kinds() -> frozenset[str]:
    """The kinds that poll a management agent on the device (SNMP)."""
    return frozenset(name for name, cls in KINDS.items() if cls.polls_agent)


def create_probes(previous: dict[str, ProbeKind[Any]] | None = None) -> dict[str, ProbeKind[Any]]:
    """Fresh probe instances (they own caches and HTTP sessions; the daemon closes them).

    With `previous` (a config reload), a new instance that has an `inherit(old)` method takes over
    the old instance's state worth keeping (SNMP counters, last sysUpTime), so a reload neither
    resets counters nor misses a reboot."""
    probes: dict[str, ProbeKind[Any]] = {name: cls() for name, cls in KINDS.items()}
    for name, probe in probes.items():
        if previous is not None and name in previous and isinstance(probe, _Inheriting):
            probe.inherit(previous[name])
    return probes


async def close_probes(probes: dict[str, ProbeKind[Any]]) -> None:
    for probe in probes.values():
        if isinstance(probe, _Closing):
            await probe.close()
