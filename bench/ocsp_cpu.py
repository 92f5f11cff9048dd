"""In-process CPU per OCSP check: N probes of kind ocsp through the daemon's ProbeRunner on uvloop against
`openssl ocsp` (a separate process, so its signing CPU is not counted), this process's CPU time divided
by N; and the verdict alone (`probes.ocsp.judge` on one captured response: parse, signer checks,
signature, nonce, times, canaries) to show what of it is the judging and what the HTTP exchange.

A throw-away PKI per run: a CA, a delegated responder certificate (EKU OCSPSigning, carried in each
response), a good and a revoked canary; one POST per probe asking about both, with a nonce.

    python -m bench.ocsp_cpu --probes 5000             # RSA 2048 (sha256WithRSAEncryption, as JPKI signs)
    python -m bench.ocsp_cpu --probes 5000 --key ec    # ECDSA P-256
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from monitor.clock import SystemClock
from monitor.config.model import Thresholds
from monitor.core.inventory import Check, Target
from monitor.core.state import StatePolicy
from monitor.scheduling.runner import ProbeRunner
from probes import ocsp_wire
from probes.base import ProbeRequest, ProbeResult
from probes.ocsp import OCSPSettings, judge
from probes.registry import close_probes, create_probes

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _key(kind: str) -> Key:
    return rsa.generate_private_key(65537, 2048) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())


def _issue(
    folder: Path, stem: str, name: str, key: Key, issuer: tuple[x509.Certificate, Key] | None, **kw: Any
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if kw.get("usage"):
        builder = builder.add_extension(x509.ExtendedKeyUsage(kw["usage"]), critical=False)
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    (folder / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{stem}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert


def _pki(folder: Path, kind: str) -> None:
    ca_key = _key(kind)
    ca = _issue(folder, "ca", "Bench CA", ca_key, None)
    _issue(
        folder, "responder", "Bench OCSP Responder", _key(kind), (ca, ca_key), usage=[ExtendedKeyUsageOID.OCSP_SIGNING]
    )
    good = _issue(folder, "good", "good", _key(kind), (ca, ca_key))
    revoked = _issue(folder, "revoked", "revoked", _key(kind), (ca, ca_key))
    expiry = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).strftime("%y%m%d%H%M%SZ")
    when = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).strftime("%y%m%d%H%M%SZ")
    (folder / "index.txt").write_text(
        f"V\t{expiry}\t\t{good.serial_number:040X}\tunknown\t/CN=good\n"
        f"R\t{expiry}\t{when}\t{revoked.serial_number:040X}\tunknown\t/CN=revoked\n"
    )


def _check(settings: OCSPSettings, port: int) -> Check:
    target = Target("ocsp", "127.0.0.1", None, None, None, {}, None)
    return Check(
        id="ocsp/ocsp", target=target, name="ocsp", module="ocsp", kind="ocsp", settings=settings,
        request=ProbeRequest("127.0.0.1", None, port, 5.0, {}), interval=10.0, retry_interval=5.0, timeout=5.0,
        policy=StatePolicy(), degraded=Thresholds(), reachability=False,
    )  # fmt: skip


async def measure(settings: OCSPSettings, port: int, probes: int, concurrency: int) -> dict[str, float]:
    kinds = create_probes()
    runner = ProbeRunner(kinds, SystemClock())
    check = _check(settings, port)
    failures = 0

    async def worker(count: int) -> None:
        nonlocal failures
        for _ in range(count):
            result = await runner.run(check)
            failures += not result.ok

    try:
        await asyncio.gather(*(worker(20) for _ in range(concurrency)))  # warm-up: session, caches
        failures = 0
        per_worker = probes // concurrency
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(per_worker) for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await close_probes(kinds)
    done = per_worker * concurrency
    return {"probes": done, "failures": failures, "cpu_ms": cpu / done * 1000, "wall_s": wall}


async def judge_only(settings: OCSPSettings, port: int, rounds: int) -> float:
    """ms of CPU for judge() on one response (fetched once, with its nonce)."""
    nonce = b"\x01" * 16
    der = ocsp_wire.ocsp_request(settings.material.requests, nonce)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{port}/", data=der, headers={"Content-Type": "application/ocsp-request"}) as r,
    ):
        body = await r.read()
    now = time.time()
    first = judge(body, settings, nonce, now, ProbeResult(ok=True))
    assert first.ok, first.error
    cpu = time.process_time()
    for _ in range(rounds):
        judge(body, settings, nonce, now, ProbeResult(ok=True))
    return (time.process_time() - cpu) / rounds * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--key", choices=["rsa", "ec"], default="rsa")
    parser.add_argument("--repeat", type=int, default=3, help="runs; each is printed, the lowest is the figure")
    args = parser.parse_args(argv)
    import uvloop

    if shutil.which("openssl") is None:
        print("needs openssl (the responder)")
        return 1
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        _pki(folder, args.key)
        command = ["openssl", "ocsp", "-index", str(folder / "index.txt"), "-port", "0", "-CA", str(folder / "ca.crt"),
                   "-rsigner", str(folder / "responder.crt"), "-rkey", str(folder / "responder.key"),
                   "-nmin", "600"]  # fmt: skip
        responder = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert responder.stdout is not None
            found = re.search(r"ACCEPT \S*:(\d+) ", responder.stdout.readline())
            if found is None:
                print("openssl ocsp did not start")
                return 1
            port = int(found.group(1))
            settings = OCSPSettings.model_validate(
                {
                    "issuer": str(folder / "ca.crt"),
                    "canaries": [
                        {"cert": str(folder / "good.crt"), "expect": "good"},
                        {"cert": str(folder / "revoked.crt"), "expect": "revoked"},
                    ],
                }
            )
            best = float("inf")
            for _ in range(args.repeat):
                figures = uvloop.run(measure(settings, port, args.probes, args.concurrency))
                print(
                    f"ocsp ({args.key}): {figures['probes']:.0f} probes, {figures['failures']:.0f} failed, "
                    f"{figures['cpu_ms']:.3f} ms CPU per probe, {figures['wall_s']:.1f} s"
                )
                best = min(best, figures["cpu_ms"])
            verdict = min(uvloop.run(judge_only(settings, port, 2000)) for _ in range(args.repeat))
            print(f"ocsp ({args.key}): lowest {best:.3f} ms CPU per probe; judge() alone {verdict:.3f} ms")
        finally:
            responder.terminate()
            responder.wait(timeout=5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
