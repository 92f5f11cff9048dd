"""/metrics in every format Prometheus asks for: the format chosen from the Accept header, the body cache
equal to a fresh rendering after incremental updates (plain and gzip), OpenMetrics parsed by
prometheus-client's parser and protobuf decoded by a wire-format reader written here from metrics.proto,
both holding exactly the samples of the text format (property-tested with awkward label values and
numbers)."""

from __future__ import annotations

import asyncio
import gzip
import math
import struct
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, Summary
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families

from monitor.core.engine import Engine
from monitor.metrics import protobuf
from monitor.metrics.body import BIG_CHUNK, BodyCache, segments
from monitor.metrics.exposition import DaemonMetrics, StateCollector, exposition
from monitor.metrics.negotiation import OPENMETRICS_TYPE, PROTOBUF_TYPE, TEXT_TYPE, Format, choose
from monitor.scheduling.scheduler import SchedulerMetrics
from probes import base
from probes.base import ProbeResult
from tests.conftest import Loader
from tests.test_metrics import CONFIG, fresh, snmp_result

PROMETHEUS_2_DEFAULT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PROMETHEUS_3_DEFAULT = (  # Prometheus 3's default scrape_protocols (escaping asked for; we write no UTF-8 names)
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"
    "text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)
PROMETHEUS_2_NATIVE_HISTOGRAMS = (  # captured from Prometheus 2.42 with --enable-feature=native-histograms
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,"
    "application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, TEXT_TYPE),
        ("", TEXT_TYPE),
        ("*/*", TEXT_TYPE),
        ("text/plain", TEXT_TYPE),
        (PROMETHEUS_2_DEFAULT, OPENMETRICS_TYPE.format(version="1.0.0")),
        (PROMETHEUS_2_NATIVE_HISTOGRAMS, PROTOBUF_TYPE),
        (PROMETHEUS_3_DEFAULT, OPENMETRICS_TYPE.format(version="1.0.0")),
        ("application/openmetrics-text;version=0.0.1", OPENMETRICS_TYPE.format(version="0.0.1")),
        ("application/openmetrics-text;version=9.9.9,text/plain;q=0.2", TEXT_TYPE),  # a version we do not write
        ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text", TEXT_TYPE),
        (
            "text/plain;q=0.9,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
            "encoding=delimited;q=0.1",
            TEXT_TYPE,
        ),
        ("application/json, image/png", TEXT_TYPE),  # nothing we write: the classic format, not a 406
        ("application/openmetrics-text;q=bogus, text/plain;q=0.5", TEXT_TYPE),
    ],
)
def test_format_negotiated_from_the_accept_header(accept: str | None, expected: str) -> None:
    assert choose(accept).content_type == expected


# ------------------------------------------------------------------ a protobuf reader from metrics.proto


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, Any]]:
    """A message's (field number, value) pairs: ints for varints, floats for 64-bit, bytes for the rest."""
    out: list[tuple[int, Any]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value = struct.unpack("<d", data[pos : pos + 8])[0]
            pos += 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            value = data[pos : pos + size]
            pos += size
        else:
            raise AssertionError(f"wire type {wire}")
        out.append((number, value))
    return out


def decode_delimited(body: bytes) -> set[tuple[str, tuple[tuple[str, str], ...], str]]:
    """The samples Prometheus makes of a protobuf scrape: counters and gauges by family name, histograms
    as _bucket (with +Inf from the count), _count and _sum, summaries as quantiles, _count and _sum."""
    out = set()
    pos = 0
    while pos < len(body):
        size, pos = _varint(body, pos)
        fam = _fields(body[pos : pos + size])
        pos += size
        name = next(v.decode() for n, v in fam if n == 1)
        kind = next((v for n, v in fam if n == 3), 0)
        for number, metric in fam:
            if number != 4:
                continue
            fields = _fields(metric)
            labels = tuple(
                sorted(
                    (dict(_fields(pair))[1].decode(), dict(_fields(pair)).get(2, b"").decode())
                    for n, pair in fields
                    if n == 1
                )
            )
            values = dict(fields)
            if kind in (0, 1, 3):
                value = dict(_fields(values[{0: 3, 1: 2, 3: 5}[kind]])).get(1, 0.0)
                out.add((name, labels, repr(value)))
            elif kind == 4:
                hist = _fields(values[7])
                count = dict(hist)[1]
                out.add((f"{name}_count", labels, repr(float(count))))
                out.add((f"{name}_sum", labels, repr(dict(hist).get(2, 0.0))))
                out.add((f"{name}_bucket", tuple(sorted((*labels, ("le", "+Inf")))), repr(float(count))))
                for n, bucket in hist:
                    if n == 3:
                        b = dict(_fields(bucket))
                        le = str(b[2]) if b[2] != int(b[2]) else f"{b[2]:.1f}"
                        out.add((f"{name}_bucket", tuple(sorted((*labels, ("le", le)))), repr(float(b.get(1, 0)))))
            elif kind == 2:
                summ = _fields(values[4])
                out.add((f"{name}_count", labels, repr(float(dict(summ)[1]))))
                out.add((f"{name}_sum", labels, repr(dict(summ).get(2, 0.0))))
                for n, quantile in summ:
                    if n == 3:
                        q = dict(_fields(quantile))
                        out.add((name, tuple(sorted((*labels, ("quantile", str(q[1]))))), repr(q.get(2, 0.0))))
    return out


def text_samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], str]]:
    return {
        (s.name, tuple(sorted(s.labels.items())), repr(float(s.value)))
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def om_samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], str]]:
    return {
        (s.name, tuple(sorted(s.labels.items())), repr(float(s.value)))
        for fam in om_families(text)
        for s in fam.samples
    }


