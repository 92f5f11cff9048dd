"""Every reason the SNMPv3 client gives (each report an agent can send, and its own findings) reads in
Japanese as its own class, not as the generic "SNMP error" or an unknown reason."""

from __future__ import annotations

import pytest

from monitor.incidents.reasons import reason_ja
from probes.snmp import ber, usm
from probes.snmp.usm_client import report_reason


def report(oid: tuple[int, ...]) -> usm.ScopedPdu:
    return usm.ScopedPdu(b"", b"", ber.REPORT, 0, 0, 0, [(oid, (ber.COUNTER32, 1))])


@pytest.mark.parametrize("oid", sorted(usm.REPORTS))
def test_each_report_has_its_own_japanese_wording(oid: tuple[int, ...]) -> None:
    reason = "SNMP error: " + report_reason(report(oid), "noc-poller")
    ja = reason_ja(reason)
    assert ja.startswith("SNMPv3: ") and ja != "SNMPv3: 機器がエラーを報告", (reason, ja)


@pytest.mark.parametrize(
    ("reason", "ja"),
    [
        ('SNMP error: SNMPv3 unknown user name for user "noc-poller" (agent reports usmStatsUnknownUserNames)',
         "SNMPv3: ユーザ「noc-poller」が機器に未登録"),
        ('SNMP error: SNMPv3 wrong digest (authentication key mismatch) for user "u" (agent reports usmStatsWrongDigests)',
         "SNMPv3: 認証キー不一致（ダイジェスト不正）"),
        ('SNMP error: SNMPv3 privacy key or protocol mismatch for user "u" (the agent answers it at authNoPriv but '
         "not at authPriv with AES)", "SNMPv3: 暗号化キーまたは暗号方式の不一致（復号失敗）"),
        ('SNMP error: SNMPv3 not in time window for user "u" after resynchronizing (engineBoots 3, engineTime 9; '
         "agent reports usmStatsNotInTimeWindows)", "SNMPv3: 時刻ウィンドウ外（engineBoots/engineTimeの不一致）"),
        ("SNMP error: SNMPv3 credentials unusable: SNMPv3 keys must be at least 8 characters (RFC 3414 11.2)",
         "SNMPv3: 認証情報の設定不備（キーが短すぎる）"),
        ("SNMP error: SNMPv3 engine discovery failed: the agent answered without its engine id",
         "SNMPv3: エンジンIDを取得できない"),
        ("SNMP error: SNMPv3 report 1.3.6.1.4.1.9.9.1.0 from the agent", "SNMPv3: 機器がエラーを報告"),
    ],
)  # fmt: skip
def test_client_reasons_in_japanese(reason: str, ja: str) -> None:
    assert reason_ja(reason) == ja
