"""The signed action links of pages (`/act/<token>`): acknowledge, escalate now, open the approval page.

No console login: the signature is the credential, and it is good for the one action it names, on one
incident, for one recipient, until it expires, once. GET only shows what the link would do (mail scanners
and chat previews fetch every link: a GET must never act); the form on that page POSTs, which acts. Each use,
and every refusal (forged, expired, used, replayed), is in the audit log with the link's channel and
recipient. Pages answer in Japanese with English below, never cached, and never leak the token onward
(no referrer)."""

from __future__ import annotations

import html

import structlog
from aiohttp import web

from monitor.access.auth import AUDITED
from monitor.http.services import SERVICES
from monitor.incidents.actions import IncidentActionError
from monitor.incidents.links import LABELS, Claim, LinkError, digest, verify
from monitor.store.records import AuditEntry, IncidentRecord, LinkUse
from monitor.timefmt import jst

log = structlog.get_logger()
MAX_COMMENT = 2000
MAX_FORM = 16 * 1024  # the form has one comment field
STATUS = {"malformed": 400, "forged": 403, "expired": 410, "used": 409, "gone": 404, "state": 409, "off": 404}
REFUSAL_JA = {
    "malformed": "このリンクは本システムの操作リンクではありません。",
    "forged": "このリンクの署名が正しくありません（改変されたか、別の鍵で署名されています）。",
    "expired": "このリンクは有効期限が切れています。",
    "used": "このリンクは使用済みです（1回だけ使えます）。",
    "gone": "このインシデントは見つかりません。",
    "state": "この操作は現在のインシデントの状態では行えません。",
    "off": "操作リンクは無効に設定されています。",
}
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token must not travel to the console or anywhere else
    "X-Robots-Tag": "noindex, nofollow",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
}
STYLE = (
    "body{font-family:'Noto Sans CJK JP',sans-serif;max-width:40em;margin:2em auto;padding:0 1em;line-height:1.6}"
    "button{font-size:1.2em;padding:.6em 1.4em}textarea{width:100%}.en{color:#555}"
    ".refused{border-left:6px solid #c00;padding-left:1em}.done{border-left:6px solid #080;padding-left:1em}"
)


def _page(title_ja: str, title_en: str, body: str, status: int = 200) -> web.Response:
    text = (
        "<!doctype html><html lang='ja'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title_ja)} / {html.escape(title_en)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8", headers=HEADERS)


def _refusal(reason: str, detail_en: str, extra: str = "") -> web.Response:
    body = (
        f"<div class='refused' id='refused' data-reason='{reason}'><h1>操作できません</h1>"
        f"<p>{html.escape(REFUSAL_JA[reason])}</p>{extra}"
        f"<p class='en'>Refused: {html.escape(detail_en)}</p></div>"
    )
    return _page("操作できません", "Refused", body, STATUS[reason])


def _summary(incident: IncidentRecord) -> str:
    state = {"open": "未確認", "acknowledged": "確認済み", "resolved": "復旧済み"}.get(incident.status, incident.status)
    acked = f"（{html.escape(incident.acked_by or '')}）" if incident.status == "acknowledged" else ""
    return (
        f"<p><b>#{incident.id} {html.escape(incident.title)}</b><br><span class='en'>{html.escape(incident.title_en)}"
        f"</span></p><p>重要度 / Severity: {html.escape(incident.severity)}　レベル / Level: {incident.level}　"
        f"状態 / Status: <span id='status'>{state}{acked}</span> ({html.escape(incident.status)})</p>"
    )