def unzip(body: bytes) -> bytes:
    """The body as one gzip member: curl and browsers read only the first member of a gzip stream."""
    reader = zlib.decompressobj(wbits=31)
    out = reader.decompress(body)
    assert reader.eof and not reader.unused_data, "more than one gzip member, or a truncated one"
    assert gzip.decompress(body) == out
    return out


# ---------------------------------------------------------------------------------------- the body


@pytest.fixture
def live(load_yaml_config: Loader) -> tuple[CollectorRegistry, StateCollector, Engine]:
    engine = Engine(load_yaml_config(CONFIG).inventory)
    registry = CollectorRegistry()
    DaemonMetrics(registry)
    SchedulerMetrics(registry)
    collector = StateCollector(engine)
    collector.rebuild()
    collector.attached = True
    return registry, collector, engine


def observe(engine: Engine, collector: StateCollector, check: str, result: ProbeResult) -> None:
    outcome = engine.observe(check, result, 2.0)
    collector.on_result(engine.checks[check])
    collector.on_outcome(outcome)


def bodies(cache: BodyCache) -> dict[tuple[Format, bool], bytes]:
    async def all_of() -> dict[tuple[Format, bool], bytes]:
        return {(f, z): await cache.get(f, z) for f in Format for z in (False, True)}

    return asyncio.run(all_of())


def decoded(fmt: Format, body: bytes) -> set[tuple[str, tuple[tuple[str, str], ...], str]]:
    if fmt is Format.PROTOBUF:
        return decode_delimited(body)
    if fmt is Format.OPENMETRICS:
        assert body.endswith(b"# EOF\n") and body.count(b"# EOF") == 1
        return om_samples(body.decode())
    return text_samples(body.decode())


def without_created(found: set[tuple[str, tuple[tuple[str, str], ...], str]]) -> set[Any]:
    """prometheus-client's OpenMetrics parser folds `_created` into its counter; the others keep it."""
    return {s for s in found if not s[0].endswith("_created")}


def test_every_format_holds_the_text_formats_samples_after_incremental_updates(
    live: tuple[CollectorRegistry, StateCollector, Engine],
) -> None:
    """Scrape, change results and states (families emptied, values gone, interfaces gone), scrape again:
    each format, plain and gzip, holds exactly the samples of a fresh text rendering each time; a
    scrape with nothing changed reuses the cached bytes."""
    registry, collector, engine = live
    cache = BodyCache(registry, collector, max_age=0)
    gzip_only = BodyCache(registry, collector, max_age=0)  # as Prometheus asks: never the plain forms
    ping = ProbeResult(ok=True, duration=0.01, finished_at=1_700_000_000.0)
    ping.values.update({"rtt_avg_seconds": 0.0002})
    observe(engine, collector, "tokyo-edge/ping", ping)
    observe(engine, collector, "tokyo-edge/snmp", snmp_result())
    for round_ in range(3):
        fresh = text_samples(exposition(registry, StateCollector(engine)).decode())
        for (fmt, zipped), body in bodies(cache).items():
            got = decoded(fmt, unzip(body) if zipped else body)
            if fmt is Format.OPENMETRICS:
                assert without_created(got) == without_created(fresh), (round_, fmt, zipped)
            else:
                assert got == fresh, (round_, fmt, zipped, got ^ fresh)
        for fmt in (Format.TEXT, Format.PROTOBUF):
            body = asyncio.run(gzip_only.get(fmt, True))
            assert decoded(fmt, unzip(body)) == fresh, (round_, fmt)
        assert not any(enc.plain for enc in gzip_only._families.values())
        # the next round: a state change, a value gone, interfaces gone, an unprobed check
        observe(engine, collector, "tokyo-edge/ping", ProbeResult(ok=False, error="loss", duration=2.0,
                                                                   finished_at=1_700_000_010.0 + round_))  # fmt: skip
        poll = snmp_result()
        poll.series = poll.series[: 2 - round_]
        observe(engine, collector, "tokyo-edge/snmp", poll)


