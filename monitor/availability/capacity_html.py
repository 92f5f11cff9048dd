"""The capacity section of the HTML report (and so of the PDF, rendered from the same HTML): a chart of the
circuits' 95th percentiles against the threshold, the circuits close to it, and the table of every circuit
and direction. Self-contained (its own texts), so html_report.py only places it."""

from __future__ import annotations

from html import escape

from monitor.availability.capacity_report import CapacityRow, CapacitySection
from monitor.timefmt import jst

TEXT = {
    "ja": {
        "title": "回線帯域（95パーセンタイル値）", "circuit": "回線", "kind": "種別", "direction": "方向",
        "capacity": "帯域", "p95": "95%値（利用率）", "p95_bps": "95%値", "peak": "最大（5分）", "peak_at": "最大時刻",
        "coverage": "測定率", "forecast": "閾値到達まで", "days": "日", "in": "受信", "out": "送信",
        "not_enough_data": "データ不足", "not_rising": "増加傾向なし", "saturated": "閾値超過",
        "lgwan_circuit": "LGWAN回線", "uplink": "県接続回線", "other": "その他", "none": "対象回線なし",
        "close": "閾値到達の見込み（{days:g}日以内）", "threshold": "閾値", "chart": "95%値の上位回線",
        "method": "95%値は5分間平均利用率のPrometheus quantile_over_time(0.95)と同一の定義（線形補間）。"
        "予測は月次95%値の最小二乗法による直線近似（最低{min_months}か月、各月の測定率{coverage:.0%}以上）。"
        "複数ポートの回線は各5分間のポート合計の95%値。",
    },
    "en": {
        "title": "Circuit capacity (95th percentile)", "circuit": "Circuit", "kind": "Kind", "direction": "Direction",
        "capacity": "Capacity", "p95": "95th pct (utilisation)", "p95_bps": "95th pct", "peak": "Peak (5 min)",
        "peak_at": "Peak at", "coverage": "Measured", "forecast": "To threshold", "days": "days", "in": "in",
        "out": "out", "not_enough_data": "not enough data", "not_rising": "not rising", "saturated": "over threshold",
        "lgwan_circuit": "LGWAN circuit", "uplink": "uplink", "other": "other", "none": "no circuits measured",
        "close": "Forecast to reach the threshold within {days:g} days", "threshold": "threshold",
        "chart": "Circuits with the highest 95th percentile",
        "method": "95th percentile: Prometheus quantile_over_time(0.95) of the 5-minute mean utilisation (linear "
        "interpolation). Forecast: least squares over the monthly 95th percentiles (at least {min_months} months, "
        "each with {coverage:.0%} of its 5-minute slots measured). A circuit of several ports: the 95th "
        "percentile of the ports' sum in each 5 minutes.",
    },
}  # fmt: skip
CHART_ROWS = 20


def _bps(value: float | None) -> str:
    if value is None:
        return "—"
    for unit, scale in (("Gbps", 1e9), ("Mbps", 1e6), ("kbps", 1e3)):
        if value >= scale:
            return f"{value / scale:,.2f} {unit}"
    return f"{value:,.0f} bps"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _outlook(row: CapacityRow, t: dict[str, str]) -> str:
    f = row.forecast
    if f.status == "rising" and f.days is not None:
        return f"{f.days:,.0f} {t['days']}"
    return t[f.status]


def _name(row: CapacityRow, lang: str) -> str:
    return row.circuit.display_name if lang == "ja" else row.circuit.display_name_en


def _chart(section: CapacitySection, lang: str, t: dict[str, str]) -> str:
    """Horizontal bars of the highest 95th percentiles, with the threshold as a dashed line."""
    rows = sorted((r for r in section.rows if r.figures.p95_ratio is not None),
                  key=lambda r: -(r.figures.p95_ratio or 0.0))[:CHART_ROWS]  # fmt: skip
    if not rows:
        return ""
    left, width, bar = 230, 720, 14
    height = len(rows) * (bar + 4) + 20
    scale = (width - left - 50) / 1.0  # 0..100%
    parts = [f'<svg viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" font-size="9">']
    for i, row in enumerate(rows):
        y = 4 + i * (bar + 4)
        value = min(1.0, row.figures.p95_ratio or 0.0)
        over = value >= section.threshold
        name = f"{_name(row, lang)} ({t[row.direction]})"
        parts.append(f'<text x="{left - 4}" y="{y + bar - 3}" text-anchor="end">{escape(name)}</text>'
                     f'<rect x="{left}" y="{y}" width="{value * scale:.1f}" height="{bar}" '
                     f'fill="{"#b00020" if over else "#1f4e79"}"/>'
                     f'<text x="{left + value * scale + 3:.1f}" y="{y + bar - 3}">{_pct(value)}</text>')  # fmt: skip
    x = left + section.threshold * scale
    parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height - 14}" stroke="#b00020" stroke-dasharray="5 3"/>'
                 f'<text x="{x:.1f}" y="{height - 3}" text-anchor="middle" fill="#b00020">'
                 f'{t["threshold"]} {section.threshold * 100:g}%</text></svg>')  # fmt: skip
    return "".join(parts)


def capacity_section(section: CapacitySection | None, lang: str = "ja") -> str:
    """The section's HTML (empty when the report has no capacity data at all, e.g. an old JSON)."""
    if section is None:
        return ""
    t = TEXT.get(lang, TEXT["ja"])
    method = t["method"].format(min_months=section.min_months, coverage=section.min_coverage)
    if not section.rows:
        return f"<section><h2>{t['title']}</h2><p>{t['none']}</p></section>"
    close = section.saturating()
    listed = "".join(
        f"<li>{escape(_name(r, lang))} ({t[r.direction]}): {_pct(r.figures.p95_ratio)} · {_outlook(r, t)}</li>"
        for r in close
    )
    columns = ("circuit", "kind", "direction", "capacity", "p95", "p95_bps", "peak", "peak_at", "coverage", "forecast")
    head = "".join(f"<th{' class=l' if k in ('circuit', 'kind') else ''}>{t[k]}</th>" for k in columns)
    body = []
    for r in section.rows:
        f = r.figures
        over = f.p95_ratio is not None and f.p95_ratio >= section.threshold
        soon = r.forecast.days is not None and r.forecast.days <= section.alert_within_days
        body.append(
            f'<tr><td class="l">{escape(_name(r, lang))}</td><td class="l">{t[r.circuit.kind]}</td>'
            f"<td>{t[r.direction]}</td><td>{_bps(f.capacity_bps)}</td>"
            f'<td class="{"ng" if over else ""}">{_pct(f.p95_ratio)}</td><td>{_bps(f.p95_bps)}</td>'
            f"<td>{_pct(f.peak_ratio)}</td><td>{'—' if f.peak_at is None else jst(f.peak_at).replace(' JST', '')}</td>"
            f'<td>{f.coverage * 100:.0f}%</td><td class="{"ng" if soon else ""}">{_outlook(r, t)}</td></tr>'
        )
    # the table follows the section rather than sitting in it: sections are kept on one page, and a table of
    # every circuit and direction (94 rows for 47 uplinks) has to break across pages in the PDF
    return (
        f'<section><h2>{t["title"]}</h2><p class="note">{method}</p>'
        f"<p>{t['close'].format(days=section.alert_within_days)}:</p><ul>{listed or '<li>—</li>'}</ul>"
        f"<h3>{t['chart']}</h3>{_chart(section, lang, t)}</section>"
        f"<table><tr>{head}</tr>{''.join(body)}</table>"
    )
