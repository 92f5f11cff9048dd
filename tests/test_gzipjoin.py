"""gzip streams joined from separately deflated parts: zlib reads them as one member with the right
CRC and size, whatever the parts (empty, incompressible, large) and their order."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.metrics.gzipjoin import combine, crc32_combine, join, part, py_crc32_combine

# the system libz's (through ctypes, what runs here) and the fallback written in Python
COMBINES = pytest.mark.parametrize("combine_crc", [crc32_combine, py_crc32_combine], ids=["libz", "python"])


def test_the_system_libz_is_used() -> None:
    assert crc32_combine is not py_crc32_combine  # the fallback is ~35x slower: a machine without libz is odd


@COMBINES
@settings(max_examples=200, deadline=None)
@given(a=st.binary(max_size=3000), b=st.binary(max_size=3000))
def test_crc32_combine_is_zlibs(combine_crc, a: bytes, b: bytes) -> None:  # type: ignore[no-untyped-def]
    assert combine_crc(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


@COMBINES
def test_crc32_combine_of_a_long_second_part(combine_crc) -> None:  # type: ignore[no-untyped-def]
    b = bytes(range(256)) * 40_000  # 10 MB: every bit of the length's table used up to 2^23
    assert combine_crc(zlib.crc32(b"head"), zlib.crc32(b), len(b)) == zlib.crc32(b"head" + b)


@settings(max_examples=100, deadline=None)
@given(groups=st.lists(st.lists(st.binary(max_size=1500), max_size=5), max_size=5))
def test_combined_parts_join_like_their_members(groups: list[list[bytes]]) -> None:
    """A family's part made of its segments' parts, then joined with others: the same gzip body content."""
    body = join([combine(part(p) for p in group) for group in groups])
    reader = zlib.decompressobj(wbits=31)
    assert reader.decompress(body) == b"".join(b"".join(group) for group in groups)
    assert reader.eof and not reader.unused_data


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
