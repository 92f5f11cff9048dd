"""The Prometheus protobuf exposition (`io.prometheus.client.MetricFamily`, length-delimited), written by hand.

prometheus-client (0.26) writes only the text formats, and the `protobuf` runtime would be a dependency
for five small messages; their wire form is a few lines (metrics.proto of prometheus/client_model):

    MetricFamily { string name = 1; string help = 2; MetricType type = 3; repeated Metric metric = 4; }
    Metric { repeated LabelPair label = 1; Gauge gauge = 2; Counter counter = 3; Summary summary = 4;
             Untyped untyped = 5; Histogram histogram = 7; }
    LabelPair { string name = 1; string value = 2; }    Gauge/Counter/Untyped { double value = 1; }
    Summary { uint64 sample_count = 1; double sample_sum = 2; repeated Quantile quantile = 3; }
    Quantile { double quantile = 1; double value = 2; }
    Histogram { uint64 sample_count = 1; double sample_sum = 2; repeated Bucket bucket = 3; }
    Bucket { uint64 cumulative_count = 1; double upper_bound = 2; }

Each family is one message preceded by its length as a varint. The series are the ones the text format
has, so a Prometheus switching format keeps every series: counters are named with `_total` (as in the
text format and client_golang), a counter's `_created` is its own gauge family (prometheus-client's
text 0.0.4 writes it so), an info metric is the gauge `<name>_info`. A histogram's +Inf bucket is
implied by its count, as client_golang writes it (Prometheus adds it).

The per-check part is converted from the kept text, chunk by chunk (monitor.metrics.text writes those
lines itself, so the parser only needs their form), and cached per chunk by the body cache: a scrape
re-encodes only what changed since the last one.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry

COUNTER, GAUGE, SUMMARY, UNTYPED, HISTOGRAM = 0, 1, 2, 3, 4
TYPES = {"counter": COUNTER, "gauge": GAUGE, "summary": SUMMARY, "untyped": UNTYPED, "histogram": HISTOGRAM}
# The Metric field holding a value of each simple type
VALUE_FIELD = {COUNTER: 3, GAUGE: 2, UNTYPED: 5}
_DOUBLE = struct.Struct("<d")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')
_LABELS = re.compile(r'(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*')
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


class ExpositionError(ValueError):
    """A line of the kept text the encoder cannot read: a bug in the text writer, never the target's."""


def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _bytes_field(number: int, data: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(data)) + data


def _string(number: int, text: str) -> bytes:
    return _bytes_field(number, text.encode())


def _double(number: int, value: float) -> bytes:
    return varint(number << 3 | 1) + _DOUBLE.pack(value)


def _uint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def label_pairs(labels: Iterable[tuple[str, str]]) -> bytes:
    return b"".join(_bytes_field(1, _string(1, k) + _string(2, v)) for k, v in labels)


def simple_metric(labels: Iterable[tuple[str, str]], kind: int, value: float) -> bytes:
    """One Metric (as field 4 of its family) of a counter, gauge or untyped family."""
    body = label_pairs(labels) + _bytes_field(VALUE_FIELD[kind], _double(1, value))
    return _bytes_field(4, body)


def family(name: str, help_text: str, kind: int, metrics: bytes) -> bytes:
    """One delimited MetricFamily from its already encoded Metric fields."""
    message = _string(1, name) + (_string(2, help_text) if help_text else b"") + _uint(3, kind) + metrics
    return varint(len(message)) + message


def unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return _UNESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse_line(line: str) -> tuple[str, list[tuple[str, str]], float]:
    """`name{a="x",b="y"} value` as monitor.metrics.text writes it (no timestamp)."""
    brace = line.find("{")
    labels: list[tuple[str, str]] = []
    if brace < 0:
        name, _, value = line.partition(" ")
    else:
        name = line[:brace]
        pos = brace + 1
        while line[pos] != "}":
            m = _LABEL.match(line, pos)
            if m is None:
                raise ExpositionError(f"unreadable labels in {line!r}")
            labels.append((m.group(1), unescape(m.group(2))))
            pos = m.end()
        value = line[pos + 2 :]
    try:
        return name, labels, float(value)
    except ValueError:
        raise ExpositionError(f"unreadable value in {line!r}") from None


