"""A static HTML preview of the NOC overview, for places without Grafana (the dev machines, CI artifacts).

It runs the overview's own panel queries (from the generated JSON) against a Prometheus and lays the
answers out like the dashboard: counters on top, the 47 prefectures as tiles in JIS order (Hokkaido to
Okinawa), the national systems. Colours and words are the dashboard's value mappings.

    python -m dashboards.preview --prometheus http://127.0.0.1:9090 --out artifacts/noc-overview-preview.html
"""

from __future__ import annotations

import argparse
import html
import json
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboards.generate import OUT, STATE_TEXT
from monitor.config.prefectures import all_prefectures

PREFECTURES_PANEL = "都道府県 (47)"
NATIONAL_PANEL = "国の基幹システム"
COUNTER_PANELS = ("停止中のサービス", "縮退中のサービス", "未解決インシデント (重大度別)", "エスカレーション段階")


@dataclass
class Overview:
    prefectures: dict[str, int]  # JIS code -> state code
    national: dict[str, int] = field(default_factory=dict)  # service -> state code
    counters: dict[str, dict[str, float]] = field(default_factory=dict)  # panel title -> legend -> value


def sample_states() -> Overview:
    """A fixed example: one prefecture down, its neighbour unreachable, one degraded, one without checks."""
    states = {p.code: 0 for p in all_prefectures()}
    states.update({"13": 3, "14": 2, "27": 1, "47": -3})
    return Overview(
        states,
        {"juki-net": 0, "card-mgmt": 1},
        {"停止中のサービス": {"down": 1}, "未解決インシデント (重大度別)": {"critical": 1}},
    )


def _panel_targets(board: dict[str, Any], title: str) -> list[dict[str, Any]]:
    panel = next(p for p in board["panels"] if p["title"] == title)
    return list(panel["targets"])


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise ValueError(f"Prometheus refused {expr!r}: {body}")
    return list(body["data"]["result"])


def _legend(template: str, labels: dict[str, str]) -> str:
    for key, value in labels.items():
        template = template.replace("{{" + key + "}}", value)
    return template or "value"


def fetch(prometheus: str) -> Overview:
    """The overview's panels, answered by this Prometheus now."""
    board = json.loads((OUT / "noc-overview.json").read_text(encoding="utf-8"))
    prefectures = {
        r["metric"]["prefecture"]: int(float(r["value"][1]))
        for t in _panel_targets(board, PREFECTURES_PANEL)
        for r in _query(prometheus, t["expr"])
    }
    national = {
        r["metric"]["service"]: int(float(r["value"][1]))
        for t in _panel_targets(board, NATIONAL_PANEL)
        for r in _query(prometheus, t["expr"])
    }
    counters = {
        title: {
            _legend(t.get("legendFormat", ""), r["metric"]): float(r["value"][1])
            for t in _panel_targets(board, title)
            for r in _query(prometheus, t["expr"])
        }
        for title in COUNTER_PANELS
    }
    return Overview(prefectures, national, counters)


def _tile(name: str, code: int) -> str:
    label, colour = STATE_TEXT.get(code, STATE_TEXT[-1])
    ink = "#000" if colour == "yellow" else "#fff"
    style = f"background:{colour};color:{ink}"
    return f'<div class="tile" style="{style}"><b>{html.escape(name)}</b><span>{label}</span></div>'


def render(overview: Overview) -> str:
    counters = "".join(
        f'<div class="counter"><h3>{html.escape(title)}</h3>'
        + ("".join(f"<p>{html.escape(k)}: <b>{v:g}</b></p>" for k, v in values.items()) or "<p><b>0</b></p>")
        + "</div>"
        for title in COUNTER_PANELS
        for values in [overview.counters.get(title, {})]
    )
    prefectures = "".join(
        _tile(f"{p.code} {p.name_ja}", overview.prefectures.get(p.code, -3)) for p in all_prefectures()
    )
    national = "".join(_tile(name, code) for name, code in sorted(overview.national.items()))
    return f"""<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>NOC 全体監視 (preview)</title>
<style>
body {{ background:#111217; color:#ddd; font-family:"Noto Sans CJK JP",sans-serif; margin:16px; }}
h2 {{ font-size:18px; margin:18px 0 8px; }}
.counters {{ display:flex; gap:12px; }}
.counter {{ background:#1f2026; padding:8px 14px; flex:1; }} .counter h3 {{ font-size:14px; margin:0 0 4px; }}
.grid {{ display:grid; grid-template-columns:repeat(12, 1fr); gap:6px; }}
.tile {{ color:#fff; padding:10px 6px; text-align:center; font-size:15px; border-radius:3px; }}
.tile b {{ display:block; font-size:16px; }} .tile span {{ font-size:13px; }}
</style></head><body>
<h1 style="font-size:22px">NOC 全体監視 <small style="color:#888">(static preview of the Grafana dashboard)</small></h1>
<div class="counters">{counters}</div>
<h2>{PREFECTURES_PANEL}</h2><div class="grid">{prefectures}</div>
<h2>{NATIONAL_PANEL}</h2><div class="grid">{national}</div>
</body></html>
"""


def write(path: Path, overview: Overview) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(overview), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prometheus", help="base URL; without it the preview shows a fixed example")
    parser.add_argument("--out", type=Path, default=Path("artifacts/noc-overview-preview.html"))
    args = parser.parse_args(argv)
    write(args.out, fetch(args.prometheus) if args.prometheus else sample_states())
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
