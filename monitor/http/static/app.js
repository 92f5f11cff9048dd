// The operator console: one page, hash routes, the daemon's JSON API with the session cookie (writes send
// the session's CSRF token), live updates by Server-Sent Events. Japanese first; English by the button.
"use strict";

const T = {
  ja: {title: "監視コンソール", nav_board: "ボード", nav_incidents: "インシデント", nav_targets: "監視対象",
    nav_maintenance: "計画停止", nav_security: "接続遮断", nav_reports: "月次報告", nav_audit: "監査ログ",
    login: "ログイン", logout: "ログアウト", name: "ユーザー名", password: "パスワード", cancel: "キャンセル",
    national: "全国システム", prefectures: "都道府県", lgwan: "LGWAN接続", problems: "障害（原因別）",
    incidents: "インシデント", none: "なし", children: "配下到達不能", since: "発生", ack: "受付", note: "メモ",
    escalate: "エスカレーション", resolve: "解決", level: "レベル", status: "状態", severity: "重要度",
    next: "次のエスカレーション", who: "担当", timeline: "経過", search: "検索", state: "状態", all: "すべて",
    checks: "チェック", recent: "直近の結果", reason: "理由", create: "作成", cancel_window: "中止",
    reason_text: "理由", start: "開始", end: "終了", targets: "対象", approve: "承認", deny: "却下",
    execute: "実行", dry_run: "ドライラン", reconnect: "再接続", phase: "フェーズ", proposal: "提案内容",
    month: "対象月", open: "表示", export: "エクスポート", live: "ライブ更新中", offline: "更新が途切れています",
    anonymous: "閲覧のみ（ログインしていません）", denied: "権限がありません", lgwan_links: "回線",
    up: "正常", degraded: "劣化", down: "停止", unreachable: "到達不能", maintenance: "計画停止", unknown: "不明",
    nav_oncall: "当番", oncall: "当番（現在）", until: "交代", nobody: "不在", slots: "シフト枠", swap: "交換",
    override: "代理", changes: "変更履歴", handover: "引継ぎ", calendar: "カレンダー (iCal)", rotation: "ローテーション",
    open_incidents: "未解決インシデント", maint_now: "作業中の計画停止", maint_next: "予定の計画停止",
    security_cases: "セキュリティインシデント", flapping: "前シフト中のフラッピング",
    flow_evidence: "証拠のフロー", rule: "ルール", flow: "フロー", bytes: "バイト", packets: "パケット",
    first_seen: "開始", last_seen: "終了", exporter: "エクスポータ",
    versions: "版（承認記録）", version: "版", version_n: "第N版", v_draft: "草案", v_reviewed: "確認済み", v_approved: "承認済み",
    v_superseded: "差し替え済み", reviewed_by: "確認者", approved_by: "承認者", corrects: "訂正対象", n_changes: "件の変更",
    review: "確認する", draft: "草案を作成", review_comment: "確認した内容（コメント）", approve_comment: "承認のコメント"},
  en: {title: "Monitoring console", nav_board: "Board", nav_incidents: "Incidents", nav_targets: "Targets",
    nav_maintenance: "Maintenance", nav_security: "Disconnects", nav_reports: "Reports", nav_audit: "Audit log",
    login: "Log in", logout: "Log out", name: "User name", password: "Password", cancel: "Cancel",
    national: "National systems", prefectures: "Prefectures", lgwan: "LGWAN links", problems: "Problems (by root cause)",
    incidents: "Incidents", none: "none", children: "unreachable below", since: "since", ack: "Acknowledge",
    note: "Note", escalate: "Escalate", resolve: "Resolve", level: "Level", status: "Status", severity: "Severity",
    next: "Next escalation", who: "Owner", timeline: "Timeline", search: "Search", state: "State", all: "all",
    checks: "Checks", recent: "Recent results", reason: "Reason", create: "Create", cancel_window: "Cancel",
    reason_text: "Reason", start: "Start", end: "End", targets: "Targets", approve: "Approve", deny: "Deny",
    execute: "Execute", dry_run: "Dry run", reconnect: "Reconnect", phase: "Phase", proposal: "Proposal",
    month: "Month", open: "Open", export: "Export", live: "live", offline: "live updates interrupted",
    anonymous: "read-only (not logged in)", denied: "not allowed", lgwan_links: "links",
    up: "up", degraded: "degraded", down: "down", unreachable: "unreachable", maintenance: "maintenance",
    unknown: "unknown", nav_oncall: "On call", oncall: "On call now", until: "until", nobody: "NOBODY",
    slots: "Slots", swap: "Swap", override: "Override", changes: "Changes", handover: "Handover",
    calendar: "Calendar (iCal)", rotation: "rotation", open_incidents: "Open incidents",
    maint_now: "Maintenance in progress", maint_next: "Upcoming maintenance", security_cases: "Security incidents",
    flapping: "Flapping in the last shift",
    flow_evidence: "Offending flows", rule: "Rule", flow: "Flow", bytes: "Bytes",
    packets: "Packets", first_seen: "First seen", last_seen: "Last seen", exporter: "Exporter",
    versions: "Versions (sign-off record)", version: "Version", version_n: "v N", v_draft: "draft",
    v_reviewed: "reviewed", v_approved: "approved", v_superseded: "superseded", reviewed_by: "Reviewed by",
    approved_by: "Approved by", corrects: "corrects", n_changes: "changes", review: "Review", draft: "Draft a version",
    review_comment: "What did you check? (comment)", approve_comment: "Approval comment"},
};
let lang = localStorage.getItem("lang") || "ja";
let me = {name: "anonymous", role: null, csrf_token: null, permissions: []};
const $ = (sel) => document.querySelector(sel);
const t = (key) => (T[lang][key] || key);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const when = (iso) => iso ? new Date(iso).toLocaleString(lang === "ja" ? "ja-JP" : "en-GB", {timeZone: "Asia/Tokyo"}) : "—";
const badge = (state) => `<span class="badge s-${esc(state)}">${esc(t(state))}</span>`;
const may = (perm) => me.permissions.includes(perm);

