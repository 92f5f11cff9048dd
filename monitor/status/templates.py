"""The notice templates (発生, 調査中, 復旧見込み, 復旧, 計画停止のお知らせ), in the polite style Japanese
public bodies use, with English beside. The affected public services and the times are filled in."""

from __future__ import annotations

from monitor.timefmt import jst

TEMPLATES = ("occurred", "investigating", "estimate", "recovered", "planned")
LABELS = {
    "occurred": ("障害発生", "Service disruption"),
    "investigating": ("調査中", "Investigating"),
    "estimate": ("復旧見込み", "Expected recovery"),
    "recovered": ("復旧", "Recovered"),
    "planned": ("計画停止のお知らせ", "Planned maintenance"),
}


def _when(at: float | None) -> str:
    return jst(at)[:16] if at is not None else "（時刻未定）"


def render(
    template: str,
    services_ja: list[str],
    services_en: list[str],
    starts_at: float | None,
    ends_at: float | None,
    estimate_at: float | None,
) -> tuple[str, str, str, str]:
    """(title, title_en, body, body_en) of a notice."""
    if template not in LABELS:
        raise ValueError(f"unknown template {template!r} (templates: {', '.join(TEMPLATES)})")
    what = "、".join(services_ja) or "一部のサービス"
    what_en = ", ".join(services_en) or "some services"
    label, label_en = LABELS[template]
    since, until, expected = _when(starts_at), _when(ends_at), _when(estimate_at)
    if template == "occurred":
        body = (
            f"{since}頃から、{what}において障害が発生しております。現在、原因を調査しております。\n"
            "ご利用の皆様にはご迷惑をおかけし、申し訳ございません。詳細が分かり次第、お知らせいたします。"
        )
        body_en = (
            f"Since about {since} (JST), {what_en} has been disrupted. We are investigating the cause "
            "and will update this notice as soon as we know more."
        )
    elif template == "investigating":
        body = (
            f"{since}頃から発生している{what}の障害について、引き続き原因を調査しております。\n"
            "復旧の見込みが立ち次第、お知らせいたします。"
        )
        body_en = (
            f"We are still investigating the disruption of {what_en} that began at about {since} (JST). "
            "We will announce the expected recovery as soon as we can."
        )
    elif template == "estimate":
        body = (
            f"{since}頃から発生している{what}の障害について、{expected}頃の復旧を見込んでおります。\n"
            "ご迷惑をおかけし、申し訳ございません。"
        )
        body_en = (
            f"The disruption of {what_en} that began at about {since} (JST) is expected to be resolved "
            f"by about {expected} (JST)."
        )
    elif template == "recovered":
        body = (
            f"{since}頃から発生していた{what}の障害は、{until}に復旧いたしました。\n"
            "ご利用の皆様にはご迷惑をおかけし、誠に申し訳ございませんでした。"
        )
        body_en = (
            f"The disruption of {what_en} that began at about {since} (JST) was resolved at {until} (JST). "
            "We apologise for the inconvenience."
        )
    else:  # planned
        body = (
            f"保守作業のため、{since}から{until}まで、{what}を計画停止いたします。\n"
            "この間、当該サービスはご利用いただけません。ご理解とご協力をお願いいたします。"
        )
        body_en = (
            f"For maintenance, {what_en} will be unavailable from {since} to {until} (JST). "
            "Thank you for your understanding."
        )
    return f"【{label}】{what}", f"[{label_en}] {what_en}", body, body_en
