"""The one registry of probe kinds. Adding a kind: a module with a class like these, one line here."""

from __future__ import annotations

from typing import Any

from probes.base import ProbeKind, ProbeSettings
from probes.dns import DNSProbe
from probes.http import HTTPProbe
from probes.icmp import ICMPProbe
from probes.tcp import TCPProbe

KINDS: dict[str, type[Any]] = {
    "icmp": ICMPProbe,
    "tcp": TCPProbe,
    "http": HTTPProbe,
    "dns": DNSProbe,
}


def settings_model(kind: str) -> type[ProbeSettings]:
    model: type[ProbeSettings] = KINDS[kind].settings_model
    return model


def create_probes() -> dict[str, ProbeKind[Any]]:
    """Fresh probe instances (they own caches and HTTP sessions; the daemon closes them)."""
    return {name: cls() for name, cls in KINDS.items()}


async def close_probes(probes: dict[str, ProbeKind[Any]]) -> None:
    for probe in probes.values():
        close = getattr(probe, "close", None)
        if close is not None:
            await close()
