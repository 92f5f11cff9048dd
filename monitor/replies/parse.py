"""A reply to a page, read as a mail client wrote it: pure, no I/O.

What decides is the reply's first line of its own text (not quoted, not the attribution line a client puts
above the quote): 了解 / ACK / 対応中 acknowledge, エスカレ / ESCALATE escalates now, and the rest of the reply
down to the quote is the comment. Bodies come in any charset a Japanese phone or PC sends (ISO-2022-JP,
Shift_JIS, UTF-8), quoted-printable or base64, text or HTML only; width variants (ＡＣＫ, ｴｽｶﾚ) are folded."""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser

MAX_COMMENT = 2000
_ASCII = re.compile(r"^(ACK(?:NOWLEDGED?)?|ESCALATE)(?![A-Z0-9])")
_JAPANESE = (("了解", "ack"), ("対応中", "ack"), ("エスカレ", "escalate"))
# where a client starts the quoted page: the attribution line, Outlook's header block, a signature
_QUOTE_START = re.compile(
    r"^(>|On .+wrote:$|.+(wrote|書きました)[:：]?$|-+ ?(Original Message|元のメッセージ|転送メッセージ) ?-+|"
    r"(From|差出人|送信者)[:：] |_{10,}$|--$|.*<[^<>\s]+@[^<>\s]+>[:：]$)",
)
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True, slots=True)
class Reply:
    sender: str  # the From address, lower-case ("" when there is none)
    message_id: str  # its Message-ID, or a digest of the whole message when it has none (a retry has the same)
    recipients: list[str]  # To and Cc addresses, lower-case (where a +token may be)
    refers_to: list[str]  # Message-IDs of In-Reply-To and References, nearest first
    action: str | None  # ack, escalate, or None when the first line names neither
    first_line: str  # as written (for the audit log and the refusal)
    comment: str
    automatic: bool = False  # an auto-reply or a bounce: never acts
    problems: list[str] = field(default_factory=list)


class _Text(HTMLParser):
    """The text of an HTML-only reply, without what it quotes (blockquote, Gmail's and Outlook's quote blocks)."""

    SKIP = {"blockquote", "style", "script", "head", "title"}
    BREAK = {"br", "p", "div", "tr", "li", "h1", "h2", "h3", "table"}
    VOID = {"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base", "source"}
    QUOTE_MARKS = ("gmail_quote", "moz-cite-prefix", "divRplyFwdMsg", "appendonsend", "yahoo_quoted")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._open: list[str] = []  # open elements, to close a skipped one even past unclosed <p>s inside it
        self.ended = False  # a quote mark or <hr> was met: nothing after it is the reply's own

    @property
    def _skipping(self) -> bool:
        return any(tag in self.SKIP for tag in self._open)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        marks = " ".join(v or "" for k, v in attrs if k in ("class", "id"))
        if tag == "hr" or any(m in marks for m in self.QUOTE_MARKS):
            self.ended = True
        if tag in self.BREAK or tag in self.VOID:
            self.parts.append("\n")
        if tag not in self.VOID:  # (void elements have no end tag: they never open)
            self._open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)  # <br/>, <div/>: nothing stays open
        if tag not in self.VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:
            while self._open.pop() != tag:
                pass
        if tag in self.BREAK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping and not self.ended:
            self.parts.append(data)


def html_text(markup: str) -> str:
    parser = _Text()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


def _body(message: EmailMessage) -> tuple[str, list[str]]:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None or not isinstance(part, EmailMessage):
        return "", ["the reply has no text part"]
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset name, or a broken transfer encoding
        raw = part.get_payload(decode=True)
        content = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
    if not isinstance(content, str):
        return "", ["the reply's text part cannot be read"]
    return (html_text(content) if part.get_content_subtype() == "html" else content), []


def action_of(line: str) -> str | None:
    folded = unicodedata.normalize("NFKC", line).strip().upper()
    for word, action in _JAPANESE:
        if folded.startswith(word):
            return action
    match = _ASCII.match(folded)
    if match:
        return "escalate" if match[1] == "ESCALATE" else "ack"
    return None


def _after_keyword(line: str) -> str:
    """What follows the action word on the first line ("了解。向かいます" -> "向かいます")."""
    folded = unicodedata.normalize("NFKC", line).strip()
    for word, _ in _JAPANESE:
        if folded.startswith(word):
            rest = folded[len(word) :]
            if word == "エスカレ":
                rest = re.sub(r"^(ーション|ート)", "", rest)
            return rest.lstrip("。、.,:：!！ 　")
    match = _ASCII.match(folded.upper())
    return folded[match.end() :].lstrip("。、.,:：!！ 　") if match else folded


def read_text(text: str) -> tuple[str, str]:
    """(first line, comment) of a reply's own text: the first run of lines that are neither quoted nor the
    client's attribution line, written above the quote (top-posting) or below it."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    own: list[str] = []
    for line in lines:
        stripped = line.strip()
        quoting = bool(_QUOTE_START.match(stripped))
        if not own and (not stripped or quoting):
            continue  # a reply written below the quote: its own text starts after it
        if quoting:
            break  # a reply written above the quote: its own text ends here
        own.append(stripped)
    if not own:
        return "", ""
    first, rest = own[0], own[1:]
    comment = "\n".join([_after_keyword(first), *rest]).strip()
    return first, comment[:MAX_COMMENT]


def parse(raw: bytes) -> Reply:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)  # (the default policy builds EmailMessage)
    problems: list[str] = []
    sender = parseaddr(str(message.get("From", "")))[1].lower()
    if not sender:
        problems.append("the reply has no From address")
    recipients = [
        a.lower() for _, a in getaddresses([str(v) for v in message.get_all("To", []) + message.get_all("Cc", [])]) if a
    ]
    refs = _MESSAGE_ID.findall(str(message.get("In-Reply-To", ""))) + list(
        reversed(_MESSAGE_ID.findall(str(message.get("References", ""))))
    )
    auto = str(message.get("Auto-Submitted", "no")).strip().lower()
    precedence = str(message.get("Precedence", "")).strip().lower()
    automatic = auto not in ("", "no") or precedence in ("bulk", "junk", "auto_reply") or "X-Autoreply" in message
    text, body_problems = _body(message)
    first, comment = read_text(text)
    ident = str(message.get("Message-ID", "")).strip() or "sha256:" + hashlib.sha256(raw).hexdigest()
    return Reply(sender, ident, recipients, list(dict.fromkeys(refs)), action_of(first) if first else None, first[:200],
                 comment, automatic, problems + body_problems)  # fmt: skip
