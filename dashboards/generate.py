"""Generates the Grafana dashboards in dashboards/grafana/ with grafana-foundation-sdk's builders.

    python -m dashboards.generate           # write the JSON files
    python -m dashboards.generate --check   # exit 1 if the committed files differ from this code

Titles are Japanese (the NOC's working language), descriptions English. Queries use only what the
daemon exports and what `monitor rules` records; tests/test_dashboards.py runs every one of them
against a real Prometheus scraping the demo daemon. Descriptive labels (tier, prefecture, system, role,
site) are only on the monitor_check_info / monitor_service_info series: queries that filter or group by
them join on those (`described`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.common import ReduceDataOptions, VizLegendOptions
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    GridPos,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableOption,
    VariableRefresh,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT = Path(__file__).parent / "grafana"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")
DAEMON = "${daemon_url}"  # a dashboard constant: where operators reach the daemon's console and API
TAGS = ["national-monitor"]

# Status grids show one number per subject, the code of its worst current state (highest wins).
STATE_CODE = {"maintenance": -2, "unknown": -1, "up": 0, "degraded": 1, "unreachable": 2, "down": 3}
STATE_TEXT = {-3: ("監視対象なし", "#555555"), -2: ("計画停止", "blue"), -1: ("不明", "#808080"), 0: ("正常", "green"),
              1: ("縮退", "yellow"), 2: ("到達不能", "purple"), 3: ("停止", "red")}  # fmt: skip
STATE_MAPPINGS = [
    ValueMap(
        options={
            str(code): ValueMappingResult(text=label, color=color, index=i)
            for i, (code, (label, color)) in enumerate(STATE_TEXT.items())
        }
    )
]


# --------------------------------------------------------------------------------------- helpers


def query(
    expr: str, legend: str = "", *, instant: bool = False, as_table: bool = False, ref: str = "A"
) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).datasource(DATASOURCE).ref_id(ref)
    q = q.instant() if instant else q.range()
    if legend:
        q = q.legend_format(legend)
    if as_table:
        q = q.format(PromQueryFormat.TABLE)
    return q


def leader(expr: str) -> str:
    """Only the series of the HA leader (or of a daemon running alone, or a shard: each is its own leader),
    so that counts over the estate are not doubled when both daemons of an HA pair are scraped."""
    return f"({expr}) and on (instance) (monitor_ha_leader == 1)"


def sum_leader(expr: str) -> str:
    return f"sum({leader(expr)})"


CHANGES = 'changes(monitor_check_state{state=~"down|unreachable|degraded"}[1h])'


def described(expr: str, subject: str, matchers: str = "", labels: str = "") -> str:
    """`expr` (series of checks or services: subject "check" or "service") restricted to those whose info
    series matches `matchers`, with the descriptive `labels` copied from it. The join is on the daemon
    too (instance): each daemon of an HA pair describes its own series."""
    info = f"monitor_{subject}_info{{{matchers}}}" if matchers else f"monitor_{subject}_info"
    if not labels:  # a filter only: `and` keeps the left side's values and labels as they are
        return f"(({expr}) and on (instance, {subject}) {info})"
    return f"(({expr}) * on (instance, {subject}) group_left ({labels}) {info})"


def worst_state(metric: str, by: str, subject: str, matchers: str = "", labels: str = "") -> str:
    """Per `by`, the code of the worst current state among `metric` (one series per state, 1 on the
    current one) of the subjects whose info matches `matchers`, `labels` taken from the info series."""
    parts = [f'({metric}{{state="{state}"}} == 1) * {code}' for state, code in STATE_CODE.items()]
    codes = "(\n    " + "\n  or ".join(parts) + "\n)"
    return f"max by ({by}) (\n  " + described(codes, subject, matchers, labels) + "\n)"


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in steps])
    )


def link(title: str, url: str) -> dashboard.DashboardLink:
    return dashboard.DashboardLink(title).type(DashboardLinkType.LINK).url(url).target_blank(True)


def transform(kind: str, options: dict[str, Any]) -> DataTransformerConfig:
    return DataTransformerConfig(id_val=kind, options=options)


def sort_by(field: str, desc: bool = False) -> DataTransformerConfig:
    return transform("sortBy", {"fields": {}, "sort": [{"field": field, "desc": desc}]})


def keep_fields(*names: str, rename: dict[str, str] | None = None) -> DataTransformerConfig:
    """Show these table columns, in this order, under these names (others hidden)."""
    return transform(
        "organize",
        {
            "includeByName": {n: True for n in names},
            "indexByName": {n: i for i, n in enumerate(names)},
            "renameByName": rename or {},
        },
    )


def status_grid(title: str, description: str, expr: str, name_field: str, url: str) -> stat.Panel:
    """Tiles, one per row of an instant table query, coloured and worded by state code; sorted by
    `name_field` (for prefectures the JIS code: Hokkaido first, Okinawa last)."""
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .with_target(query(expr, instant=True, as_table=True))
        .with_transformation(sort_by(name_field))
        .reduce_options(ReduceDataOptions().values(True).calcs(["lastNotNull"]).fields("/^Value$/"))
        .mappings(STATE_MAPPINGS)  # type: ignore[arg-type]
        .thresholds(thresholds((None, "green")))
        .color_mode(common.BigValueColorMode.BACKGROUND_SOLID)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .orientation(common.VizOrientation.AUTO)
        .data_links([link("詳細 (details in the daemon)", url)])
    )


def counter_stat(title: str, description: str, expr: str, legend: str, red_from: float = 1) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .with_target(query(expr, legend, instant=True))
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]))
        .thresholds(thresholds((None, "green"), (red_from, "red")))
        .color_mode(common.BigValueColorMode.BACKGROUND_SOLID)
        .graph_mode(common.BigValueGraphMode.NONE)
        .no_value("0")
    )


def graph(title: str, description: str, *targets: prometheus.Dataquery, unit: str = "short") -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .legend(
            VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .calcs(["lastNotNull", "max"])
        )
    )
    for i, target in enumerate(targets):
        panel = panel.with_target(target.ref_id(chr(ord("A") + i)))
    return panel


def state_table(title: str, description: str, expr: str, columns: list[str], rename: dict[str, str]) -> table.Panel:
    return (
        table.Panel()
        .title(title)
        .description(description)
        .with_target(query(expr, instant=True, as_table=True))
        .with_transformation(keep_fields(*columns, rename=rename))
        .with_transformation(sort_by(rename.get("Value", "Value"), desc=True))
        .mappings(STATE_MAPPINGS)  # type: ignore[arg-type]
    )


def merged_table(title: str, description: str, labels: dict[str, str], values: dict[str, str]) -> table.Panel:
    """A table with one row per series and one value column per query, merged on the labels: `labels`
    maps the label columns kept to their titles, `values` each query's expression to its column title."""
    panel = table.Panel().title(title).description(description)
    columns = dict(labels)
    for i, (expr, column) in enumerate(values.items()):
        ref = chr(ord("A") + i)
        panel = panel.with_target(query(expr, instant=True, as_table=True, ref=ref))
        columns[f"Value #{ref}"] = column
    return panel.with_transformation(transform("merge", {})).with_transformation(keep_fields(*columns, rename=columns))


