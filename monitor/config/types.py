"""Small value types of the config: durations, prefecture codes, label names."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from monitor.config import prefectures

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """ "30s", "1m30s", "500ms", "2h", or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 30s, 5m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        pos, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(f'invalid duration "{value}" (write e.g. 500ms, 30s, 5m, 1h)')
    else:
        raise ValueError("must be a duration such as 30s, 5m or 1h")
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


def parse_duration_or_zero(value: Any) -> float:
    if value in (0, "0", "0s"):
        return 0.0
    return parse_duration(value)


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def prefecture_code(value: Any) -> str:
    if isinstance(value, str | int) and not isinstance(value, bool):
        found = prefectures.lookup(value)
        if found is not None:
            return found.code
    raise ValueError(f'unknown prefecture "{value}" (use the JIS code 01-47 or the name, e.g. 13 or 東京都)')


def _label_name(value: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", value):
        raise ValueError(f'invalid label name "{value}" (lower-case letters, digits and _)')
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
DurationOrZero = Annotated[float, BeforeValidator(parse_duration_or_zero)]
PrefectureCode = Annotated[str, BeforeValidator(prefecture_code)]
LabelName = Annotated[str, AfterValidator(_label_name)]
Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