async function api(method, path, body) {
  const headers = {"Accept": "application/json"};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && me.csrf_token) headers["X-CSRF-Token"] = me.csrf_token;
  const response = await fetch(path, {method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body)});
  const data = response.headers.get("Content-Type")?.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new Error((data && data.title ? `${data.title}: ${data.detail || ""}` : response.statusText));
  return data;
}

async function refreshWho() {
  try { me = await api("GET", "/api/v1/session"); } catch (e) { me = {name: "anonymous", role: null, permissions: []}; }
  const logged = me.csrf_token || (me.role && me.name !== "anonymous");
  $("#who").innerHTML = logged
    ? `${esc(me.name)} (${esc(me.role)}) <button id="logout" type="button">${t("logout")}</button>`
    : `<span class="muted">${t("anonymous")}</span> <button id="login-open" type="button">${t("login")}</button>`;
  $("#logout")?.addEventListener("click", async () => { await api("POST", "/logout", {}); await refreshWho(); route(); });
  $("#login-open")?.addEventListener("click", () => $("#login").showModal());
}

function translateStatic() {
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
  $("#lang").textContent = lang === "ja" ? "English" : "日本語";
  document.title = t("title");
}

// --- pages ---------------------------------------------------------------------------------

const people = (list) => list.length ? list.map((p) => esc(p.name)).join(", ") : `<b class="error">${t("nobody")}</b>`;

function oncallTable(o) { // who a page would reach now, per playbook level (schedules resolved now)
  const rows = o.levels.map((l) => `<tr data-playbook="${esc(l.playbook)}" data-level="${l.level}"><td>${esc(l.playbook)}</td><td>L${l.level}</td><td class="people">${people(l.people)}</td><td class="muted">${l.until ? `${t("until")} ${when(l.until)}` : ""}</td></tr>`).join("");
  return `<section id="oncall-now"><h2><a href="#/oncall">${t("oncall")}</a></h2><table>${rows || `<tr><td>${t("none")}</td></tr>`}</table></section>`;
}

