"""One gzip stream from parts compressed separately, so each part's compression can be kept and reused.

Each part is a raw deflate stream ended with a sync flush (no final block, byte-aligned) by a
compressor of its own (so nothing refers back across parts): parts in any order, then an empty final
block, make one valid deflate stream. The gzip trailer needs the CRC-32 of the whole: each part's
CRC is kept and they are combined with zlib's crc32_combine, which Python's zlib module does not
expose: called in the system's libz through ctypes (~2 us), else computed here with the algorithm of
zlib 1.2.12's crc32.c (multiplication modulo the CRC polynomial, and x^(8n) from a table of x^(2^k);
~70 us, too slow for the ~12,000 parts of the national estate's interface series). A multi-member gzip
(one member per part) would be simpler, and Go and Python read it, but curl (7.88) and some browsers
stop after the first member.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_POLY = 0xEDB88320  # reflected CRC-32 polynomial
HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, deflate, no flags, no mtime, unknown OS
FINAL = b"\x03\x00"  # an empty final block of fixed Huffman codes


def _multmodp(a: int, b: int) -> int:
    """a * b modulo the CRC polynomial (bit-reflected, as zlib)."""
    m = 1 << 31
    p = 0
    while True:
        if a & m:
            p ^= b
            if a & (m - 1) == 0:
                return p
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


def _x2n_table() -> tuple[int, ...]:
    p = 1 << 30  # x^1
    table = []
    for _ in range(32):
        table.append(p)
        p = _multmodp(p, p)
    return tuple(table)


_X2N = _x2n_table()


def py_crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32 of A+B from crc32(A), crc32(B) and len(B)."""
    p = 1 << 31  # x^0
    n, k = len2, 3  # x^(8 * len2): 2^3 per byte
    while n:
        if n & 1:
            p = _multmodp(_X2N[k & 31], p)
        n >>= 1
        k += 1
    return _multmodp(p, crc1) ^ crc2


def _libz_combine() -> Callable[[int, int, int], int] | None:
    # the soname first: find_library runs ldconfig in a subprocess, a cost at each start for nothing
    try:
        fn = ctypes.CDLL("libz.so.1").crc32_combine
    except (OSError, AttributeError):
        path = ctypes.util.find_library("z")
        if path is None:
            return None
        try:
            fn = ctypes.CDLL(path).crc32_combine
        except (OSError, AttributeError):
            return None
    fn.restype = ctypes.c_ulong
    fn.argtypes = (ctypes.c_ulong, ctypes.c_ulong, ctypes.c_long)
    return fn


crc32_combine: Callable[[int, int, int], int] = _libz_combine() or py_crc32_combine


@dataclass(frozen=True, slots=True)
class Part:
    deflated: bytes
    crc: int
    size: int


def part(data: bytes, level: int = 1) -> Part:
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return Part(compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH), zlib.crc32(data), len(data))


def combine(parts: Iterable[Part]) -> Part:
    """One part made of several, in order (each ends byte-aligned, so their deflated bytes just follow)."""
    crc = 0
    size = 0
    deflated = []
    for p in parts:
        crc = crc32_combine(crc, p.crc, p.size) if size else p.crc
        size += p.size
        deflated.append(p.deflated)
    return Part(b"".join(deflated), crc, size)


def join(parts: list[Part]) -> bytes:
    whole = combine(parts)
    trailer = struct.pack("<II", whole.crc, whole.size & 0xFFFFFFFF)
    return b"".join((HEADER, whole.deflated, FINAL, trailer))