def new_dashboard(uid: str, title: str, description: str, time_from: str = "now-6h") -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .refresh("30s")
        .time(time_from, "now")
        .timezone("Asia/Tokyo")
        .with_variable(
            dashboard.ConstantVariable("daemon_url")
            .label("daemon")
            .description("Base URL of the monitoring daemon (console and API), for links from panels.")
            .value("http://localhost:9310")
        )
        .link(link("未解決インシデント (open incidents, daemon API)", f"{DAEMON}/api/v1/incidents?status=open"))
        .link(
            dashboard.DashboardLink("監視ダッシュボード (all dashboards)")
            .type(DashboardLinkType.DASHBOARDS)
            .tags(TAGS)
            .as_dropdown(True)
            .keep_time(True)
        )
    )


def place(board: dashboard.Dashboard, rows: list[list[tuple[Any, int, int]]]) -> dashboard.Dashboard:
    """Lays panels out on the 24-column grid: each row a list of (panel, width, height)."""
    y = 0
    for row in rows:
        x = 0
        for panel, w, h in row:
            board = board.with_panel(panel.grid_pos(GridPos(x=x, y=y, w=w, h=h)))
            x += w
        y += max(h for _, _, h in row)
    return board


# ------------------------------------------------------------------------------------- dashboards

PREFECTURE_STATE = (
    worst_state("monitor_service_state", "prefecture", "service", 'prefecture!=""', "prefecture")
    + "\n* on (prefecture) group_left (name_ja) max by (prefecture, name_ja) (monitor_prefecture_info)"
    + "\nor on (prefecture) max by (prefecture, name_ja) (monitor_prefecture_info) * -3"
)


