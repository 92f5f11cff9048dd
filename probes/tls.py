"""TLS settings shared by the TCP and HTTP probes, and the certificate facts they report.

SSL contexts are cached per settings object: building one loads the CA bundle (milliseconds of CPU),
which must not happen on every probe of every check.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import warnings
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.x509.oid import NameOID
from pydantic import ValidationInfo, field_validator, model_validator

from probes import base
from probes.base import Limit, Measure, ProbeSettings


def _expires_soon(not_after: float, limit: float, now: float) -> str | None:
    left = not_after - now
    return f"TLS certificate expires in {left / 86400:.1f} days" if left < limit else None


NOT_AFTER = Measure("monitor_tls_cert_expiry_timestamp_seconds", "notAfter of the peer's leaf certificate.",
                    "tls_cert_not_after_timestamp_seconds")  # fmt: skip
EARLIEST_NOT_AFTER = Measure("monitor_tls_earliest_cert_expiry_timestamp_seconds",
                             "Earliest notAfter in the peer's certificate chain.",
                             "tls_earliest_cert_not_after_timestamp_seconds",
                             limit=Limit("cert_expiry", _expires_soon))  # fmt: skip
MEASURES = (NOT_AFTER, EARLIEST_NOT_AFTER)  # of the TCP and HTTP kinds

# blackbox_exporter's names (TLS10..TLS13), and this project's older spellings of two of them
TLSVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13", "TLS1.2", "TLS1.3"]
_VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
    "TLS1.2": ssl.TLSVersion.TLSv1_2,
    "TLS1.3": ssl.TLSVersion.TLSv1_3,
}
# OpenSSL's reasons for "no TLS version both sides speak", whichever side noticed it
_PROTOCOL_VERSION_REASONS = frozenset(
    {
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "UNSUPPORTED_PROTOCOL",
        "NO_PROTOCOLS_AVAILABLE",
        "WRONG_SSL_VERSION",
        "VERSION_TOO_LOW",
        "VERSION_TOO_HIGH",
        "TLSV1_ALERT_INAPPROPRIATE_FALLBACK",
    }
)


class TLSSettings(ProbeSettings):
    insecure_skip_verify: bool = False  # still reports certificate facts, but accepts any chain
    ca_file: Path | None = None  # trust these CAs instead of the system store (private PKI)
    server_name: str | None = None  # SNI and name to verify; default: the target's hostname
    # default TLS 1.2 to 1.3 (Python's); TLS10/TLS11 are an explicit opt-in for legacy appliances
    min_version: TLSVersionName | None = None
    max_version: TLSVersionName | None = None
    cert_file: Path | None = None  # client certificate for mutual TLS
    key_file: Path | None = None

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _existing_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """Relative to the config file's folder; must exist, so a typo fails at load, not at 3 a.m."""
        if value is None:
            return None
        path = Path((info.context or {}).get("base_dir", ".")) / value
        if not path.is_file():
            raise ValueError(f"file not found: {path}")
        return path

    @model_validator(mode="after")
    def _version_range(self) -> TLSSettings:
        if self.min_version and self.max_version and _VERSIONS[self.min_version] > _VERSIONS[self.max_version]:
            raise ValueError(f"min_version {self.min_version} is above max_version {self.max_version}")
        return self


