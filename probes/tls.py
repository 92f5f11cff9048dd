"""TLS settings shared by the TCP and HTTP probes, and the certificate facts they report.

SSL contexts are cached per settings object: building one loads the CA bundle (milliseconds of CPU),
which must not happen on every probe of every check.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.x509.oid import NameOID
from pydantic import ValidationInfo, field_validator

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


class TLSSettings(ProbeSettings):
    insecure_skip_verify: bool = False  # still reports certificate facts, but accepts any chain
    ca_file: Path | None = None  # trust these CAs instead of the system store (private PKI)
    server_name: str | None = None  # SNI and name to verify; default: the target's hostname
    min_version: Literal["TLS1.2", "TLS1.3"] | None = None
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


class ContextCache:
    """SSL contexts by settings, built once each. A probe kind owns one; a config reload makes new
    probe kinds, so a rotated CA file is read again."""

    def __init__(self) -> None:
        self._contexts: dict[str, ssl.SSLContext] = {}

    def get(self, settings: TLSSettings) -> ssl.SSLContext:
        ctx = self._contexts.get(settings.cache_key)
        if ctx is None:
            ctx = self._contexts[settings.cache_key] = _build_context(settings)
        return ctx


def _build_context(settings: TLSSettings) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    if settings.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if settings.min_version == "TLS1.2":
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    elif settings.min_version == "TLS1.3":
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if settings.cert_file:
        ctx.load_cert_chain(str(settings.cert_file), str(settings.key_file) if settings.key_file else None)
    return ctx


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
        return f"tls handshake failed: {exc.reason or exc}"
    return base.describe_os_error(exc)