def chunk_metrics(text: str, kind: int) -> bytes:
    """The Metric fields of the lines of one chunk (one subject's samples of a family)."""
    # split on \n only: a label value may hold any other line separator (\x85, \u2028...) unescaped
    lines = text.split("\n")
    return b"".join(simple_metric(labels, kind, value) for _, labels, value in map(parse_line, filter(None, lines)))


def _length(n: int) -> bytes:
    return _SMALL[n] if n < 128 else varint(n)


_SMALL = [bytes((n,)) for n in range(128)]


class LineEncoder:
    """chunk_metrics at the speed a scrape needs: a series' label text is the same from one scrape to
    the next (only its value moves), so its encoded label pairs are kept by that text and a line costs a
    dictionary look-up, a float() and a pack. Parsing every line instead costs ~15 us, seconds at
    250,000 lines."""

    LIMIT = 2_000_000  # label texts kept; past it (series renamed or gone over months) start over

    def __init__(self) -> None:
        self._labels: dict[str, bytes] = {}
        self._pairs: dict[tuple[str, str], bytes] = {}  # one label's encoding: most recur across series

    def _encode_labels(self, text: str) -> bytes:
        """The LabelPair fields of `a="x",b="y"` (one C-level pass to split, one to check the form)."""
        if _LABELS.fullmatch(text) is None:
            raise ExpositionError(f"unreadable labels {text!r}")
        pairs = self._pairs
        out = []
        for name, value in _LABEL.findall(text):
            key = (name, value)
            encoded = pairs.get(key)
            if encoded is None:
                encoded = pairs[key] = _bytes_field(1, _string(1, name) + _string(2, unescape(value)))
            out.append(encoded)
        return b"".join(out)

    def metrics(self, text: str, kind: int) -> bytes:
        value_key = _VALUE_KEY[kind]
        cache = self._labels
        if len(cache) > self.LIMIT:
            cache.clear()
            self._pairs.clear()
        out = []
        pack = _DOUBLE.pack
        for line in text.split("\n"):  # \n only, as in chunk_metrics
            if not line:
                continue
            brace = line.find("{")
            end = line.rfind("} ")  # the value after it has no "} ": this is the end of the labels
            if brace < 0 or end < 0:
                out.append(chunk_metrics(line, kind))
                continue
            key = line[brace + 1 : end]
            pairs = cache.get(key)
            if pairs is None:
                pairs = cache[key] = self._encode_labels(key)
            try:
                value = float(line[end + 2 :])
            except ValueError:
                raise ExpositionError(f"unreadable value in {line!r}") from None
            body = pairs + value_key + pack(value)
            out.append(b"\x22" + _length(len(body)) + body)  # field 4 (metric), length-delimited
        return b"".join(out)


# Metric's value field (gauge 2, counter 3, untyped 5) holding a message of 9 bytes: double field 1
_VALUE_KEY = {kind: varint(number << 3 | 2) + b"\x09" + varint(1 << 3 | 1) for kind, number in VALUE_FIELD.items()}


def text_families(text: str) -> bytes:
    """Delimited families from exposition text of counters, gauges and untyped samples with # HELP and
    # TYPE lines (the providers' SLO figures)."""
    out = []
    name, help_text, kind, metrics = "", "", UNTYPED, bytearray()
    for line in text.split("\n"):
        if line.startswith("# HELP "):
            if name:
                out.append(family(name, help_text, kind, bytes(metrics)))
            name, _, help_text = line[7:].partition(" ")
            help_text = unescape(help_text)
            kind, metrics = UNTYPED, bytearray()
        elif line.startswith("# TYPE "):
            kind = TYPES.get(line.rpartition(" ")[2], UNTYPED)
            if kind not in VALUE_FIELD:
                raise ExpositionError(f"{line!r}: only counters, gauges and untyped families are read from text")
        elif line and not line.startswith("#"):
            _, labels, value = parse_line(line)
            metrics += simple_metric(labels, kind, value)
    if name:
        out.append(family(name, help_text, kind, bytes(metrics)))
    return b"".join(out)


