"""OCSP probe (RFC 6960): ask a responder about known certificates and judge the signed answer.

A 200 from an OCSP responder says little: it may carry `tryLater`, a stale or unsigned response, or
`unknown` for every certificate. This probe sends one request for all of a check's canaries (known-good
and known-revoked certificates of the CA, by file or serial) by POST or GET, and fails unless:

- responseStatus is successful (else the reason names it: "OCSP: responder says tryLater");
- the response is signed by the CA itself or by a delegated responder certificate that the CA issued,
  with EKU OCSPSigning, valid now (carried in the response or configured as `responder_certs`);
- the nonce is echoed, when one was sent;
- each canary's thisUpdate is not in the future (beyond `clock_skew`), its nextUpdate not past and at
  least `min_remaining` ahead; a response without nextUpdate (RFC 6960 4.2.2.1: newer information is
  always available) passes these;
- each canary's certStatus is the one expected; `unknown` is always a failure;
- with a `crl` (URL or file), each canary's status agrees with the CRL: revoked in both or in neither
  (the CRL is fetched after the response, must be the issuer's and signed by it; one that cannot be
  had leaves the check DEGRADED, not DOWN: the responder answered, the CRL check pages for the CRL).

An ok result is DEGRADED (the probe's own verdict, `ProbeResult.degraded`) when a nextUpdate is within
`degraded_within`. Phases: connect (TCP and TLS, as aiohttp does them in one step), request (sending
it), response (waiting for and reading it), verify (parsing and judging). Measurements are
values (Measure) and one labelled family (the canaries' status), declared on OCSPProbe below.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import os
import socket
import time
from functools import cached_property
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID
from pydantic import Field, ValidationInfo, field_validator, model_validator
from yarl import URL

from monitor.config.types import Duration, DurationOrZero
from probes import base, ocsp_wire, tls
from probes.base import Family, Measure, PhaseTimer, ProbeRequest, ProbeResult, ProbeSettings, Progress
from probes.net import IPProtocol, is_ip_literal

USER_AGENT = "national-monitor/0.1 (+probe)"
MAX_RESPONSE = 1024 * 1024  # bytes; an OCSP response is a few KiB, a larger body is not one
NONCE_BYTES = 16  # RFC 8954: at least 1, at most 32 octets; 16 is what openssl sends
CRL_MARGIN = 0.25  # seconds of the check's timeout kept for judging the response after the CRL
MAX_CRL = 64 * 1024 * 1024  # bytes; a national CA's CRL can be tens of MiB, more is not one worth parsing

# What this kind measures (declared on OCSPProbe; the registry takes them to /metrics and the docs).
# Timestamps are UTC epoch seconds.
THIS_UPDATE = Measure("monitor_ocsp_this_update_timestamp_seconds",
                      "Latest thisUpdate among the canaries' single responses.",
                      "ocsp_this_update_timestamp_seconds")  # fmt: skip
NEXT_UPDATE = Measure("monitor_ocsp_next_update_timestamp_seconds",
                      "Earliest nextUpdate among the canaries' single responses.",
                      "ocsp_next_update_timestamp_seconds")  # fmt: skip
PRODUCED_AGE = Measure("monitor_ocsp_produced_at_age_seconds",
                       "Age of the response's producedAt when it was received.",
                       "ocsp_produced_at_age_seconds")  # fmt: skip
RESPONSE_STATUS = Measure("monitor_ocsp_response_status",
                          "OCSP responseStatus of the last response (0 successful, 3 tryLater, ...).",
                          "ocsp_response_status")  # fmt: skip
CANARY_STATUS = Family("monitor_ocsp_canary_status",
                       "certStatus of each canary in the last response (1 for the status it has).", "gauge",
                       ("serial", "expect", "status"))  # fmt: skip
_STATUSES = ("good", "revoked", "unknown", "missing")  # "missing": the response has no answer for it

# RFC 6960 4.2.1's names: the reason quotes them as the responder's operator knows them
_RESPONSE_STATUS_NAMES = {
    ocsp.OCSPResponseStatus.MALFORMED_REQUEST: "malformedRequest",
    ocsp.OCSPResponseStatus.INTERNAL_ERROR: "internalError",
    ocsp.OCSPResponseStatus.TRY_LATER: "tryLater",
    ocsp.OCSPResponseStatus.SIG_REQUIRED: "sigRequired",
    ocsp.OCSPResponseStatus.UNAUTHORIZED: "unauthorized",
}
_CERT_STATUS_NAMES = {
    ocsp.OCSPCertStatus.GOOD: "good",
    ocsp.OCSPCertStatus.REVOKED: "revoked",
    ocsp.OCSPCertStatus.UNKNOWN: "unknown",
}


def _file(value: Path, info: ValidationInfo) -> Path:
    """Relative to the config file's folder; must exist, so a typo fails at load, not at 3 a.m."""
    path = Path((info.context or {}).get("base_dir", ".")) / value
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    return path


