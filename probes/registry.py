"""The one registry of probe kinds. Adding a kind: a module with a class like these, one line here."""

from __future__ import annotations

from typing import Any

from probes.base import ProbeKind, ProbeSettings
from probes.dns import DNSProbe
from probes.http import HTTPProbe
from probes.icmp import ICMPProbe
from probes.ocsp import OCSPProbe
from probes.snmp import SnmpProbe
from probes.tcp import TCPProbe

KINDS: dict[str, type[Any]] = {
    "icmp": ICMPProbe,
    "tcp": TCPProbe,
    "http": HTTPProbe,
    "dns": DNSProbe,
    "snmp": SnmpProbe,
    "ocsp": OCSPProbe,
}


def settings_model(kind: str) -> type[ProbeSettings]:
    model: type[ProbeSettings] = KINDS[kind].settings_model
    return model


def create_probes(previous: dict[str, ProbeKind[Any]] | None = None) -> dict[str, ProbeKind[Any]]:
    """Fresh probe instances (they own caches and HTTP sessions; the daemon closes them).

    With `previous` (a config reload), a new instance that has an `inherit(old)` method takes over
    the old instance's state worth keeping (SNMP counters, last sysUpTime), so a reload neither
    resets counters nor misses a reboot."""
    probes: dict[str, ProbeKind[Any]] = {name: cls() for name, cls in KINDS.items()}
    for name, probe in probes.items():
        inherit = getattr(probe, "inherit", None)
        if previous is not None and name in previous and inherit is not None:
            inherit(previous[name])
    return probes


async def close_probes(probes: dict[str, ProbeKind[Any]]) -> None:
    for probe in probes.values():
        close = getattr(probe, "close", None)
        if close is not None:
            await close()