def noc_overview() -> dashboard.Dashboard:
    board = new_dashboard(
        "monitor-noc",
        "NOC 全体監視",
        "NOC overview for the wall screen: the 47 prefectures, national systems, LGWAN links, open incidents "
        "and what changed in the last hour.",
        "now-1h",
    )
    prefectures = status_grid(
        "都道府県 (47)",
        "Worst current state of the services of each prefecture (its network, LGWAN uplinks and links), "
        "JIS X 0401 order (Hokkaido to Okinawa). Services apply the redundancy rules: one of two circuits "
        "down is DEGRADED. Unreachable: cut off behind a failed parent (the root cause is elsewhere).",
        PREFECTURE_STATE,
        "prefecture",
        f"{DAEMON}/api/v1/targets?prefecture=${{__data.fields.prefecture}}",
    )
    national = status_grid(
        "国の基幹システム",
        "National systems: current state of each service of tier national.",
        worst_state("monitor_service_state", "service", "service", 'tier="national"'),
        "service",
        f"{DAEMON}/api/v1/services?q=${{__data.fields.service}}",
    )
    lgwan = state_table(
        "LGWAN 回線 (主回線/副回線)",
        "LGWAN links: each circuit (primary, backup) of each prefecture's connection, worst first. "
        "A link with one circuit down is DEGRADED, with both DOWN.",
        worst_state(
            "monitor_check_state", "check, target, prefecture, role", "check", 'system="lgwan"', "prefecture, role"
        ),
        ["prefecture", "target", "role", "check", "Value"],
        {"prefecture": "都道府県", "target": "回線", "role": "種別", "check": "チェック", "Value": "状態"},
    )
    services_down = counter_stat(
        "停止中のサービス", "Services DOWN now.", sum_leader('monitor_service_state{state="down"}'), "down"
    )
    services_degraded = counter_stat(
        "縮退中のサービス", "Services DEGRADED now.", sum_leader('monitor_service_state{state="degraded"}'), "degraded"
    )
    incidents = counter_stat(
        "未解決インシデント (重大度別)",
        "Open incidents by severity (critical, major, minor, warning).",
        f"sum by (severity) ({leader('monitor_incidents_open')})",
        "{{severity}}",
    )
    escalation = counter_stat(
        "エスカレーション段階",
        "Open incidents by the escalation level they reached (0: first page only).",
        f"sum by (level) ({leader('monitor_incidents_escalation_level')})",
        "level {{level}}",
    )
    changed = state_table(
        "直近1時間の状態変化",
        "Checks whose state changed in the last hour, with their current state; most changes first in "
        "the 'changes' column.",
        f"sum by (check, target, prefecture) ({described(leader(CHANGES), 'check', labels='prefecture')}) > 0",
        ["check", "target", "prefecture", "Value"],
        {"check": "チェック", "target": "対象", "prefecture": "都道府県", "Value": "変化回数"},
    ).mappings([])
    return place(
        board,
        [
            [(services_down, 4, 4), (services_degraded, 4, 4), (incidents, 8, 4), (escalation, 8, 4)],
            [(prefectures, 24, 12)],
            [(national, 12, 8), (lgwan, 12, 8)],
            [(changed, 24, 8)],
        ],
    )


