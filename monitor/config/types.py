"""Small value types of the config: durations, listen addresses, prefecture codes, label names."""

from __future__ import annotations

import math
import re
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from monitor.config import prefectures

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


# Upper bounds: a duration longer than these is a typo (or an attack), and unbounded ones overflowed
# the scheduler's arithmetic ("99999999999999999999999999d" silently stopped probing).
DAY = 86400.0
MAX_DURATION = 366 * DAY  # anything: a maintenance window, a certificate warning, a session
MAX_INTERVAL = DAY  # how often something runs: probes, retries, re-pages, windows
MAX_TIMEOUT = 600.0  # how long one probe, request or action may take


def parse_duration(value: Any, maximum: float = MAX_DURATION) -> float:
    """ "30s", "1m30s", "500ms", "2h", or a plain number of seconds; at most `maximum`."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 30s, 5m or 1h")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            seconds = math.inf
    elif isinstance(value, str):
        text = value.strip()
        pos, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(f'invalid duration "{_short(value)}" (write e.g. 500ms, 30s, 5m, 1h)')
    else:
        raise ValueError("must be a duration such as 30s, 5m or 1h")
    if math.isnan(seconds):
        raise ValueError("must be a duration such as 30s, 5m or 1h")
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    if seconds > maximum:
        raise ValueError(f'"{_short(value)}" is too long (at most {_max_text(maximum)})')
    return seconds


def parse_duration_or_zero(value: Any, maximum: float = MAX_DURATION) -> float:
    if value in (0, "0", "0s"):
        return 0.0
    return parse_duration(value, maximum)


def parse_auto_or_interval(value: Any) -> Literal["auto"] | float:
    """ "auto" (the daemon works it out), else an interval or 0: one validator, so a bad duration is
    reported as such, not as "must be one of auto"."""
    return "auto" if value == "auto" else parse_duration_or_zero(value, MAX_INTERVAL)


def _short(value: Any) -> str:
    if isinstance(value, int) and abs(value) >= 10**40:  # str() of a 5,000-digit int raises
        return "a number of more than 40 digits"
    return printable(str(value), 40)


def printable(text: str, limit: int) -> str:
    """`text` for an error message: one line (control characters escaped), at most `limit` characters."""
    text = "".join(c if c.isprintable() else _escape(c) for c in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _max_text(seconds: float) -> str:
    return f"{seconds / DAY:g}d" if seconds >= DAY and seconds % DAY == 0 else format_duration(seconds)


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def parse_listen(value: str) -> tuple[str, int]:
    """HOST:PORT (an IPv6 host in brackets) as (host, port): the one rule of every listener setting."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ValueError(f'listen address must be HOST:PORT, e.g. 127.0.0.1:9310, not "{value}"')
    return host.strip("[]"), int(port)


def _listen(value: str) -> str:
    parse_listen(value)
    return value  # kept as written: the listener parses it when it binds


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
Interval = Annotated[float, BeforeValidator(partial(parse_duration, maximum=MAX_INTERVAL))]
IntervalOrZero = Annotated[float, BeforeValidator(partial(parse_duration_or_zero, maximum=MAX_INTERVAL))]
Timeout = Annotated[float, BeforeValidator(partial(parse_duration, maximum=MAX_TIMEOUT))]
AutoOrInterval = Annotated[Literal["auto"] | float, BeforeValidator(parse_auto_or_interval)]
PrefectureCode = Annotated[str, BeforeValidator(prefecture_code)]
LabelName = Annotated[str, AfterValidator(_label_name)]
Listen = Annotated[str, AfterValidator(_listen)]  # HOST:PORT of a listener (daemon, status page, traps)
Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
