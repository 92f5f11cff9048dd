"""The own USM (probes.snmp.usm) agrees with pysnmp byte for byte: keys from passwords, localized and
extended (Reeder and Blumenthal), HMAC truncations, AES-CFB and DES-CBC, and whole SNMPv3 messages encoded
by one and decoded, authenticated and decrypted by the other. Garbage raises BerError only."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import univ
from pysnmp.proto import api, rfc1902
from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message
from pysnmp.proto.secmod.rfc3414 import service as pysnmp_usm  # (its eso.priv modules import in a cycle when first)
from pysnmp.proto.secmod.rfc3414.auth import hmacmd5, hmacsha
from pysnmp.proto.secmod.rfc3414.priv import des
from pysnmp.proto.secmod.rfc3826.priv import aes
from pysnmp.proto.secmod.rfc7860.auth import hmacsha2

from probes.snmp import ber, usm
from tests.snmp.test_ber import to_pysnmp, varbinds

V2 = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
H2 = hmacsha2.HmacSha2
PYSNMP_AUTH: dict[str, tuple[tuple[int, ...], Any]] = {
    "MD5": (hmacmd5.HmacMd5.SERVICE_ID, hmacmd5.HmacMd5()),
    "SHA": (hmacsha.HmacSha.SERVICE_ID, hmacsha.HmacSha()),
    "SHA-224": (H2.SHA224_SERVICE_ID, H2(H2.SHA224_SERVICE_ID)),
    "SHA-256": (H2.SHA256_SERVICE_ID, H2(H2.SHA256_SERVICE_ID)),
    "SHA-384": (H2.SAH384_SERVICE_ID, H2(H2.SAH384_SERVICE_ID)),
    "SHA-512": (H2.SHA512_SERVICE_ID, H2(H2.SHA512_SERVICE_ID)),
}
PYSNMP_PRIV: dict[str, Any] = {
    "DES": des.Des,
    "AES": aes.Aes,
    "AES-192": pysnmp_usm.aes192.Aes192,  # Reeder: what pysnmp's USM_PRIV_CFB192_AES is
    "AES-256": pysnmp_usm.aes256.Aes256,
    "AES-192-Blumenthal": pysnmp_usm.aes192.AesBlumenthal192,
    "AES-256-Blumenthal": pysnmp_usm.aes256.AesBlumenthal256,
}
passwords = st.binary(min_size=8, max_size=40)
engine_ids = st.binary(min_size=5, max_size=32).filter(lambda b: bytes(4) not in b)  # pysnmp finds its MAC by zeros
users = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=32).map(str.encode)
u31 = st.integers(0, 2**31 - 1)
slow = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", sorted(usm.AUTH))
@slow
@given(passwords, engine_ids)
def test_auth_keys_match_pysnmp(name: str, password: bytes, engine_id: bytes) -> None:
    """Password to key (RFC 3414 A.2) and its localization: the same bytes as pysnmp for every hash."""
    _, service = PYSNMP_AUTH[name]
    theirs = service.localize_key(service.hash_passphrase(password), univ.OctetString(engine_id))
    assert usm.auth_key(password, engine_id, usm.AUTH[name]) == bytes(theirs)


@pytest.mark.parametrize("priv", sorted(usm.PRIV))
@pytest.mark.parametrize("auth", sorted(usm.AUTH))
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(passwords, engine_ids)
def test_priv_keys_match_pysnmp(auth: str, priv: str, password: bytes, engine_id: bytes) -> None:
    """The privacy key with its extension (Reeder for AES-192/256, Blumenthal for the -Blumenthal forms)."""
    oid, _ = PYSNMP_AUTH[auth]
    service = PYSNMP_PRIV[priv]()
    theirs = service.localize_key(oid, service.hash_passphrase(oid, password), univ.OctetString(engine_id))
    assert usm.priv_key(password, engine_id, usm.AUTH[auth], usm.PRIV[priv]) == bytes(theirs)[: usm.PRIV[priv].key_size]


def test_extensions_differ_where_the_hash_is_short() -> None:
    """Reeder and Blumenthal are different keys once the hash is shorter than the cipher key (SHA-1 for
    AES-256): the choice of priv_protocol matters, and the test above would catch one for the other."""
    sha = usm.AUTH["SHA"]
    reeder = usm.priv_key(b"password-1", b"\x80\x00\x1f\x88\x01", sha, usm.PRIV["AES-256"])
    blumenthal = usm.priv_key(b"password-1", b"\x80\x00\x1f\x88\x01", sha, usm.PRIV["AES-256-Blumenthal"])
    assert reeder[:20] == blumenthal[:20] and reeder != blumenthal


def test_rfc3414_a3_vectors() -> None:
    """RFC 3414 A.3.1/A.3.2: "maplesyrup" localized to engine 000000000000000000000002."""
    engine = bytes.fromhex("000000000000000000000002")
    assert usm.auth_key(b"maplesyrup", engine, usm.AUTH["MD5"]).hex() == "526f5eed9fcce26f8964c2930787d82b"
    assert usm.auth_key(b"maplesyrup", engine, usm.AUTH["SHA"]).hex() == "6695febc9288e36282235fc7151f128497b38f3f"


def test_short_passwords_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="at least 8 characters"):
        usm.password_to_key(b"short", "sha1")


def _keys(data: st.DataObject, level: usm.Level) -> tuple[usm.UserKeys, bytes]:
    engine_id = data.draw(engine_ids)
    user = data.draw(users)
    auth = data.draw(st.sampled_from(sorted(usm.AUTH)))
    priv = data.draw(st.sampled_from(sorted(usm.PRIV)))
    # keys drawn directly (localization is tested above): any bytes of the right length are a key
    akey = data.draw(st.binary(min_size=hashlib.new(usm.AUTH[auth].hash).digest_size,
                               max_size=hashlib.new(usm.AUTH[auth].hash).digest_size))  # fmt: skip
    pkey = data.draw(st.binary(min_size=usm.PRIV[priv].key_size, max_size=usm.PRIV[priv].key_size))
    if level == "authNoPriv":
        return usm.UserKeys(user, level, usm.AUTH[auth], akey), engine_id
    return usm.UserKeys(user, level, usm.AUTH[auth], akey, usm.PRIV[priv], pkey), engine_id


def _pysnmp_scoped(engine_id: bytes, context: bytes, request_id: int, vbs: list[ber.VarBind]) -> bytes:
    pdu = V2.GetResponsePDU()
    V2.apiPDU.set_defaults(pdu)
    V2.apiPDU.set_request_id(pdu, request_id)
    V2.apiPDU.set_varbinds(pdu, [(rfc1902.ObjectName(o), to_pysnmp(v)) for o, v in vbs])
    scoped = SNMPv3Message().getComponentByName("msgData").getComponentByName("plaintext").clone()
    scoped.setComponentByName("contextEngineId", engine_id)
    scoped.setComponentByName("contextName", context)
    scoped.getComponentByName("data").setComponentByType(pdu.tagSet, pdu)
    return bytes(encoder.encode(scoped))


def _pysnmp_message(
    keys: usm.UserKeys, msg_id: int, engine_id: bytes, boots: int, now: int, scoped: bytes, salt: int, flags: int
) -> bytes:
    """The same message as pysnmp's USM builds it (rfc3414/service.py): encrypt, placeholder MAC, HMAC."""
    priv_params, data = b"", None
    if flags & usm.FLAG_PRIV:
        assert keys.priv is not None
        service = PYSNMP_PRIV[keys.priv.name]()
        service.local_int = salt & (0xFFFFFFFF if keys.priv.cipher == "des" else 0xFFFFFFFFFFFFFFFF)
        ciphertext, params = service.encrypt_data(univ.OctetString(keys.priv_key), (boots, now, None), scoped)
        priv_params, data = bytes(params), bytes(ciphertext)
    assert keys.auth is not None
    sec = pysnmp_usm.UsmSecurityParameters()
    for name, value in (("msgAuthoritativeEngineId", engine_id), ("msgAuthoritativeEngineBoots", boots),
                        ("msgAuthoritativeEngineTime", now), ("msgUserName", keys.user),
                        ("msgAuthenticationParameters", bytes(keys.auth.mac_length)),
                        ("msgPrivacyParameters", priv_params)):  # fmt: skip
        sec.setComponentByName(name, value)
    message = SNMPv3Message()
    message.setComponentByName("msgVersion", 3)
    header = message.getComponentByName("msgGlobalData")
    header.setComponentByName("msgID", msg_id)
    header.setComponentByName("msgMaxSize", usm.MAX_SIZE)
    header.setComponentByName("msgFlags", bytes((flags,)))
    header.setComponentByName("msgSecurityModel", 3)
    message.setComponentByName("msgSecurityParameters", encoder.encode(sec))
    msg_data = message.getComponentByName("msgData")
    if data is None:
        plain, _ = decoder.decode(scoped, asn1Spec=msg_data.getComponentByName("plaintext"))
        msg_data.setComponentByName("plaintext", plain)
    else:
        msg_data.setComponentByName("encryptedPDU", data)
    whole = bytes(encoder.encode(message))
    _, service = PYSNMP_AUTH[keys.auth.name]
    return bytes(service.authenticate_outgoing_message(univ.OctetString(keys.auth_key), whole))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from(["authNoPriv", "authPriv"]), varbinds, u31, u31, u31, st.integers(0, 2**64 - 1),
       st.binary(max_size=16))  # fmt: skip
