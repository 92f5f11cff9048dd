"""A trap flood sender, run as its own process (`python -m tests.snmp.trap_flood`) so that sending does not
share the daemon's interpreter: COUNT datagrams paced evenly over SECONDS to the trap listener on
loopback, from several source addresses (known agents and strangers), a mix of valid v2c and v1 traps and
of datagrams that do not decode (random bytes, truncated and malformed BER, junk that claims to be SNMPv3).
Prints one JSON line: what was sent, by kind. Bounded: it stops after COUNT datagrams."""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import time

from probes.snmp import ber

LINK_DOWN = (1, 3, 6, 1, 6, 3, 1, 1, 5, 3)
LINK_UP = (1, 3, 6, 1, 6, 3, 1, 1, 5, 4)
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
IF_INDEX = (1, 3, 6, 1, 2, 1, 2, 2, 1, 1)


def v2c_trap(community: bytes, request_id: int, trap: tuple[int, ...], if_index: int | None) -> bytes:
    varbinds: list[ber.VarBind] = [(SYS_UPTIME, (ber.TIMETICKS, 12345)), (TRAP_OID, (ber.OBJECT_IDENTIFIER, trap))]
    if if_index is not None:
        varbinds.append(((*IF_INDEX, if_index), (ber.INTEGER, if_index)))
    return ber.encode(ber.V2C, community, ber.TRAP_V2, request_id, varbinds)


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def v1_trap(community: bytes, agent: str, generic: int, if_index: int) -> bytes:
    varbinds = _tlv(0x30, _tlv(0x30, ber.encode_oid((*IF_INDEX, if_index)) + ber.encode_int(if_index)))
    pdu = (
        _tlv(0x06, ber.encode_oid((1, 3, 6, 1, 4, 1, 8072)))
        + _tlv(0x40, socket.inet_aton(agent))
        + ber.encode_int(generic)
        + ber.encode_int(0)
        + ber.encode_int(12345, ber.TIMETICKS)
        + varbinds
    )
    return _tlv(0x30, ber.encode_int(0) + _tlv(0x04, community) + _tlv(0xA4, pdu))


def garbage(rng: random.Random, valid: bytes) -> bytes:
    """Something that is not a trap we can read, in the shapes an attacker or a broken agent sends."""
    kind = rng.randrange(8)
    if kind == 0:
        return os.urandom(rng.randrange(1, 300))
    if kind == 1:
        return valid[: rng.randrange(1, len(valid))]  # truncated
    if kind == 2:  # one byte flipped somewhere
        at = rng.randrange(len(valid))
        return valid[:at] + bytes((valid[at] ^ 0xFF,)) + valid[at + 1 :]
    if kind == 3:  # claims SNMPv3, carries junk
        return _tlv(0x30, ber.encode_int(3) + os.urandom(rng.randrange(0, 80)))
    if kind == 4:  # v3 header with wrong types in every field
        return _tlv(0x30, ber.encode_int(3) + _tlv(0x30, ber.encode_int(1)) + _tlv(0x02, b"\x01") + _tlv(0x30, b""))
    if kind == 5:  # v2c, request-id as an OCTET STRING and a varbind value of an unknown type
        body = (
            _tlv(0x04, b"xx")
            + ber.encode_int(0)
            + ber.encode_int(0)
            + _tlv(0x30, _tlv(0x30, b"\x06\x01\x2b\x9f\x01\x00"))
        )
        return _tlv(0x30, ber.encode_int(1) + _tlv(0x04, b"public") + _tlv(0xA7, body))
    if kind == 6:  # an unknown version
        return _tlv(0x30, ber.encode_int(rng.choice((2, 7, -1, 2**40))) + _tlv(0x04, b"public") + valid[10:])
    return b"\x30\x84\xff\xff\xff\xff" + os.urandom(20)  # a length far beyond the datagram


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--known", default="", help="comma-separated source addresses of known agents")
    parser.add_argument("--strangers", default="", help="comma-separated source addresses nobody monitors")
    parser.add_argument("--garbage", type=float, default=0.4, help="share of datagrams that do not decode")
    parser.add_argument("--community", default="public")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    community = args.community.encode()
    sources = [(a, True) for a in args.known.split(",") if a] + [(a, False) for a in args.strangers.split(",") if a]
    sockets = {}
    for address, _ in sources:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((address, 0))
        sockets[address] = sock
    sent = {"trap": 0, "v1": 0, "garbage": 0, "blocked": 0}
    start = time.monotonic()
    for n in range(args.count):
        address, _known = sources[n % len(sources)]
        valid = v2c_trap(community, n, rng.choice((LINK_UP, LINK_DOWN, (1, 3, 6, 1, 4, 1, 9, 9, n % 50))), 1 + n % 8)
        if rng.random() < args.garbage:
            data, kind = garbage(rng, valid), "garbage"
        elif n % 10 == 0:
            data, kind = v1_trap(community, address, 2 + n % 2, 1 + n % 8), "v1"
        else:
            data, kind = valid, "trap"
        try:
            sockets[address].sendto(data, ("127.0.0.1", args.port))
            sent[kind] += 1
        except BlockingIOError:  # our own send buffer: not the daemon's drop
            sent["blocked"] += 1
        due = start + args.seconds * (n + 1) / args.count
        pause = due - time.monotonic()
        if pause > 0.001:
            time.sleep(pause)
    sent["seconds"] = round(time.monotonic() - start, 3)  # type: ignore[assignment]
    print(json.dumps(sent), flush=True)


if __name__ == "__main__":
    main()