async function boardPage() {
  const [b, o] = await Promise.all([api("GET", "/api/v1/board"), api("GET", "/api/v1/oncall").catch(() => null)]);
  const counts = Object.entries(b.targets).map(([s, n]) => `<span>${badge(s)} ${n}</span>`).join("");
  const national = b.national.map((s) => `<a class="cell s-${esc(s.state)}" href="#/targets?q=">${esc(s.display_name)}<small>${t(s.state)}</small></a>`).join("");
  const regions = [];
  for (const p of b.prefectures) { // JIS order is geographic: one row per region, north to south
    const last = regions[regions.length - 1];
    if (!last || last.name !== p.region) regions.push({name: p.region, name_en: p.region_en, cells: []});
    regions[regions.length - 1].cells.push(`<a class="cell s-${esc(p.state)}" href="#/targets?prefecture=${p.code}">${esc(lang === "ja" ? p.name : p.name_en)}<small>${p.down ? `✕${p.down}` : ""}${p.unreachable ? ` ⋯${p.unreachable}` : ""}</small></a>`);
  }
  const prefs = regions.map((r) => `<div class="region"><span class="muted">${esc(lang === "ja" ? r.name : r.name_en)}</span><div class="grid">${r.cells.join("")}</div></div>`).join("");
  const lgwan = Object.entries(b.lgwan.states).map(([s, n]) => `<span>${badge(s)} ${n}</span>`).join("");
  const problems = b.problems.map((p) => `<tr data-target="${esc(p.target)}"><td>${badge(p.state)}</td><td><a href="#/targets/${encodeURIComponent(p.target)}">${esc(p.target)}</a></td><td>${when(p.since)}</td><td>${p.children ? `+${p.children} ${t("children")}` : ""}</td><td class="muted">${esc(p.reasons.join("; "))}</td></tr>`).join("");
  const incidents = b.incidents.map((i) => `<tr><td><a href="#/incidents/${i.id}">#${i.id}</a></td><td>${esc(lang === "ja" ? i.title : i.title_en)}</td><td>${esc(i.severity)}</td><td>${esc(i.status)}</td><td>L${i.level}</td><td>${esc(i.acked_by || "")}</td></tr>`).join("");
  return `<div class="counts">${counts}</div>
  <div class="row"><section><h2>${t("problems")} (${b.problems_total})</h2><table id="problems">${problems || `<tr><td>${t("none")}</td></tr>`}</table></section>
  <section><h2><a href="#/incidents">${t("incidents")} (${b.incidents_total})</a></h2><table id="incident-list">${incidents || `<tr><td>${t("none")}</td></tr>`}</table></section></div>
  ${o ? oncallTable(o) : ""}
  <section><h2>${t("national")}</h2><div class="grid">${national}</div></section>
  <section><h2>${t("prefectures")}</h2><div id="prefectures">${prefs}</div></section>
  <section><h2>${t("lgwan")} (${b.lgwan.count} ${t("lgwan_links")})</h2><div class="counts">${lgwan}</div></section>`;
}

async function incidentsPage() {
  const data = await api("GET", "/api/v1/incidents?limit=200");
  const rows = data.incidents.map((i) => `<tr><td><a href="#/incidents/${i.id}">#${i.id}</a></td><td>${esc(lang === "ja" ? i.title : i.title_en)}</td><td>${esc(i.severity)}</td><td>${esc(i.status)}</td><td>L${i.level}</td><td>${esc(i.acked_by || "")}</td><td>${when(i.opened_at)}</td><td>${i.next_escalation_in_seconds != null ? Math.round(i.next_escalation_in_seconds) + "s" : ""}</td></tr>`).join("");
  return `<section><h2>${t("incidents")} (${data.count})</h2><table><tr><th>#</th><th></th><th>${t("severity")}</th><th>${t("status")}</th><th>${t("level")}</th><th>${t("who")}</th><th>${t("since")}</th><th>${t("next")}</th></tr>${rows}</table></section>`;
}

async function incidentPage(id) {
  const i = await api("GET", `/api/v1/incidents/${id}`);
  const events = i.timeline.map((e) => `<li>${when(e.at)} <b>${esc(e.kind)}</b> ${esc(e.actor || "")} <span class="muted">${esc(JSON.stringify(e.detail))}</span></li>`).join("");
  const can = may("incident.write") && i.status !== "resolved";
  const buttons = can ? `<div class="actions"><button id="act-ack" class="primary" ${i.status === "acknowledged" ? "disabled" : ""}>${t("ack")}</button><button id="act-escalate">${t("escalate")}</button><button id="act-resolve" class="danger">${t("resolve")}</button>
    <input id="note-text" placeholder="${t("note")}"><button id="act-note">${t("note")}</button></div>` : "";
  const bind = () => {
    const act = async (path, body) => { try { await api("POST", `/api/v1/incidents/${id}/${path}`, body); route(); } catch (e) { alert(e.message); } };
    $("#act-ack")?.addEventListener("click", () => act("ack", {}));
    $("#act-escalate")?.addEventListener("click", () => act("escalate", {}));
    $("#act-resolve")?.addEventListener("click", () => act("resolve", {reason: "resolved from the console"}));
    $("#act-note")?.addEventListener("click", () => act("notes", {text: $("#note-text").value}));
  };
  return {bind, html: `<section id="incident" data-status="${esc(i.status)}"><h2>#${i.id} ${esc(lang === "ja" ? i.title : i.title_en)}</h2>
  <p>${t("severity")}: ${esc(i.severity)} · ${t("status")}: <b>${esc(i.status)}</b> · ${t("level")} ${i.level} · ${t("who")}: ${esc(i.acked_by || "—")} · ${t("next")}: ${when(i.next_escalation_at)}</p>
  <p class="muted">${esc(i.reason || "")}</p>${buttons}<h2>${t("timeline")}</h2><ul class="timeline">${events}</ul></section>`};
}

