"""Name resolution shared by the probes, with the address family a module asks for."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from functools import lru_cache
from typing import Literal

IPProtocol = Literal["auto", "ip4", "ip6"]

_FAMILIES = {"auto": socket.AF_UNSPEC, "ip4": socket.AF_INET, "ip6": socket.AF_INET6}


class ResolveError(Exception):
    """The target's name did not resolve to an address of the wanted family."""


@lru_cache(maxsize=65536)  # called on every probe: parsing the address each time was 3% of the CPU
def is_ip_literal(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


async def resolve(address: str, ip_protocol: IPProtocol = "auto") -> str:
    """Return one IP address for `address` (itself if it is already an IP literal)."""
    if is_ip_literal(address):
        return address
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(address, None, family=_FAMILIES[ip_protocol], type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ResolveError(f"cannot resolve {address}: {exc.strerror}") from exc
    if not infos:
        raise ResolveError(f"cannot resolve {address}: no {ip_protocol} address")
    return str(infos[0][4][0])
