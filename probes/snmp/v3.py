"""SNMPv3 sessions through pysnmp 7.x (v3arch asyncio): USM with SHA/SHA-2 authentication and AES privacy.

One SnmpEngine per probe instance (creating one costs ~90 ms; a first contact with a target costs
~4 ms of CPU for engine-id discovery and key localisation), one UsmUserData per credential set and one
transport target per (address, port, timeout, retries), all reused across polls. pysnmp is imported
only when a v3 module is first used.

pysnmp's UDP transport drops the errors asyncio reports for a failed sendto() (it has no
error_received), so a send refused by this host's firewall would read as a silent agent. The
transports here remember them per destination (`refused`), and the session asks before it calls a
timeout the agent's.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from probes.snmp.settings import SnmpSettings, V3Credentials
from probes.snmp.transport import SnmpError, V3Session

_AUTH = {
    "MD5": "USM_AUTH_HMAC96_MD5",
    "SHA": "USM_AUTH_HMAC96_SHA",
    "SHA-224": "USM_AUTH_HMAC128_SHA224",
    "SHA-256": "USM_AUTH_HMAC192_SHA256",
    "SHA-384": "USM_AUTH_HMAC256_SHA384",
    "SHA-512": "USM_AUTH_HMAC384_SHA512",
}
_PRIV = {
    "DES": "USM_PRIV_CBC56_DES",
    "AES": "USM_PRIV_CFB128_AES",
    "AES-192": "USM_PRIV_CFB192_AES",
    "AES-256": "USM_PRIV_CFB256_AES",
}


def _hlapi() -> Any:
    try:
        import cryptography  # noqa: F401  (pysnmp's privacy needs it but does not declare it)
    except ImportError as exc:  # pragma: no cover - a declared dependency of this project
        raise SnmpError("SNMPv3 privacy needs the cryptography package") from exc
    from pysnmp.hlapi.v3arch import asyncio as hlapi

    return hlapi


def _auth(hlapi: Any, creds: V3Credentials) -> Any:
    kwargs: dict[str, Any] = {}
    if creds.security_level != "noAuthNoPriv":
        assert creds.auth_key is not None
        kwargs["authKey"] = creds.auth_key.get_secret_value()
        kwargs["authProtocol"] = getattr(hlapi, _AUTH[creds.auth_protocol])
    if creds.security_level == "authPriv":
        assert creds.priv_key is not None
        kwargs["privKey"] = creds.priv_key.get_secret_value()
        kwargs["privProtocol"] = getattr(hlapi, _PRIV[creds.priv_protocol])
    return hlapi.UsmUserData(creds.username, **kwargs)


def _watched_targets(hlapi: Any) -> tuple[Any, Any]:
    """UdpTransportTarget and Udp6TransportTarget whose socket records refused sends by destination."""

    def watched(proto: Any) -> Any:
        class Watched(proto):  # type: ignore[misc]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.refused: dict[str, tuple[float, Exception]] = {}  # address -> (monotonic time, error)
                self._sending_to: str | None = None

            def send_message(self, message: Any, address: Any) -> None:
                self._sending_to = str(address[0])
                try:
                    super().send_message(message, address)
                finally:
                    self._sending_to = None

            def error_received(self, exc: Exception) -> None:  # called from inside sendto()
                if self._sending_to is not None:
                    self.refused[self._sending_to] = (time.monotonic(), exc)

        return Watched

    class Target4(hlapi.UdpTransportTarget):  # type: ignore[misc]
        PROTO_TRANSPORT = watched(hlapi.UdpTransportTarget.PROTO_TRANSPORT)

    class Target6(hlapi.Udp6TransportTarget):  # type: ignore[misc]
        PROTO_TRANSPORT = watched(hlapi.Udp6TransportTarget.PROTO_TRANSPORT)

    return Target4, Target6


class V3Factory:
    def __init__(self) -> None:
        self._hlapi: Any = None
        self._engine: Any = None
        self._auth: dict[str, Any] = {}
        self._targets: dict[tuple[str, int, float, int], Any] = {}
        self._slots: asyncio.Semaphore | None = None  # requests in flight, as for v1/v2c
        self._target_classes: tuple[Any, Any] | None = None

    async def session(self, ip: str, port: int, settings: SnmpSettings) -> V3Session:
        creds = settings.v3
        assert creds is not None
        if self._engine is None:
            self._hlapi = _hlapi()
            self._engine = self._hlapi.SnmpEngine()
            self._target_classes = _watched_targets(self._hlapi)
        if self._slots is None:
            self._slots = asyncio.Semaphore(settings.max_requests_in_flight)
        h = self._hlapi
        auth = self._auth.get(creds.cache_key)
        if auth is None:
            auth = self._auth[creds.cache_key] = _auth(h, creds)
        key = (ip, port, settings.timeout, settings.retries)
        target = self._targets.get(key)
        if target is None:
            assert self._target_classes is not None
            cls = self._target_classes[1] if ":" in ip else self._target_classes[0]
            target = self._targets[key] = await cls.create(
                (ip, port), timeout=settings.timeout, retries=settings.retries
            )
        context = h.ContextData(contextName=creds.context_name) if creds.context_name else h.ContextData()
        return V3Session(self._engine, auth, target, context, h, self._slots)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None
        self._auth.clear()
        self._targets.clear()