def _load_cert(path: Path) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except OSError as exc:  # unreadable (permissions): a config error, not a crash of the load
        raise ValueError(f"{path}: {exc.strerror or exc}") from None
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise ValueError(f"{path}: not a certificate (PEM or DER): {exc}") from None


class Canary(ProbeSettings):
    """A certificate the responder must know: by its file, or by its serial number under the issuer."""

    cert: Path | None = None
    serial: int | None = Field(default=None, ge=0)
    expect: Literal["good", "revoked"]

    @field_validator("serial", mode="before")
    @classmethod
    def _hex_text(cls, value: Any) -> Any:
        """YAML reads 0x1234 as a number; quoted ("0x1234", as certificate tools print serials) it is text."""
        if isinstance(value, str):
            try:
                return int(value.replace(":", ""), 16) if ":" in value else int(value, 0)
            except ValueError:
                raise ValueError(f"serial {value!r} is not a number (write 4660, 0x1234 or 12:34)") from None
        return value

    @field_validator("cert")
    @classmethod
    def _existing(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _file(value, info)

    @model_validator(mode="after")
    def _one_of(self) -> Canary:
        if (self.cert is None) == (self.serial is None):
            raise ValueError("a canary has either cert or serial")
        return self


def _crl_source(value: str | None, info: ValidationInfo) -> str | None:
    """An http(s) URL as it is, a file relative to the config file's folder (it must exist)."""
    if value is None or value.startswith(("http://", "https://")):
        return value
    return str(_file(Path(value), info))


class _Material:
    """What the settings' files give, loaded once per settings object (a reload reads them again)."""

    def __init__(self, settings: OCSPSettings) -> None:
        self.issuer = _load_cert(settings.issuer)
        self.responders = [_load_cert(path) for path in settings.responder_certs]
        self.name_hash, self.key_hash = ocsp_wire.issuer_hashes(self.issuer, settings.hash)
        self.serials: list[int] = []
        for canary in settings.canaries:
            if canary.cert is not None:
                cert = _load_cert(canary.cert)
                if cert.issuer != self.issuer.subject:
                    raise ValueError(f"canary {canary.cert} is not issued by the issuer {self.issuer.subject}")
                self.serials.append(cert.serial_number)
            else:
                assert canary.serial is not None  # the model's validator: cert or serial
                self.serials.append(canary.serial)
        self.expect = [canary.expect for canary in settings.canaries]
        self.requests = ocsp_wire.request_list(
            [ocsp_wire.cert_id(settings.hash, self.name_hash, self.key_hash, serial) for serial in self.serials]
        )
        self.labels = [f"0x{serial:x}" for serial in self.serials]
        # signer certificate (DER) -> why it may not sign for the CA (None: it may), validity aside: a
        # delegated responder certificate comes in every response, its issuer signature is checked once
        self.delegated: dict[bytes, str | None] = {}
        self.known_key_hashes = [(cert, _key_hash(cert)) for cert in (self.issuer, *self.responders)]
        # the last CRL read (SHA-256 of its DER) -> what it says of the canaries: an unchanged CRL, most
        # runs, is neither parsed nor verified again (a large CRL costs tens of ms)
        self.crl_seen: tuple[bytes, frozenset[int] | str] | None = None


class OCSPSettings(ProbeSettings):
    url: str | None = None  # the responder's URL; else the check's `url`, else http://<target>[:port]/
    method: Literal["post", "get"] = "post"
    issuer: Path  # the CA's certificate (PEM or DER): what the canaries are asked about, and the trust anchor
    canaries: list[Canary] = Field(min_length=1, max_length=100)
    nonce: bool = True
    responder_certs: list[Path] = []  # delegated responder certificates when the response does not carry them
    min_remaining: DurationOrZero = 0.0  # nextUpdate at least this far ahead, else the check fails
    degraded_within: DurationOrZero = 0.0  # nextUpdate within this: DEGRADED
    hash: ocsp_wire.HashName = "sha1"  # of the CertID (sha1: what RFC 5019 responders must understand)
    clock_skew: Duration = 300.0  # thisUpdate/producedAt this far in the future still pass (clocks differ)
    tls_config: tls.TLSSettings = tls.TLSSettings()  # for an https URL
    ip_protocol: IPProtocol = "auto"
    crl: str | None = None  # the issuer's CRL (http(s) URL or file): each canary's status must agree with it

    @field_validator("crl")
    @classmethod
    def _crl_exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _crl_source(value, info)

    @field_validator("issuer")
    @classmethod
    def _existing_issuer(cls, value: Path, info: ValidationInfo) -> Path:
        return _file(value, info)

    @field_validator("responder_certs")
    @classmethod
    def _existing_responders(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        return [_file(path, info) for path in value]

    @model_validator(mode="after")
    def _loadable(self) -> OCSPSettings:
        _ = self.material  # unreadable certificates or a canary of another CA: a config error, now
        return self

    @cached_property
    def material(self) -> _Material:
        return _Material(self)


def _age(seconds: float) -> str:
    """A duration as an operator reads it in a reason: 45s, 12m, 3h, 2d (rounded down, the unit that fits)."""
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or f"serial 0x{cert.serial_number:x}"


def _verify_signature(cert: x509.Certificate, response: ocsp.OCSPResponse) -> bool:
    key = cert.public_key()
    data, signature = response.tbs_response_bytes, response.signature
    algorithm = response.signature_hash_algorithm
    try:
        if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(algorithm, hashes.HashAlgorithm):
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey) and isinstance(algorithm, hashes.HashAlgorithm):
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _signer(response: ocsp.OCSPResponse, material: _Material) -> x509.Certificate | None:
    """The certificate the responder ID names: the CA, one carried in the response, or a configured one."""
    key_hash, name = response.responder_key_hash, response.responder_name
    if key_hash is not None:
        for known, known_hash in material.known_key_hashes:  # the CA and responder_certs: hashed once
            if known_hash == key_hash:
                return known
        for cert in response.certificates:
            if _key_hash(cert) == key_hash:
                return cert
        return None
    for cert in (material.issuer, *response.certificates, *material.responders):
        if name is not None and cert.subject == name:
            return cert
    return None


def _key_hash(cert: x509.Certificate) -> bytes:
    """SHA-1 of the subjectPublicKey, what a responder ID byKey holds (RFC 6960 4.2.1)."""
    return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def _authorised(signer: x509.Certificate, material: _Material, now: dt.datetime) -> str | None:
    """Why a delegated responder certificate may not sign for the CA (RFC 6960 4.2.2.2), or None."""
    der = signer.public_bytes(serialization.Encoding.DER)
    if der not in material.delegated:
        if len(material.delegated) > 64:  # a responder rotating certificates: bounded all the same
            material.delegated.clear()
        material.delegated[der] = _delegation(signer, material.issuer)
    why = material.delegated[der]
    if why is not None:
        return why
    if now < signer.not_valid_before_utc:
        return f"OCSP: responder certificate not valid yet ({_name(signer)}, valid from {signer.not_valid_before_utc})"
    if now > signer.not_valid_after_utc:
        return f"OCSP: responder certificate expired ({_name(signer)}, {signer.not_valid_after_utc})"
    return None


def _delegation(signer: x509.Certificate, issuer: x509.Certificate) -> str | None:
    """The time-independent half of _authorised: issued by the CA, with EKU OCSPSigning."""
    try:
        signer.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return f"OCSP: response signed by a certificate not issued by the CA ({_name(signer)})"
    try:
        usage = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or ExtendedKeyUsageOID.OCSP_SIGNING not in usage:
        return f"OCSP: response signed by a certificate that is not an OCSP signer ({_name(signer)})"
    return None


def _one_status(
    singles: list[ocsp.OCSPSingleResponse], serial: int, material: _Material, algorithm: str
) -> ocsp.OCSPSingleResponse | None:
    """The single response about `serial` under this issuer, or None when the responder left it out."""
    for single in singles:
        if single.serial_number != serial:
            continue
        # the CertID's hash algorithm is the responder's to echo; compare the issuer only when it did
        if single.hash_algorithm.name == algorithm and single.issuer_key_hash != material.key_hash:
            continue
        return single
    return None


def judge(
    body: bytes,
    settings: OCSPSettings,
    nonce: bytes | None,
    now: float,
    result: ProbeResult,
    crl: frozenset[int] | str | None = None,
) -> ProbeResult:
    """The verdict on one response body (pure: no I/O; the benchmark times it alone). `crl`: the serials
    the issuer's CRL revokes, or why it could not be had (DEGRADED when all else passes), or None."""
    try:
        response = ocsp.load_der_ocsp_response(body)
        return _judge(response, settings, nonce, now, result, crl)
    except ValueError as exc:  # cryptography parses parts lazily (certificates, extensions): any may be broken
        return _fail(result, f"OCSP: response is not a valid OCSP response ({exc})")
    except UnsupportedAlgorithm as exc:  # a signature (or key) algorithm cryptography does not know
        return _fail(result, f"OCSP: response signed with an unsupported algorithm ({exc})")


def _judge(
    response: ocsp.OCSPResponse,
    settings: OCSPSettings,
    nonce: bytes | None,
    now: float,
    result: ProbeResult,
    crl: frozenset[int] | str | None,
) -> ProbeResult:
    material = settings.material
    status = response.response_status
    result.values[RESPONSE_STATUS.key] = float(status.value)
    if status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return _fail(result, f"OCSP: responder says {_RESPONSE_STATUS_NAMES.get(status, status.name)}")
    at = dt.datetime.fromtimestamp(now, dt.UTC)
    signer = _signer(response, material)
    if signer is None:
        return _fail(result, "OCSP: response signer unknown (the responder ID names neither the CA nor a"
                     " certificate in the response or responder_certs)")  # fmt: skip
    if signer != material.issuer:
        why = _authorised(signer, material, at)
        if why is not None:
            return _fail(result, why)
    result.info["ocsp_signer"] = _name(signer)
    if not _verify_signature(signer, response):
        return _fail(result, f"OCSP: response signature invalid (signer {_name(signer)})")
    if nonce is not None:
        try:
            echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            return _fail(result, "OCSP: nonce not echoed")
        if echoed != nonce:
            return _fail(result, "OCSP: nonce mismatch (the response answers another request)")
    produced = response.produced_at_utc.timestamp()
    result.values[PRODUCED_AGE.key] = now - produced
    if produced - now > settings.clock_skew:
        return _fail(result, f"OCSP: producedAt is {_age(produced - now)} in the future")
    return _judge_canaries(list(response.responses), settings, material, now, result, crl)


def _judge_canaries(
    singles: list[ocsp.OCSPSingleResponse],
    settings: OCSPSettings,
    material: _Material,
    now: float,
    result: ProbeResult,
    crl: frozenset[int] | str | None,
) -> ProbeResult:
    problems: list[str] = []
    this_updates: list[float] = []
    next_updates: list[float] = []
    for serial, label, expect in zip(material.serials, material.labels, material.expect, strict=True):
        single = _one_status(singles, serial, material, settings.hash)
        got = "missing" if single is None else _CERT_STATUS_NAMES[single.certificate_status]
        for name in _STATUSES:
            labels = (("serial", label), ("expect", expect), ("status", name))
            result.series.append(CANARY_STATUS.sample(labels, 1.0 if name == got else 0.0))
        if single is None:
            problems.append(f"OCSP: no status for canary serial {label} in the response")
            continue
        this_update = single.this_update_utc.timestamp()
        this_updates.append(this_update)
        if this_update - now > settings.clock_skew:
            problems.append(f"OCSP: thisUpdate is {_age(this_update - now)} in the future (canary serial {label})")
        next_update = single.next_update_utc
        if next_update is not None:
            next_updates.append(next_update.timestamp())
        if got == "unknown":
            problems.append(f"OCSP: canary serial {label} is unknown")
        elif got != expect:
            problems.append(f"OCSP: canary serial {label} is {got}, expected {expect}")
        if isinstance(crl, frozenset) and got in ("good", "revoked") and (serial in crl) != (got == "revoked"):
            in_crl = "revoked" if serial in crl else "not listed"
            problems.append(f"OCSP and CRL disagree: serial {label} is {in_crl} in the CRL and {got} in OCSP")
    if this_updates:
        result.values[THIS_UPDATE.key] = max(this_updates)
    if next_updates:
        earliest = min(next_updates)
        result.values[NEXT_UPDATE.key] = earliest
        left = earliest - now
        if left < 0:
            problems.insert(0, f"OCSP: nextUpdate passed {_age(left)} ago")
        elif left < settings.min_remaining:
            problems.insert(
                0, f"OCSP: nextUpdate in {_age(left)}, less than min_remaining {_age(settings.min_remaining)}"
            )
        elif left < settings.degraded_within:
            result.degraded = f"OCSP: nextUpdate in {_age(left)} (degraded_within {_age(settings.degraded_within)})"
    if isinstance(crl, str) and result.degraded is None:
        result.degraded = f"OCSP: CRL agreement not checked: {crl}"
    if problems:
        # the first says what an operator acts on; the others are kept for the details view
        _fail(result, problems[0])
        if len(problems) > 1:
            result.info["ocsp_problems"] = "; ".join(problems)[:500]
    return result


# the key types a CRL signature can be checked with (an X25519 key, say, signs nothing)
_CRL_KEYS = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)


