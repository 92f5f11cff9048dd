"""Which exposition format a scraper asked for: Prometheus' Accept header, with its q-values.

Prometheus 2.x asks for OpenMetrics first by default
(`application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,
text/plain;version=0.0.4;q=0.5,*/*;q=0.1`), and for protobuf first when started with
`--enable-feature=native-histograms` (3.x: `scrape_protocols`). A scraper that sends nothing, or only
`*/*`, gets the classic text format, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Format(Enum):
    TEXT = "text"
    OPENMETRICS = "openmetrics"
    PROTOBUF = "protobuf"


TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TYPE = "application/openmetrics-text; version={version}; charset=utf-8"
PROTOBUF_TYPE = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
OPENMETRICS_VERSIONS = ("1.0.0", "0.0.1")  # what we write is valid as either
# On equal q-values: the most compact the scraper accepts (Prometheus always gives distinct q-values)
PREFERENCE = {Format.PROTOBUF: 0, Format.OPENMETRICS: 1, Format.TEXT: 2}


@dataclass(frozen=True, slots=True)
class Choice:
    format: Format
    content_type: str


def _params(parts: list[str]) -> dict[str, str]:
    out = {}
    for part in parts:
        key, _, value = part.partition("=")
        out[key.strip().lower()] = value.strip().strip('"')
    return out


def _offer(media: str, params: dict[str, str]) -> Choice | None:
    """What we would answer to one media range of the header, or None if we write nothing it accepts."""
    if media == "application/vnd.google.protobuf":
        if params.get("proto") == "io.prometheus.client.MetricFamily" and params.get("encoding") == "delimited":
            return Choice(Format.PROTOBUF, PROTOBUF_TYPE)
        return None
    if media == "application/openmetrics-text":
        version = params.get("version", "1.0.0")
        if version in OPENMETRICS_VERSIONS:
            return Choice(Format.OPENMETRICS, OPENMETRICS_TYPE.format(version=version))
        return None
    if media in ("text/plain", "text/*", "*/*"):
        version = params.get("version", "0.0.4")
        return Choice(Format.TEXT, TEXT_TYPE) if version == "0.0.4" else None
    return None


def choose(accept: str | None) -> Choice:
    """The format to answer `accept` with: the acceptable one of highest q, text when none is."""
    best: tuple[float, int, Choice] | None = None
    for item in (accept or "").split(","):
        parts = item.split(";")
        media = parts[0].strip().lower()
        if not media:
            continue
        params = _params(parts[1:])
        try:
            q = float(params.pop("q", "1"))
        except ValueError:  # a malformed q: the range counts as not preferred rather than failing the scrape
            q = 0.001
        offer = _offer(media, params)
        if offer is None or q <= 0:
            continue
        key = (q, -PREFERENCE[offer.format], offer)
        if best is None or key[:2] > best[:2]:
            best = key
    return best[2] if best is not None else Choice(Format.TEXT, TEXT_TYPE)