function spark(recent) {
  if (!recent.length) return "";
  const max = Math.max(...recent.map((r) => r.duration_seconds), 0.001);
  const pts = recent.map((r, k) => `${(k / Math.max(recent.length - 1, 1)) * 120},${20 - (r.duration_seconds / max) * 18}`).join(" ");
  return `<svg class="spark" width="120" height="20"><polyline fill="none" stroke="#58a6ff" points="${pts}"/></svg>`;
}

async function targetsPage(query) {
  const params = new URLSearchParams(query);
  params.set("limit", "500");
  const data = await api("GET", `/api/v1/targets?${params}`);
  const rows = data.targets.map((x) => `<tr><td>${badge(x.state)}</td><td><a href="#/targets/${encodeURIComponent(x.name)}">${esc(x.name)}</a></td><td>${esc(x.labels.prefecture || "")}</td><td>${esc(x.labels.system || "")}</td><td>${esc(x.labels.tier || "")}</td><td class="muted">${esc(x.root_cause ? "⇐ " + x.root_cause : x.checks.map((c) => c.reason).filter(Boolean).join("; "))}</td></tr>`).join("");
  const bind = () => $("#filter")?.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target); const q = new URLSearchParams();
    for (const [k, v] of f.entries()) if (v) q.set(k, v);
    location.hash = `#/targets?${q}`;
  });
  const states = ["", "down", "unreachable", "degraded", "maintenance", "up", "unknown"].map((s) => `<option value="${s}" ${params.get("state") === s ? "selected" : ""}>${s ? t(s) : t("all")}</option>`).join("");
  return {bind, html: `<section><form id="filter" class="row"><input name="q" placeholder="${t("search")}" value="${esc(params.get("q") || "")}"><input name="prefecture" placeholder="13" size="4" value="${esc(params.get("prefecture") || "")}"><input name="system" placeholder="system" value="${esc(params.get("system") || "")}"><input name="tier" placeholder="tier" value="${esc(params.get("tier") || "")}"><select name="state">${states}</select><button>${t("search")}</button></form>
  <h2>${data.count}</h2><table>${rows}</table></section>`};
}

async function targetPage(name) {
  const data = await api("GET", `/api/v1/targets?q=${encodeURIComponent(name)}&history=1`);
  const x = data.targets.find((y) => y.name === name);
  if (!x) return `<section>${t("none")}</section>`;
  const checks = x.checks.map((c) => `<tr><td>${badge(c.state)}</td><td>${esc(c.name)}</td><td>${esc(c.kind)}</td><td>${spark(c.recent || [])}</td><td>${esc(c.reason || "")}</td><td>${c.last ? when(c.last.finished_at) : ""}</td></tr>`).join("");
  return `<section><h2>${esc(x.name)} ${badge(x.state)}</h2><p class="muted">${esc(x.address)} · ${esc(JSON.stringify(x.labels))}${x.root_cause ? " · ⇐ " + esc(x.root_cause) : ""}</p>
  <h2>${t("checks")}</h2><table>${checks}</table></section>`;
}

async function maintenancePage() {
  const data = await api("GET", "/api/v1/maintenance");
  const rows = data.maintenance.map((w) => `<tr><td>${w.id || "-"}</td><td>${esc(w.name)}</td><td>${w.starts_at ? `${when(w.starts_at)} – ${when(w.ends_at)}` : esc(`cron ${w.cron} / ${w.duration}s`)}</td><td>${esc((w.scope.targets || []).join(", ") || JSON.stringify(w.scope.labels))}</td><td>${esc(w.reason)}</td><td>${w.active ? badge("maintenance") : ""}</td><td>${w.id && may("maintenance.write") ? `<button data-cancel="${w.id}">${t("cancel_window")}</button>` : ""}</td></tr>`).join("");
  const bind = () => {
    document.querySelectorAll("[data-cancel]").forEach((b) => b.addEventListener("click", async () => { await api("DELETE", `/api/v1/maintenance/${b.dataset.cancel}`); route(); }));
    $("#new-window")?.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(ev.target);
      try {
        await api("POST", "/api/v1/maintenance", {name: f.get("name"), reason: f.get("reason"), targets: f.get("targets").split(",").map((s) => s.trim()).filter(Boolean), start: f.get("start"), end: f.get("end")});
        route();
      } catch (e) { $("#window-error").textContent = e.message; }
    });
  };
  const form = may("maintenance.write") ? `<form id="new-window" class="row"><input name="name" placeholder="name" required><input name="reason" placeholder="${t("reason_text")}" required><input name="targets" placeholder="${t("targets")}"><label>${t("start")} <input name="start" type="datetime-local" required></label><label>${t("end")} <input name="end" type="datetime-local" required></label><button class="primary">${t("create")}</button><span id="window-error" class="error"></span></form>` : "";
  return {bind, html: `<section><h2>${t("nav_maintenance")}</h2>${form}${calendar(data.maintenance)}<table id="windows">${rows}</table></section>`};
}