def test_messages_are_pysnmps_byte_for_byte(
    data: st.DataObject,
    level: usm.Level,
    vbs: list[ber.VarBind],
    msg_id: int,
    boots: int,
    now: int,
    salt: int,
    context: bytes,
) -> None:
    """Same keys, salt, engine values and PDU: the same bytes as pysnmp, and each reads the other's."""
    keys, engine_id = _keys(data, level)
    ours_scoped = usm.encode_scoped(engine_id, context, ber.encode_pdu(ber.RESPONSE, msg_id, vbs))
    theirs_scoped = _pysnmp_scoped(engine_id, context, msg_id, vbs)
    assert ours_scoped == theirs_scoped
    flags = keys.flags | usm.FLAG_REPORTABLE
    ours = usm.encode(keys, msg_id, engine_id, boots, now, ours_scoped, salt)
    theirs = _pysnmp_message(keys, msg_id, engine_id, boots, now, theirs_scoped, salt, flags)
    if keys.priv is not None and keys.priv.cipher == "des" and len(ours_scoped) % 8 == 0:
        # pysnmp pads a whole block of zeros where none is needed (RFC 3414 8.1.1.2 pads only to the block):
        # both are valid; compare what each decrypts instead of the bytes
        pass
    else:
        assert ours == theirs
    for raw in (ours, theirs):
        message = usm.decode(raw)
        assert (message.msg_id, message.engine_id, message.boots, message.time, message.user) == (
            msg_id, engine_id, boots, now, keys.user)  # fmt: skip
        assert usm.authentic(message, keys)
        scoped = usm.open_scoped(message, keys)
        assert (scoped.context_engine_id, scoped.context_name, scoped.pdu, scoped.request_id) == (
            engine_id, context, ber.RESPONSE, msg_id)  # fmt: skip
        assert scoped.varbinds == vbs
    # pysnmp reads ours: its decoder, its MAC check and its decryption
    decoded, rest = decoder.decode(ours, asn1Spec=SNMPv3Message())
    assert rest == b""
    sec, _ = decoder.decode(bytes(decoded.getComponentByName("msgSecurityParameters")),
                            asn1Spec=pysnmp_usm.UsmSecurityParameters())  # fmt: skip
    assert keys.auth is not None
    _, service = PYSNMP_AUTH[keys.auth.name]
    service.authenticate_incoming_message(
        univ.OctetString(keys.auth_key), sec.getComponentByName("msgAuthenticationParameters"), ours
    )
    msg_data = decoded.getComponentByName("msgData")
    if keys.priv is not None:
        cipher = PYSNMP_PRIV[keys.priv.name]()
        plain = cipher.decrypt_data(univ.OctetString(keys.priv_key),
                                    (boots, now, sec.getComponentByName("msgPrivacyParameters")),
                                    msg_data.getComponentByName("encryptedPDU"))  # fmt: skip
        assert bytes(plain)[: len(theirs_scoped)] == theirs_scoped
    else:
        assert bytes(encoder.encode(msg_data.getComponentByName("plaintext"))) == theirs_scoped


