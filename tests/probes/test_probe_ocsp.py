"""OCSP probe against real responders: `openssl ocsp` (Debian's openssl) on loopback with its own CA, a
delegated responder certificate (EKU OCSPSigning), good and revoked canaries, and an aiohttp proxy in front
of it that tampers on purpose (flips a signature byte, replays an old response, strips the nonce, answers
tryLater). Every failure class is asserted with its exact verdict and reason."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import ValidationError

from monitor.incidents.reasons import reason_ja
from monitor.scheduling.runner import ProbeRunner
from probes import ocsp_wire
from probes.base import ProbeResult
from probes.ocsp import (
    CANARY_STATUS,
    NEXT_UPDATE,
    PRODUCED_AGE,
    RESPONSE_STATUS,
    THIS_UPDATE,
    OCSPSettings,
    judge,
)

LOOPBACK4 = "127.0.0.1"
UNKNOWN_SERIAL = 0x1234  # in no index: openssl says unknown
pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl (the real responder) not installed")


# --------------------------------------------------------------------------------------------- PKI


@dataclass(frozen=True)
class Cert:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_file: Path
    key_file: Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _issue(
    folder: Path,
    stem: str,
    name: str,
    issuer: Cert | None,
    *,
    ca: bool = False,
    usage: list[x509.ObjectIdentifier] | None = None,
    not_after: dt.datetime | None = None,
) -> Cert:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(days=1))
        .not_valid_after(not_after or _now() + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    cert_file, key_file = folder / f"{stem}.crt", folder / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Cert(cert, key, cert_file, key_file)


@dataclass(frozen=True)
class OcspPKI:
    folder: Path
    ca: Cert
    responder: Cert  # delegated: issued by the CA, EKU OCSPSigning
    not_ocsp: Cert  # issued by the CA, EKU serverAuth only
    foreign: Cert  # EKU OCSPSigning, issued by another CA
    expired_responder: Cert  # issued by the CA, EKU OCSPSigning, expired yesterday
    good: Cert
    revoked: Cert
    index: Path


@pytest.fixture(scope="module")
def opki(tmp_path_factory: pytest.TempPathFactory) -> OcspPKI:
    folder = tmp_path_factory.mktemp("ocsp-pki")
    ca = _issue(folder, "ca", "OCSP Test CA", None, ca=True)
    other = _issue(folder, "other-ca", "Unrelated CA", None, ca=True)
    signing = [ExtendedKeyUsageOID.OCSP_SIGNING]
    responder = _issue(folder, "responder", "Test OCSP Responder", ca, usage=signing)
    not_ocsp = _issue(folder, "not-ocsp", "Web Server", ca, usage=[ExtendedKeyUsageOID.SERVER_AUTH])
    foreign = _issue(folder, "foreign", "Foreign Responder", other, usage=signing)
    expired = _issue(folder, "expired", "Expired Responder", ca, usage=signing, not_after=_now() - dt.timedelta(days=1))
    good = _issue(folder, "good", "good.canary.test", ca, usage=[ExtendedKeyUsageOID.SERVER_AUTH])
    revoked = _issue(folder, "revoked", "revoked.canary.test", ca, usage=[ExtendedKeyUsageOID.SERVER_AUTH])
    expiry = (_now() + dt.timedelta(days=365)).strftime("%y%m%d%H%M%SZ")
    revoked_at = (_now() - dt.timedelta(days=2)).strftime("%y%m%d%H%M%SZ")

    def serial(cert: Cert) -> str:
        text = f"{cert.cert.serial_number:X}"
        return text if len(text) % 2 == 0 else "0" + text

    index = folder / "index.txt"
    index.write_text(
        f"V\t{expiry}\t\t{serial(good)}\tunknown\t/CN=good.canary.test\n"
        f"R\t{expiry}\t{revoked_at},keyCompromise\t{serial(revoked)}\tunknown\t/CN=revoked.canary.test\n"
    )
    return OcspPKI(folder, ca, responder, not_ocsp, foreign, expired, good, revoked, index)


# ------------------------------------------------------------------------------------ real responders


class Responders:
    """`openssl ocsp` responders on loopback, one per signer and validity, started on first use."""

    def __init__(self, pki: OcspPKI) -> None:
        self.pki = pki
        self._procs: dict[tuple[Any, ...], tuple[subprocess.Popen[bytes], int]] = {}

    def port(self, signer: str = "responder", minutes: int = 600, *extra: str) -> int:
        """The port of a responder signing with `signer` ("responder", "ca", "not_ocsp", "foreign",
        "expired_responder"); nextUpdate `minutes` after thisUpdate (0: no nextUpdate); `extra` options."""
        key = (signer, minutes, *extra)
        if key not in self._procs:
            cert: Cert = getattr(self.pki, signer)
            args = ["openssl", "ocsp", "-index", str(self.pki.index), "-port", "0", "-CA", str(self.pki.ca.cert_file)]
            args += ["-rsigner", str(cert.cert_file), "-rkey", str(cert.key_file)]
            if minutes:
                args += ["-nmin", str(minutes)]
            args += extra
            # it prints "ACCEPT [::]:40809 PID=8057" on stdout once listening (and little else: no pipe fills)
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert proc.stdout is not None
            line = proc.stdout.readline().decode()
            found = re.search(r"ACCEPT \S*:(\d+) ", line)
            if found is None:
                proc.kill()
                proc.wait()
                pytest.fail(f"openssl ocsp did not start: {line!r}")
            self._procs[key] = (proc, int(found.group(1)))
        return self._procs[key][1]

    def close(self) -> None:
        for proc, _ in self._procs.values():
            proc.terminate()
        for proc, _ in self._procs.values():
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def responders(opki: OcspPKI) -> Iterator[Responders]:
    r = Responders(opki)
    try:
        yield r
    finally:
        r.close()


def _der(data: bytes, pos: int = 0) -> tuple[int, int]:
    """(start, end) of the content of the DER element at `pos`."""
    first = data[pos + 1]
    if first < 0x80:
        return pos + 2, pos + 2 + first
    count = first & 0x7F
    start = pos + 2 + count
    return start, start + int.from_bytes(data[pos + 2 : start], "big")


def _strip_nonce(der: bytes) -> bytes:
    """The request without its requestExtensions (the nonce), re-encoded."""
    start, end = _der(der)  # OCSPRequest
    start, end = _der(der, start)  # TBSRequest
    kept, pos = b"", start
    while pos < end:
        _, stop = _der(der, pos)
        if der[pos] != 0xA2:  # [2] requestExtensions
            kept += der[pos:stop]
        pos = stop
    return ocsp_wire.tlv(0x30, ocsp_wire.tlv(0x30, kept))


def _flip_signature(body: bytes) -> bytes:
    signature = ocsp.load_der_ocsp_response(body).signature
    at = body.index(signature) + len(signature) // 2
    return body[:at] + bytes((body[at] ^ 0x01,)) + body[at + 1 :]


def _old_response(pki: OcspPKI, request_der: bytes) -> bytes:
    """What a cache replays: a genuine response, signed by the real responder, 2 days old, nextUpdate 3h ago."""
    builder = ocsp.OCSPResponseBuilder()
    this_update = _now() - dt.timedelta(days=2)
    builder = builder.add_response(
        cert=pki.good.cert,
        issuer=pki.ca.cert,
        algorithm=hashes.SHA1(),
        cert_status=ocsp.OCSPCertStatus.GOOD,
        this_update=this_update,
        next_update=_now() - dt.timedelta(hours=3, minutes=5),
        revocation_time=None,
        revocation_reason=None,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, pki.responder.cert).certificates(
        [pki.responder.cert]
    )
    return builder.sign(pki.responder.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _fresh_response(pki: OcspPKI, request_der: bytes, this_update: dt.datetime) -> bytes:
    """A response about the good canary only, signed by the real responder, thisUpdate as given, the
    request's nonce echoed when it has one (a request for one certificate: cryptography parses it)."""
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=pki.good.cert,
        issuer=pki.ca.cert,
        algorithm=hashes.SHA1(),
        cert_status=ocsp.OCSPCertStatus.GOOD,
        this_update=this_update,
        next_update=this_update + dt.timedelta(hours=10),
        revocation_time=None,
        revocation_reason=None,
    )
    try:
        nonce = ocsp.load_der_ocsp_request(request_der).extensions.get_extension_for_class(x509.OCSPNonce)
        builder = builder.add_extension(nonce.value, critical=False)
    except (NotImplementedError, x509.ExtensionNotFound):
        pass  # several certificates asked about (cryptography reads one) or no nonce: none echoed
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, pki.responder.cert).certificates(
        [pki.responder.cert]
    )
    return builder.sign(pki.responder.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


class Proxy:
    """An aiohttp responder in front of `openssl ocsp` that tampers with what passes, by `mode`."""

    def __init__(self, pki: OcspPKI, upstream: int) -> None:
        self.pki = pki
        self.upstream = upstream
        self.mode = "pass"
        self.status: ocsp.OCSPResponseStatus = ocsp.OCSPResponseStatus.TRY_LATER
        self.recorded: bytes | None = None

    async def handle(self, request: web.Request) -> web.Response:
        der = await request.read()
        if self.mode == "status":
            body = ocsp.OCSPResponseBuilder.build_unsuccessful(self.status).public_bytes(serialization.Encoding.DER)
            return web.Response(body=body, content_type="application/ocsp-response")
        if self.mode == "replay":
            return web.Response(body=_old_response(self.pki, der), content_type="application/ocsp-response")
        if self.mode == "future":
            body = _fresh_response(self.pki, der, _now() + dt.timedelta(hours=2, minutes=1))
            return web.Response(body=body, content_type="application/ocsp-response")
        if self.mode == "partial":
            return web.Response(body=_fresh_response(self.pki, der, _now()), content_type="application/ocsp-response")
        if self.mode == "recorded" and self.recorded is not None:
            return web.Response(body=self.recorded, content_type="application/ocsp-response")
        if self.mode == "strip_nonce":
            der = _strip_nonce(der)
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://{LOOPBACK4}:{self.upstream}/", data=der) as upstream,
        ):
            body = await upstream.read()
        if self.mode == "flip":
            body = _flip_signature(body)
        if self.mode == "recorded":
            self.recorded = body  # the first answer, replayed to every later request
        if self.mode == "http500":
            return web.Response(status=500, body=b"oops")
        return web.Response(body=body, content_type="application/ocsp-response")