function calendar(windows) {
  // This month and the next in JST, each day listing the windows that touch it (recurring ones expanded).
  const day = (d) => d.toLocaleDateString("sv-SE", {timeZone: "Asia/Tokyo"});
  const marks = {};
  for (const w of windows) for (const o of w.upcoming) {
    for (let d = new Date(o.start); d < new Date(o.end); d = new Date(d.getTime() + 86400000)) (marks[day(d)] ||= []).push(w.name);
    (marks[day(new Date(o.start))] ||= []).includes(w.name) || marks[day(new Date(o.start))].push(w.name);
  }
  const now = new Date();
  const first = new Date(day(now).slice(0, 8) + "01T00:00:00+09:00");
  const weekday = new Date(first.getTime() + 9 * 3600000).getUTCDay(); // the 1st's weekday in JST
  const start = new Date(first.getTime() - weekday * 86400000);
  const head = (lang === "ja" ? ["日", "月", "火", "水", "木", "金", "土"] : ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]).map((d) => `<th>${d}</th>`).join("");
  let rows = "";
  for (let week = 0; week < 6; week++) {
    rows += "<tr>";
    for (let k = 0; k < 7; k++) {
      const d = new Date(start.getTime() + (week * 7 + k) * 86400000 + 12 * 3600000);
      const key = day(d);
      const names = [...new Set(marks[key] || [])];
      rows += `<td class="${key === day(now) ? "today" : ""}"><span class="muted">${key.slice(5)}</span>${names.map((n) => `<div class="badge s-maintenance">${esc(n)}</div>`).join("")}</td>`;
    }
    rows += "</tr>";
  }
  return `<table id="calendar" class="calendar"><tr>${head}</tr>${rows}</table>`;
}

// The flows a flow policy finding stored as evidence (monitor/flows/detectors.py flow_evidence), newest last.
function flowEvidence(s) {
  const flows = (s.evidence || []).filter((e) => e.source === "flows").flatMap((e) => (e.detail.flows || []));
  if (!flows.length) return "";
  const epoch = (v) => when(new Date(v * 1000).toISOString());
  const rows = flows.slice(-50).map((f) => `<tr><td>${esc(f.rule)}</td><td>${esc(f.protocol)} ${esc(f.src)}:${esc(f.src_port)} → ${esc(f.dst)}:${esc(f.dst_port)}</td><td>${esc(f.bytes)}</td><td>${esc(f.packets)}</td><td>${epoch(f.first_seen)}</td><td>${epoch(f.last_seen)}</td><td>${esc(f.exporter)} if ${esc(f.input_if ?? "—")}</td></tr>`).join("");
  return `<tr class="flows" data-flows="${s.id}"><td></td><td colspan="6"><details><summary>${t("flow_evidence")} (${flows.length})</summary><table><tr><th>${t("rule")}</th><th>${t("flow")}</th><th>${t("bytes")}</th><th>${t("packets")}</th><th>${t("first_seen")}</th><th>${t("last_seen")}</th><th>${t("exporter")}</th></tr>${rows}</table></details></td></tr>`;
}

