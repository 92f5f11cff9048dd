"""SNMPv3 messages with the User-based Security Model, on the project's BER codec: no I/O, no state.

- Framing (RFC 3412 6): msgVersion 3, msgGlobalData (msgID, msgMaxSize, msgFlags, msgSecurityModel 3),
  the USM security parameters as an OCTET STRING, and the scoped PDU, plain or encrypted.
- Keys (RFC 3414 A.2): password -> key (1 MiB of the repeated password through the hash), localized to an
  authoritative engine id (H(Ku | engineID | Ku)). The privacy key uses the auth protocol's hash; AES-192/256
  extend it the way the agent expects: `reeder` (draft-reeder-snmpv3-usm-3desede, what Cisco and
  net-snmp's "AES-192-C" do, and what this project's `AES-192`/`AES-256` have always meant through pysnmp's
  USM_PRIV_CFB*_AES) or `blumenthal` (draft-blumenthal-aes-usm-04: Kul | H(Kul), net-snmp's "AES-192").
- Authentication: HMAC-MD5-96 and HMAC-SHA-96 (RFC 3414) and HMAC-SHA-2 with RFC 7860's truncations
  (SHA-224 16, SHA-256 24, SHA-384 32, SHA-512 48 bytes) over the whole message with the MAC field zeroed.
- Privacy: AES-CFB (RFC 3826; IV = engineBoots | engineTime | 64-bit salt) and DES-CBC (RFC 3414 8.1;
  IV = pre-IV xor (engineBoots | 32-bit counter)).

Why our own and not pysnmp's: pysnmp's v3 path costs ~10x the v2c path per varbind (pyasn1 objects for
every field, its engine's bookkeeping); this one adds two hashes and one cipher pass per datagram to the
v2c codec's cost. Hashes and HMAC come from hashlib/hmac (OpenSSL's one-shot HMAC, the cheapest call in
CPython), the ciphers from `cryptography` (the stdlib has none). The tests hold every byte of it to
pysnmp's encoding of the same messages and run it against net-snmp's snmpd.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:  # RFC 3826 fixes CFB; cryptography 47+ moved it to `decrepit` (the old name warns, and goes in 49)
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - the locked version has it
    from cryptography.hazmat.primitives.ciphers.modes import CFB

from probes.snmp import ber
from probes.snmp.ber import OID, VarBind

VERSION_3 = 3
USM = 3  # msgSecurityModel
MAX_SIZE = 65507  # msgMaxSize we announce: the largest UDP payload over IPv4
FLAG_AUTH, FLAG_PRIV, FLAG_REPORTABLE = 0x01, 0x02, 0x04
PASSWORD_MIN = 8  # RFC 3414 11.2: agents (net-snmp) refuse shorter passwords
_MEGABYTE = 1_048_576

Level = Literal["noAuthNoPriv", "authNoPriv", "authPriv"]


class UsmError(ber.BerError):
    """A datagram that is not a well-formed SNMPv3/USM message (or not one we can read)."""


@dataclass(frozen=True, slots=True)
class AuthProtocol:
    name: str  # as in the config (probes.snmp.settings.AuthProtocol)
    hash: str  # hashlib name
    mac_length: int  # bytes of the HMAC carried in msgAuthenticationParameters


@dataclass(frozen=True, slots=True)
class PrivProtocol:
    name: str
    cipher: Literal["des", "aes"]
    key_size: int  # bytes of localized key needed (DES: 8 key + 8 pre-IV)
    extension: Literal["none", "reeder", "blumenthal"]  # how a too-short localized key grows


AUTH: dict[str, AuthProtocol] = {
    p.name: p
    for p in (
        AuthProtocol("MD5", "md5", 12),
        AuthProtocol("SHA", "sha1", 12),
        AuthProtocol("SHA-224", "sha224", 16),
        AuthProtocol("SHA-256", "sha256", 24),
        AuthProtocol("SHA-384", "sha384", 32),
        AuthProtocol("SHA-512", "sha512", 48),
    )
}
PRIV: dict[str, PrivProtocol] = {
    p.name: p
    for p in (
        PrivProtocol("DES", "des", 16, "none"),
        PrivProtocol("AES", "aes", 16, "none"),
        PrivProtocol("AES-192", "aes", 24, "reeder"),
        PrivProtocol("AES-256", "aes", 32, "reeder"),
        PrivProtocol("AES-192-Blumenthal", "aes", 24, "blumenthal"),
        PrivProtocol("AES-256-Blumenthal", "aes", 32, "blumenthal"),
    )
}

# usmStats (RFC 3414 5) and the MPD/SNMP-engine counters (RFC 3412, 3411) an agent reports errors with.
REPORTS: dict[OID, tuple[str, str]] = {
    (1, 3, 6, 1, 6, 3, 15, 1, 1, 1, 0): ("usmStatsUnsupportedSecLevels", "security level not supported for the user"),
    (1, 3, 6, 1, 6, 3, 15, 1, 1, 2, 0): ("usmStatsNotInTimeWindows", "not in time window"),
    (1, 3, 6, 1, 6, 3, 15, 1, 1, 3, 0): ("usmStatsUnknownUserNames", "unknown user name"),
    (1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0): ("usmStatsUnknownEngineIDs", "unknown engine id"),
    (1, 3, 6, 1, 6, 3, 15, 1, 1, 5, 0): ("usmStatsWrongDigests", "wrong digest (authentication key mismatch)"),
    (1, 3, 6, 1, 6, 3, 15, 1, 1, 6, 0): ("usmStatsDecryptionErrors", "decryption error (privacy key mismatch)"),
    (1, 3, 6, 1, 6, 3, 11, 2, 1, 1, 0): ("snmpUnknownSecurityModels", "security model not supported"),
    (1, 3, 6, 1, 6, 3, 11, 2, 1, 2, 0): ("snmpInvalidMsgs", "message rejected as invalid"),
    (1, 3, 6, 1, 6, 3, 11, 2, 1, 3, 0): ("snmpUnknownPDUHandlers", "PDU type not handled"),
    (1, 3, 6, 1, 6, 3, 12, 1, 4, 0): ("snmpUnavailableContexts", "context unavailable"),
    (1, 3, 6, 1, 6, 3, 12, 1, 5, 0): ("snmpUnknownContexts", "unknown context name"),
}
NOT_IN_TIME_WINDOW = (1, 3, 6, 1, 6, 3, 15, 1, 1, 2, 0)
UNKNOWN_ENGINE_ID = (1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0)


# --------------------------------------------------------------------------------------- keys


def password_to_key(password: bytes, hash_name: str) -> bytes:
    """RFC 3414 A.2: the hash of 1 MiB of the password repeated (the costly step: ~2 ms; cache it)."""
    if len(password) < PASSWORD_MIN:
        raise ValueError(f"SNMPv3 keys must be at least {PASSWORD_MIN} characters (RFC 3414 11.2)")
    repeated = password * (_MEGABYTE // len(password) + 1)
    return hashlib.new(hash_name, memoryview(repeated)[:_MEGABYTE]).digest()


def localize(key: bytes, engine_id: bytes, hash_name: str) -> bytes:
    return hashlib.new(hash_name, key + engine_id + key).digest()


def auth_key(password: bytes, engine_id: bytes, auth: AuthProtocol) -> bytes:
    return localize(password_to_key(password, auth.hash), engine_id, auth.hash)


def priv_key(password: bytes, engine_id: bytes, auth: AuthProtocol, priv: PrivProtocol) -> bytes:
    """The localized privacy key, extended to the cipher's size as the agent's implementation does."""
    return extend_priv_key(localize(password_to_key(password, auth.hash), engine_id, auth.hash), engine_id, auth, priv)


def extend_priv_key(key: bytes, engine_id: bytes, auth: AuthProtocol, priv: PrivProtocol) -> bytes:
    """A localized privacy key grown to the cipher's size (AES-192/256 after a short hash)."""
    while len(key) < priv.key_size:
        if priv.extension == "reeder":  # the localized key is itself a password: derive and localize again
            key += localize(password_to_key(key, auth.hash), engine_id, auth.hash)
        elif priv.extension == "blumenthal":
            key += hashlib.new(auth.hash, key).digest()
        else:  # DES/AES-128 never need it: every hash gives at least 16 bytes
            raise ValueError(f"{auth.name} gives too short a key for {priv.name}")
    return key[: priv.key_size]


