"""A throwaway PKI for the simulated network, all made at start-up: the backbone CA and its server
certificates, and a JPKI-like CA (公的個人認証) with a delegated OCSP responder certificate (EKU
OCSPSigning), a second certificate without that EKU (what a misconfigured responder signs with), and
two canary certificates, one good and one revoked. The JPKI CA's CRL and its OCSP answers come from the
same revocation list, so CRL and OCSP agree unless a fault says otherwise.

Nothing here is a secret worth keeping: keys live in the demo's own data directory and sign only
certificates for *.lgwan.example names and 127.x addresses.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

OLD_REVOKED = 0x1234  # a serial revoked long ago: a CRL entry that is no canary
# the files the demo's config names (relative to its folder: certs/...)
JPKI_CA_FILE = "jpki-ca.pem"
CANARY_GOOD_FILE = "jpki-canary-good.pem"
CANARY_REVOKED_FILE = "jpki-canary-revoked.pem"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Demo national backbone"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _pem(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _issued(
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    common_name: str,
    usage: list[x509.ObjectIdentifier],
    now: dt.datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """An end-entity certificate of `issuer`'s, valid a year, with the extended key usages given."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .sign(issuer[1], hashes.SHA256())
    )
    return cert, key


def _root_ca(common_name: str, now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA certificate (ten years, signs certificates and CRLs) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


@dataclass
class JpkiCA:
    """The JPKI-like CA: its OCSP responder's certificates, its canaries and what it revoked."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    responder: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]  # delegated: EKU OCSPSigning
    not_signer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]  # issued by the CA, no OCSPSigning
    good: x509.Certificate
    revoked: x509.Certificate
    revoked_at: dt.datetime

    @classmethod
    def create(cls, directory: Path, now: dt.datetime) -> JpkiCA:
        cert, key = _root_ca("Demo JPKI CA", now)
        ca = (cert, key)
        responder = _issued(ca, "Demo JPKI OCSP Responder", [ExtendedKeyUsageOID.OCSP_SIGNING], now)
        not_signer = _issued(ca, "Demo JPKI web server", [ExtendedKeyUsageOID.SERVER_AUTH], now)
        good, _ = _issued(ca, "canary-good.jpki.lgwan.example", [ExtendedKeyUsageOID.CLIENT_AUTH], now)
        revoked, _ = _issued(ca, "canary-revoked.jpki.lgwan.example", [ExtendedKeyUsageOID.CLIENT_AUTH], now)
        _pem(directory / JPKI_CA_FILE, cert)
        _pem(directory / CANARY_GOOD_FILE, good)
        _pem(directory / CANARY_REVOKED_FILE, revoked)
        return cls(cert, key, responder, not_signer, good, revoked, now - dt.timedelta(days=2))

    @property
    def revoked_serials(self) -> frozenset[int]:
        return frozenset({self.revoked.serial_number, OLD_REVOKED})

    def status(self, serial: int) -> ocsp.OCSPCertStatus:
        """What the CA knows of a serial: revoked, good (one it issued), else unknown."""
        if serial in self.revoked_serials:
            return ocsp.OCSPCertStatus.REVOKED
        issued = {self.good.serial_number, self.responder[0].serial_number, self.not_signer[0].serial_number}
        return ocsp.OCSPCertStatus.GOOD if serial in issued else ocsp.OCSPCertStatus.UNKNOWN


@dataclass
class DemoPKI:
    directory: Path
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    jpki: JpkiCA

    @classmethod
    def create(cls, directory: Path) -> DemoPKI:
        directory.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        cert, key = _root_ca("Demo National Backbone CA", now)
        (directory / "demo-ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(directory, key, cert, JpkiCA.create(directory, now))

    @property
    def ca_file(self) -> Path:
        return self.directory / "demo-ca.pem"

    def server_context(self, hostname: str, address: str, days: float = 365) -> ssl.SSLContext:
        """A server SSL context with a certificate for `hostname` and `address`, valid `days` more."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(hostname))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address(address))]),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        stem = self.directory / f"{hostname}"
        cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_path.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM) + self.cert.public_bytes(serialization.Encoding.PEM)
        )
        key_path.touch(mode=0o600)
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert_path, key_path)
        return ctx

    def crl(self, next_update_in: dt.timedelta = dt.timedelta(hours=6)) -> bytes:
        """The JPKI CA's DER CRL (the revoked canary and an old serial), valid for `next_update_in`."""
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.jpki.cert.subject)
            .last_update(now - dt.timedelta(minutes=1))
            .next_update(now + next_update_in)
        )
        for serial in sorted(self.jpki.revoked_serials):
            revoked = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(self.jpki.revoked_at)
            builder = builder.add_revoked_certificate(revoked.build())
        return builder.sign(self.jpki.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