async function securityPage() {
  const data = await api("GET", "/api/v1/security-incidents");
  const can = may("security.approve");
  const rows = data.security_incidents.map((s) => `<tr data-security="${s.id}"><td>#${s.id}</td><td>${esc(s.connection)}</td><td><b>${esc(s.phase)}</b></td><td>${esc(s.severity)}</td><td>${esc(s.summary)}</td><td class="muted">${esc(s.proposal_text)}</td><td>${can && !s.closed_at ? ["approve", "deny", "execute", "reconnect"].map((a) => `<button data-sec="${a}" data-id="${s.id}">${t(a)}</button>`).join("") + `<button data-sec="dry_run" data-id="${s.id}">${t("dry_run")}</button>` : ""}</td></tr>${flowEvidence(s)}`).join("");
  const bind = () => document.querySelectorAll("[data-sec]").forEach((b) => b.addEventListener("click", async () => {
    const action = b.dataset.sec === "dry_run" ? "execute" : b.dataset.sec;
    try {
      const out = await api("POST", `/api/v1/security-incidents/${b.dataset.id}/${action}`, b.dataset.sec === "dry_run" ? {dry_run: true} : {});
      if (out.dry_run) alert(out.text); route();
    } catch (e) { alert(e.message); }
  }));
  return {bind, html: `<section><h2>${t("nav_security")}</h2><table id="security">${rows || `<tr><td>${t("none")}</td></tr>`}</table></section>`};
}

async function reportsPage() {
  const month = new Date().toLocaleString("sv-SE", {timeZone: "Asia/Tokyo"}).slice(0, 7);
  const data = await api("GET", "/api/v1/report-versions");
  const can = may("report");
  const sign = (s) => s ? `${esc(s.by)} <span class="muted">${when(s.at)}</span><br><span class="muted">${esc(s.comment)}</span>` : "—";
  const rows = data.versions.map((v) => `<tr data-version="${esc(v.month)}/${v.version}"><td>${esc(v.month)}</td><td>${t("version_n").replace("N", v.version)}</td>
    <td><b class="v-${esc(v.status)}">${esc(t("v_" + v.status))}</b></td><td>${sign(v.reviewed)}</td><td>${sign(v.approved)}</td>
    <td class="muted">${esc(v.reason)}${v.supersedes ? ` (${t("corrects")} ${t("version_n").replace("N", v.supersedes)}, ${v.changes.length} ${t("n_changes")})` : ""}</td>
    <td><code title="${esc(v.data_sha256)}">${esc(v.data_sha256.slice(0, 12))}…</code></td>
    <td><a href="${v.links.pdf}" target="_blank">PDF</a> · <a href="${v.links.pdf_en}" target="_blank">PDF (en)</a> · <a href="${v.links.data}" target="_blank">JSON</a></td>
    <td>${can && v.status === "draft" ? `<button data-sign="review" data-month="${esc(v.month)}" data-v="${v.version}">${t("review")}</button>` : ""}${can && v.status === "reviewed" ? `<button data-sign="approve" data-month="${esc(v.month)}" data-v="${v.version}">${t("approve")}</button>` : ""}</td></tr>`).join("");
  const bind = () => {
    const links = () => { const m = $("#report-month").value; $("#report-links").innerHTML = ["html", "csv", "json", "pdf"].map((f) => `<a href="/api/v1/reports/${m}?format=${f}&lang=${lang}" target="_blank">${m} ${f.toUpperCase()}</a>`).join(" · "); };
    $("#report-month")?.addEventListener("change", links); links();
    $("#report-draft")?.addEventListener("click", async () => {
      try { await api("POST", `/api/v1/reports/${$("#report-month").value}/versions`, {}); route(); } catch (e) { alert(e.message); }
    });
    document.querySelectorAll("[data-sign]").forEach((b) => b.addEventListener("click", async () => {
      const comment = prompt(t(b.dataset.sign === "review" ? "review_comment" : "approve_comment"));
      if (!comment) return;
      try { await api("POST", `/api/v1/reports/${b.dataset.month}/versions/${b.dataset.v}/${b.dataset.sign}`, {comment}); route(); } catch (e) { alert(e.message); }
    }));
  };
  return {bind, html: `<section><h2>${t("nav_reports")}</h2><form id="report-form"><label>${t("month")} <input id="report-month" type="month" value="${month}"></label>
  ${can ? `<button id="report-draft" type="button">${t("draft")}</button>` : ""}</form>
  <p id="report-links"></p><h3>${t("versions")}</h3><table id="report-versions"><tr><th>${t("month")}</th><th>${t("version")}</th><th>${t("status")}</th><th>${t("reviewed_by")}</th><th>${t("approved_by")}</th><th>${t("reason")}</th><th>SHA-256</th><th></th><th></th></tr>${rows || `<tr><td colspan="9">${t("none")}</td></tr>`}</table></section>`};
}

