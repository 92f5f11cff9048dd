"""What residents read: the public state of a service from its members, and the notice templates."""

from __future__ import annotations

import pytest

from monitor.core.state import State
from monitor.status.page import public_state
from monitor.status.templates import TEMPLATES, render

T = 1_796_000_000.0  # 2026-11-30 (JST)


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([State.UP, State.UP], "operational"),
        ([State.UP, State.DOWN], "degraded"),  # one of two servers: partially affected
        ([State.DOWN, State.UNREACHABLE], "outage"),
        ([State.UP, State.DEGRADED], "degraded"),
        ([State.UP, State.MAINTENANCE], "maintenance"),
        ([State.MAINTENANCE, State.DOWN], "degraded"),
        ([State.UNKNOWN], "unknown"),
        ([], "unknown"),
    ],
)
def test_public_state(states: list[State], expected: str) -> None:
    assert public_state(states) == expected


def test_every_template_names_the_services_and_times() -> None:
    for template in TEMPLATES:
        title, title_en, body, body_en = render(template, ["住民基本台帳ネットワークシステム"], ["Resident Registry Network"],
                                                T, T + 3600, T + 7200)  # fmt: skip
        assert "住民基本台帳ネットワークシステム" in title and "Resident Registry Network" in title_en
        assert "2026-11-" in body and "(JST)" in body_en
    assert render("planned", ["LGWAN"], ["LGWAN"], T, T + 3600, None)[0] == "【計画停止のお知らせ】LGWAN"
    assert "頃の復旧を見込んで" in render("estimate", ["LGWAN"], ["LGWAN"], T, None, T + 7200)[2]
    with pytest.raises(ValueError, match="unknown template"):
        render("bogus", [], [], None, None, None)