# ------------------------------------------------------------------------------------------ helpers


def _settings(pki: OcspPKI, **overrides: Any) -> OCSPSettings:
    data: dict[str, Any] = {
        "issuer": str(pki.ca.cert_file),
        "canaries": [
            {"cert": str(pki.good.cert_file), "expect": "good"},
            {"cert": str(pki.revoked.cert_file), "expect": "revoked"},
        ],
        **overrides,
    }
    return OCSPSettings.model_validate(data)


def _series(result: ProbeResult, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {s.labels: s.value for s in result.series if s.name == name}


def _hex(cert: Cert) -> str:
    return f"0x{cert.cert.serial_number:x}"


RunCheck = Callable[..., Any]


@pytest.fixture
def run_check(runner: ProbeRunner, check_factory: Callable[..., Any]) -> RunCheck:
    async def run(settings: OCSPSettings, port: int, **kw: Any) -> ProbeResult:
        check = check_factory("ocsp", settings, port=port, timeout=5.0, **kw)
        result: ProbeResult = await runner.run(check)
        return result

    return run


# -------------------------------------------------------------------------------------------- tests


async def test_good_and_revoked_canaries_pass_with_delegated_responder(
    opki: OcspPKI, responders: Responders, run_check: RunCheck
) -> None:
    port = responders.port()
    before = time.time()
    result = await run_check(_settings(opki), port)
    assert result.ok, result.error
    assert result.error is None and result.degraded is None
    assert result.info["ocsp_signer"] == "CN=Test OCSP Responder"
    assert set(result.phases) >= {"connect", "request", "response", "verify"}
    assert result.values[RESPONSE_STATUS.key] == 0.0
    next_update = result.values[NEXT_UPDATE.key]
    assert before + 590 * 60 < next_update < time.time() + 601 * 60
    assert abs(result.values[THIS_UPDATE.key] - before) < 5
    assert 0 <= result.values[PRODUCED_AGE.key] < 5
    status = _series(result, CANARY_STATUS.name)
    good, revoked = _hex(opki.good), _hex(opki.revoked)
    assert status[(("serial", good), ("expect", "good"), ("status", "good"))] == 1.0
    assert status[(("serial", good), ("expect", "good"), ("status", "revoked"))] == 0.0
    assert status[(("serial", revoked), ("expect", "revoked"), ("status", "revoked"))] == 1.0
    assert len(status) == 8  # 2 canaries x good/revoked/unknown/missing
    for sample in result.series:  # each sample as its kind declares the family
        assert (sample.name, sample.help, sample.type) == CANARY_STATUS[:3]
        assert tuple(name for name, _ in sample.labels) == CANARY_STATUS.labels


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
async def test_get_and_post_with_either_hash(
    opki: OcspPKI, responders: Responders, run_check: RunCheck, method: str, algorithm: str
) -> None:
    result = await run_check(_settings(opki, method=method, hash=algorithm), responders.port())
    assert result.ok, result.error


async def test_response_signed_by_the_ca_itself_passes(
    opki: OcspPKI, responders: Responders, run_check: RunCheck
) -> None:
    result = await run_check(_settings(opki), responders.port("ca"))
    assert result.ok, result.error
    assert result.info["ocsp_signer"] == "CN=OCSP Test CA"


async def test_serial_canaries_and_unknown_is_always_a_failure(
    opki: OcspPKI, responders: Responders, run_check: RunCheck
) -> None:
    canaries = [
        {"serial": opki.good.cert.serial_number, "expect": "good"},
        {"serial": UNKNOWN_SERIAL, "expect": "good"},
    ]
    result = await run_check(_settings(opki, canaries=canaries), responders.port())
    assert not result.ok
    assert result.error == "OCSP: canary serial 0x1234 is unknown"
    status = _series(result, CANARY_STATUS.name)
    assert status[(("serial", "0x1234"), ("expect", "good"), ("status", "unknown"))] == 1.0
    assert reason_ja(result.error) == "OCSP: 監視用証明書 0x1234 の状態が不明（unknown）"


async def test_canary_with_the_wrong_status(opki: OcspPKI, responders: Responders, run_check: RunCheck) -> None:
    canaries = [{"cert": str(opki.revoked.cert_file), "expect": "good"}]
    result = await run_check(_settings(opki, canaries=canaries), responders.port())
    assert not result.ok
    assert result.error == f"OCSP: canary serial {_hex(opki.revoked)} is revoked, expected good"


async def test_signed_by_a_certificate_that_is_not_an_ocsp_signer(
    opki: OcspPKI, responders: Responders, run_check: RunCheck
) -> None:
    result = await run_check(_settings(opki), responders.port("not_ocsp"))
    assert not result.ok
    assert result.error == "OCSP: response signed by a certificate that is not an OCSP signer (CN=Web Server)"
    assert reason_ja(result.error) == "OCSP: OCSP署名用でない証明書で署名された応答"


async def test_signed_by_a_responder_of_another_ca(opki: OcspPKI, responders: Responders, run_check: RunCheck) -> None:
    result = await run_check(_settings(opki), responders.port("foreign"))
    assert not result.ok
    assert result.error == "OCSP: response signed by a certificate not issued by the CA (CN=Foreign Responder)"


async def test_signed_by_an_expired_responder_certificate(
    opki: OcspPKI, responders: Responders, run_check: RunCheck
) -> None:
    result = await run_check(_settings(opki), responders.port("expired_responder"))
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("OCSP: responder certificate expired (CN=Expired Responder, ")


async def test_responder_certificate_not_in_the_response(
    opki: OcspPKI, responders: Responders, run_check: RunCheck
) -> None:
    port = responders.port("responder", 600, "-resp_no_certs")  # the response carries no certificate
    unknown = await run_check(_settings(opki), port)
    assert unknown.error == (
        "OCSP: response signer unknown (the responder ID names neither the CA nor a certificate in the"
        " response or responder_certs)"
    )
    assert reason_ja(unknown.error) == "OCSP: 応答の署名者が不明"
    configured = await run_check(_settings(opki, responder_certs=[str(opki.responder.cert_file)]), port)
    assert configured.ok, configured.error


async def test_min_remaining_fails_and_degraded_within_degrades(
    opki: OcspPKI, responders: Responders, run_check: RunCheck
) -> None:
    port = responders.port(minutes=30)  # nextUpdate 30 minutes after thisUpdate
    short = await run_check(_settings(opki, min_remaining="1h"), port)
    assert not short.ok
    assert short.error == "OCSP: nextUpdate in 29m, less than min_remaining 1h"
    assert reason_ja(short.error) == "OCSP: nextUpdateまでの残りが不足（残り29m）"
    degraded = await run_check(_settings(opki, min_remaining="10m", degraded_within="1h"), port)
    assert degraded.ok, degraded.error
    assert degraded.degraded == "OCSP: nextUpdate in 29m (degraded_within 1h)"
    assert reason_ja(degraded.degraded) == "OCSP: nextUpdate間近（残り29m）"


async def test_no_next_update_passes(opki: OcspPKI, responders: Responders, run_check: RunCheck) -> None:
    result = await run_check(_settings(opki, min_remaining="1h", degraded_within="2h"), responders.port(minutes=0))
    assert result.ok and result.degraded is None, result.error
    assert NEXT_UPDATE.key not in result.values


@pytest.fixture
async def proxy(opki: OcspPKI, responders: Responders, peers: Any) -> tuple[Proxy, int]:
    p = Proxy(opki, responders.port())
    port = await peers.http([web.post("/", p.handle)])
    return p, port


async def test_proxy_passing_through_is_ok(proxy: tuple[Proxy, int], opki: OcspPKI, run_check: RunCheck) -> None:
    _, port = proxy
    result = await run_check(_settings(opki), port)
    assert result.ok, result.error


async def test_flipped_signature_byte(proxy: tuple[Proxy, int], opki: OcspPKI, run_check: RunCheck) -> None:
    p, port = proxy
    p.mode = "flip"
    result = await run_check(_settings(opki), port)
    assert not result.ok
    assert result.error == "OCSP: response signature invalid (signer CN=Test OCSP Responder)"
    assert reason_ja(result.error) == "OCSP: 応答の署名が不正"


async def test_stripped_nonce(proxy: tuple[Proxy, int], opki: OcspPKI, run_check: RunCheck) -> None:
    p, port = proxy
    p.mode = "strip_nonce"
    result = await run_check(_settings(opki), port)
    assert not result.ok
    assert result.error == "OCSP: nonce not echoed"
    assert reason_ja(result.error) == "OCSP: ナンスが応答に含まれない（リプレイの恐れ）"
    without = await run_check(_settings(opki, nonce=False), port)  # not asked for: not required
    assert without.ok, without.error


async def test_replayed_old_response(proxy: tuple[Proxy, int], opki: OcspPKI, run_check: RunCheck) -> None:
    p, port = proxy
    p.mode = "replay"
    canaries = [{"cert": str(opki.good.cert_file), "expect": "good"}]
    # a replayed response cannot carry this request's nonce: with a nonce the nonce is what fails
    with_nonce = await run_check(_settings(opki, canaries=canaries), port)
    assert with_nonce.error == "OCSP: nonce not echoed"
    result = await run_check(_settings(opki, canaries=canaries, nonce=False), port)
    assert not result.ok
    assert result.error == "OCSP: nextUpdate passed 3h ago"
    assert reason_ja(result.error) == "OCSP: nextUpdate超過（3h前に期限切れ）"


async def test_recorded_response_replayed_to_a_later_request(
    proxy: tuple[Proxy, int], opki: OcspPKI, run_check: RunCheck
) -> None:
    p, port = proxy
    p.mode = "recorded"
    first = await run_check(_settings(opki), port)  # openssl's genuine answer, recorded by the proxy
    assert first.ok, first.error
    replayed = await run_check(_settings(opki), port)  # the same answer again: signed, fresh, another nonce
    assert not replayed.ok
    assert replayed.error == "OCSP: nonce mismatch (the response answers another request)"
    assert reason_ja(replayed.error) == "OCSP: ナンスが要求と一致しない（リプレイの恐れ）"


async def test_this_update_in_the_future(proxy: tuple[Proxy, int], opki: OcspPKI, run_check: RunCheck) -> None:
    p, port = proxy
    p.mode = "future"
    canaries = [{"cert": str(opki.good.cert_file), "expect": "good"}]
    result = await run_check(_settings(opki, canaries=canaries), port)
    assert not result.ok
    assert result.error == f"OCSP: thisUpdate is 2h in the future (canary serial {_hex(opki.good)})"
    assert reason_ja(result.error) == "OCSP: 応答の時刻が未来（2h先）"


async def test_canary_missing_from_the_response(proxy: tuple[Proxy, int], opki: OcspPKI, run_check: RunCheck) -> None:
    p, port = proxy
    p.mode = "partial"  # answers about the good canary only
    result = await run_check(_settings(opki, nonce=False), port)
    assert not result.ok
    assert result.error == f"OCSP: no status for canary serial {_hex(opki.revoked)} in the response"
    status = _series(result, CANARY_STATUS.name)
    assert status[(("serial", _hex(opki.revoked)), ("expect", "revoked"), ("status", "missing"))] == 1.0
    assert status[(("serial", _hex(opki.good)), ("expect", "good"), ("status", "good"))] == 1.0


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (ocsp.OCSPResponseStatus.TRY_LATER, "tryLater"),
        (ocsp.OCSPResponseStatus.INTERNAL_ERROR, "internalError"),
        (ocsp.OCSPResponseStatus.UNAUTHORIZED, "unauthorized"),
        (ocsp.OCSPResponseStatus.MALFORMED_REQUEST, "malformedRequest"),
        (ocsp.OCSPResponseStatus.SIG_REQUIRED, "sigRequired"),
    ],
)
async def test_unsuccessful_response_status(
    proxy: tuple[Proxy, int], opki: OcspPKI, run_check: RunCheck, status: ocsp.OCSPResponseStatus, name: str
) -> None:
    p, port = proxy
    p.mode, p.status = "status", status
    result = await run_check(_settings(opki), port)
    assert not result.ok
    assert result.error == f"OCSP: responder says {name}"
    assert reason_ja(result.error) == f"OCSP: レスポンダがエラー応答（{name}）"
    assert result.values[RESPONSE_STATUS.key] == float(status.value)