@dataclass(frozen=True, slots=True)
class UserKeys:
    """One user's keys localized to one engine id (computed once per engine and cached by the caller)."""

    user: bytes
    level: Level
    auth: AuthProtocol | None = None
    auth_key: bytes = b""
    priv: PrivProtocol | None = None
    priv_key: bytes = b""

    @property
    def flags(self) -> int:
        return {"noAuthNoPriv": 0, "authNoPriv": FLAG_AUTH, "authPriv": FLAG_AUTH | FLAG_PRIV}[self.level]


def localize_user(
    user: bytes,
    level: Level,
    engine_id: bytes,
    auth_name: str = "SHA",
    auth_password: bytes = b"",
    priv_name: str = "AES",
    priv_password: bytes = b"",
) -> UserKeys:
    if level == "noAuthNoPriv":
        return UserKeys(user, level)
    auth = AUTH[auth_name]
    akey = auth_key(auth_password, engine_id, auth)
    if level == "authNoPriv":
        return UserKeys(user, level, auth, akey)
    priv = PRIV[priv_name]
    return UserKeys(user, level, auth, akey, priv, priv_key(priv_password, engine_id, auth, priv))


# --------------------------------------------------------------------------------------- privacy


def encrypt(keys: UserKeys, boots: int, engine_time: int, salt: int, plaintext: bytes) -> tuple[bytes, bytes]:
    """(ciphertext, msgPrivacyParameters). `salt` is the caller's counter: 64 bits for AES, 32 for DES."""
    priv = keys.priv
    assert priv is not None
    if priv.cipher == "aes":
        params = salt.to_bytes(8, "big")
        iv = boots.to_bytes(4, "big") + engine_time.to_bytes(4, "big") + params
        enc = Cipher(algorithms.AES(keys.priv_key), CFB(iv)).encryptor()
        return enc.update(plaintext) + enc.finalize(), params
    params = boots.to_bytes(4, "big") + (salt & 0xFFFFFFFF).to_bytes(4, "big")
    iv = bytes(a ^ b for a, b in zip(keys.priv_key[8:16], params, strict=True))
    padded = plaintext + bytes(-len(plaintext) % 8)  # the BER length inside says where the PDU ends
    des = Cipher(TripleDES(keys.priv_key[:8] * 3), modes.CBC(iv)).encryptor()  # K1=K2=K3 is single DES
    return des.update(padded) + des.finalize(), params


