"""gzip streams joined from separately deflated parts: zlib reads them as one member with the right
CRC and size, whatever the parts (empty, incompressible, large) and their order."""

from __future__ import annotations

import gzip
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.metrics.gzipjoin import crc32_combine, join, part


@settings(max_examples=200, deadline=None)
@given(a=st.binary(max_size=3000), b=st.binary(max_size=3000))
def test_crc32_combine_is_zlibs(a: bytes, b: bytes) -> None:
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_crc32_combine_of_a_long_second_part() -> None:
    b = bytes(range(256)) * 40_000  # 10 MB: every bit of the length's table used up to 2^23
    assert crc32_combine(zlib.crc32(b"head"), zlib.crc32(b), len(b)) == zlib.crc32(b"head" + b)


@settings(max_examples=100, deadline=None)
@given(parts=st.lists(st.one_of(st.binary(max_size=2000), st.text(max_size=2000).map(str.encode)), max_size=8))
def test_joined_parts_are_one_gzip_member(parts: list[bytes]) -> None:
    body = join([part(p) for p in parts])
    reader = zlib.decompressobj(wbits=31)  # one member, as curl reads it: its CRC and size are checked
    assert reader.decompress(body) == b"".join(parts)
    assert reader.eof and not reader.unused_data
    assert gzip.decompress(body) == b"".join(parts)


def test_a_corrupted_part_is_caught_by_the_crc() -> None:
    good = part(b"monitor_check_info 1.0\n" * 50)
    bad = part(b"monitor_check_info 0.0\n" * 50)
    body = join([good, part(b"x")])
    wrong = join([type(good)(bad.deflated, good.crc, good.size), part(b"x")])
    assert gzip.decompress(body)
    try:
        gzip.decompress(wrong)
    except gzip.BadGzipFile:
        return
    raise AssertionError("a CRC mismatch went unnoticed")