@settings(max_examples=60, deadline=None)
@given(st.data(), varbinds, u31)
def test_a_flipped_bit_fails_authentication(data: st.DataObject, vbs: list[ber.VarBind], msg_id: int) -> None:
    """Any change to an authenticated message (outside the MAC itself, which then no longer matches) is
    caught: a response with a wrong digest is never taken for the agent's."""
    keys, engine_id = _keys(data, "authPriv")
    raw = usm.encode(
        keys, msg_id, engine_id, 1, 2, usm.encode_scoped(engine_id, b"", ber.encode_pdu(ber.RESPONSE, 1, vbs))
    )
    at = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    tampered = bytearray(raw)
    tampered[at] ^= 1 << bit
    try:
        message = usm.decode(bytes(tampered))
    except ber.BerError:
        return  # no longer a message at all: dropped as malformed
    assert not usm.authentic(message, keys)


def test_discovery_message_matches_net_snmp_layout() -> None:
    """The discovery request: noAuthNoPriv + reportable, empty engine id and user, an empty GET."""
    probe = usm.UserKeys(b"", "noAuthNoPriv")
    raw = usm.encode(probe, 7, b"", 0, 0, usm.encode_scoped(b"", b"", ber.encode_pdu(ber.GET, 7, [])))
    message = usm.decode(raw)
    assert message.flags == usm.FLAG_REPORTABLE and message.engine_id == b"" and message.user == b""
    assert usm.decode_scoped(message.scoped or b"").pdu == ber.GET
    decoded, _ = decoder.decode(raw, asn1Spec=SNMPv3Message())
    assert int(decoded.getComponentByName("msgGlobalData").getComponentByName("msgID")) == 7


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_raises_only_ber_error(raw: bytes) -> None:
    with contextlib.suppress(ber.BerError):
        usm.decode_scoped(usm.decode(raw).scoped or b"")