class ContextCache:
    """SSL contexts by settings, built once each. A probe kind owns one; a config reload makes new
    probe kinds, so a rotated CA file is read again."""

    def __init__(self) -> None:
        self._contexts: dict[str, ssl.SSLContext] = {}

    def get(self, settings: TLSSettings, alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
        """The context for these settings; `alpn`: the protocols offered in ALPN ("h2", "http/1.1")."""
        key = f"{settings.cache_key}|{','.join(alpn)}" if alpn else settings.cache_key
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = self._contexts[key] = _build_context(settings)
            if alpn:
                ctx.set_alpn_protocols(list(alpn))
        return ctx


def _build_context(settings: TLSSettings) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    if settings.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if settings.min_version or settings.max_version:
        _set_range(ctx, *version_range(settings))
    if settings.cert_file:
        ctx.load_cert_chain(str(settings.cert_file), str(settings.key_file) if settings.key_file else None)
    return ctx


def _set_range(ctx: ssl.SSLContext, low: ssl.TLSVersion, high: ssl.TLSVersion) -> None:
    with warnings.catch_warnings():  # "TLSVersion.TLSv1 is deprecated": the opt-in is deliberate
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = low
        ctx.maximum_version = high
    if low < ssl.TLSVersion.TLSv1_2:
        # OpenSSL 3 refuses TLS 1.0/1.1 (their SHA-1 handshake signatures) above security level 0:
        # the opt-in has to lower it, or the old appliance still fails
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")


def version_range(settings: TLSSettings) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    """The TLS versions a probe with these settings offers (Python's default: TLS 1.2 to 1.3)."""
    high = _VERSIONS[settings.max_version] if settings.max_version else ssl.TLSVersion.TLSv1_3
    low = _VERSIONS[settings.min_version] if settings.min_version else min(ssl.TLSVersion.TLSv1_2, high)
    return low, high


_NEGOTIATED = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1}
_NEGOTIATED |= {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


async def server_version(ip: str, port: int, server_name: str) -> str | None:
    """The TLS version the server speaks when offered all of TLS 1.0 to 1.3 (no certificate check),
    or None when that handshake fails too. Asked only after a handshake has failed without a reason:
    many servers (Python's asyncio among them) close or reset the connection on a ClientHello they
    cannot serve instead of sending the protocol_version alert, which would read "connection reset"."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    _set_range(ctx, ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_3)
    writer = None
    try:
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        _, writer = await asyncio.open_connection(ip, port, ssl=ctx, server_hostname=server_name, family=family)
        ssl_object = writer.get_extra_info("ssl_object")
        return str(ssl_object.version()) if ssl_object is not None else None
    except (OSError, ssl.SSLError, EOFError):
        return None
    finally:
        if writer is not None:
            writer.transport.abort()  # no close_notify exchange: this connection only asked a question
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def outside_range(version: str, settings: TLSSettings) -> bool:
    """Whether a negotiated version (ssl's spelling, "TLSv1") is one these settings do not offer."""
    negotiated = _NEGOTIATED.get(version)
    low, high = version_range(settings)
    return negotiated is not None and not low <= negotiated <= high


def _chain_der(ssl_object: Any) -> list[bytes]:
    """DER of the peer's chain, leaf first. Python 3.11 exposes the chain only on the private
    _sslobj; without it we still have the leaf."""
    inner = getattr(ssl_object, "_sslobj", None)
    for getter in ("get_verified_chain", "get_unverified_chain"):
        fn = getattr(inner, getter, None)
        if fn is None:
            continue
        try:
            chain = fn()
        except (ssl.SSLError, ValueError):
            continue
        if chain:
            # the chain holds _ssl.Certificate objects: public_bytes() gives PEM (ssl has no ENCODING_DER)
            return [ssl.PEM_cert_to_DER_cert(c.public_bytes()) for c in chain]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _common_name(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else name.rfc4514_string()


def certificate_facts(ssl_object: Any, result: base.ProbeResult) -> None:
    """Add the negotiated TLS version and the peer certificate facts to a result."""
    if ssl_object is None:
        return
    version = ssl_object.version()
    if version:
        result.info["tls_version"] = version
    cipher = ssl_object.cipher()
    if cipher:
        result.info["tls_cipher"] = cipher[0]
    chain = _chain_der(ssl_object)
    if not chain:
        return
    certs = [x509.load_der_x509_certificate(der) for der in chain]
    leaf = certs[0]
    result.values[NOT_AFTER.key] = leaf.not_valid_after_utc.timestamp()
    result.values[EARLIEST_NOT_AFTER.key] = min(c.not_valid_after_utc.timestamp() for c in certs)
    result.info["tls_subject"] = _common_name(leaf.subject)
    result.info["tls_issuer"] = _common_name(leaf.issuer)
    result.info["tls_serial"] = format(leaf.serial_number, "x")
    result.info["tls_chain_length"] = str(len(certs))
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        result.info["tls_dns_names"] = ",".join(sans.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        pass


def describe_ssl_error(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"tls certificate verification failed: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        if exc.reason in _PROTOCOL_VERSION_REASONS:
            # no version both sides speak (a legacy appliance: see tls_config min_version)
            return "TLS handshake failed: protocol version"
        return f"TLS handshake failed: {exc.reason or exc}"
    return base.describe_os_error(exc)