async def test_http_error_status(proxy: tuple[Proxy, int], opki: OcspPKI, run_check: RunCheck) -> None:
    p, port = proxy
    p.mode = "http500"
    result = await run_check(_settings(opki), port)
    assert result.error == "OCSP: HTTP status 500 Internal Server Error"
    assert reason_ja(result.error) == "OCSP: HTTPステータス異常（500）"


async def test_not_an_ocsp_response(opki: OcspPKI, peers: Any, run_check: RunCheck) -> None:
    async def html(_request: web.Request) -> web.Response:
        return web.Response(text="<html>maintenance</html>")

    port = await peers.http([web.post("/", html)])
    result = await run_check(_settings(opki), port)
    assert not result.ok
    assert result.error is not None and result.error.startswith("OCSP: response is not a valid OCSP response")


async def test_connection_refused(opki: OcspPKI, refused_port: int, run_check: RunCheck) -> None:
    result = await run_check(_settings(opki), refused_port)
    assert result.error == "connection refused"


async def test_timeout_says_where(opki: OcspPKI, peers: Any, runner: ProbeRunner, check_factory: Any) -> None:
    async def hang(reader: Any, writer: Any) -> None:
        await reader.read(100_000)
        await reader.read()  # never answers

    port = await peers.tcp(hang)
    result = await runner.run(check_factory("ocsp", _settings(opki), port=port, timeout=0.5))
    assert result.error == "timeout after 500ms waiting for the OCSP response"


