"""Times at the edges: UTC inside, ISO 8601 in the API, JST for people (pages, reports, console)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

JST = ZoneInfo("Asia/Tokyo")


def iso(ts: float | None) -> str | None:
    """ISO 8601 UTC with milliseconds, as the API writes times; None stays None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_iso(ts: float) -> str:
    """ISO 8601 UTC to the second (Alertmanager's startsAt/endsAt)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def jst(ts: float) -> str:
    """For people: 2026-11-26 21:04:05 JST."""
    return datetime.fromtimestamp(ts, JST).strftime("%Y-%m-%d %H:%M:%S JST")
