"""The demo's JPKI OCSP responder (RFC 6960): signed answers from the demo's JPKI CA, and its faults.

cryptography parses a request for one certificate only; the monitor asks about all its canaries in one
request (as RFC 6960 allows), so the request is read here by hand: the CertIDs of its requestList and
the nonce of its requestExtensions, nothing else. cryptography's response builder likewise answers one
certificate: each is built on its own and their single responses joined into one ResponseData, signed
again (`_joined`). Answers come from JpkiCA.status, the same revocation
list the demo's CRL is built from, so CRL and OCSP agree.

Faults (a host's mode, set by the fault injector):
  ocsp-trylater      responseStatus tryLater, unsigned (a responder whose database is unreachable)
  ocsp-stale         a cached answer: thisUpdate two days ago, nextUpdate an hour ago
  ocsp-wrong-signer  signed with a certificate of the CA that has no EKU OCSPSigning
  ocsp-unknown       every certificate unknown (a responder that lost its index)
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from monitor.demo.pki import JpkiCA
from probes import ocsp_wire

NEXT_UPDATE = dt.timedelta(hours=6)  # a fresh answer's validity, over the demo's degraded_within
_NONCE_OID = bytes.fromhex("2b0601050507300102")  # id-pkix-ocsp-nonce 1.3.6.1.5.5.7.48.1.2 (content)
_BASIC_OID = bytes.fromhex("2b0601050507300101")  # id-pkix-ocsp-basic 1.3.6.1.5.5.7.48.1.1 (content)
_HASHES: dict[bytes, type[hashes.HashAlgorithm]] = {
    bytes.fromhex("2b0e03021a"): hashes.SHA1,  # 1.3.14.3.2.26
    bytes.fromhex("608648016503040201"): hashes.SHA256,  # 2.16.840.1.101.3.4.2.1
}


class MalformedRequest(ValueError):
    """Not an OCSP request this responder reads."""


def _element(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at `pos`, inside `end`."""
    if pos + 2 > end:
        raise MalformedRequest("truncated")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first >= 0x80:
        count = first & 0x7F
        if not 0 < count <= 4:
            raise MalformedRequest("bad length")
        first, pos = int.from_bytes(data[pos : pos + count], "big"), pos + count
    if pos + first > end:
        raise MalformedRequest("truncated")
    return tag, pos, pos + first


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    found, pos = [], start
    while pos < end:
        element = _element(data, pos, end)
        found.append(element)
        pos = element[2]
    return found


CertID = tuple[type[hashes.HashAlgorithm], bytes, bytes, int]  # (hash, issuerNameHash, issuerKeyHash, serial)


def parse_request(der: bytes) -> tuple[list[CertID], bytes | None]:
    """The CertIDs asked about and the nonce (None: none sent). MalformedRequest when it is not one."""
    try:
        tag, start, end = _element(der, 0, len(der))  # OCSPRequest
        tag_tbs, start, end = _element(der, start, end)  # TBSRequest
        if tag != 0x30 or tag_tbs != 0x30:
            raise MalformedRequest("not a SEQUENCE")
        ids: list[CertID] = []
        nonce: bytes | None = None
        for tag, s, e in _children(der, start, end):
            if tag == 0x30:  # requestList
                for _, rs, re_ in _children(der, s, e):  # Request
                    _, cs, ce = _children(der, rs, re_)[0]  # reqCert CertID
                    (_, as_, ae), (_, ns, ne), (_, ks, ke), (_, ss, se) = _children(der, cs, ce)
                    _, os_, oe = _children(der, as_, ae)[0]  # AlgorithmIdentifier's OID
                    algorithm = _HASHES.get(der[os_:oe])
                    if algorithm is None:
                        raise MalformedRequest("unsupported CertID hash")
                    ids.append((algorithm, der[ns:ne], der[ks:ke], int.from_bytes(der[ss:se], "big")))
            elif tag == 0xA2:  # [2] requestExtensions
                for _, xs, xe in _children(der, *_element(der, s, e)[1:]):
                    parts = _children(der, xs, xe)
                    if der[parts[0][1] : parts[0][2]] == _NONCE_OID:
                        _, vs, ve = parts[-1]  # extnValue OCTET STRING holding an OCTET STRING (RFC 8954)
                        _, ns, ne = _element(der, vs, ve)
                        nonce = der[ns:ne]
    except (IndexError, ValueError) as exc:
        raise MalformedRequest(str(exc)) from None
    if not ids:
        raise MalformedRequest("no certificate asked about")
    return ids, nonce


