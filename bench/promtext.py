"""Reading Prometheus numbers: a filtered parser of the text exposition format, histogram quantiles
computed from bucket deltas (as PromQL's histogram_quantile does), and instant queries.

The daemon's /metrics at 10,000 checks has ~120k lines, so `samples()` looks only at the metric
names asked for and skips every other line cheaply.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bench.procs import http_get

_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


def samples(text: str, names: Iterable[str]) -> list[Sample]:
    """Samples of the named metrics (histograms: ask for NAME_bucket, NAME_count ...)."""
    wanted = tuple(names)
    out: list[Sample] = []
    for line in text.splitlines():
        if not line.startswith(wanted):
            continue
        head, _, rest = line.partition("{")
        if rest:
            label_text, _, value_text = rest.rpartition("}")
            labels = dict(_LABEL.findall(label_text))
        else:
            head, _, value_text = line.partition(" ")
            labels = {}
        if head not in wanted:
            continue
        out.append(Sample(head, labels, float(value_text.split()[0])))
    return out


def scrape(url: str, names: Iterable[str]) -> list[Sample]:
    return samples(http_get(url).decode(), names)


def total(found: Iterable[Sample], name: str, **match: str) -> float:
    """Sum of the samples of `name` whose labels include `match`."""
    return sum(s.value for s in found if s.name == name and all(s.labels.get(k) == v for k, v in match.items()))


def buckets(found: Iterable[Sample], name: str) -> dict[float, float]:
    """Cumulative bucket counts of histogram `name` by upper bound, summed over other labels."""
    out: dict[float, float] = {}
    for s in found:
        if s.name == f"{name}_bucket":
            le = float(s.labels["le"])
            out[le] = out.get(le, 0.0) + s.value
    return out


def bucket_delta(before: Mapping[float, float], after: Mapping[float, float]) -> dict[float, float]:
    return {le: after[le] - before.get(le, 0.0) for le in after}


def histogram_quantile(q: float, cumulative: Mapping[float, float]) -> float | None:
    """The q-quantile of a histogram given cumulative counts per upper bound, interpolating linearly
    inside the bucket (PromQL's rules: the first bucket starts at 0; a rank in the +Inf bucket gives
    the highest finite bound). None when there are no observations."""
    bounds = sorted(cumulative)
    if not bounds or not math.isinf(bounds[-1]):
        raise ValueError("histogram without a +Inf bucket")
    count = cumulative[bounds[-1]]
    if count <= 0:
        return None
    rank = q * count
    lower, below = 0.0, 0.0
    for index, upper in enumerate(bounds):
        seen = cumulative[upper]
        if seen >= rank:
            if math.isinf(upper):
                return bounds[index - 1] if index > 0 else None
            if index == 0 and upper <= 0:
                return upper
            if seen == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (seen - below)
        lower, below = upper, seen
    return bounds[-2] if len(bounds) > 1 else None


def query(base_url: str, promql: str) -> list[tuple[dict[str, str], float]]:
    """An instant query against Prometheus's HTTP API: [(labels, value)]."""
    url = f"{base_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    body = json.loads(http_get(url))
    if body.get("status") != "success":
        raise RuntimeError(f"query {promql!r} failed: {body}")
    return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]


def query_value(base_url: str, promql: str) -> float | None:
    """A query whose answer is one number (None when it has no result)."""
    result = query(base_url, promql)
    return result[0][1] if result else None