# ------------------------------------------------------------------------------------ request & config


async def test_any_corrupted_byte_is_a_verdict_not_a_crash(opki: OcspPKI, responders: Responders) -> None:
    """Every byte of a genuine openssl response flipped in turn: judge() names a failure (or, for bytes
    outside what is signed and checked, passes), never raises."""
    settings = _settings(opki)
    nonce = b"\x07" * 16
    der = ocsp_wire.ocsp_request(settings.material.requests, nonce)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://{LOOPBACK4}:{responders.port()}/", data=der) as response,
    ):
        body = await response.read()
    now = time.time()
    assert judge(body, settings, nonce, now, ProbeResult(ok=True)).ok
    failed = 0
    for at in range(len(body)):
        broken = body[:at] + bytes((body[at] ^ 0x5A,)) + body[at + 1 :]
        result = judge(broken, settings, nonce, now, ProbeResult(ok=True))
        assert result.ok or (result.error or "").startswith("OCSP: "), result.error
        failed += not result.ok
    assert failed > len(body) * 0.9  # all but a few bytes of the embedded certificate's unsigned parts
    assert not judge(body[:-10], settings, nonce, now, ProbeResult(ok=True)).ok


def test_request_for_one_canary_parses_as_cryptography_reads_it(opki: OcspPKI) -> None:
    settings = _settings(opki, canaries=[{"cert": str(opki.good.cert_file), "expect": "good"}])
    nonce = b"n" * 16
    request = ocsp.load_der_ocsp_request(ocsp_wire.ocsp_request(settings.material.requests, nonce))
    expected = ocsp.OCSPRequestBuilder().add_certificate(opki.good.cert, opki.ca.cert, hashes.SHA1()).build()
    assert request.serial_number == opki.good.cert.serial_number
    assert request.issuer_key_hash == expected.issuer_key_hash
    assert request.issuer_name_hash == expected.issuer_name_hash
    assert request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce


