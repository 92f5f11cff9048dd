"""The /metrics body in the format the scraper asked for, encoded and compressed incrementally.

At 10,000 checks the per-check part is tens of megabytes of text; most of its families (the info series,
states, flapping, most values) do not change between two scrapes 15 s apart, and those that do change in
part. So each family's encoded form (text, OpenMetrics, protobuf; and each of those gzip-compressed) is kept
with the version of the family it was made from (monitor.metrics.text.LiveText.view) and remade only when
that changed; protobuf is kept per chunk too, so a changed family re-encodes only its changed subjects.
The daemon's own registry (small, and changing with every probe) is written at each scrape.

A compressed body is one gzip stream joined from parts deflated per family (monitor.metrics.gzipjoin):
an unchanged family keeps its compressed bytes. A part per family costs a few bytes of flush and the
dictionary it does not share with its neighbours. A family that changes at every scrape but only in part
(an SNMP interface family: each device's 48 interfaces rewritten once a minute, some device every
second) is itself made of segments deflated apart and kept by their text: a subject of `BIG_CHUNK` or
more (a device's interfaces) is a segment of its own, a run of smaller ones between two such (a check's
one line each) is one segment. So a 15 s scrape of the national estate deflates the quarter of the
interface text that changed, not all 90 MB of it (bench.metrics_render --checks 2256 --interfaces 48).

Encoding runs in a thread (the event loop keeps probing); `view` runs on the loop and copies only the
families the cache does not hold in the asked format. One scrape at a time (a lock), and scrapes within
`max_age` of each other (a Prometheus HA pair) share a body.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from monitor.metrics import gzipjoin, protobuf
from monitor.metrics.exposition import StateCollector
from monitor.metrics.negotiation import Format
from monitor.metrics.text import FamilyView

EOF = b"# EOF\n"


def text_header(name: str, help_text: str, kind: str) -> str:
    help_text = help_text.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


def openmetrics_header(name: str, help_text: str, kind: str) -> str:
    """OpenMetrics names a counter family without `_total` and types `_info` gauges as info; a counter
    without `_total` (a probe's) is unknown there, its samples unchanged."""
    if kind == "counter":
        if name.endswith("_total"):
            name = name[: -len("_total")]
        else:
            kind = "unknown"
    elif kind == "gauge" and name.endswith("_info"):
        name, kind = name[: -len("_info")], "info"
    help_text = help_text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f"# TYPE {name} {kind}\n# HELP {name} {help_text}\n"


def _header(view: FamilyView, fmt: Format) -> str:
    """The # HELP and # TYPE lines of a text or OpenMetrics family."""
    return (openmetrics_header if fmt is Format.OPENMETRICS else text_header)(view.name, view.help, view.type)


BIG_CHUNK = 2048  # characters: a subject's text worth a deflated segment of its own (~12 interface lines)


def _deflate(data: bytes) -> gzipjoin.Part:
    return gzipjoin.part(data, 1)  # level 1: a scrape's CPU matters more than its bytes


def segments(chunks: dict[str, str]) -> list[tuple[str, tuple[str, ...]]]:
    """A family's chunks cut into (key, texts): each big chunk alone, each run of small ones together,
    keyed by their first subject (stable while the family keeps its subjects)."""
    out: list[tuple[str, tuple[str, ...]]] = []
    run: list[str] = []
    run_key = ""
    for subject, text in chunks.items():
        if len(text) >= BIG_CHUNK:
            if run:
                out.append((run_key, tuple(run)))
                run = []
            out.append((subject, (text,)))
        else:
            if not run:
                run_key = subject
            run.append(text)
    if run:
        out.append((run_key, tuple(run)))
    return out


@dataclass(slots=True)
class _Encoded:
    """One family's encoded forms, all made from `version`."""

    version: tuple[int, int]
    plain: dict[Format, bytes] = field(default_factory=dict)
    compressed: dict[Format, gzipjoin.Part] = field(default_factory=dict)


class BodyCache:
    """/metrics bodies per format and compression, remade family by family as the state changes."""

    def __init__(self, registry: CollectorRegistry, collector: StateCollector, max_age: float = 1.0) -> None:
        self._registry = registry
        self._collector = collector
        self._max_age = max_age
        self._lock = asyncio.Lock()
        self._families: dict[str, _Encoded] = {}
        self._pb_chunks: dict[str, dict[str, tuple[str, bytes]]] = {}  # family -> subject -> (chunk, encoded)
        # family -> segment key -> (its texts, deflated): text and OpenMetrics differ in headers only
        self._segments: dict[str, dict[str, tuple[tuple[str, ...], gzipjoin.Part]]] = {}
        self._lines = protobuf.LineEncoder()
        self._providers: tuple[str, dict[Format, tuple[bytes, gzipjoin.Part]]] = ("", {})
        self._recent: dict[tuple[Format, bool], tuple[float, bytes]] = {}

    async def get(self, fmt: Format, gzipped: bool) -> bytes:
        async with self._lock:
            key = (fmt, gzipped)
            recent = self._recent.get(key)
            if recent is not None and time.monotonic() - recent[0] <= self._max_age:
                return recent[1]
            views = self.view(fmt, gzipped)
            body = await asyncio.to_thread(self.encode, views, fmt, gzipped)
            self._recent[key] = (time.monotonic(), body)
            return body

    def view(self, fmt: Format, gzipped: bool) -> list[FamilyView]:
        """On the event loop: the state's families, copied where the cache lacks them in `fmt`."""
        have = {
            name: enc.version
            for name, enc in self._families.items()
            if fmt in (enc.compressed if gzipped else enc.plain)
        }
        return self._collector.view(have)

    def encode(self, views: list[FamilyView], fmt: Format, gzipped: bool) -> bytes:
        """The whole body (may run in a thread; one at a time)."""
        families = self._families
        head = self._head(fmt)
        plains = [head]
        packed_parts = [_deflate(head)] if gzipped else []
        for view in views:
            enc = families.get(view.name)
            if enc is None or enc.version != view.version:
                enc = families[view.name] = _Encoded(view.version)
            # Only what was asked for is kept: a Prometheus asks for gzip, and the plain text of a big
            # family it never reads would be tens of megabytes held for nothing.
            if gzipped:
                packed = enc.compressed.get(fmt)
                if packed is None:
                    packed = enc.compressed[fmt] = self._deflated_family(view, fmt)
                packed_parts.append(packed)
            else:
                kept = enc.plain.get(fmt)
                if kept is None:
                    kept = enc.plain[fmt] = self._family(view, fmt)
                plains.append(kept)
        live = {view.name for view in views}
        for name in [n for n in families if n not in live]:  # emptied or gone with a reload
            del families[name]
            self._pb_chunks.pop(name, None)
            self._segments.pop(name, None)
        provided, provided_packed = self._provider_part(fmt)
        if fmt is Format.OPENMETRICS:
            provided += EOF
            provided_packed = _deflate(provided)
        if gzipped:
            return gzipjoin.join([*packed_parts, provided_packed])
        return b"".join([*plains, provided])

    def _head(self, fmt: Format) -> bytes:
        if fmt is Format.PROTOBUF:
            head = protobuf.registry_families(self._registry)
        elif fmt is Format.OPENMETRICS:
            head = openmetrics_latest(self._registry)  # type: ignore[no-untyped-call]
            head = head.removesuffix(EOF)
        else:
            head = generate_latest(self._registry)
        return head

    def _family(self, view: FamilyView, fmt: Format) -> bytes:
        if view.chunks is None:  # cannot happen: view() copies what the cache lacks
            raise RuntimeError(f"{view.name}: no chunks and nothing cached")
        if fmt is Format.PROTOBUF:
            return self._protobuf_family(view, view.chunks)
        return (_header(view, fmt) + "".join(view.chunks.values())).encode()

    def _deflated_family(self, view: FamilyView, fmt: Format) -> gzipjoin.Part:
        if fmt is Format.PROTOBUF or view.chunks is None:  # protobuf: one message per family, kept per chunk
            return _deflate(self._family(view, fmt))
        parts = [_deflate(_header(view, fmt).encode())]
        before = self._segments.get(view.name, {})
        now: dict[str, tuple[tuple[str, ...], gzipjoin.Part]] = {}
        for key, texts in segments(view.chunks):
            kept = before.get(key)
            if kept is None or kept[0] != texts:  # element by element, an unchanged chunk by identity
                kept = (texts, _deflate("".join(texts).encode()))
            now[key] = kept
            parts.append(kept[1])
        self._segments[view.name] = now
        return gzipjoin.combine(parts)

    def _protobuf_family(self, view: FamilyView, chunks: dict[str, str]) -> bytes:
        kind = protobuf.TYPES.get(view.type, protobuf.UNTYPED)
        kind = kind if kind in protobuf.VALUE_FIELD else protobuf.UNTYPED
        before = self._pb_chunks.get(view.name, {})
        now: dict[str, tuple[str, bytes]] = {}
        for subject, text in chunks.items():
            kept = before.get(subject)
            # the same str object: the chunk was not rewritten (text is immutable, a rewrite is a new one)
            now[subject] = kept if kept is not None and kept[0] is text else (text, self._lines.metrics(text, kind))
        self._pb_chunks[view.name] = now
        return protobuf.family(view.name, view.help, kind, b"".join(encoded for _, encoded in now.values()))

    def _provider_part(self, fmt: Format) -> tuple[bytes, gzipjoin.Part]:
        """The providers' families (SLO figures), plain and deflated; a provider hands out the same text
        while unchanged."""
        text = "".join(provider.text() for provider in self._collector.providers)
        if text != self._providers[0]:
            self._providers = (text, {})
        forms = self._providers[1]
        if fmt not in forms:
            if fmt is Format.PROTOBUF:
                plain = protobuf.text_families(text)
            elif fmt is Format.OPENMETRICS:
                plain = _openmetrics_text(text).encode()
            else:
                plain = text.encode()
            forms[fmt] = (plain, _deflate(plain))
        return forms[fmt]


def _openmetrics_text(text: str) -> str:
    """Exposition text with # HELP and # TYPE lines, its headers rewritten for OpenMetrics."""
    out: list[str] = []
    help_line = ""
    for line in text.split("\n"):
        if line.startswith("# HELP "):
            help_line = line
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            help_text = help_line[7:].partition(" ")[2] if help_line else ""
            help_text = protobuf.unescape(help_text)  # back to plain, for OpenMetrics' own escaping
            out.append(openmetrics_header(name, help_text, kind))
            help_line = ""
        elif line:
            out.append(line + "\n")
    return "".join(out)