def _histogram(samples: list[tuple[str, dict[str, str], float]], base: str) -> Iterator[bytes]:
    """The Metric fields of a histogram family, one per label set (its buckets, _count, _sum)."""
    series: dict[tuple[tuple[str, str], ...], dict[str, object]] = {}
    for name, labels, value in samples:
        own = tuple((k, v) for k, v in labels.items() if k != "le")
        entry = series.setdefault(own, {"buckets": [], "count": 0, "sum": 0.0})
        if name == f"{base}_bucket":
            bound = float(labels["le"])
            if not math.isinf(bound):  # +Inf is the count
                entry["buckets"].append((bound, int(value)))  # type: ignore[attr-defined]
        elif name == f"{base}_count":
            entry["count"] = int(value)
        elif name == f"{base}_sum":
            entry["sum"] = value
    for own, entry in series.items():
        body = _uint(1, entry["count"]) + _double(2, entry["sum"])  # type: ignore[arg-type]
        for bound, count in entry["buckets"]:  # type: ignore[attr-defined]
            body += _bytes_field(3, _uint(1, count) + _double(2, bound))
        yield _bytes_field(4, label_pairs(own) + _bytes_field(7, body))


def _summary(samples: list[tuple[str, dict[str, str], float]], base: str) -> Iterator[bytes]:
    series: dict[tuple[tuple[str, str], ...], dict[str, object]] = {}
    for name, labels, value in samples:
        own = tuple((k, v) for k, v in labels.items() if k != "quantile")
        entry = series.setdefault(own, {"quantiles": [], "count": 0, "sum": 0.0})
        if name == base:
            entry["quantiles"].append((float(labels["quantile"]), value))  # type: ignore[attr-defined]
        elif name == f"{base}_count":
            entry["count"] = int(value)
        elif name == f"{base}_sum":
            entry["sum"] = value
    for own, entry in series.items():
        body = _uint(1, entry["count"]) + _double(2, entry["sum"])  # type: ignore[arg-type]
        for quantile, value in entry["quantiles"]:  # type: ignore[attr-defined]
            body += _bytes_field(3, _double(1, quantile) + _double(2, value))
        yield _bytes_field(4, label_pairs(own) + _bytes_field(4, body))


def registry_families(registry: CollectorRegistry) -> bytes:
    """The registry's metrics (the daemon's own health), as prometheus-client's text 0.0.4 has them."""
    out = []
    for metric in registry.collect():
        samples = [(s.name, s.labels, s.value) for s in metric.samples]
        created = [(labels, value) for name, labels, value in samples if name == f"{metric.name}_created"]
        kind = metric.type
        if kind == "counter":
            name = f"{metric.name}_total"
            metrics = b"".join(simple_metric(lb.items(), COUNTER, v) for n, lb, v in samples if n == name)
            out.append(family(name, metric.documentation, COUNTER, metrics))
        elif kind in ("histogram", "gaugehistogram"):
            own = [s for s in samples if not s[0].endswith("_created")]
            out.append(family(metric.name, metric.documentation, HISTOGRAM, b"".join(_histogram(own, metric.name))))
        elif kind == "summary":
            own = [s for s in samples if not s[0].endswith("_created")]
            out.append(family(metric.name, metric.documentation, SUMMARY, b"".join(_summary(own, metric.name))))
        else:  # gauge, info (samples <name>_info), stateset, unknown: plain samples under their own name
            by_name: dict[str, bytearray] = {}
            simple = GAUGE if kind in ("gauge", "info", "stateset") else UNTYPED
            for name, labels, value in samples:
                by_name.setdefault(name, bytearray()).extend(simple_metric(labels.items(), simple, value))
            out.extend(family(name, metric.documentation, simple, bytes(m)) for name, m in by_name.items())
        if created:
            metrics = b"".join(simple_metric(labels.items(), GAUGE, value) for labels, value in created)
            out.append(family(f"{metric.name}_created", metric.documentation, GAUGE, metrics))
    return b"".join(out)
