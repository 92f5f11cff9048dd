"""The OCSP request on the wire (RFC 6960 4.1), written by hand.

cryptography's OCSPRequestBuilder takes exactly one certificate per request; a check asks about all its
canaries in one request, as RFC 6960 allows and responders (openssl ocsp among them) answer. The
request is small and fixed apart from the nonce, so the CertIDs are encoded once per settings and a
probe only joins bytes. Responses are parsed by cryptography (x509.ocsp), not here.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

HashName = Literal["sha1", "sha256"]

# DER of the AlgorithmIdentifier OIDs (id-sha1 1.3.14.3.2.26, id-sha256 2.16.840.1.101.3.4.2.1)
_HASH_OIDS: dict[str, bytes] = {
    "sha1": bytes.fromhex("06052b0e03021a"),
    "sha256": bytes.fromhex("0609608648016503040201"),
}
_NONCE_OID = bytes.fromhex("06092b0601050507300102")  # id-pkix-ocsp-nonce 1.3.6.1.5.5.7.48.1.2


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element: tag, definite length, content."""
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content


def integer(value: int) -> bytes:
    """A non-negative DER INTEGER (serial numbers are positive; a set top bit needs a 0x00 before it)."""
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return tlv(0x02, body)


def _element(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at `pos`."""
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        return tag, pos, pos + first
    count = first & 0x7F
    size = int.from_bytes(data[pos : pos + count], "big")
    return tag, pos + count, pos + count + size


def public_key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING's bytes (without the unused-bits octet): what issuerKeyHash hashes."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    _, start, _ = _element(spki, 0)  # SubjectPublicKeyInfo SEQUENCE
    _, _, algorithm_end = _element(spki, start)  # AlgorithmIdentifier
    tag, bits_start, bits_end = _element(spki, algorithm_end)
    if tag != 0x03:
        raise ValueError("certificate has no subjectPublicKey BIT STRING")
    return spki[bits_start + 1 : bits_end]


def issuer_hashes(issuer: x509.Certificate, algorithm: HashName) -> tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) of a CertID for certificates this CA issued."""
    name = issuer.subject.public_bytes()
    return hashlib.new(algorithm, name).digest(), hashlib.new(algorithm, public_key_bits(issuer)).digest()


def cert_id(algorithm: HashName, name_hash: bytes, key_hash: bytes, serial: int) -> bytes:
    algorithm_id = tlv(0x30, _HASH_OIDS[algorithm] + b"\x05\x00")  # parameters NULL, as openssl writes them
    return tlv(0x30, algorithm_id + tlv(0x04, name_hash) + tlv(0x04, key_hash) + integer(serial))


def request_list(cert_ids: list[bytes]) -> bytes:
    """requestList: one Request (a bare CertID, no singleRequestExtensions) per certificate asked about."""
    return tlv(0x30, b"".join(tlv(0x30, one) for one in cert_ids))


def ocsp_request(requests: bytes, nonce: bytes | None) -> bytes:
    """OCSPRequest with the encoded requestList and, when given, a nonce (RFC 8954: the extension's
    value is an OCTET STRING holding the nonce, the form openssl and cryptography use)."""
    body = requests
    if nonce is not None:
        extension = tlv(0x30, _NONCE_OID + tlv(0x04, tlv(0x04, nonce)))
        body += tlv(0xA2, tlv(0x30, extension))  # requestExtensions [2] EXPLICIT Extensions
    return tlv(0x30, tlv(0x30, body))  # OCSPRequest { TBSRequest { ... } }, unsigned