def test_an_unchanged_family_is_not_encoded_again(live: tuple[CollectorRegistry, StateCollector, Engine]) -> None:
    """Between two scrapes one check's result changed: the families it did not touch keep their encoded
    bytes (the same objects), in every format and compressed."""
    registry, collector, engine = live
    cache = BodyCache(registry, collector, max_age=0)
    observe(engine, collector, "tokyo-edge/snmp", snmp_result())
    bodies(cache)
    kept = {name: (dict(enc.plain), dict(enc.compressed)) for name, enc in cache._families.items()}
    observe(engine, collector, "tokyo-edge/dns", ProbeResult(ok=True, duration=0.001, finished_at=1_700_000_100.0))
    bodies(cache)
    for name in ("monitor_check_info", "monitor_if_in_octets_total", "monitor_service_info"):
        enc = cache._families[name]
        assert all(enc.plain[f] is kept[name][0][f] for f in Format), name
        assert all(enc.compressed[f] is kept[name][1][f] for f in Format), name
    assert (
        cache._families["monitor_probe_timestamp_seconds"].plain[Format.TEXT]
        is not (kept["monitor_probe_timestamp_seconds"][0][Format.TEXT])
    )


def test_a_reload_drops_families_and_subjects(
    live: tuple[CollectorRegistry, StateCollector, Engine], load_yaml_config: Loader
) -> None:
    """A check gone with a reload is gone from every format's body."""
    registry, collector, engine = live
    cache = BodyCache(registry, collector, max_age=0)
    observe(engine, collector, "osaka-edge/ping", ProbeResult(ok=True, duration=0.01, finished_at=1_700_000_000.0))
    assert all(b"osaka-edge/ping" in body for (f, z), body in bodies(cache).items() if not z)
    engine.apply_inventory(
        load_yaml_config(CONFIG.replace(", parent: tokyo-edge, modules: [ping]", ", modules: []")).inventory, 3.0
    )
    collector.rebuild()
    for (fmt, zipped), body in bodies(cache).items():
        plain = unzip(body) if zipped else body
        assert b"osaka-edge/ping" not in plain, (fmt, zipped)
        assert decoded(fmt, plain)


def test_the_registry_in_protobuf_has_the_text_formats_series() -> None:
    """Counters, gauges, histograms, summaries and info metrics of prometheus-client in protobuf decode to
    the series its text format has (so a Prometheus switching format keeps every series)."""
    registry = CollectorRegistry()
    Counter("t_requests", "Requests.", ["code"], registry=registry).labels("200").inc(3)
    Gauge("t_temperature", 'A "quoted"\nhelp.', registry=registry).set(-1.5)
    hist = Histogram("t_latency_seconds", "Latency.", ["op"], buckets=(0.1, 1.0), registry=registry)
    hist.labels("get").observe(0.05)
    hist.labels("get").observe(3)
    Summary("t_size_bytes", "Sizes.", registry=registry).observe(10)
    Info("t_build", "Build.", registry=registry).info({"version": "1.2"})
    from prometheus_client import generate_latest

    assert decode_delimited(protobuf.registry_families(registry)) == text_samples(generate_latest(registry).decode())