def availability() -> dashboard.Dashboard:
    board = new_dashboard(
        "monitor-availability",
        "稼働率とエラーバジェット",
        "Availability (稼働率) per service in the current SLO window (calendar month, JST) against its "
        "objective (99.9% unless configured), error budget left in minutes, burn rates and 12 months of "
        "history. Planned maintenance and monitoring gaps are excluded, as the monthly report does.",
        "now-24h",
    )
    table_panel = (
        merged_table(
            "今月の稼働率",
            "Per service: availability so far this month, objective, budget left (minutes).",
            {"service": "サービス", "tier": "区分"},
            {
                described(expr, "service", labels="tier"): column
                for expr, column in (
                    ("monitor_service_availability_ratio", "稼働率"),
                    ("monitor_service_slo_objective_ratio", "目標"),
                    ("monitor_service_error_budget_remaining_seconds / 60", "残りバジェット(分)"),
                    ("monitor_service_downtime_seconds / 60", "停止時間(分)"),
                )
            },
        )
        .with_transformation(sort_by("稼働率"))
        .unit("percentunit")
        .decimals(3)
        .override_by_name("残りバジェット(分)", [{"id": "unit", "value": "m"}, {"id": "decimals", "value": 0}])  # type: ignore[list-item]
        .override_by_name("停止時間(分)", [{"id": "unit", "value": "m"}, {"id": "decimals", "value": 1}])  # type: ignore[list-item]
        .data_links([link("月次報告 (monthly report)", f"{DAEMON}/api/v1/reports")])
    )
    budget = (
        stat.Panel()
        .title("残りエラーバジェット")
        .description("Share of the month's error budget left per service; red when overspent.")
        .with_target(query("monitor_service_error_budget_remaining_ratio", "{{service}}", instant=True))
        .unit("percentunit")
        .thresholds(thresholds((None, "red"), (0, "orange"), (0.25, "yellow"), (0.5, "green")))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
    )
    burn = graph(
        "バーンレート",
        "Error budget burn rate by look-back window (1 = the budget lasts exactly the month). "
        "The multi-window alerts fire at 14.4 (1h and 5m) and 6 (6h and 30m).",
        query("monitor_service_burn_rate", "{{service}} {{window}}"),
    )
    history = (
        graph(
            "稼働率の推移 (12か月)",
            "Availability so far in each month, sampled daily over a year: the last point of each month is "
            "that month's figure.",
            query("max by (service) (monitor_service_availability_ratio)", "{{service}}"),
            unit="percentunit",
        )
        .time_from("365d")
        .interval("1d")
    )
    sli = graph(
        "SLI エラー率 (5分)",
        "Error ratio of the SLI over 5 minutes, from the recording rules `monitor rules` generates.",
        query("service:monitor_sli_errors:ratio_rate5m", "{{service}}"),
        unit="percentunit",
    )
    capacity = (
        merged_table(
            "回線帯域（今月の95%値と予測）",
            "Per circuit and direction (LGWAN circuits, prefecture uplinks): the 95th percentile and peak of "
            "5-minute utilisation so far this month (JST, as in the monthly report), the share of 5-minute slots "
            "measured, and the forecast days until the threshold (least squares over monthly 95th percentiles; "
            "empty: not enough data or not rising).",
            {"circuit": "回線", "prefecture": "都道府県", "direction": "方向"},
            {
                leader("monitor_capacity_p95_utilization_ratio"): "95%値",
                leader("monitor_capacity_peak_utilization_ratio"): "最大",
                leader("monitor_capacity_coverage_ratio"): "測定率",
                leader("monitor_capacity_days_until_threshold"): "閾値到達まで(日)",
            },
        )
        .with_transformation(sort_by("95%値", desc=True))
        .unit("percentunit")
        .decimals(1)
        .override_by_name("閾値到達まで(日)", [{"id": "unit", "value": "d"}, {"id": "decimals", "value": 0}])  # type: ignore[list-item]
        .data_links([link("月次報告 (monthly report)", f"{DAEMON}/api/v1/reports")])
    )
    circuits = graph(
        "回線使用率 (5分)",
        "Utilisation of each circuit per 5-minute slot (the sum of its ports' traffic over its capacity), "
        "in and out, from the recording rules `monitor rules` generates.",
        query("circuit:monitor_capacity_utilization_ratio:leader", "{{circuit}} {{direction}}"),
        unit="percentunit",
    )
    return place(
        board,
        [
            [(table_panel, 16, 12), (budget, 8, 12)],
            [(burn, 12, 9), (sli, 12, 9)],
            [(history, 24, 9)],
            [(capacity, 14, 10), (circuits, 10, 10)],
        ],
    )


