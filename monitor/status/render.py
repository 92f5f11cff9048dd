"""The status page as HTML (Japanese, or English with ?lang=en) and the notices as an Atom feed.
Server-rendered, no scripts and no external assets: it must work on any LGWAN terminal and refresh
itself (meta refresh) on a wall screen. Everything shown comes from the snapshot (status.page)."""

from __future__ import annotations

from html import escape
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from monitor.timefmt import jst

COLOURS = {
    "operational": "#1a7f37",
    "degraded": "#bf8700",
    "outage": "#cf222e",
    "maintenance": "#0969da",
    "unknown": "#6e7781",
}
TEXT = {
    "ja": {
        "notices": "お知らせ",
        "none": "現在、お知らせはありません。",
        "planned": "計画停止の予定",
        "no_planned": "予定されている計画停止はありません。",
        "services": "サービスの稼働状況",
        "history": "過去{days}日間の稼働状況",
        "by_pref": "都道府県別",
        "updated": "最終更新",
        "feed": "お知らせ（Atom）",
        "json": "JSON",
        "since": "発生",
        "estimate": "復旧見込み",
        "until": "終了予定",
        "other": "English",
        "published": "掲載",
        "no_data": "データなし",
    },
    "en": {
        "notices": "Notices",
        "none": "There are no notices at the moment.",
        "planned": "Planned maintenance",
        "no_planned": "No planned maintenance is scheduled.",
        "services": "Services",
        "history": "Last {days} days",
        "by_pref": "By prefecture",
        "updated": "Updated",
        "feed": "Notices (Atom)",
        "json": "JSON",
        "since": "Since",
        "estimate": "Expected recovery",
        "until": "Until",
        "other": "日本語",
        "published": "Published",
        "no_data": "no data",
    },
}
CSS = """
body{font-family:"Noto Sans CJK JP","Hiragino Sans",Meiryo,sans-serif;margin:0;background:#f6f8fa;color:#1f2328}
header{background:#0b3d91;color:#fff;padding:16px 24px}header h1{margin:0;font-size:22px}
header a{color:#fff;float:right;font-size:14px}main{max-width:1000px;margin:0 auto;padding:16px}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;margin:12px 0;padding:12px 16px}
h2{font-size:17px;margin:4px 0 10px}.svc{display:flex;justify-content:space-between;align-items:center;
border-top:1px solid #eaeef2;padding:8px 0}.svc:first-of-type{border-top:0}.name{font-weight:600}
.badge{color:#fff;border-radius:12px;padding:2px 10px;font-size:13px;white-space:nowrap}
.bars{display:flex;gap:1px;margin:2px 0 8px}.bars span{flex:1;height:18px;border-radius:1px}
.notice{border-left:4px solid #cf222e;padding:4px 12px;margin:8px 0}.notice.planned{border-color:#0969da}
.notice h3{margin:0 0 4px;font-size:15px}.meta{color:#57606a;font-size:12px}.body{white-space:pre-wrap}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(92px,1fr));gap:4px}
.grid div{color:#fff;border-radius:4px;padding:4px;font-size:12px;text-align:center}
footer{color:#57606a;font-size:12px;text-align:center;padding:12px}
"""


def _bar_colour(ratio: float | None) -> str:
    if ratio is None:
        return "#d0d7de"
    if ratio >= 0.999:
        return COLOURS["operational"]
    return COLOURS["degraded"] if ratio >= 0.99 else COLOURS["outage"]