def answer(ca: JpkiCA, der: bytes, mode: str, now: dt.datetime) -> bytes:
    """The DER OCSPResponse to a request, as the responder in `mode` (a host mode: fault_modes.OCSP_MODES
    change the answer, any other answers right) gives it."""
    if mode == "ocsp-trylater":
        return _unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)
    try:
        ids, nonce = parse_request(der)
    except MalformedRequest:
        return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    this_update, next_update = now - dt.timedelta(minutes=1), now + NEXT_UPDATE
    if mode == "ocsp-stale":  # what a cache in front of a dead signer replays
        this_update, next_update = now - dt.timedelta(days=2), now - dt.timedelta(hours=1)
    signer, key = ca.not_signer if mode == "ocsp-wrong-signer" else ca.responder
    responses = []
    for algorithm, name_hash, key_hash, serial in ids:
        status = ocsp.OCSPCertStatus.UNKNOWN if mode == "ocsp-unknown" else ca.status(serial)
        if (name_hash, key_hash) != _issuer_hashes(ca, algorithm):
            status = ocsp.OCSPCertStatus.UNKNOWN  # another CA's certificate: not this responder's to say
        revoked = status == ocsp.OCSPCertStatus.REVOKED
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            name_hash, key_hash, serial, algorithm(), status, this_update, next_update,
            ca.revoked_at if revoked else None, x509.ReasonFlags.key_compromise if revoked else None,
        )  # fmt: skip
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signer).certificates([signer])
        responses.append(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    return responses[0] if len(responses) == 1 else _joined(responses, key)


def _joined(responses: list[bytes], key: ec.EllipticCurvePrivateKey) -> bytes:
    """One response with the single responses of all `responses` (each about one certificate, as
    cryptography builds them), signed again: the first one's ResponseData with its `responses` replaced."""
    basics = [_basic(der) for der in responses]
    singles = b"".join(_content(next(raw for tag, raw in _raw(basic[0]) if tag == 0x30)) for basic in basics)
    tbs = ocsp_wire.tlv(0x30, b"".join(
        ocsp_wire.tlv(0x30, singles) if tag == 0x30 else raw for tag, raw in _raw(basics[0][0])
    ))  # fmt: skip
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    algorithm, certs = basics[0][1], basics[0][3]
    basic = ocsp_wire.tlv(0x30, tbs + algorithm + ocsp_wire.tlv(0x03, b"\x00" + signature) + certs)
    body = ocsp_wire.tlv(0x30, ocsp_wire.tlv(0x06, _BASIC_OID) + ocsp_wire.tlv(0x04, basic))
    return ocsp_wire.tlv(0x30, b"\x0a\x01\x00" + ocsp_wire.tlv(0xA0, body))  # successful, responseBytes [0]


def _raw(element: bytes) -> list[tuple[int, bytes]]:
    """The children of a constructed DER element, each (tag, its whole encoding)."""
    _, start, end = _element(element, 0, len(element))
    found, pos = [], start
    while pos < end:
        tag, _, stop = _element(element, pos, end)
        found.append((tag, element[pos:stop]))
        pos = stop
    return found


def _content(element: bytes) -> bytes:
    _, start, end = _element(element, 0, len(element))
    return element[start:end]


def _basic(der: bytes) -> list[bytes]:
    """BasicOCSPResponse's parts (tbsResponseData, signatureAlgorithm, signature, certs) of an OCSPResponse."""
    response_bytes = _content(_raw(der)[1][1])  # [0] EXPLICIT ResponseBytes
    basic = _content(_raw(response_bytes)[1][1])  # OCTET STRING holding BasicOCSPResponse
    return [raw for _, raw in _raw(basic)]


def _issuer_hashes(ca: JpkiCA, algorithm: type[hashes.HashAlgorithm]) -> tuple[bytes, bytes]:
    # a CertID of one of the CA's own: the builder computes the hashes for the algorithm asked
    request = ocsp.OCSPRequestBuilder().add_certificate(ca.good, ca.cert, algorithm()).build()
    return request.issuer_name_hash, request.issuer_key_hash


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)