async function auditPage() {
  if (!may("audit.read")) return `<section>${t("denied")}</section>`;
  const data = await api("GET", "/api/v1/audit?limit=500");
  const rows = data.entries.map((e) => `<tr><td>${e.id}</td><td>${when(e.at)}</td><td>${esc(e.actor)}</td><td>${esc(e.action)}</td><td>${esc(e.outcome)}</td><td>${esc(e.object || "")}</td><td>${esc(e.source || "")}</td></tr>`).join("");
  const blob = URL.createObjectURL(new Blob([JSON.stringify(data.entries, null, 2)], {type: "application/json"}));
  return `<section><h2>${t("nav_audit")} · chain ${data.chain_valid ? "✓" : "✕"} · <a download="audit.json" href="${blob}">${t("export")}</a></h2><table>${rows}</table></section>`;
}

function handoverHtml(h) {
  if (!h) return "";
  const s = h.summary;
  const list = (items, fmt) => items.length ? `<ul>${items.map(fmt).join("")}</ul>` : `<p class="muted">${t("none")}</p>`;
  return `<section class="handover"><h3>${t("handover")} ${when(h.at)} → ${esc((s.incoming_names || h.incoming).join(", "))}</h3>
    <h4>${t("open_incidents")} (${s.incidents.length})</h4>${list(s.incidents, (i) => `<li><a href="#/incidents/${i.id}">#${i.id}</a> [${esc(i.severity)}] L${i.level} ${esc(i.title)} — ${esc(i.acked_by || "—")}</li>`)}
    <h4>${t("maint_now")} (${s.maintenance_now.length})</h4>${list(s.maintenance_now, (m) => `<li>${esc(m.name)}: ${esc(m.reason)} (～${when(m.ends_at)})</li>`)}
    <h4>${t("maint_next")} (${s.maintenance_upcoming.length})</h4>${list(s.maintenance_upcoming, (m) => `<li>${esc(m.name)}: ${esc(m.reason)} (${when(m.starts_at)}～)</li>`)}
    <h4>${t("security_cases")} (${s.security.length})</h4>${list(s.security, (x) => `<li>#${x.id} ${esc(x.connection)} [${esc(x.severity)}] ${esc(x.phase)}</li>`)}
    <h4>${t("flapping")} (${s.flapping.length})</h4>${list(s.flapping, (f) => `<li>${esc(f.check)}: ${f.changes}</li>`)}</section>`;
}

async function oncallPage() {
  const [o, changes, handovers] = await Promise.all([api("GET", "/api/v1/oncall"), api("GET", "/api/v1/oncall/changes"), api("GET", "/api/v1/oncall/handovers?limit=20")]);
  const can = may("oncall.swap");
  const parts = [oncallTable(o)];
  for (const s of o.schedules) {
    const slots = await api("GET", `/api/v1/oncall/schedules/${encodeURIComponent(s.schedule)}/slots?days=7`);
    const rows = slots.slots.map((d) => `<tr data-slot="${esc(d.key)}"><td>${can ? `<input type="checkbox" class="pick" value="${esc(d.key)}">` : ""}</td><td>${esc(d.shift)}</td><td>${when(d.start)}</td><td>${when(d.end)}</td><td>${d.person ? esc(d.person_name) : `<b class="error">${t("nobody")}</b>`}</td><td class="muted">${d.change_id ? `#${d.change_id} (${t("rotation")}: ${esc(d.rotation)})` : ""}</td></tr>`).join("");
    const controls = can ? `<div class="actions"><button class="do-swap" data-schedule="${esc(s.schedule)}">${t("swap")}</button><input class="to" placeholder="contact"><button class="do-override" data-schedule="${esc(s.schedule)}">${t("override")}</button><input class="why" placeholder="${t("reason")}"></div>` : "";
    const feed = `/api/v1/oncall/schedules/${encodeURIComponent(s.schedule)}/calendar.ics`;
    const latest = handovers.handovers.find((h) => h.schedule === s.schedule);
    parts.push(`<section class="schedule" data-schedule="${esc(s.schedule)}"><h2>${esc(s.name)}</h2>
      <p>${t("oncall")}: ${s.on_call.length ? s.on_call.map((d) => esc(d.person_name)).join(", ") : `<b class="error">${t("nobody")}</b>`} · ${t("until")} ${when(s.until)} → ${esc(s.next.map((d) => d.person_name).join(", "))} · <a href="${feed}">${t("calendar")}</a></p>
      ${controls}<table><tr><th></th><th>${t("slots")}</th><th>${t("start")}</th><th>${t("end")}</th><th>${t("who")}</th><th></th></tr>${rows}</table>${handoverHtml(latest)}</section>`);
  }
  const changeRows = changes.changes.map((c) => `<tr><td>#${c.id}</td><td>${esc(c.kind)}</td><td>${esc(c.actor)}</td><td>${when(c.created_at)}</td><td>${esc(Object.entries(c.slots).map(([k, v]) => `${k}: ${v.from || "—"} → ${v.to || "—"}`).join("; "))}</td><td>${esc(c.reason)}</td><td>${c.cancelled_at ? `✕ ${esc(c.cancelled_by)}` : (can ? `<button class="undo" data-id="${c.id}">${t("cancel")}</button>` : "")}</td></tr>`).join("");
  parts.push(`<section><h2>${t("changes")}</h2><table>${changeRows || `<tr><td>${t("none")}</td></tr>`}</table></section>`);
  const bind = () => {
    const post = async (schedule, body) => { try { await api("POST", `/api/v1/oncall/schedules/${encodeURIComponent(schedule)}/changes`, body); route(); } catch (e) { alert(e.message); } };
    const picked = (section) => [...section.querySelectorAll(".pick:checked")].map((c) => c.value);
    document.querySelectorAll(".do-swap").forEach((b) => b.addEventListener("click", () => { const sec = b.closest(".schedule"); post(b.dataset.schedule, {kind: "swap", slots: picked(sec), reason: sec.querySelector(".why").value}); }));
    document.querySelectorAll(".do-override").forEach((b) => b.addEventListener("click", () => { const sec = b.closest(".schedule"); const to = sec.querySelector(".to").value.trim(); post(b.dataset.schedule, {kind: "override", slot: picked(sec)[0], to: to || null, reason: sec.querySelector(".why").value}); }));
    document.querySelectorAll(".undo").forEach((b) => b.addEventListener("click", async () => { try { await api("DELETE", `/api/v1/oncall/changes/${b.dataset.id}`); route(); } catch (e) { alert(e.message); } }));
  };
  return {bind, html: parts.join("")};
}

