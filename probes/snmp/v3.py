"""pysnmp's names for the SNMPv3 credential settings, for what stays on pysnmp: the trap receiver
(monitor.traps) and SET (monitor.security). Polling uses the project's own USM (probes.snmp.usm_client).

pysnmp is imported only when first used.
"""

from __future__ import annotations

from typing import Any

from probes.snmp.settings import V3Credentials
from probes.snmp.transport import SnmpError

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
    "AES-192-Blumenthal": "USM_PRIV_CFB192_AES_BLUMENTHAL",
    "AES-256-Blumenthal": "USM_PRIV_CFB256_AES_BLUMENTHAL",
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