def decrypt(keys: UserKeys, boots: int, engine_time: int, params: bytes, ciphertext: bytes) -> bytes:
    priv = keys.priv
    assert priv is not None
    if len(params) != 8:
        raise UsmError("msgPrivacyParameters is not 8 bytes")
    if priv.cipher == "aes":
        iv = boots.to_bytes(4, "big") + engine_time.to_bytes(4, "big") + params
        dec = Cipher(algorithms.AES(keys.priv_key), CFB(iv)).decryptor()
        return dec.update(ciphertext) + dec.finalize()
    if len(ciphertext) % 8:
        raise UsmError("DES ciphertext is not a multiple of 8 bytes")
    iv = bytes(a ^ b for a, b in zip(keys.priv_key[8:16], params, strict=True))
    des = Cipher(TripleDES(keys.priv_key[:8] * 3), modes.CBC(iv)).decryptor()
    return des.update(ciphertext) + des.finalize()


# --------------------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded SNMPv3 message. `scoped` is the plaintext ScopedPDU TLV (None while still encrypted)."""

    msg_id: int
    max_size: int
    flags: int
    engine_id: bytes
    boots: int
    time: int
    user: bytes
    auth_params: bytes
    auth_offset: int  # where msgAuthenticationParameters' content starts in `raw`
    priv_params: bytes
    scoped: bytes | None
    encrypted: bytes | None
    raw: bytes