def crl_revoked(data: bytes, material: _Material) -> frozenset[int] | str:
    """The canaries' serials the issuer's CRL (DER or PEM) revokes, or why the CRL cannot be used."""
    digest = hashlib.sha256(data).digest()
    if material.crl_seen is not None and material.crl_seen[0] == digest:
        return material.crl_seen[1]
    verdict: frozenset[int] | str
    try:
        crl = x509.load_pem_x509_crl(data) if b"-----BEGIN" in data[:64] else x509.load_der_x509_crl(data)
        if crl.issuer != material.issuer.subject:
            verdict = f"the CRL is issued by {crl.issuer.rfc4514_string()}, not by the issuer"
        elif not isinstance(key := material.issuer.public_key(), _CRL_KEYS) or not crl.is_signature_valid(key):
            verdict = "the CRL's signature is not the issuer's"
        else:
            verdict = frozenset(s for s in material.serials if crl.get_revoked_certificate_by_serial_number(s))
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        verdict = f"not a CRL ({exc})"
    material.crl_seen = (digest, verdict)
    return verdict


async def _crl_bytes(session: aiohttp.ClientSession, source: str) -> bytes | str:
    """The CRL's bytes from its URL or file, or why they could not be had."""
    if not source.startswith(("http://", "https://")):
        try:
            data = await asyncio.to_thread(Path(source).read_bytes)  # a large file: off the event loop
        except OSError as exc:
            return f"{source}: {exc.strerror or exc}"
        return data if len(data) <= MAX_CRL else f"{source} is larger than {MAX_CRL // 2**20} MiB"
    try:
        async with session.get(source, headers={"User-Agent": USER_AGENT}, allow_redirects=False) as response:
            if response.status != 200:
                return f"{source}: HTTP status {response.status}"
            body = bytearray()
            async for chunk in response.content.iter_any():
                body += chunk
                if len(body) > MAX_CRL:
                    return f"{source} is larger than {MAX_CRL // 2**20} MiB"
            return bytes(body)
    except (aiohttp.ClientError, OSError) as exc:
        base.raise_if_local(exc)
        return f"{source}: {exc or type(exc).__name__}"