def render_html(snapshot: dict[str, Any], lang: str, days: int) -> str:
    t = TEXT[lang]
    en = lang == "en"

    def pick(item: dict[str, Any], key: str) -> str:
        return str((item.get(f"{key}_en") if en else None) or item.get(key) or "")

    other = "?lang=ja" if en else "?lang=en"
    parts = [
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><meta http-equiv="refresh" content="60">'
        f"<title>{escape(pick(snapshot, 'title'))}</title><style>{CSS}</style>"
        '<link rel="alternate" type="application/atom+xml" href="/status/feed.xml"></head><body>'
        f'<header><a href="{other}">{t["other"]}</a><h1>{escape(pick(snapshot, "title"))}</h1></header><main>'
    ]
    names = {s["id"]: pick(s, "name") for s in snapshot["services"]}
    parts.append(f"<section><h2>{t['notices']}</h2>")
    if not snapshot["notices"]:
        parts.append(f"<p>{t['none']}</p>")
    for n in snapshot["notices"]:
        planned = " planned" if n["template"] == "planned" else ""
        when = [f"{t['published']} {jst_short(n['published_at'])}"]
        if n["estimate_at"]:
            when.append(f"{t['estimate']} {jst_short(n['estimate_at'])}")
        parts.append(
            f'<div class="notice{planned}"><h3>{escape(pick(n, "title"))}</h3>'
            f'<div class="meta">{escape(" / ".join(when))}</div>'
            f'<div class="body">{escape(pick(n, "body"))}</div></div>'
        )
    parts.append("</section>")
    parts.append(f"<section><h2>{t['services']}</h2>")
    group = None
    for s in snapshot["services"]:
        if s["group"] and s["group"] != group:
            group = s["group"]
            parts.append(f'<div class="meta">{escape(group)}</div>')
        colour = COLOURS[s["state"]]
        parts.append(
            f'<div class="svc"><span class="name">{escape(pick(s, "name"))}</span>'
            f'<span class="badge" style="background:{colour}">{escape(pick(s, "state_text"))}</span></div>'
        )
        bars = "".join(
            f'<span style="background:{_bar_colour(h["availability"])}" title="{h["date"]}: '
            f'{t["no_data"] if h["availability"] is None else format(h["availability"] * 100, ".2f") + "%"}"></span>'
            for h in s["history"]
        )
        parts.append(f'<div class="meta">{t["history"].format(days=days)}</div><div class="bars">{bars}</div>')
        if s["prefectures"]:
            cells = "".join(
                f'<div style="background:{COLOURS[p["state"]]}">{escape(pick(p, "name"))}</div>'
                for p in s["prefectures"]
            )
            parts.append(f'<div class="meta">{t["by_pref"]}</div><div class="grid">{cells}</div>')
    parts.append("</section>")
    parts.append(f"<section><h2>{t['planned']}</h2>")
    if not snapshot["planned"]:
        parts.append(f"<p>{t['no_planned']}</p>")
    for p in snapshot["planned"]:
        affected = "、".join(escape(names.get(i, i)) for i in p["services"])
        parts.append(
            f'<div class="notice planned"><h3>{affected}</h3><div class="meta">'
            f"{jst_short(p['starts_at'])} – {jst_short(p['ends_at'])}</div></div>"
        )
    parts.append("</section>")
    parts.append(
        f"</main><footer>{t['updated']}: {jst_short(snapshot['generated_at'])} · "
        f'<a href="/status/feed.xml">{t["feed"]}</a> · <a href="/status.json">{t["json"]}</a></footer>'
        "</body></html>"
    )
    return "".join(parts)


def jst_short(iso_text: str | None) -> str:
    """An ISO timestamp as JST minutes (YYYY-MM-DD HH:MM)."""
    if not iso_text:
        return "-"
    from datetime import datetime

    return jst(datetime.fromisoformat(iso_text).timestamp())[:16]


def render_atom(snapshot_notices: list[dict[str, Any]], title: str, updated: str) -> str:
    """Atom 1.0 of the notices (published and closed), newest first. Links are relative to the feed's own
    address (RFC 4287 allows it), so the feed names no host: it is the same behind any proxy or on LGWAN."""
    entries = []
    for n in snapshot_notices:
        content = f"{n['body']}\n\n{n['title_en']}\n{n['body_en']}"
        entries.append(
            "<entry>"
            f"<id>tag:national-monitor,2026:notice/{n['id']}</id>"
            f"<title>{xml_escape(n['title'])}</title>"
            f"<updated>{n['updated_at']}</updated><published>{n['published_at']}</published>"
            f'<link href="/status#notice-{n["id"]}"/>'
            f'<content type="text">{xml_escape(content)}</content>'
            "</entry>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<id>tag:national-monitor,2026:status</id><title>{xml_escape(title)}</title><updated>{updated}</updated>"
        '<link rel="self" href="/status/feed.xml"/>'
        f"<author><name>{xml_escape(title)}</name></author>" + "".join(entries) + "</feed>"
    )