@dataclass(frozen=True, slots=True)
class ScopedPdu:
    context_engine_id: bytes
    context_name: bytes
    pdu: int
    request_id: int
    error_status: int
    error_index: int
    varbinds: list[VarBind]


def _octets(data: bytes, i: int, end: int) -> tuple[bytes, int, int]:
    tag, s, e = ber.header(data, i, end)
    if tag != ber.OCTET_STRING:
        raise UsmError("expected an OCTET STRING")
    return data[s:e], s, e


def _integer(data: bytes, i: int, end: int) -> tuple[int, int]:
    tag, s, e = ber.header(data, i, end)
    return ber.read_int(data, tag, s, e), e


def decode(data: bytes) -> Message:
    """Decode the framing and the USM parameters; the scoped PDU stays bytes (it may be encrypted)."""
    try:
        tag, i, stop = ber.header(data, 0, len(data))
        if tag != ber.SEQUENCE:
            raise UsmError("not an SNMP message")
        version, i = _integer(data, i, stop)
        if version != VERSION_3:
            raise UsmError(f"not SNMPv3 (version {version})")
        tag, i, global_end = ber.header(data, i, stop)
        if tag != ber.SEQUENCE:
            raise UsmError("bad msgGlobalData")
        msg_id, i = _integer(data, i, global_end)
        max_size, i = _integer(data, i, global_end)
        flags_raw, _, i = _octets(data, i, global_end)
        model, i = _integer(data, i, global_end)
        if len(flags_raw) != 1:
            raise UsmError("msgFlags is not one byte")
        if model != USM:
            raise UsmError(f"security model {model} is not USM")
        _, sp, sp_end = _octets(data, global_end, stop)
        tag, j, seq_end = ber.header(data, sp, sp_end)
        if tag != ber.SEQUENCE:
            raise UsmError("bad msgSecurityParameters")
        engine_id, _, j = _octets(data, j, seq_end)
        boots, j = _integer(data, j, seq_end)
        engine_time, j = _integer(data, j, seq_end)
        user, _, j = _octets(data, j, seq_end)
        auth_params, auth_offset, j = _octets(data, j, seq_end)
        priv_params, _, j = _octets(data, j, seq_end)
        tag, s, e = ber.header(data, sp_end, stop)
    except IndexError as exc:  # every read is bounds-checked; belt and braces
        raise UsmError("truncated") from exc
    scoped = encrypted = None
    if tag == ber.SEQUENCE:
        scoped = data[sp_end:e]
    elif tag == ber.OCTET_STRING:
        encrypted = data[s:e]
    else:
        raise UsmError("bad msgData")
    if not 0 <= boots <= 0x7FFFFFFF or not 0 <= engine_time <= 0x7FFFFFFF:
        raise UsmError("engineBoots/engineTime out of range")
    return Message(
        msg_id, max_size, flags_raw[0], engine_id, boots, engine_time, user, auth_params, auth_offset,
        priv_params, scoped, encrypted, data,
    )  # fmt: skip


def decode_scoped(data: bytes) -> ScopedPdu:
    """The ScopedPDU TLV at the start of `data` (DES padding after it is ignored)."""
    try:
        tag, i, stop = ber.header(data, 0, len(data))
        if tag != ber.SEQUENCE:
            raise UsmError("bad scoped PDU (wrong privacy key?)")
        context_engine, _, i = _octets(data, i, stop)
        context_name, _, i = _octets(data, i, stop)
    except IndexError as exc:
        raise UsmError("truncated") from exc
    pdu, rid, status, index, varbinds = ber.decode_pdu(data, i, stop)
    return ScopedPdu(context_engine, context_name, pdu, rid, status, index, varbinds)