def prefecture_drilldown() -> dashboard.Dashboard:
    board = new_dashboard(
        "monitor-prefecture",
        "都道府県別詳細",
        "One prefecture: its network devices (SNMP), interfaces (utilisation, errors, oper status), "
        "reachability (ICMP latency and loss) and its circuits' utilisation. Pick the prefecture at the top "
        "(JIS X 0401 code).",
    ).with_variable(
        dashboard.QueryVariable("prefecture")
        .label("都道府県")
        .description("JIS X 0401 prefecture code")
        .datasource(DATASOURCE)
        .query("label_values(monitor_prefecture_info, prefecture)")
        .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
        .current(VariableOption(text="01", value="01"))
    )
    sel = 'prefecture="$prefecture"'
    states = state_table(
        "チェック一覧",
        "Every check of the prefecture with its current state, worst first.",
        worst_state("monitor_check_state", "check, target, kind, role", "check", sel, "role"),
        ["target", "role", "kind", "check", "Value"],
        {"target": "対象", "role": "役割", "kind": "種別", "check": "チェック", "Value": "状態"},
    ).data_links([link("チェック詳細 (API)", f"{DAEMON}/api/v1/checks/${{__data.fields.check}}")])
    devices = (
        merged_table(
            "ネットワーク機器 (SNMP)",
            "SNMP agent answering (1), uptime since the last reboot, reboots seen.",
            {"target": "機器", "role": "役割"},
            {
                described("monitor_snmp_up", "check", sel, "role"): "SNMP応答",
                described("monitor_device_uptime_seconds", "check", sel, "role"): "稼働時間",
                described("monitor_device_reboots_total", "check", sel, "role"): "再起動回数",
            },
        ).override_by_name("稼働時間", [{"id": "unit", "value": "s"}])  # type: ignore[list-item]
    )
    utilisation = graph(
        "インタフェース使用率",
        "Utilisation of each selected interface, in and out (ifHCIn/OutOctets against ifHighSpeed).",
        query(described("monitor_if_utilization_ratio", "check", sel), "{{target}} {{if_name}} {{direction}}"),
        unit="percentunit",
    )
    errors = graph(
        "インタフェースエラー/破棄",
        "Errors and discards per second per interface (in and out summed).",
        query(
            " + ".join(
                f"sum by (target, if_name) ({described(f'rate(monitor_if_{d}_{kind}_total[5m])', 'check', sel)})"
                for d in ("in", "out")
                for kind in ("errors", "discards")
            ),
            "{{target}} {{if_name}}",
        ),
        unit="pps",
    )
    oper = merged_table(
        "インタフェース状態",
        "ifOperStatus (1 up, 2 down, ...) and ifAdminStatus; admin up but oper down is a link down.",
        {"target": "機器", "if_name": "IF", "if_alias": "説明"},
        {
            described("monitor_if_oper_status", "check", sel): "Oper",
            described("monitor_if_admin_status", "check", sel): "Admin",
        },
    ).mappings(
        [
            ValueMap(
                options={
                    "1": ValueMappingResult(text="up", color="green", index=0),
                    "2": ValueMappingResult(text="down", color="red", index=1),
                    "3": ValueMappingResult(text="testing", color="yellow", index=2),
                    "7": ValueMappingResult(text="lowerLayerDown", color="red", index=3),
                }
            )
        ]
    )
    latency = graph(
        "遅延 (ICMP RTT / TCP 接続)",
        "Reachability latency per target: the ICMP round-trip time where the target is pinged, else the "
        "TCP connect time of its reachability check.",
        query(
            described('monitor_icmp_rtt_seconds{stat="avg"}', "check", sel)
            + " or on (check) "
            + described('monitor_probe_phase_duration_seconds{kind="tcp",phase="connect"}', "check", sel),
            "{{target}} {{kind}}",
        ),
        unit="s",
    )
    loss = graph(
        "損失率 (ICMP ロス / 失敗率)",
        "Share of ICMP echo requests unanswered where the target is pinged, else the share of failed TCP "
        "reachability probes over 15 minutes.",
        query(
            described("monitor_icmp_packet_loss_ratio", "check", sel)
            + " or on (check) "
            + described('1 - avg_over_time(monitor_probe_success{kind="tcp"}[15m])', "check", sel),
            "{{target}} {{check}}",
        ),
        unit="percentunit",
    )
    # a circuit is no check: it is selected by the prefecture label of its own series, not through
    # monitor_check_info (docs/operations.md, "Reading the metrics")
    circuits = graph(
        "回線使用率（この都道府県の回線）",
        "Utilisation of the prefecture's circuits (LGWAN circuits, uplinks) per 5-minute slot, in and out, from "
        "the recording rules `monitor rules` generates; the monthly 95th percentiles and forecasts are on the "
        "availability dashboard and in the prefecture's report.",
        query(f"circuit:monitor_capacity_utilization_ratio:leader{{{sel}}}", "{{circuit}} {{direction}}"),
        unit="percentunit",
    )
    return place(
        board,
        [
            [(states, 14, 10), (devices, 10, 10)],
            [(utilisation, 12, 9), (errors, 12, 9)],
            [(oper, 12, 9), (latency, 6, 9), (loss, 6, 9)],
            [(circuits, 24, 9)],
        ],
    )