def add_action_link_routes(app: web.Application) -> None:
    services = app[SERVICES]
    clock = services.guard.clock

    def count(action: str, method: str, outcome: str) -> None:
        if services.acting is not None:
            services.acting.links.labels(action, method, outcome).inc()

    async def audit(request: web.Request, claim: Claim | None, outcome: str, **detail: str) -> None:
        if claim is not None:  # (a link we never signed is counted where it is refused)
            count(claim.action, request.method, outcome)
        request[AUDITED] = True  # (the error middleware would audit a refused POST again, token in the path)
        actor = claim.recipient if claim else "anonymous"
        obj = f"incident:{claim.incident_id}" if claim else None
        action = f"incident.{claim.action}" if claim else "incident.link"
        if claim:
            detail = {"channel": claim.channel, "recipient": claim.recipient, "level": str(claim.level), **detail}
        entry = AuditEntry(clock.now(), actor[:200], action, outcome, None, obj, request.remote,
                           {"credential": "signed link", **detail})  # fmt: skip
        await services.store.audit(entry)

    async def check(request: web.Request) -> tuple[Claim, IncidentRecord, str] | web.Response:
        """The link's claim and incident, or the refusal page (refusals are audited)."""
        config = services.inventory().response.incidents.action_links
        if config is None:
            count("unknown", request.method, "off")
            return _refusal("off", "action links are not configured on this system")
        token = request.match_info["token"]
        try:
            claim = verify(config.key_bytes(), token, clock.now())
        except LinkError as exc:
            log.warning("action_link_refused", reason=exc.reason, method=request.method, source=request.remote)
            count("unknown", request.method, exc.reason)
            # A GET of a link we never signed acts on nothing and names nobody: logged, not audited, so that
            # anyone on the network cannot fill the audit log by fetching garbage. Every POST is audited.
            if request.method == "POST" or exc.reason == "expired":
                await audit(request, None, exc.reason, error=str(exc), method=request.method)
            return _refusal(exc.reason, str(exc))
        used = await services.store.action_link_use(digest(token))
        if used is not None:
            await audit(request, claim, "replayed", method=request.method, first_used_at=jst(used.used_at))
            who = f"{html.escape(used.recipient)}, {html.escape(used.channel)}"
            when = f"<p>使用日時 / Used: {jst(used.used_at)}（{who}）</p>"
            return _refusal("used", "this link was used already", when)
        incident = services.incidents.find(claim.incident_id) or await services.store.get_incident(claim.incident_id)
        if incident is None:
            await audit(request, claim, "not_found", method=request.method)
            return _refusal("gone", f"no incident #{claim.incident_id}")
        return claim, incident, token

    async def show(request: web.Request) -> web.Response:
        checked = await check(request)
        if isinstance(checked, web.Response):
            return checked
        claim, incident, _ = checked
        ja, en = LABELS[claim.action]
        if claim.action == "approve":
            config = services.inventory().response.incidents.action_links
            assert config is not None
            target = f"{config.base_url}/#/security"  # approving needs a login with the security role
            body = (f"<h1>{ja}</h1><p class='en'>{en}</p>{_summary(incident)}"
                    "<p>遮断の承認には security 権限でのログインが必要です。</p>"
                    "<p class='en'>Approving a cut needs a console login with the security role.</p>"
                    f"<p><a id='approval' href='{html.escape(target)}'>承認画面 / Approval page</a></p>")  # fmt: skip
            count(claim.action, request.method, "shown")
            return _page(ja, en, body)
        if claim.action == "escalate" and incident.level > claim.level and incident.status != "resolved":
            # the page was for an earlier level: the next one has been paged already (what the link asked for)
            count(claim.action, request.method, "state")
            why = f"incident #{incident.id} was escalated to level {incident.level} already"
            return _refusal("state", why, _summary(incident))
        if incident.status == "resolved" or (claim.action == "ack" and incident.status == "acknowledged"):
            into = incident.merged_into
            merged = (
                f"<p>インシデント #{into} に統合されました（#{into} のページのリンクを使ってください）。</p>"
                if into
                else ""
            )
            why = f"incident #{incident.id} is {incident.status}" + (f" (merged into #{into})" if into else "")
            count(claim.action, request.method, "state")
            return _refusal("state", why, _summary(incident) + merged)
        body = (
            f"<h1>{ja}</h1><p class='en'>{en}</p>{_summary(incident)}"
            f"<p>宛先 / Recipient: {html.escape(claim.recipient)}（{html.escape(claim.channel)}）　"
            f"有効期限 / Expires: {jst(claim.expires_at)}</p>"
            "<form method='post'><p><label>コメント / Comment<br><textarea name='comment' rows='3' "
            f"maxlength='{MAX_COMMENT}'></textarea></label></p>"
            f"<p><button id='confirm' type='submit'>{ja} / {en}</button></p></form>"
            "<p class='en'>Opening this page changed nothing; the button does (once).</p>"
        )
        count(claim.action, request.method, "shown")
        return _page(ja, en, body)

    async def act(request: web.Request) -> web.Response:
        if not services.leader():
            count("unknown", "POST", "standby")
            return _page("待機系です", "Standby", "<p>この監視サーバは待機系です。稼働系のリンクを使ってください。</p>"
                         "<p class='en'>This daemon is the HA standby; the leader acts.</p>", 503)  # fmt: skip
        if request.content_length is not None and request.content_length > MAX_FORM:
            return _page("大きすぎます", "Too large", "<p>request too large</p>", 413)
        checked = await check(request)
        if isinstance(checked, web.Response):
            return checked
        claim, incident, token = checked
        if claim.action == "approve":
            count(claim.action, "POST", "not_allowed")
            return _page("操作できません", "Refused", "<p>approval happens in the console</p>", 405)
        if claim.action == "escalate" and incident.level > claim.level and incident.status != "resolved":
            await audit(request, claim, "state", error=f"already at level {incident.level}")
            why = f"incident #{incident.id} was escalated to level {incident.level} already"
            return _refusal("state", why, _summary(incident))
        form = await request.post()
        comment = str(form.get("comment", "")).strip()[:MAX_COMMENT]
        use = LinkUse(digest(token), claim.incident_id, claim.action, claim.recipient, claim.channel, clock.now())
        first = await services.store.use_action_link(use)  # single use: stored before acting (a race loses here)
        if first is not None:
            await audit(request, claim, "replayed", first_used_at=jst(first.used_at))
            return _refusal("used", "this link was used already")
        manager = services.incidents
        try:
            if claim.action == "ack":
                incident = await manager.acknowledge(claim.incident_id, claim.recipient, comment)
            else:
                incident = await manager.escalate_now(
                    claim.incident_id, claim.recipient, comment or "escalated from the page"
                )
        except IncidentActionError as exc:
            await audit(request, claim, "rejected", error=str(exc))
            return _refusal("state", str(exc), _summary(incident))
        await audit(request, claim, "ok", comment=comment[:500])
        if claim.action == "ack":
            ja, en = "確認しました。エスカレーションを停止しました。", "Acknowledged: the escalation is stopped."
        else:
            ja, en = f"レベル{incident.level}に通知しました。", f"Level {incident.level} paged."
        body = f"<div class='done' id='done'><h1>{ja}</h1><p class='en'>{en}</p>{_summary(incident)}</div>"
        return _page(ja, en, body)

    app.router.add_get("/act/{token}", show)
    app.router.add_post("/act/{token}", act)
