"""What makes a rendering of the monthly report a record: the version, its state, who reviewed and approved
it, the SHA-256 of its canonical JSON data and, for a version that supersedes an approved one, what changed
and why. Rendered as an HTML block inside the one report template (html_report.render_html) and as the
running header and footer of every printed page (a print stylesheet, CSS paged media margin boxes), so the
HTML, the browser's print and the PDF (pdf.py) all carry the same stamp."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from html import escape

from monitor.timefmt import jst

TEXT = {
    "ja": {
        "version": "版", "status": "状態", "draft": "草案（未承認）", "reviewed": "確認済み（未承認）",
        "approved": "承認済み", "live": "版なし（随時計算、記録ではない）", "reviewed_by": "確認",
        "approved_by": "承認",
        "hash": "データのSHA-256", "changes": "承認済み第{n}版からの変更", "reason": "理由", "item": "項目",
        "before": "変更前", "after": "変更後", "page": "頁", "none": "—", "drafted": "作成",
        "hash_note": "このPDFの元データ（正規化JSON）のSHA-256。再生成したデータと照合できる。",
    },
    "en": {
        "version": "Version", "status": "Status", "draft": "draft (not approved)",
        "reviewed": "reviewed (not approved)",
        "approved": "approved", "live": "no version (computed on demand, not a record)", "reviewed_by": "Reviewed",
        "approved_by": "Approved", "hash": "SHA-256 of the data", "changes": "Changes from approved version {n}",
        "reason": "Reason", "item": "Item", "before": "Before", "after": "After", "page": "page", "none": "—",
        "drafted": "Drafted",
        "hash_note": "SHA-256 of this document's source data (canonical JSON); check it against regenerated data.",
    },
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Sign:
    """One signature: a person's review or approval with their comment."""

    name: str
    at: float
    comment: str


@dataclass(frozen=True, slots=True)
class Change:
    """One difference of this version's data from the approved version it supersedes."""

    item: str  # e.g. "services/pref-net-13/availability"
    before: str
    after: str
    reason: str  # a correction's reason, or "late data" when the store changed by itself


@dataclass(frozen=True, slots=True)
class Stamp:
    month: str
    version: int | None  # None: a live rendering, not a stored version
    status: str  # draft, reviewed, approved (or live)
    created_at: float  # the version's time: the PDF's creation and modification date
    data_sha256: str
    reviewed: Sign | None = None
    approved: Sign | None = None
    supersedes: int | None = None  # the approved version this one corrects
    changes: tuple[Change, ...] = field(default_factory=tuple)
    scope: str | None = None  # a variant's scope, e.g. "東京都": the data (and hash) are that prefecture's only


def canonical(data: object) -> bytes:
    """The one byte form of a report's data that is hashed and stored: sorted keys, no spaces, UTF-8."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _css_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _status(stamp: Stamp, t: dict[str, str]) -> str:
    return t["live"] if stamp.version is None else t.get(stamp.status, stamp.status)


def header_line(stamp: Stamp, lang: str, title: str) -> str:
    """The running header of every page: title, month, version and state, approvers."""
    t = TEXT.get(lang, TEXT["ja"])
    parts = [f"{title} {stamp.month}" + (f" ({stamp.scope})" if stamp.scope else "")]
    if stamp.version is not None:
        parts.append(f"第{stamp.version}版" if lang == "ja" else f"{t['version']} {stamp.version}")
    parts.append(_status(stamp, t))
    signs = [(t["reviewed_by"], stamp.reviewed), (t["approved_by"], stamp.approved)]
    parts.extend(f"{label}: {sign.name}" for label, sign in signs if sign is not None)
    return " · ".join(parts)


def print_css(stamp: Stamp, lang: str, title: str) -> str:
    """Paged media: the header (month, version, approvers) and footer (hash, page n / N) on every page."""
    t = TEXT.get(lang, TEXT["ja"])
    page = 'counter(page) " / " counter(pages)' + (f' " {t["page"]}"' if lang == "en" else "")
    draft = "" if stamp.status == "approved" else ".stamp { border-color: #b00020; }"
    return f"""
@media print {{
  /* margin boxes inherit from the page, not from body: they need the font named */
  @page {{ margin: 18mm 12mm 16mm; font-family: "Noto Sans CJK JP", "Noto Sans JP", sans-serif;
    @top-left {{ content: {_css_string(header_line(stamp, lang, title))}; font-size: 7.5pt; color: #333; }}
    @bottom-left {{ content: {_css_string("SHA-256 " + stamp.data_sha256)}; font-size: 6.5pt; color: #555; }}
    @bottom-right {{ content: {page}; font-size: 7.5pt; color: #333; }} }}
}}
/* A 12-column table must fit the A4 width (a PDF clips what overflows): headers such as "Planned
   maintenance[min]" wrap anywhere, figures never do, names keep some width; 達成/未達 stay on one line. */
@media print {{
  th {{ overflow-wrap: anywhere; font-size: 7.5pt; }} td {{ white-space: nowrap; }}
  td.l {{ white-space: normal; }} td.l:first-child {{ min-width: 22mm; }}
}}
.stamp {{ border: 2px solid #1f4e79; padding: 2mm 3mm; margin: 2mm 0 3mm; }}
.stamp table td, .stamp table th {{ text-align: left; }} .stamp code {{ font-size: 7.5pt; word-break: break-all; }}
{draft}
"""


def render_stamp(stamp: Stamp, lang: str) -> str:
    """The record block under the title, and the changes section of a superseding version."""
    t = TEXT.get(lang, TEXT["ja"])
    rows = [(t["version"], "—" if stamp.version is None else str(stamp.version)), (t["status"], _status(stamp, t)),
            (t["drafted"], jst(stamp.created_at))]  # fmt: skip
    for label, sign in ((t["reviewed_by"], stamp.reviewed), (t["approved_by"], stamp.approved)):
        if sign is not None:
            rows.append((label, f"{sign.name} ({jst(sign.at)}): {sign.comment}"))
    body = "".join(f'<tr><th class="l">{escape(k)}</th><td class="l">{escape(v)}</td></tr>' for k, v in rows)
    block = (f'<div class="stamp"><table>{body}<tr><th class="l">{t["hash"]}</th><td class="l">'
             f'<code>{stamp.data_sha256}</code><br><span class="note">{t["hash_note"]}</span></td></tr>'
             "</table></div>")  # fmt: skip
    if stamp.supersedes is None:
        return block
    head = (f'<tr><th class="l">{t["item"]}</th><th>{t["before"]}</th><th>{t["after"]}</th>'
            f'<th class="l">{t["reason"]}</th></tr>')  # fmt: skip
    lines = "".join(
        f'<tr><td class="l">{escape(c.item)}</td><td>{escape(c.before)}</td><td>{escape(c.after)}</td>'
        f'<td class="l">{escape(c.reason)}</td></tr>'
        for c in stamp.changes
    )
    title = t["changes"].format(n=stamp.supersedes)
    return block + f'<section class="changes"><h2>{title}</h2><table>{head}{lines}</table></section>'
