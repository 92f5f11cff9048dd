"""Failure reasons as an on-call engineer reads them: the probes say what failed in English (the
English body quotes them as they are); the Japanese body gives each class of failure in Japanese,
keeping the figures (status code, loss, parent) that make it concrete. Pure text, no I/O."""

from __future__ import annotations

import re

# First match wins: the specific forms before the general ones ("timeout: no DNS answer" before
# "timeout"). Each Japanese text may use the groups of its pattern.
_CLASSES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), ja)
    for pattern, ja in (
        (r"^parent (?P<parent>\S+) is down", "上位機器 {parent} の障害により到達不能"),
        # OCSP (probes/ocsp.py): before the general forms ("HTTP status", "timeout") they would also match
        (r"^OCSP: responder says (?P<status>\w+)", "OCSP: レスポンダがエラー応答（{status}）"),
        (
            r"^OCSP and CRL disagree: serial (?P<serial>0x[0-9a-f]+) is (?P<crl>revoked|not listed) in the CRL"
            r" and (?P<ocsp>\w+) in OCSP",
            "OCSPとCRLの不一致（監視用証明書 {serial}: CRLでは{crl}、OCSPでは{ocsp}）",
        ),
        (r"^OCSP: CRL agreement not checked", "OCSP: CRLを取得できずOCSPとの一致を未確認"),
        (
            r"^OCSP: response signed by a certificate that is not an OCSP signer",
            "OCSP: OCSP署名用でない証明書で署名された応答",
        ),
        (
            r"^OCSP: response signed by a certificate not issued by the CA",
            "OCSP: CAが発行していない証明書で署名された応答",
        ),
        (r"^OCSP: responder certificate (expired|not valid yet)", "OCSP: レスポンダ証明書が有効期間外"),
        (r"^OCSP: response signer unknown", "OCSP: 応答の署名者が不明"),
        (r"^OCSP: response signature invalid", "OCSP: 応答の署名が不正"),
        (r"^OCSP: response signed with an unsupported algorithm", "OCSP: 応答の署名アルゴリズムに未対応"),
        (r"^OCSP: nonce not echoed", "OCSP: ナンスが応答に含まれない（リプレイの恐れ）"),
        (r"^OCSP: nonce mismatch", "OCSP: ナンスが要求と一致しない（リプレイの恐れ）"),
        (r"^OCSP: (thisUpdate|producedAt) is (?P<ahead>\w+) in the future", "OCSP: 応答の時刻が未来（{ahead}先）"),
        (r"^OCSP: nextUpdate passed (?P<ago>\w+) ago", "OCSP: nextUpdate超過（{ago}前に期限切れ）"),
        (
            r"^OCSP: nextUpdate in (?P<left>\w+), less than min_remaining",
            "OCSP: nextUpdateまでの残りが不足（残り{left}）",
        ),
        (r"^OCSP: nextUpdate in (?P<left>\w+) \(degraded_within", "OCSP: nextUpdate間近（残り{left}）"),
        (
            r"^OCSP: canary serial (?P<serial>0x[0-9a-f]+) is unknown",
            "OCSP: 監視用証明書 {serial} の状態が不明（unknown）",
        ),
        (
            r"^OCSP: canary serial (?P<serial>0x[0-9a-f]+) is (?P<got>\w+), expected (?P<want>\w+)",
            "OCSP: 監視用証明書 {serial} の状態が想定と異なる（{got}、期待は{want}）",
        ),
        (
            r"^OCSP: no status for canary serial (?P<serial>0x[0-9a-f]+)",
            "OCSP: 監視用証明書 {serial} の状態が応答にない",
        ),
        (r"^OCSP: HTTP status (?P<status>\d+)", "OCSP: HTTPステータス異常（{status}）"),
        (
            r"^OCSP: response (is not a valid OCSP response|extensions malformed)",
            "OCSP: 応答が不正（OCSP応答として解釈できない）",
        ),
        (r"^OCSP: response larger than", "OCSP: 応答が大きすぎる（OCSP応答ではない）"),
        (r"^OCSP: ", "OCSP: 応答の検証に失敗"),
        # HTTP transactions (probes/http.py steps): a step's HTTP status or content; its other failures
        # (connection refused, timeout) fall through to the general forms below
        (
            r"^step (?P<step>\d+) '(?P<name>[^']*)': HTTP (?P<status>\d+), expected",
            "手順{step}「{name}」でHTTPステータス異常（{status}）",
        ),
        (
            r"^step (?P<step>\d+) '(?P<name>[^']*)': (header |body |nothing to extract|.+ is .+expected)",
            "手順{step}「{name}」の応答内容が想定と異なる",
        ),
        (r"^header \S+ (missing|matches|does not match)", "応答ヘッダが想定と異なる"),
        (r"^JSON .+ is .+expected|^body is not JSON", "応答JSONが想定と異なる"),
        (r"SNMP agent down \(device answers (?P<via>[\w/]+)\)", "SNMPエージェント停止（機器は{via}に応答）"),
        (r"SNMP agent not responding|agent does not report sysUpTime", "SNMPエージェント無応答"),
        # SNMPv3 (probes/snmp/usm_client.py): the agent's usmStats reports and the client's own findings,
        # before the general "SNMP error" they would also match
        (r"SNMPv3 wrong digest", "SNMPv3: 認証キー不一致（ダイジェスト不正）"),
        (r'SNMPv3 unknown user name for user "(?P<user>[^"]*)"', "SNMPv3: ユーザ「{user}」が機器に未登録"),
        (r"SNMPv3 security level not supported", "SNMPv3: セキュリティレベルが機器のユーザ設定と不一致"),
        (r"SNMPv3 not in time window", "SNMPv3: 時刻ウィンドウ外（engineBoots/engineTimeの不一致）"),
        (r"SNMPv3 unknown engine id", "SNMPv3: エンジンIDが機器と不一致"),
        (
            r"SNMPv3 (decryption error|privacy key or protocol mismatch)",
            "SNMPv3: 暗号化キーまたは暗号方式の不一致（復号失敗）",
        ),
        (r"SNMPv3 (unknown context name|context unavailable)", "SNMPv3: コンテキスト名が機器にない"),
        (
            r"SNMPv3 (security model not supported|message rejected as invalid|PDU type not handled)",
            "SNMPv3: 機器が要求を処理できない",
        ),
        (r"SNMPv3 credentials unusable", "SNMPv3: 認証情報の設定不備（キーが短すぎる）"),
        (r"SNMPv3 engine discovery failed", "SNMPv3: エンジンIDを取得できない"),
        (r"SNMPv3 report", "SNMPv3: 機器がエラーを報告"),
        (r"SNMP error|agent error (?P<err>\w+)", "SNMPエラー応答"),
        (r"interface .* vanished from ifTable", "インタフェースが機器から消失"),
        (r"interface status not readable", "インタフェース状態を取得できない"),
        (r"OID \S+ not found on the agent", "監視項目（OID）が機器にない"),
        (r"100% packet loss", "応答なし（パケット100%損失）"),
        (r"packet loss (?P<loss>\d+%)", "パケットロス {loss}"),
        (r"high round-trip time: (?P<rtt>[\d.]+ms)", "遅延大（往復 {rtt}）"),
        (r"^slow: (?P<took>[\d.]+s)", "応答遅延（{took}）"),
        (r"timeout: no DNS answer", "DNS応答なし（タイムアウト）"),
        (r"cannot resolve", "名前解決失敗（DNS）"),
        (r"rcode (?P<rcode>\w+)", "DNS応答コード異常（{rcode}）"),
        (r"(no|an) answer matches", "DNS応答の内容が想定と異なる"),
        (r"tls certificate verification failed", "TLS証明書の検証失敗"),
        (r"tls handshake failed", "TLSハンドシェイク失敗"),
        (r"TLS certificate expires in (?P<days>[\d.]+) days", "TLS証明書の期限切れ間近（残り{days}日）"),
        (r"CRL nextUpdate in (?P<hours>[\d.]+) hours", "CRLの更新期限間近（残り{hours}時間）"),
        (r"HTTP status (?P<status>\d+)", "HTTPステータス異常（{status}）"),
        (r"invalid HTTP|bad status line", "HTTP応答が不正"),
        (r"^step (?P<step>\d+): expected", "応答内容が想定と異なる（手順{step}）"),
        (r"timeout|timed out", "タイムアウト（応答なし）"),
        (r"connection refused", "接続拒否"),
        (r"connection reset", "接続リセット"),
        (r"no route to host|network is unreachable|host is unreachable", "経路なし（到達不能）"),
        (r"^flapping$", "状態が不安定（短時間に断と復旧を繰り返す）"),
        (r"planned maintenance", "計画保守中"),
    )
)


