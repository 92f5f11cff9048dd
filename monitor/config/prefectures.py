"""The 47 prefectures (JIS X 0401), in JIS code order: geographic, Hokkaido to Okinawa."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class Prefecture:
    code: str  # "01".."47"
    name_ja: str
    name_en: str
    region_ja: str
    region_en: str


@cache
def all_prefectures() -> tuple[Prefecture, ...]:
    text = resources.files("monitor").joinpath("data/prefectures.csv").read_text(encoding="utf-8")
    return tuple(Prefecture(**row) for row in csv.DictReader(text.splitlines()))


@cache
def _index() -> dict[str, Prefecture]:
    index: dict[str, Prefecture] = {}
    for pref in all_prefectures():
        index[pref.code] = pref
        index[pref.name_ja] = pref
        index[pref.name_en.lower()] = pref
    return index


def lookup(value: str | int) -> Prefecture | None:
    """Find a prefecture by JIS code (13, "13", "01"), Japanese name (東京都) or English name (Tokyo)."""
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        key = f"{int(value):02d}"
    else:
        key = value.strip()
    return _index().get(key) or _index().get(key.lower())