def _fail(result: ProbeResult, error: str) -> ProbeResult:
    result.ok = False
    result.error = error
    result.degraded = None
    return result


class _Trace:
    """What travels in aiohttp's trace_request_ctx: this run's phase timer and progress."""

    __slots__ = ("progress", "timer")

    def __init__(self, timer: PhaseTimer, progress: Progress) -> None:
        self.timer = timer
        self.progress = progress


def _trace_config() -> aiohttp.TraceConfig:
    async def mark(ctx: SimpleNamespace, phase: str, now: str, where: str) -> None:
        trace = ctx.trace_request_ctx
        if isinstance(trace, _Trace):
            trace.timer.mark(phase)
            trace.progress.enter(now, where)

    async def conn_start(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
        await mark(ctx, "setup", "connect", "while connecting to the OCSP responder")

    async def conn_end(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
        await mark(ctx, "connect", "request", "while sending the OCSP request")

    async def sent(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
        await mark(ctx, "request", "response", "waiting for the OCSP response")

    config = aiohttp.TraceConfig()
    config.on_connection_create_start.append(conn_start)
    config.on_connection_create_end.append(conn_end)
    config.on_request_headers_sent.append(sent)
    config.on_request_chunk_sent.append(sent)  # a POST body after the headers: still the request phase
    return config


def _url(request: ProbeRequest, settings: OCSPSettings) -> str:
    url = request.params.get("url") or settings.url
    if url:
        return str(url)
    host = request.address
    if ":" in host and is_ip_literal(host):
        host = f"[{host}]"
    return f"http://{host}:{request.port}/" if request.port else f"http://{host}/"


async def _read(response: aiohttp.ClientResponse) -> bytes | None:
    """The whole body, or None when it is over MAX_RESPONSE (then it is not read further)."""
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > MAX_RESPONSE:
            return None
    return bytes(body)


class OCSPProbe:
    name = "ocsp"
    settings_model = OCSPSettings
    measures: tuple[Measure, ...] = (THIS_UPDATE, NEXT_UPDATE, PRODUCED_AGE, RESPONSE_STATUS)
    series: tuple[Family, ...] = (CANARY_STATUS,)
    phases: tuple[str, ...] = ("connect", "request", "response", "crl", "verify")
    polls_agent = False

    def __init__(self) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._trace = _trace_config()
        self._tls = tls.ContextCache()

    def _session(self, settings: OCSPSettings) -> aiohttp.ClientSession:
        session = self._sessions.get(settings.cache_key)
        if session is None or session.closed:
            family = {"auto": socket.AF_UNSPEC, "ip4": socket.AF_INET, "ip6": socket.AF_INET6}[settings.ip_protocol]
            connector = aiohttp.TCPConnector(
                force_close=True,  # a fresh connection per probe: connect time is real every time
                limit=0,  # the scheduler bounds concurrency
                ssl=self._tls.get(settings.tls_config),
                family=family,
                ttl_dns_cache=None,
                happy_eyeballs_delay=None,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                trace_configs=[self._trace],
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,  # DER, never compressed; what came is what is judged
            )
            self._sessions[settings.cache_key] = session
        return session

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

    async def _crl(self, request: ProbeRequest, settings: OCSPSettings, started: float) -> frozenset[int] | str:
        """What the CRL says of the canaries, or why it could not be had within the check's timeout: a slow
        CRL must not time the check out (DOWN), the responder has answered; CRL_MARGIN is left to judge."""
        assert settings.crl is not None
        budget = request.timeout - (time.monotonic() - started) - CRL_MARGIN
        try:
            async with asyncio.timeout(max(budget, 0.0)):
                fetched = await _crl_bytes(self._session(settings), settings.crl)
                if isinstance(fetched, str):
                    return fetched
                if len(fetched) < 1024 * 1024:
                    return crl_revoked(fetched, settings.material)
                # a large CRL: hashed (and parsed when it changed) off the event loop
                return await asyncio.to_thread(crl_revoked, fetched, settings.material)
        except TimeoutError:
            return f"{settings.crl}: not had within the check's timeout"

    async def run(self, request: ProbeRequest, settings: OCSPSettings) -> ProbeResult:
        progress = request.progress
        started = time.monotonic()
        timer = PhaseTimer(progress)
        nonce = os.urandom(NONCE_BYTES) if settings.nonce else None
        der = ocsp_wire.ocsp_request(settings.material.requests, nonce)
        url = _url(request, settings)
        headers = {"User-Agent": USER_AGENT}
        if request.hostname and "url" not in request.params and settings.url is None:
            headers["Host"] = request.hostname if request.port in (None, 80) else f"{request.hostname}:{request.port}"
        data: bytes | None = None
        if settings.method == "get":
            # RFC 6960 A.1: the base64 of the DER, URL-encoded, as one path segment after the responder's URL
            target = URL(url.rstrip("/") + "/" + quote(base64.b64encode(der).decode(), safe=""), encoded=True)
        else:
            target = URL(url)
            headers["Content-Type"] = "application/ocsp-request"
            data = der
        progress.enter("connect", "while connecting to the OCSP responder")
        try:
            async with self._session(settings).request(
                settings.method.upper(),
                target,
                headers=headers,
                data=data,
                allow_redirects=False,
                trace_request_ctx=_Trace(timer, progress),
            ) as response:
                if response.status != 200:
                    return ProbeResult.failure(
                        f"OCSP: HTTP status {response.status} {response.reason or ''}".rstrip(), phases=timer.phases
                    )
                body = await _read(response)
                timer.mark("response")
                if body is None:
                    return ProbeResult.failure(
                        f"OCSP: response larger than {MAX_RESPONSE // 1024} KiB", phases=timer.phases
                    )
        except aiohttp.ClientConnectorCertificateError as exc:
            return ProbeResult.failure(tls.describe_ssl_error(exc.certificate_error), phases=timer.phases)
        except aiohttp.ClientConnectorError as exc:
            return ProbeResult.failure(tls.describe_ssl_error(exc.os_error), phases=timer.phases)
        except aiohttp.ServerDisconnectedError:
            return ProbeResult.failure("server closed the connection without a response", phases=timer.phases)
        except (aiohttp.ClientError, OSError) as exc:
            base.raise_if_local(exc)  # EMFILE, ENOBUFS: this host's failure, not the responder's
            return ProbeResult.failure(f"OCSP: HTTP error: {exc or type(exc).__name__}", phases=timer.phases)
        crl: frozenset[int] | str | None = None
        if settings.crl is not None:
            progress.enter("crl", "while fetching the CRL to compare with")
            crl = await self._crl(request, settings, started)
            timer.mark("crl")
        progress.enter("verify", "while verifying the OCSP response")
        result = judge(body, settings, nonce, time.time(), ProbeResult(ok=True, phases=timer.phases), crl)
        timer.mark("verify")
        return result