// --- routing and live updates ---------------------------------------------------------------

let drawing = 0; // the latest route() wins: an older, slower draw (say, from before a login) must not overwrite it
async function route() {
  const mine = ++drawing;
  const hash = location.hash || "#/";
  const [path, query] = hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean);
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.getAttribute("href") === `#/${parts[0] || ""}`));
  let page; // the page's HTML, or {html, bind} when it has controls to wire up once drawn
  try {
    if (!parts.length) page = await boardPage();
    else if (parts[0] === "incidents") page = parts[1] ? await incidentPage(parts[1]) : await incidentsPage();
    else if (parts[0] === "targets") page = parts[1] ? await targetPage(decodeURIComponent(parts[1])) : await targetsPage(query || "");
    else if (parts[0] === "maintenance") page = await maintenancePage();
    else if (parts[0] === "security") page = await securityPage();
    else if (parts[0] === "reports") page = await reportsPage();
    else if (parts[0] === "audit") page = await auditPage();
    else if (parts[0] === "oncall") page = await oncallPage();
    else page = await boardPage();
  } catch (e) { page = `<section class="error">${esc(e.message)}</section>`; }
  if (mine !== drawing) return;
  $("#view").innerHTML = page.html ?? page;
  page.bind?.();
  $("#view").dataset.page = parts[0] || "board";
}

let pending = null;
function live() {
  const source = new EventSource("/api/v1/events");
  const again = () => { // coalesce bursts: one redraw per 250 ms at most, and only of live pages
    if (pending) return;
    pending = setTimeout(() => { pending = null; const p = $("#view").dataset.page; if (["board", "incidents", "security"].includes(p) || (p === "targets" && !location.hash.includes("/targets/"))) route(); }, 250);
  };
  source.addEventListener("change", again);
  source.addEventListener("incident", again);
  source.addEventListener("resync", again);
  source.addEventListener("hello", () => { document.body.dataset.live = "open"; again(); }); // (re)connected: catch up
  source.onopen = () => { $("#live").className = "live"; $("#live").title = t("live"); };
  source.onerror = () => { $("#live").className = "live off"; $("#live").title = t("offline"); document.body.dataset.live = "lost"; };
}

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", async () => {
  translateStatic();
  $("#lang").addEventListener("click", () => { lang = lang === "ja" ? "en" : "ja"; localStorage.setItem("lang", lang); translateStatic(); refreshWho(); route(); });
  $("#login-cancel").addEventListener("click", () => $("#login").close());
  $("#login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    try {
      await api("POST", "/login", {name: f.get("name"), password: f.get("password")});
      $("#login").close(); $("#login-error").textContent = ""; await refreshWho(); route();
    } catch (e) { $("#login-error").textContent = e.message; }
  });
  live(); // before the first draw: a change while the board loads is not missed
  await Promise.all([refreshWho(), route()]);
});