def test_integer_encoding() -> None:
    assert ocsp_wire.integer(0) == b"\x02\x01\x00"
    assert ocsp_wire.integer(0x80) == b"\x02\x02\x00\x80"
    assert ocsp_wire.integer(0x1234) == b"\x02\x02\x12\x34"
    assert ocsp_wire.tlv(0x04, b"x" * 200)[:3] == b"\x04\x81\xc8"


def test_settings_are_checked_at_load(opki: OcspPKI, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="either cert or serial"):
        _settings(opki, canaries=[{"cert": str(opki.good.cert_file), "serial": 1, "expect": "good"}])
    with pytest.raises(ValidationError, match="file not found"):
        _settings(opki, issuer=str(tmp_path / "missing.crt"))
    with pytest.raises(ValidationError, match="is not issued by the issuer"):
        _settings(opki, canaries=[{"cert": str(opki.foreign.cert_file), "expect": "good"}])
    with pytest.raises(ValidationError):
        _settings(opki, canaries=[{"serial": 1, "expect": "unknown"}])
    serials = _settings(opki, canaries=[{"serial": "0x1234", "expect": "good"}, {"serial": "12:35", "expect": "good"}])
    assert serials.material.serials == [0x1234, 0x1235]
    with pytest.raises(ValidationError, match="is not a number"):
        _settings(opki, canaries=[{"serial": "zz", "expect": "good"}])
    relative = OCSPSettings.model_validate(
        {"issuer": "ca.crt", "canaries": [{"cert": "good.crt", "expect": "good"}]}, context={"base_dir": opki.folder}
    )
    assert relative.issuer == opki.folder / "ca.crt"