LABEL_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
VALUES = st.one_of(
    st.floats(allow_nan=False, width=64),
    st.sampled_from([0.0, 1.0, -0.0, 1e-300, 2.0**53 + 1, float("inf"), float("-inf")]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.tuples(LABEL_TEXT, LABEL_TEXT, VALUES), min_size=1, max_size=6, unique_by=lambda r: r[0]),
)
def test_protobuf_and_openmetrics_equal_the_text_form_for_any_labels_and_values(
    rows: list[tuple[str, str, float]], load_yaml_config: Loader
) -> None:
    """Whatever a probe puts in its series' labels (quotes, backslashes, newlines, any Unicode) and values
    (negative, huge, tiny, infinite), the protobuf and OpenMetrics bodies hold the text form's samples."""
    engine = Engine(load_yaml_config(CONFIG).inventory)
    registry = CollectorRegistry()
    collector = StateCollector(engine)
    collector.rebuild()
    collector.attached = True
    result = ProbeResult(ok=True, duration=0.02, finished_at=1_700_000_002.0)
    result.series += [
        base.Series("monitor_snmp_value", "A value.", "gauge", (("name", key), ("index", alias)), value)
        for key, alias, value in rows
    ]
    result.series += [base.Series("monitor_if_in_octets_total", "Octets in.", "counter", (("if_alias", k),), abs(v))
                      for k, _, v in rows if not math.isinf(v)]  # fmt: skip
    observe(engine, collector, "tokyo-edge/snmp", result)
    cache = BodyCache(registry, collector, max_age=0)
    got = bodies(cache)
    text = text_samples(got[(Format.TEXT, False)].decode())
    assert decode_delimited(got[(Format.PROTOBUF, False)]) == text
    assert decode_delimited(unzip(got[(Format.PROTOBUF, True)])) == text
    assert without_created(om_samples(got[(Format.OPENMETRICS, False)].decode())) == without_created(text)


def test_a_provider_may_give_whole_numbers_as_int() -> None:
    """A provider's count (days to a threshold, slots) may be an int: Python 3.11's int has no is_integer(),
    and one such sample once failed every /metrics scrape of the demo."""
    from monitor.metrics.text import number

    assert [number(v) for v in (3, 0, 1, -7, 2**60)] == ["3.0", "0.0", "1.0", "-7.0", "1.152921504606847e+18"]
    assert number(3) == number(3.0) and number(2.5) == "2.5"


def test_segments_cut_big_chunks_alone_and_runs_of_small_ones_together() -> None:
    big = "x" * BIG_CHUNK
    chunks = {"a": "1\n", "b": "2\n", "dev1": big, "dev2": big + "y", "c": "3\n"}
    assert segments(chunks) == [("a", ("1\n", "2\n")), ("dev1", (big,)), ("dev2", (big + "y",)), ("c", ("3\n",))]
    assert segments({}) == []


def _interfaces(count: int, octets: float) -> ProbeResult:
    """A device poll with `count` interfaces: each device's chunk of an interface family is a segment."""
    result = ProbeResult(ok=True, duration=0.02, finished_at=1_700_000_002.0 + octets)
    for index in range(1, count + 1):
        labels = (("if_index", str(index)), ("if_name", f"GigabitEthernet0/{index}"), ("if_alias", "LGWAN"))
        result.series.append(base.Series("monitor_if_in_octets_total", "Octets in.", "counter", labels, octets))
    return result


def test_a_changed_device_redeflates_its_own_segment_only(load_yaml_config: Loader) -> None:
    """Two devices' interfaces in one family; one is polled again between two scrapes: the other's deflated
    segment is kept (the same object), the family's part is remade, and the body holds a fresh rendering's
    samples in text and OpenMetrics."""
    two_devices = CONFIG.replace(", parent: tokyo-edge, modules: [ping]", ", parent: tokyo-edge, modules: [ping, snmp]")
    engine = Engine(load_yaml_config(two_devices).inventory)
    registry = CollectorRegistry()
    collector = StateCollector(engine)
    collector.rebuild()
    collector.attached = True
    cache = BodyCache(registry, collector, max_age=0)
    observe(engine, collector, "tokyo-edge/snmp", _interfaces(48, 1.0))
    observe(engine, collector, "osaka-edge/snmp", _interfaces(48, 2.0))
    for fmt in (Format.TEXT, Format.OPENMETRICS):
        asyncio.run(cache.get(fmt, True))
    family = "monitor_if_in_octets_total"
    before = dict(cache._segments[family])
    assert set(before) == {"tokyo-edge/snmp", "osaka-edge/snmp"}
    observe(engine, collector, "tokyo-edge/snmp", _interfaces(48, 3.0))
    for fmt in (Format.TEXT, Format.OPENMETRICS):
        body = unzip(asyncio.run(cache.get(fmt, True)))
        want = text_samples(fresh(registry, engine))
        got = decoded(fmt, body)
        assert without_created(got) == without_created(want), fmt
    after = cache._segments[family]
    assert after["osaka-edge/snmp"][1] is before["osaka-edge/snmp"][1]
    assert after["tokyo-edge/snmp"][1] is not before["tokyo-edge/snmp"][1]