@settings(max_examples=150, deadline=None)
@given(st.data(), varbinds.filter(bool))
def test_truncated_messages_are_rejected(data: st.DataObject, vbs: list[ber.VarBind]) -> None:
    keys, engine_id = _keys(data, "authNoPriv")
    raw = usm.encode(keys, 1, engine_id, 1, 2, usm.encode_scoped(engine_id, b"", ber.encode_pdu(ber.RESPONSE, 1, vbs)))
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(ber.BerError):
        usm.decode(raw[:cut])


async def test_dispatcher_accepts_only_authentic_fresh_answers_for_the_request() -> None:
    """The v3 socket's acceptance rules, fed real datagrams: a replay from outside the time window, a wrong
    MAC, another user, a wrong source port and an unauthenticated Response are dropped and counted; the
    authentic, fresh answer resolves the request; an unauthenticated Report is accepted (agents cannot
    authenticate "unknown user")."""
    import asyncio
    import time

    from probes.snmp.usm_client import Engine, V3Dispatcher, _Pending

    engine_id = b"\x80\x00\x1f\x88\x04test"
    keys = usm.localize_user(b"noc", "authPriv", engine_id, "SHA-256", b"auth-key-123", "AES", b"priv-key-123")
    other = usm.localize_user(b"noc", "authPriv", engine_id, "SHA-256", b"auth-key-456", "AES", b"priv-key-123")
    engine = Engine(engine_id, 5, 1000, time.monotonic())
    dispatcher = V3Dispatcher()
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    address = ("127.0.0.1", 16100)
    dispatcher._v3_pending[42] = _Pending(future, address, keys, engine, 42)

    def answer(k: usm.UserKeys, boots: int, now: int, pdu: int = ber.RESPONSE, flags: int | None = None) -> bytes:
        scoped = usm.encode_scoped(
            engine_id, b"", ber.encode_pdu(pdu, 42, [((1, 3, 6, 1, 2, 1, 1, 3, 0), (ber.TIMETICKS, 9))])
        )
        return usm.encode(k, 42, engine_id, boots, now, scoped, 7, reportable=False, flags=flags)

    dispatcher.datagram_received(answer(keys, 5, 1000 - 151), address)  # older than the window: a replay
    dispatcher.datagram_received(answer(keys, 4, 1000), address)  # an earlier boot: a replay
    dispatcher.datagram_received(answer(other, 5, 1000), address)  # not the user's key
    dispatcher.datagram_received(answer(keys, 5, 1000), ("127.0.0.1", 16101))  # another port
    dispatcher.datagram_received(answer(keys, 5, 1000, flags=0), address)  # unauthenticated Response
    assert not future.done()
    assert (dispatcher.counts.replayed, dispatcher.counts.wrong_digest, dispatcher.counts.unmatched,
            dispatcher.counts.rejected) == (2, 1, 1, 1)  # fmt: skip
    dispatcher.datagram_received(answer(keys, 5, 1003), address)
    assert future.done()
    _, scoped = future.result()
    assert scoped.varbinds == [((1, 3, 6, 1, 2, 1, 1, 3, 0), (ber.TIMETICKS, 9))]
    assert engine.clock()[1] >= 1003  # the agent's later clock is taken (RFC 3414 3.2.7.b)

    report: asyncio.Future[Any] = loop.create_future()
    dispatcher._v3_pending[42] = _Pending(report, address, keys, engine, 42)
    dispatcher.datagram_received(answer(keys, 0, 0, ber.REPORT, flags=0), address)
    assert report.done() and report.result()[1].pdu == ber.REPORT
    dispatcher.close()
