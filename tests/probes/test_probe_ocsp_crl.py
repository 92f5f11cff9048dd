"""CRL and OCSP agree: `openssl ocsp` (Debian's openssl) answers from one index, `openssl ca -gencrl` builds
the CRL from another, and the probe compares each canary's status in both. A canary revoked in one and not
the other is its own failure; a CRL that cannot be had (404, another CA's) leaves the check DEGRADED."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import ValidationError

from monitor.incidents.reasons import reason_ja
from monitor.scheduling.runner import ProbeRunner
from probes.base import ProbeResult
from probes.ocsp import OCSPSettings, crl_revoked

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl (the real responder) not installed")


@dataclass(frozen=True)
class Cert:
    cert: x509.Certificate
    cert_file: Path
    key_file: Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _issue(folder: Path, stem: str, name: str, issuer: tuple[Cert, ec.EllipticCurvePrivateKey] | None,
           usage: list[x509.ObjectIdentifier] | None = None) -> tuple[Cert, ec.EllipticCurvePrivateKey]:  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(days=1))
        .not_valid_after(_now() + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    cert_file, key_file = folder / f"{stem}.crt", folder / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Cert(cert, cert_file, key_file), key


@dataclass(frozen=True)
class CrlPKI:
    folder: Path
    ca: Cert
    other_ca: Cert
    responder: Cert
    good: Cert
    revoked: Cert

    def index(self, name: str, revoked: list[Cert]) -> Path:
        """An openssl CA index: every canary, those in `revoked` revoked two days ago."""
        expiry = (_now() + dt.timedelta(days=365)).strftime("%y%m%d%H%M%SZ")
        revoked_at = (_now() - dt.timedelta(days=2)).strftime("%y%m%d%H%M%SZ")
        lines = []
        for cert in (self.good, self.revoked):
            serial = f"{cert.cert.serial_number:X}"
            serial = serial if len(serial) % 2 == 0 else "0" + serial
            cn = cert.cert.subject.rfc4514_string().replace("CN=", "/CN=")
            if cert in revoked:
                lines.append(f"R\t{expiry}\t{revoked_at},keyCompromise\t{serial}\tunknown\t{cn}\n")
            else:
                lines.append(f"V\t{expiry}\t\t{serial}\tunknown\t{cn}\n")
        path = self.folder / f"{name}.index"
        path.write_text("".join(lines))
        return path

    def crl(self, name: str, revoked: list[Cert], ca: Cert | None = None, der: bool = False) -> Path:
        """A CRL built by `openssl ca -gencrl` from an index revoking `revoked`, signed by `ca` (the CA)."""
        ca = ca or self.ca
        index = self.index(name, revoked)
        conf = self.folder / f"{name}.cnf"
        conf.write_text(
            f"[ca]\ndefault_ca = demo\n[demo]\ndatabase = {index}\ndefault_md = sha256\n"
            "default_crl_days = 1\nunique_subject = no\n"
        )
        out = self.folder / f"{name}.crl"
        args = ["openssl", "ca", "-gencrl", "-batch", "-config", str(conf), "-keyfile", str(ca.key_file)]
        subprocess.run([*args, "-cert", str(ca.cert_file), "-out", str(out)], check=True, capture_output=True)
        if der:
            subprocess.run(["openssl", "crl", "-in", str(out), "-outform", "DER", "-out", str(out)], check=True)
        return out


@pytest.fixture(scope="module")
def cpki(tmp_path_factory: pytest.TempPathFactory) -> CrlPKI:
    folder = tmp_path_factory.mktemp("ocsp-crl-pki")
    ca = _issue(folder, "ca", "CRL Test CA", None)
    other, _ = _issue(folder, "other-ca", "Unrelated CA", None)
    responder, _ = _issue(folder, "responder", "CRL Test Responder", ca, [ExtendedKeyUsageOID.OCSP_SIGNING])
    good, _ = _issue(folder, "good", "good.canary.test", ca, [ExtendedKeyUsageOID.SERVER_AUTH])
    revoked, _ = _issue(folder, "revoked", "revoked.canary.test", ca, [ExtendedKeyUsageOID.SERVER_AUTH])
    return CrlPKI(folder, ca[0], other, responder, good, revoked)


@pytest.fixture(scope="module")
def responder(cpki: CrlPKI) -> Iterator[int]:
    """`openssl ocsp` answering from an index in which the revoked canary (only) is revoked."""
    index = cpki.index("ocsp", [cpki.revoked])
    args = ["openssl", "ocsp", "-index", str(index), "-port", "0", "-CA", str(cpki.ca.cert_file), "-nmin", "600"]
    args += ["-rsigner", str(cpki.responder.cert_file), "-rkey", str(cpki.responder.key_file)]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    found = re.search(r"ACCEPT \S*:(\d+) ", proc.stdout.readline().decode())
    try:
        if found is None:
            pytest.fail("openssl ocsp did not start")
        yield int(found.group(1))
    finally:
        proc.terminate()
        proc.wait(timeout=5)


@pytest.fixture
async def crl_server(cpki: CrlPKI) -> AsyncIterator[Callable[[Path | None], str]]:
    """An aiohttp server on loopback serving one CRL file at /jpki.crl (None: 404); gives its URL."""
    served: dict[str, Path | None] = {"crl": None}

    async def handle(request: web.Request) -> web.Response:
        if "slow" in request.query:
            await asyncio.sleep(1.5)
        path = served["crl"]
        if path is None:
            return web.Response(status=404)
        return web.Response(body=path.read_bytes(), content_type="application/pkix-crl")

    app = web.Application()
    app.router.add_get("/jpki.crl", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # aiohttp keeps it private

    def serve(path: Path | None) -> str:
        served["crl"] = path
        return f"http://127.0.0.1:{port}/jpki.crl"

    try:
        yield serve
    finally:
        await runner.cleanup()


def _settings(cpki: CrlPKI, crl: str | Path, **overrides: Any) -> OCSPSettings:
    return OCSPSettings.model_validate({
        "issuer": str(cpki.ca.cert_file),
        "canaries": [
            {"cert": str(cpki.good.cert_file), "expect": "good"},
            {"cert": str(cpki.revoked.cert_file), "expect": "revoked"},
        ],
        "crl": str(crl),
        **overrides,
    })  # fmt: skip


RunCheck = Callable[..., Any]


@pytest.fixture
def run_check(runner: ProbeRunner, check_factory: Callable[..., Any]) -> RunCheck:
    async def run(settings: OCSPSettings, port: int, check_timeout: float = 5.0) -> ProbeResult:
        result: ProbeResult = await runner.run(check_factory("ocsp", settings, port=port, timeout=check_timeout))
        return result

    return run


def _hex(cert: Cert) -> str:
    return f"0x{cert.cert.serial_number:x}"


@pytest.mark.parametrize("der", [False, True])
async def test_crl_file_that_agrees_passes(cpki: CrlPKI, responder: int, run_check: RunCheck, der: bool) -> None:
    result = await run_check(_settings(cpki, cpki.crl(f"agree-{der}", [cpki.revoked], der=der)), responder)
    assert result.ok, result.error
    assert result.degraded is None
    assert "crl" in result.phases


async def test_good_in_ocsp_revoked_in_the_crl_is_a_disagreement(
    cpki: CrlPKI, responder: int, run_check: RunCheck
) -> None:
    result = await run_check(_settings(cpki, cpki.crl("both", [cpki.good, cpki.revoked])), responder)
    assert not result.ok
    assert result.error == f"OCSP and CRL disagree: serial {_hex(cpki.good)} is revoked in the CRL and good in OCSP"
    assert reason_ja(result.error) == (
        f"OCSPとCRLの不一致（監視用証明書 {_hex(cpki.good)}: CRLではrevoked、OCSPではgood）"
    )


async def test_revoked_in_ocsp_not_in_the_crl_is_a_disagreement(
    cpki: CrlPKI, responder: int, run_check: RunCheck, crl_server: Callable[[Path | None], str]
) -> None:
    url = crl_server(cpki.crl("none", []))  # by URL this time
    result = await run_check(_settings(cpki, url), responder)
    assert not result.ok
    assert result.error == (
        f"OCSP and CRL disagree: serial {_hex(cpki.revoked)} is not listed in the CRL and revoked in OCSP"
    )


async def test_crl_that_cannot_be_had_leaves_the_check_degraded(
    cpki: CrlPKI, responder: int, run_check: RunCheck, crl_server: Callable[[Path | None], str]
) -> None:
    missing = await run_check(_settings(cpki, crl_server(None)), responder)
    assert missing.ok and missing.error is None
    assert missing.degraded == f"OCSP: CRL agreement not checked: {crl_server(None)}: HTTP status 404"
    assert reason_ja(missing.degraded) == "OCSP: CRLを取得できずOCSPとの一致を未確認"
    foreign = cpki.crl("foreign", [cpki.good], ca=cpki.other_ca)
    other = await run_check(_settings(cpki, crl_server(foreign)), responder)
    assert other.ok
    assert other.degraded == (
        "OCSP: CRL agreement not checked: the CRL is issued by CN=Unrelated CA, not by the issuer"
    )


async def test_a_slow_crl_does_not_time_the_check_out(
    cpki: CrlPKI, responder: int, run_check: RunCheck, crl_server: Callable[[Path | None], str]
) -> None:
    """The CRL gets what is left of the check's timeout: the responder answered, so the check is DEGRADED
    in time rather than DOWN with a timeout."""
    url = crl_server(cpki.crl("slow", [cpki.revoked])) + "?slow"
    started = time.monotonic()
    result = await run_check(_settings(cpki, url), responder, check_timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert result.ok, result.error
    assert result.degraded == f"OCSP: CRL agreement not checked: {url}: not had within the check's timeout"


def test_crl_file_must_exist_and_is_judged_once_per_content(cpki: CrlPKI, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="file not found"):
        _settings(cpki, tmp_path / "nope.crl")
    settings = _settings(cpki, cpki.crl("once", [cpki.revoked]))
    data = (cpki.folder / "once.crl").read_bytes()
    first = crl_revoked(data, settings.material)
    assert first == frozenset({cpki.revoked.cert.serial_number})
    assert crl_revoked(data, settings.material) is first  # the same CRL again: not parsed again
    assert str(crl_revoked(b"garbage", settings.material)).startswith("not a CRL (")