def national_servers() -> dashboard.Dashboard:
    board = new_dashboard(
        "monitor-national",
        "国の基幹サーバ",
        "National servers: HTTP phases, DNS, TLS certificate expiry and CRL freshness of the checks of tier national.",
    )
    sel = 'tier="national"'
    http = graph(
        "HTTP 応答時間 (フェーズ別)",
        "Duration of each phase of the last HTTP probe (resolve, connect, tls, processing, transfer).",
        query(described('monitor_probe_phase_duration_seconds{kind="http"}', "check", sel), "{{target}} {{phase}}"),
        unit="s",
    )
    status = state_table(
        "HTTP ステータス",
        "Status code of the last response per check.",
        described("monitor_http_status_code", "check", sel),
        ["target", "check", "Value"],
        {"target": "対象", "check": "チェック", "Value": "ステータス"},
    ).mappings([])
    dns = graph(
        "DNS 応答時間",
        "Duration of the last DNS probe per check.",
        query(described('monitor_probe_duration_seconds{kind="dns"}', "check", sel), "{{target}} {{check}}"),
        unit="s",
    )
    cert = (
        table.Panel()
        .title("証明書の有効期限 (残り日数)")
        .description("Days until the earliest certificate of each TLS endpoint's chain expires; red under 14 days.")
        .with_target(
            query(
                described("(monitor_tls_earliest_cert_expiry_timestamp_seconds - time()) / 86400", "check", sel),
                instant=True,
                as_table=True,
            )
        )
        .with_transformation(
            keep_fields("target", "check", "Value", rename={"target": "対象", "check": "チェック", "Value": "残り日数"})
        )
        .with_transformation(sort_by("残り日数"))
        .decimals(1)
        .thresholds(thresholds((None, "red"), (14, "orange"), (30, "green")))
    )
    crl = (
        table.Panel()
        .title("CRL 次回更新まで (時間)")
        .description("Hours until the nextUpdate of each CRL served (JPKI revocation lists); negative is stale.")
        .with_target(
            query(
                described("(monitor_crl_next_update_timestamp_seconds - time()) / 3600", "check", sel),
                instant=True,
                as_table=True,
            )
        )
        .with_transformation(
            keep_fields("target", "check", "Value", rename={"target": "対象", "check": "チェック", "Value": "残り時間"})
        )
        .with_transformation(sort_by("残り時間"))
        .decimals(1)
        .thresholds(thresholds((None, "red"), (0, "orange"), (6, "green")))
    )
    success = graph(
        "プローブ成功率 (1時間)",
        "Share of successful probes per check over the last hour.",
        query(described("avg_over_time(monitor_probe_success[1h])", "check", sel), "{{target}} {{check}}"),
        unit="percentunit",
    )
    return place(board, [[(http, 16, 9), (status, 8, 9)], [(cert, 8, 8), (crl, 8, 8), (dns, 8, 8)], [(success, 24, 8)]])


