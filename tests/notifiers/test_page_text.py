"""Page text as an on-call engineer reads it at night (issue 18 point 8): pages rendered from incidents
the real manager made (engine, SQLite store, fake clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.incidents.reasons import reason_ja
from tests.conftest import Loader
from tests.incidents.world import World, make_world


@pytest.fixture
async def world(load_yaml_config: Loader, tmp_path: Path) -> AsyncIterator[World]:
    w = await make_world(load_yaml_config, tmp_path)
    yield w
    await w.store.close(now=w.clock.t)


async def mail(world: World, kind: str) -> dict[str, str]:
    return next(p.payload for p in await world.pages(kind) if p.channel == "mail")


async def test_resolved_page_says_resolved_and_gives_the_outage_cause(world: World) -> None:
    """The access point times out (the cut); while it recovers another failure is seen last. The
    RESOLVED page says 復旧/resolved, gives the cut's cause, the service by name with its state, the
    console's incident page; Japanese and English list the same lines."""
    await world.fail("ap", error="timeout")
    await world.later(13)
    await world.deliver()
    firing = await mail(world, "firing")
    assert firing["subject"] == "[重大/MAJOR] 障害発生 PROBLEM: ap（東京都） 障害 / ap (Tokyo) down"
    assert "原因: ap/ping タイムアウト（応答なし）" in firing["body"] and "Cause: ap/ping timeout" in firing["body"]
    assert "影響サービス: 東京都ネットワーク（停止）" in firing["body"]
    assert "Affected services: Tokyo network (DOWN)" in firing["body"]
    incident = world.manager.open["target:ap"]
    assert f"詳細: https://noc.example.lg.jp/#/incidents/{incident.id}" in firing["body"]
    assert "/api/v1/" not in firing["body"]
    # recovering: one good result, then a different failure, then good again
    await world.manager.handle(world.observe("ap", True))
    await world.manager.handle(world.observe("ap", False, error="connection refused"))
    await world.recover("ap")
    resolved = await mail(world, "resolved")
    assert resolved["subject"] == "[重大/MAJOR] 復旧 RESOLVED: ap（東京都） 復旧 / ap (Tokyo) resolved"
    assert "障害" not in resolved["subject"] and "down" not in resolved["subject"]
    assert "タイムアウト" in resolved["body"] and "接続拒否" not in resolved["body"]
    assert "connection refused" not in resolved["body"]
    assert "影響のあったサービス: 東京都ネットワーク（停止）" in resolved["body"]
    assert "Services affected: Tokyo network (DOWN)" in resolved["body"]
    assert "（監視で正常を確認）" in resolved["body"] and "(recovered)" in resolved["body"]
    ja, en = resolved["body"].split("\n\n----- English -----\n")
    assert len(ja.splitlines()) == len(en.strip().splitlines())
    am = next(p.payload for p in await world.pages("resolved") if p.channel == "am")
    assert am["alert"]["annotations"]["summary_en"] == "ap (Tokyo) resolved"
    assert am["alert"]["annotations"]["console_url"].endswith(f"/#/incidents/{incident.id}")
    assert am["alert"]["annotations"]["description_ja"] == "ap/ping タイムアウト（応答なし）"


async def test_national_server_carries_its_centre_as_location(world: World) -> None:
    """A national server (no prefecture) is located by its site: the national centre's name."""
    await world.fail("core")
    incident = world.manager.open["target:core"]
    assert incident.title == "core（東日本全国センター） 障害"
    assert incident.title_en == "core (East national center) down"
    await world.later(13)
    body = (await mail(world, "firing"))["body"]
    assert "影響サービス: 全国基幹網（停止）" in body and "Affected services: National backbone (DOWN)" in body


@pytest.mark.parametrize(
    ("reason", "ja"),
    [
        ("timeout", "タイムアウト（応答なし）"),
        ("timeout after 5s", "タイムアウト（応答なし）"),
        ("connection refused", "接続拒否"),
        ("connection reset by peer", "接続リセット"),
        ("cannot resolve www.example.lg.jp: Name or service not known", "名前解決失敗（DNS）"),
        ("timeout: no DNS answer", "DNS応答なし（タイムアウト）"),
        ("rcode SERVFAIL, expected NOERROR", "DNS応答コード異常（SERVFAIL）"),
        ("tls certificate verification failed: certificate has expired", "TLS証明書の検証失敗"),
        ("tls handshake failed: WRONG_VERSION_NUMBER", "TLSハンドシェイク失敗"),
        ("HTTP status 503 Service Unavailable", "HTTPステータス異常（503）"),
        ("SNMP agent down (device answers ICMP): timeout", "SNMPエージェント停止（機器はICMPに応答）"),
        ("SNMP agent not responding: no response", "SNMPエージェント無応答"),
        ("100% packet loss (3 sent)", "応答なし（パケット100%損失）"),
        ("packet loss 40% (limit 20%)", "パケットロス 40%"),
        ("parent edge-13 is down", "上位機器 edge-13 の障害により到達不能"),
        ("no route to host", "経路なし（到達不能）"),
        ("something new", "その他の異常（something new）"),
    ],
)
def test_each_failure_class_has_japanese_wording(reason: str, ja: str) -> None:
    assert reason_ja(reason) == ja
