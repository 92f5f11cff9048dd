"""How a reply's own text is read (pure): the first line that is neither quoted nor a client's attribution
decides; the rest down to the quote, signature or Outlook header block is the comment."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from monitor.replies.parse import action_of, parse, read_text


@pytest.mark.parametrize(
    ("line", "action"),
    [("了解", "ack"), ("了解しました", "ack"), ("ACK", "ack"), ("ack, on my way", "ack"), ("ＡＣＫ", "ack"),
     ("Acknowledged", "ack"), ("対応中です", "ack"), ("エスカレーションお願いします", "escalate"), ("ｴｽｶﾚ", "escalate"),
     ("ESCALATE", "escalate"), ("escalate please", "escalate"), ("ACKME", None), ("確認中", None),
     ("What is ACK?", None), ("", None)],
)  # fmt: skip
def test_action_words(line: str, action: str | None) -> None:
    assert action_of(line) == action


@pytest.mark.parametrize(
    ("text", "first", "comment"),
    [
        ("了解。向かいます\n30分で着きます\n\n-- \n山田\n", "了解。向かいます", "向かいます\n30分で着きます"),
        ("\n\nACK\n\n2026年12月4日(金) 3:02 監視 <monitor@example.lg.jp>:\n> 障害発生\n", "ACK", ""),
        (
            "エスカレーション：手に負えません\n________________\n差出人: 監視\n",
            "エスカレーション：手に負えません",
            "手に負えません",
        ),
        ("> 障害発生\n> 詳細: https://x\n\n対応中\n", "対応中", ""),
        ("ACK\n-----Original Message-----\nFrom: monitor\n了解\n", "ACK", ""),
        ("> only a quote\n", "", ""),
    ],
)
def test_own_text_and_comment(text: str, first: str, comment: str) -> None:
    assert read_text(text) == (first, comment)


def test_shift_jis_reply_is_read() -> None:
    """Older Japanese clients send Shift_JIS: the body is decoded by its declared charset."""
    message = EmailMessage()
    message["From"] = "yamada@example.lg.jp"
    message["To"] = "noc@monitor.example.lg.jp"
    message.set_content("了解です\n", charset="shift_jis")
    reply = parse(message.as_bytes())
    assert (reply.action, reply.sender, reply.problems) == ("ack", "yamada@example.lg.jp", [])


def test_a_mail_without_text_is_a_problem_not_a_crash() -> None:
    message = EmailMessage()
    message["From"] = "yamada@example.lg.jp"
    message.set_content(b"\x89PNG", maintype="image", subtype="png")
    reply = parse(message.as_bytes())
    assert reply.action is None and reply.problems == ["the reply has no text part"]


def test_html_reply_text_stops_at_the_quote_whatever_the_markup() -> None:
    """Self-closing breaks, unclosed paragraphs inside a blockquote, Outlook's reply header: the own text only."""
    from monitor.replies.parse import html_text

    markup = ("<html><head><style>p{}</style></head><body><p>了解<br/>向かいます<p>山田"
              "<blockquote><p>ESCALATE<p>quoted</blockquote>after quote"
              "<div id='divRplyFwdMsg'>差出人: 監視</div>ACK</body></html>")  # fmt: skip
    assert read_text(html_text(markup)) == ("了解", "向かいます\n山田\n\nafter quote")
