"""The link token itself (pure): what is signed comes back exactly; any change to a token, or another key,
is a forgery; a token past its expiry is refused; reply tokens bind the address they were sent to."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.incidents import links

KEY = b"unit-test-key-" + b"9" * 32
claims = st.builds(
    links.Claim,
    st.integers(1, 10**12),
    st.integers(1, 20),
    st.text(min_size=1, max_size=60),
    st.sampled_from(links.ACTIONS),
    st.integers(2_000_000_000, 3_000_000_000).map(float),
    st.text(min_size=1, max_size=40),
)


@given(claims)
def test_what_is_signed_comes_back(claim: links.Claim) -> None:
    assert links.verify(KEY, links.sign(KEY, claim), now=1_900_000_000.0) == claim


@given(claims, st.data())
def test_any_altered_character_is_refused(claim: links.Claim, data: st.DataObject) -> None:
    token = links.sign(KEY, claim)
    at = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from("AbZ9-_.").filter(lambda c: c != token[at]))
    altered = token[:at] + replacement + token[at + 1 :]
    with pytest.raises(links.LinkError) as refused:
        links.verify(KEY, altered, now=1_900_000_000.0)
    assert refused.value.reason in ("forged", "malformed")


def test_another_key_and_expiry() -> None:
    claim = links.Claim(7, 1, "noc", "ack", 1000.0, "mail")
    token = links.sign(KEY, claim)
    with pytest.raises(links.LinkError, match="signature"):
        links.verify(b"x" * 46, token, now=10.0)
    assert links.verify(KEY, token, now=999.9) == claim
    with pytest.raises(links.LinkError, match="expired"):
        links.verify(KEY, token, now=1000.0)


def test_reply_tokens_bind_the_address() -> None:
    token = links.reply_token(KEY, 12, 2, "Yamada@Example.lg.jp")
    incident, level, mac = links.parse_reply_token(token.upper()) or (0, 0, "")  # a mail system may fold case
    assert (incident, level) == (12, 2)
    assert links.reply_matches(KEY, 12, 2, mac, "yamada@example.lg.jp")
    assert not links.reply_matches(KEY, 12, 2, mac, "tanaka@example.lg.jp")
    assert not links.reply_matches(KEY, 13, 2, mac, "yamada@example.lg.jp")
    assert len(links.reply_address("noc@monitor.example.lg.jp", token).split("@")[0]) <= 64  # RFC 5321 local part
    assert links.parse_reply_token("12-2-short") is None


def test_another_spelling_of_the_same_bytes_is_refused() -> None:
    """The last base64 character of the mac has spare bits: a token re-spelt there decodes to the same mac,
    and would be a different string to the single-use record. It is refused."""
    token = links.sign(KEY, links.Claim(7, 1, "noc", "ack", 2e9, "mail"))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    twins = [c for i, c in enumerate(alphabet) if i >> 2 == last >> 2 and c != token[-1]]  # same top 4 bits
    assert twins  # (32 mac bytes: 43 characters, the last carries 4 bits and 2 spare ones)
    for twin in twins:
        with pytest.raises(links.LinkError, match="not an action link"):
            links.verify(KEY, token[:-1] + twin, now=1.9e9)
