"""The monthly report as one self-contained HTML page: Japanese (or English), printable on A4, with
inline SVG charts (availability per prefecture against the target, downtime per day, 12-month trend)."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from monitor.availability.capacity_html import capacity_section
from monitor.availability.periods import JST
from monitor.availability.report import Report, Row, recovery_summary
from monitor.availability.stamp import Stamp, print_css, render_stamp
from monitor.timefmt import jst

TEXT = {
    "ja": {
        "title": "月次稼働報告", "period": "対象期間", "generated": "作成日時", "summary": "概要",
        "systems": "システム別稼働率", "prefectures": "都道府県別稼働率", "links": "LGWAN接続回線",
        "services": "サービス別稼働率（全件）", "incidents": "障害一覧", "daily": "日別障害停止時間（全サービス合計）",
        "trend": "稼働率の推移（直近12か月）", "name": "名称", "planned": "計画サービス時間", "maintenance": "計画停止時間",
        "downtime": "障害停止時間", "availability": "稼働率", "target": "目標", "met": "達成", "count": "障害件数",
        "mttr": "MTTR", "mtbf": "MTBF", "longest": "最長停止", "budget": "予算消費", "yes": "達成", "no": "未達",
        "detected": "検知", "notified": "初回通知", "acked": "受付", "recovered": "復旧", "root": "原因箇所",
        "severity": "重要度", "affected": "影響サービス", "minutes": "分", "hours": "時間", "none": "なし",
        "gap": "監視欠測", "met_count": "目標達成サービス", "links_not_met": "目標未達の回線",
        "recovery": "目標復旧時間", "objective": "目標", "within": "目標内に復旧", "breaches": "目標超過",
        "first_notice": "初回お知らせまで", "duration": "復旧まで",
        "formula": "稼働率 =（計画サービス時間 − 障害停止時間）÷ 計画サービス時間。計画停止と監視欠測は計画サービス時間から除く。",
    },
    "en": {
        "title": "Monthly availability report", "period": "Period", "generated": "Generated", "summary": "Summary",
        "systems": "Availability by system", "prefectures": "Availability by prefecture", "links": "LGWAN links",
        "services": "Availability by service (all)", "incidents": "Incidents", "daily": "Downtime per day (all services)",
        "trend": "Availability, last 12 months", "name": "Name", "planned": "Planned service time",
        "maintenance": "Planned maintenance", "downtime": "Downtime", "availability": "Availability", "target": "Target",
        "met": "Met", "count": "Incidents", "mttr": "MTTR", "mtbf": "MTBF", "longest": "Longest outage",
        "budget": "Budget used", "yes": "met", "no": "missed", "detected": "Detected", "notified": "First page",
        "acked": "Acknowledged", "recovered": "Recovered", "root": "Root cause", "severity": "Severity",
        "affected": "Affected services", "minutes": "min", "hours": "h", "none": "none", "gap": "Monitoring gaps",
        "met_count": "Services meeting their target", "links_not_met": "Links below target",
        "recovery": "Recovery-time objectives", "objective": "Objective", "within": "Recovered within objective",
        "breaches": "Objective missed", "first_notice": "To first notice", "duration": "To recovery",
        "formula": "Availability = (planned service time − downtime) ÷ planned service time; planned maintenance and "
        "monitoring gaps are taken out of the planned service time.",
    },
}  # fmt: skip

CSS = """
@page { size: A4; margin: 14mm 12mm; }
body { font-family: "Noto Sans CJK JP", "Noto Sans JP", "Hiragino Sans", "Yu Gothic", sans-serif; font-size: 9.5pt;
       color: #1a1a1a; margin: 0; }
h1 { font-size: 17pt; margin: 0 0 2mm; } h2 { font-size: 12pt; margin: 6mm 0 2mm; border-bottom: 2px solid #1f4e79; }
.meta { color: #555; margin-bottom: 3mm; } .note { color: #555; font-size: 8.5pt; }
table { border-collapse: collapse; width: 100%; page-break-inside: auto; } tr { page-break-inside: avoid; }
th, td { border: 1px solid #bbb; padding: 1.2mm 1.6mm; text-align: right; } th { background: #eef3f8; }
td.l, th.l { text-align: left; } .ng { color: #b00020; font-weight: bold; } .ok { color: #1b5e20; }
.cards { display: flex; gap: 4mm; } .card { border: 1px solid #bbb; padding: 2mm 4mm; flex: 1; }
.card b { font-size: 15pt; display: block; } svg { width: 100%; height: auto; } section { page-break-inside: avoid; }
"""


def _pct(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def _min(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:,.1f}"


def _met(row: Row, t: dict[str, str]) -> str:
    if row.met is None:
        return "—"
    return f'<span class="ok">{t["yes"]}</span>' if row.met else f'<span class="ng">{t["no"]}</span>'


def _table(rows: list[Row], t: dict[str, str], first: str) -> str:
    head = (f'<tr><th class="l">{first}</th><th>{t["planned"]}[{t["minutes"]}]</th><th>{t["maintenance"]}[{t["minutes"]}]</th>'
            f'<th>{t["downtime"]}[{t["minutes"]}]</th><th>{t["availability"]}</th><th>{t["target"]}</th><th>{t["met"]}</th>'
            f'<th>{t["count"]}</th><th>{t["mttr"]}[{t["minutes"]}]</th><th>{t["mtbf"]}[{t["hours"]}]</th>'
            f'<th>{t["longest"]}[{t["minutes"]}]</th><th>{t["budget"]}</th></tr>')  # fmt: skip
    body = []
    for row in rows:
        a = row.figures
        mtbf = "—" if a.mtbf_seconds is None else f"{a.mtbf_seconds / 3600:,.1f}"
        body.append(
            f'<tr><td class="l">{escape(row.name)}</td><td>{_min(a.planned_seconds)}</td><td>{_min(a.maintenance_seconds)}</td>'
            f"<td>{_min(a.downtime_seconds)}</td><td>{_pct(a.availability)}</td><td>{_pct(row.objective, 2)}</td>"
            f"<td>{_met(row, t)}</td><td>{len(row.incident_ids)}</td><td>{_min(a.mttr_seconds)}</td><td>{mtbf}</td>"
            f"<td>{_min(a.longest_outage_seconds)}</td><td>{_pct(row.budget_used, 1)}</td></tr>"
        )  # fmt: skip
    return f"<table>{head}{''.join(body)}</table>"


def _bars(values: list[tuple[str, float | None]], target: float | None, width: int = 760, height: int = 190) -> str:
    """A bar chart; availability (0-1) when `target` is given (axis from the lowest value to 100%), else minutes."""
    numbers = [v for _, v in values if v is not None]
    if target is not None:
        low = min([*numbers, target]) if numbers else target
        low = max(0.0, min(low, target) - (1 - target))
        high = 1.0
    else:
        low, high = 0.0, max([*numbers, 1.0])
    left, bottom, top = 44, 34, 8
    step = (width - left - 4) / max(1, len(values))
    # the font named on the element: a PDF renderer lays SVG out apart from the page's CSS (it would take serif)
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" xmlns="http://www.w3.org/2000/svg" '
             'font-family="Noto Sans CJK JP, sans-serif">']  # fmt: skip

    def y(v: float) -> float:
        return top + (height - bottom - top) * (1 - (v - low) / (high - low or 1))

    for frac in (0.0, 0.5, 1.0):
        v = low + (high - low) * frac
        label = f"{v * 100:.2f}%" if target is not None else f"{v:,.0f}"
        parts.append(f'<text x="{left - 3}" y="{y(v) + 3:.1f}" font-size="9" text-anchor="end">{label}</text>'
                     f'<line x1="{left}" x2="{width}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')  # fmt: skip
    for i, (label, value) in enumerate(values):
        x = left + i * step
        if value is not None:
            bad = target is not None and value < target
            color = "#b00020" if bad else "#1f4e79"
            parts.append(f'<rect x="{x + step * 0.15:.1f}" y="{y(value):.1f}" width="{step * 0.7:.1f}" '
                         f'height="{max(0.0, height - bottom - y(value)):.1f}" fill="{color}"><title>{escape(label)}: '
                         f'{value * 100 if target is not None else value:.3f}</title></rect>')  # fmt: skip
        parts.append(f'<text x="{x + step / 2:.1f}" y="{height - bottom + 10}" font-size="7.5" text-anchor="end" '
                     f'transform="rotate(-60 {x + step / 2:.1f} {height - bottom + 10})">{escape(label)}</text>')  # fmt: skip
    if target is not None:
        parts.append(f'<line x1="{left}" x2="{width}" y1="{y(target):.1f}" y2="{y(target):.1f}" stroke="#b00020" '
                     f'stroke-dasharray="5 3"/><text x="{width - 2}" y="{y(target) - 3:.1f}" font-size="9" '
                     f'text-anchor="end" fill="#b00020">{target * 100:g}%</text>')  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def _incidents(report: Report, t: dict[str, str]) -> str:
    if not report.incidents:
        return f"<p>{t['none']}</p>"
    head = (f'<tr><th>#</th><th class="l">{t["name"]}</th><th>{t["severity"]}</th><th>{t["detected"]}</th>'
            f'<th>{t["notified"]}</th><th>{t["acked"]}</th><th>{t["recovered"]}</th><th class="l">{t["root"]}</th>'
            f'<th class="l">{t["affected"]}</th></tr>')  # fmt: skip
    rows = []
    for line in report.incidents:
        i = line.incident

        def when(ts: float | None) -> str:
            return "—" if ts is None else jst(ts).replace(" JST", "")

        rows.append(
            f'<tr><td>{line.label or i.id}</td><td class="l">{escape(i.title)}</td><td>{escape(i.severity)}</td><td>{when(i.opened_at)}</td>'
            f"<td>{when(line.first_notified)}</td><td>{when(i.acked_at)}</td><td>{when(i.resolved_at)}</td>"
            f'<td class="l">{escape(i.labels.get("target") or i.key)}</td><td class="l">{escape(", ".join(line.services[:6]))}</td></tr>'
        )  # fmt: skip
    return f"<table>{head}{''.join(rows)}</table>"


def _recovery(report: Report, t: dict[str, str]) -> str:
    summary = recovery_summary(report)
    judged = [line for line in report.incidents if line.objective is not None or line.first_notice is not None]
    head = (f'<tr><th>#</th><th class="l">{t["name"]}</th><th>{t["objective"]}</th><th>{t["duration"]}</th>'
            f'<th>{t["within"]}</th><th>{t["first_notice"]}</th></tr>')  # fmt: skip
    rows = []
    for line in judged:
        i = line.incident
        verdict = {True: t["yes"], False: t["no"], None: "—"}[line.within_objective]
        notice = _min(line.first_notice - i.opened_at) if line.first_notice is not None else "—"
        rows.append(f'<tr><td>{i.id}</td><td class="l">{escape(i.title)}</td><td>{_min(line.objective)}</td>'
                    f"<td>{_min(line.recovery_seconds)}</td><td>{verdict}</td><td>{notice}</td></tr>")  # fmt: skip
    lead = (f"<p>{t['within']}: {summary['within_objective']} / {summary['incidents_with_objective']} · "
            f"{t['breaches']}: {len(summary['breached'])}</p>")  # fmt: skip
    return lead + (f"<table>{head}{''.join(rows)}</table>" if rows else f"<p>{t['none']}</p>")


def render_html(report: Report, lang: str = "ja", stamp: Stamp | None = None) -> str:
    """The report page; with a `stamp` it is a record (version, approvers, data hash on the page and on every
    printed page): the same page the PDF is printed from (pdf.py)."""
    t = TEXT.get(lang, TEXT["ja"])
    record, record_css, record_meta = "", "", ""
    if stamp is not None:
        record, record_css = render_stamp(stamp, lang), print_css(stamp, lang, t["title"])
        created = datetime.fromtimestamp(stamp.created_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        record_meta = (f'<meta name="dcterms.created" content="{created}"><meta name="dcterms.modified" '
                       f'content="{created}"><meta name="generator" content="national-monitor">')  # fmt: skip
    start = datetime.fromtimestamp(report.period[0], JST)
    end = datetime.fromtimestamp(report.period[1], JST)
    met = sum(1 for r in report.services if r.met)
    judged = sum(1 for r in report.services if r.met is not None)
    downtime = sum(r.figures.downtime_seconds for r in report.services)
    gaps = sum(r.figures.gap_seconds for r in report.services)
    links_missed = [r for r in report.lgwan_links if r.met is False]
    cards = "".join(f'<div class="card">{label}<b>{value}</b></div>' for label, value in (
        (t["met_count"], f"{met} / {judged}"), (t["downtime"], f"{downtime / 60:,.1f} {t['minutes']}"),
        (t["count"], str(len(report.incidents))), (t["gap"], f"{gaps / 60:,.1f} {t['minutes']}")))  # fmt: skip
    trend = "".join(
        f"<h3>{escape(r.name)}</h3>" + _bars([(m[2:], v) for m, v in _system_trend(report, r)], r.objective, height=120)
        for r in report.systems
    )
    prefecture_chart = _bars(
        [(r.name if lang == "ja" else r.name_en, r.figures.availability) for r in report.prefectures], 0.999
    )
    daily_chart = _bars([(d[5:], m) for d, m in report.daily_downtime], None)
    missed = "".join(f"<li>{escape(r.name)}: {_pct(r.figures.availability)}</li>" for r in links_missed)
    return f"""<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8">{record_meta}<title>{t["title"]} {report.month}</title><style>{CSS}{record_css}</style></head>
<body>
<h1>{t["title"]} {report.month}</h1>
<div class="meta">{t["period"]}: {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} JST / {t["generated"]}: {jst(report.generated_at)}</div>
{record}<p class="note">{t["formula"]}</p>
<section><h2>{t["summary"]}</h2><div class="cards">{cards}</div></section>
<section><h2>{t["systems"]}</h2>{_table(report.systems, t, t["name"])}</section>
<section><h2>{t["prefectures"]}</h2>{prefecture_chart}{_table(report.prefectures, t, t["name"])}</section>
<section><h2>{t["links"]}</h2><p>{t["met_count"]}: {sum(1 for r in report.lgwan_links if r.met)} / {len(report.lgwan_links)}</p>
<p>{t["links_not_met"]}:</p><ul>{missed or f"<li>{t['none']}</li>"}</ul></section>
<section><h2>{t["daily"]} [{t["minutes"]}]</h2>{daily_chart}</section>
<section><h2>{t["incidents"]}</h2>{_incidents(report, t)}</section>
<section><h2>{t["recovery"]}</h2>{_recovery(report, t)}</section>
<section><h2>{t["trend"]}</h2>{trend}</section>
{capacity_section(report.capacity, lang)}
<h2>{t["services"]}</h2>{_table(report.services, t, t["name"])}
</body></html>
"""


def _system_trend(report: Report, system_row: Row) -> list[tuple[str, float | None]]:
    """A system's monthly availability over the services' trends (time-weighting is not available for old
    months from the trend alone, so this is the mean of its services)."""
    members = [r for r in report.services if (r.labels.get("system") or "-") == system_row.key]
    months = [m for m, _ in members[0].trend] if members else []
    out: list[tuple[str, float | None]] = []
    for index, month in enumerate(months):
        values = [v for m in members if (v := m.trend[index][1]) is not None]
        out.append((month, sum(values) / len(values) if values else None))
    return out