def encode_scoped(context_engine_id: bytes, context_name: bytes, pdu: bytes) -> bytes:
    fields = ber.tlv(ber.OCTET_STRING, context_engine_id) + ber.tlv(ber.OCTET_STRING, context_name)
    return ber.tlv(ber.SEQUENCE, fields + pdu)


def encode(
    keys: UserKeys,
    msg_id: int,
    engine_id: bytes,
    boots: int,
    engine_time: int,
    scoped: bytes,
    salt: int = 0,
    reportable: bool = True,
    max_size: int = MAX_SIZE,
    flags: int | None = None,
) -> bytes:
    """A whole SNMPv3 message: encrypted when the user's level says so, then authenticated.
    `flags` overrides the level's (discovery is sent noAuthNoPriv whatever the user's level)."""
    flags = keys.flags if flags is None else flags
    priv_params = b""
    if flags & FLAG_PRIV:
        ciphertext, priv_params = encrypt(keys, boots, engine_time, salt, scoped)
        data = ber.tlv(ber.OCTET_STRING, ciphertext)
    else:
        data = scoped
    mac_length = keys.auth.mac_length if flags & FLAG_AUTH and keys.auth is not None else 0
    head = ber.tlv(ber.OCTET_STRING, engine_id) + ber.encode_int(boots) + ber.encode_int(engine_time)
    head += ber.tlv(ber.OCTET_STRING, keys.user)
    sec_inner = head + ber.tlv(ber.OCTET_STRING, bytes(mac_length)) + ber.tlv(ber.OCTET_STRING, priv_params)
    sec_seq = ber.tlv(ber.SEQUENCE, sec_inner)
    sec = ber.tlv(ber.OCTET_STRING, sec_seq)
    global_data = ber.tlv(
        ber.SEQUENCE,
        ber.encode_int(msg_id)
        + ber.encode_int(max_size)
        + ber.tlv(ber.OCTET_STRING, bytes((flags | (FLAG_REPORTABLE if reportable else 0),)))
        + ber.encode_int(USM),
    )
    front = ber.encode_int(VERSION_3) + global_data
    body = front + sec + data
    message = ber.tlv(ber.SEQUENCE, body)
    if not mac_length:
        return message
    assert keys.auth is not None
    # the MAC field's content: past the outer header, the global data, both security headers, the
    # fields before it and its own 2-byte header (MACs are at most 48 bytes: short length form)
    offset = (len(message) - len(body)) + len(front) + (len(sec) - len(sec_seq)) + (len(sec_seq) - len(sec_inner))
    offset += len(head) + 2
    mac = hmac.digest(keys.auth_key, message, keys.auth.hash)[:mac_length]
    return message[:offset] + mac + message[offset + mac_length :]


def authentic(message: Message, keys: UserKeys) -> bool:
    """True when the message's MAC is the user's (RFC 3414 6.3.2): HMAC over the message, MAC zeroed."""
    auth = keys.auth
    if auth is None or len(message.auth_params) != auth.mac_length:
        return False
    raw, at, n = message.raw, message.auth_offset, auth.mac_length
    expected = hmac.digest(keys.auth_key, raw[:at] + bytes(n) + raw[at + n :], auth.hash)[:n]
    return hmac.compare_digest(expected, message.auth_params)


def open_scoped(message: Message, keys: UserKeys) -> ScopedPdu:
    """The scoped PDU of an authenticated message, decrypted when it is encrypted."""
    if message.encrypted is None:
        assert message.scoped is not None
        return decode_scoped(message.scoped)
    if keys.priv is None:
        raise UsmError("encrypted message for a user without privacy")
    return decode_scoped(decrypt(keys, message.boots, message.time, message.priv_params, message.encrypted))