def daemon_health() -> dashboard.Dashboard:
    board = new_dashboard(
        "monitor-daemon",
        "監視デーモンの状態",
        "The monitoring daemon itself: is it keeping its schedule, are notifications getting out, did the "
        "last config reload work.",
    )
    lag = graph(
        "スケジューラ遅延",
        "How late probes start against their slot (p50, p99). Above 0.1 s the daemon is overloaded.",
        query("histogram_quantile(0.5, sum by (le) (rate(monitor_scheduler_lag_seconds_bucket[5m])))", "p50"),
        query("histogram_quantile(0.99, sum by (le) (rate(monitor_scheduler_lag_seconds_bucket[5m])))", "p99"),
        unit="s",
    )
    probes = graph(
        "プローブ数",
        "Probes per second by kind, and probes in flight, waiting for a slot, skipped.",
        query("sum by (kind) (rate(monitor_probes_total[5m]))", "{{kind}}/s"),
        query("sum(monitor_probes_in_flight)", "in flight"),
        query("sum(monitor_probes_waiting)", "waiting"),
        query("sum(rate(monitor_probes_skipped_total[5m]))", "skipped/s"),
    )
    notify = graph(
        "通知",
        "Notifications sent and failed per second by channel, and waiting in the outbox (they survive restarts).",
        query("sum by (channel) (rate(monitor_notifications_sent_total[5m]))", "sent {{channel}}"),
        query("sum by (channel) (rate(monitor_notification_failures_total[5m]))", "failed {{channel}}"),
        query("sum(monitor_notifications_pending)", "pending"),
    )
    reload_ok = (
        stat.Panel()
        .title("設定リロード")
        .description("1 if the last config reload succeeded (a failed reload keeps the previous config).")
        .with_target(query("monitor_config_last_reload_successful", instant=True))
        .mappings(
            [
                ValueMap(
                    options={
                        "1": ValueMappingResult(text="成功", color="green", index=0),
                        "0": ValueMappingResult(text="失敗", color="red", index=1),
                    }
                )
            ]
        )
        .color_mode(common.BigValueColorMode.BACKGROUND_SOLID)
        .graph_mode(common.BigValueGraphMode.NONE)
    )
    reload_at = (
        stat.Panel()
        .title("最終リロード成功")
        .description("When the config was last loaded successfully.")
        .with_target(query("monitor_config_last_reload_success_timestamp_seconds * 1000", instant=True))
        .unit("dateTimeFromNow")
        .graph_mode(common.BigValueGraphMode.NONE)
    )
    checks = counter_stat(
        "チェック数 / 計画停止中",
        "Checks configured, and checks inside a maintenance window now.",
        f"{sum_leader('monitor_checks')} or vector(0)",
        "checks",
        red_from=1e12,
    ).with_target(query(sum_leader("monitor_checks_in_maintenance"), "in maintenance", instant=True, ref="B"))
    process = graph(
        "CPU / メモリ",
        "The daemon process: CPU (cores) and resident memory.",
        query('rate(process_cpu_seconds_total{job="monitor"}[5m])', "CPU cores"),
        query('process_resident_memory_bytes{job="monitor"} / 2^20', "RSS MiB"),
    )
    store = graph(
        "ストア (SQLite)",
        "Writes waiting for the store's writer thread, and failed write attempts per second (retried, "
        "nothing is dropped). A growing backlog means a slow, locked or full disk.",
        query("monitor_store_backlog", "backlog"),
        query("rate(monitor_store_write_errors_total[5m])", "write errors/s"),
    )
    traps = graph(
        "SNMP トラップ",
        "SNMP traps received per second by outcome (accepted, rate_limited, unknown_agent, unknown_trap).",
        query("sum by (outcome) (rate(monitor_snmp_traps_total[5m]))", "{{outcome}}"),
    )
    flow_export = graph(
        "フロー収集",
        "NetFlow v9 / IPFIX records per second by exporter and outcome, sequence gaps (export lost on the "
        "way), data without a known template, and the p99 time to decode one datagram.",
        query("sum by (exporter, outcome) (rate(monitor_flow_records_total[5m]))", "{{exporter}} {{outcome}}"),
        query("sum by (exporter) (rate(monitor_flow_sequence_gaps_total[5m]))", "gaps {{exporter}}"),
        query("sum by (exporter) (rate(monitor_flow_missing_template_total[5m]))", "no template {{exporter}}"),
        query("histogram_quantile(0.99, sum by (le) (rate(monitor_flow_decode_seconds_bucket[5m])))", "decode p99 s"),
    )
    flow_policy = graph(
        "フローポリシー違反",
        "Flow policy violations per second by connection and rule (each opens or extends the connection's "
        "security incident), violations of dry-run detectors, and allow rules unused for their week.",
        query("sum by (connection, rule) (rate(monitor_flow_violations_total[5m]))", "{{connection}} {{rule}}"),
        query("sum by (connection, rule) (rate(monitor_flow_dry_run_violations_total[5m]))", "dry run {{rule}}"),
        query("sum(monitor_flow_allow_unused)", "unused allow rules"),
    )
    return place(
        board,
        [
            [(reload_ok, 4, 4), (reload_at, 4, 4), (checks, 8, 4)],
            [(lag, 12, 8), (probes, 12, 8)],
            [(notify, 12, 8), (traps, 12, 8)],
            [(store, 12, 7), (process, 12, 7)],
            [(flow_export, 12, 8), (flow_policy, 12, 8)],
        ],
    )


DASHBOARDS = {
    "noc-overview": noc_overview,
    "availability": availability,
    "prefecture": prefecture_drilldown,
    "national-servers": national_servers,
    "daemon": daemon_health,
}


def render(name: str) -> str:
    return json.dumps(json.loads(JSONEncoder().encode(DASHBOARDS[name]().build())), ensure_ascii=False, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed files differ")
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    stale = []
    for name in DASHBOARDS:
        path = OUT / f"{name}.json"
        text = render(name)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date (run python -m dashboards.generate):", *stale, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