def reason_ja(reason: str | None) -> str:
    """The Japanese wording of one probe reason; an unknown one is named as such, quoted."""
    if not reason:
        return "不明"
    for pattern, ja in _CLASSES:
        found = pattern.search(reason)
        if found:
            return ja.format(**{k: v or "" for k, v in found.groupdict().items()})
    return f"その他の異常（{reason}）"


_RESOLVED: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), ja)
    for pattern, ja in (
        (r"^recovered$", "監視で正常を確認"),
        (r"^parent is down$", "上位機器の障害として扱う"),
        (r"^merged into (?P<into>\S+)$", "{into} の障害に統合"),
        (r"^resolved by hand$", "手動で解決"),
        (r"^alert resolved$", "アラート解除"),
    )
)


def resolve_reason_ja(reason: str | None) -> str:
    """Why an incident ended, in Japanese; what an operator wrote is kept as written."""
    for pattern, ja in _RESOLVED:
        found = pattern.search(reason or "")
        if found:
            return ja.format(**found.groupdict())
    return reason or ""


def causes(incident_reason: str | None, cause: dict[str, str | None] | None) -> list[tuple[str, str]]:
    """(check, English reason) pairs of an incident: its recorded causes, else its reason text."""
    if cause:
        return [(check, reason or "unknown") for check, reason in cause.items()]
    if not incident_reason:
        return []
    pairs = []
    for part in incident_reason.split("; "):
        check, sep, reason = part.partition(": ")
        pairs.append((check, reason) if sep and "/" in check else ("", part))
    return pairs
