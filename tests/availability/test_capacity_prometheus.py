"""The report's 95th percentile is Prometheus' `quantile_over_time(0.95, ...)` on the same samples, to the
last bit: a month (November 2026, JST) of 5-minute samples is written to the store and, as OpenMetrics, into
a real Prometheus' TSDB (`promtool tsdb create-blocks-from openmetrics`); the report's figures and the
PromQL answers are compared with ==. An aggregate circuit is compared with Prometheus' percentile of the
SUM of its ports' series (a subquery), which the sum of the ports' own percentiles is not."""

from __future__ import annotations

import asyncio
import json
import math
import random
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from monitor.availability.capacity import SLOT, Sample, prometheus_quantile
from monitor.availability.capacity_report import build_section
from monitor.availability.periods import month_span
from monitor.store.sqlite import SQLiteStore
from tests.availability.test_capacity import CONFIG
from tests.conftest import Loader
from tests.e2e.peers import Process, free_port, http_get, wait_for

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("promtool") is None,
    reason="prometheus and promtool (Debian package prometheus) not installed",
)
CAPACITY = 200e6  # the aggregate's configured capacity (CONFIG)


def _openmetrics(lines: list[tuple[str, dict[str, str], float, float]]) -> str:
    out = ["# TYPE port_bits_per_second gauge", "# TYPE capacity_utilization gauge"]
    for name, labels, value, at in sorted(lines, key=lambda x: (x[0], sorted(x[1].items()), x[3])):
        text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        out.append(f"{name}{{{text}}} {value!r} {at:.3f}")
    return "\n".join(out) + "\n# EOF\n"


def _query(base: str, expr: str, at: float) -> float:
    status, body = http_get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"}))
    data = json.loads(body)
    assert status == 200 and data["status"] == "success", body[:300]
    (result,) = data["data"]["result"]
    return float(result["value"][1])


async def test_the_reports_percentile_is_prometheus_quantile_over_time(
    load_yaml_config: Loader, tmp_path: Path
) -> None:
    inventory = load_yaml_config(CONFIG).inventory
    start, end = month_span(2026, 11)
    rng = random.Random(22)
    lines: list[tuple[str, dict[str, str], float, float]] = []
    samples = []
    ports: dict[str, list[float]] = {"Gi0/1": [], "Gi0/2": []}
    slot = start
    while slot < end:
        hour = ((slot + 9 * 3600) % 86400) / 3600  # JST: busy in office hours on one port, at night on the other
        a = rng.uniform(5e6, 30e6) + (50e6 if 9 <= hour < 18 else 0.0)
        b = rng.uniform(5e6, 30e6) + (45e6 if hour < 6 else 0.0)
        ports["Gi0/1"].append(a)
        ports["Gi0/2"].append(b)
        lines.append(("port_bits_per_second", {"port": "Gi0/1"}, a, slot))
        lines.append(("port_bits_per_second", {"port": "Gi0/2"}, b, slot))
        utilisation = rng.betavariate(2, 5)  # the uplink: a skewed utilisation, as a gauge of its own
        lines.append(("capacity_utilization", {"circuit": "lgwan-uplink-13"}, utilisation, slot))
        samples.append(Sample("lgwan-13-chiyoda", "out", slot, a + b, CAPACITY))
        samples.append(Sample("lgwan-uplink-13", "in", slot, utilisation * 1e9, 1e9))
        slot += SLOT
    port_p95_sum = sum(prometheus_quantile(0.95, v) for v in ports.values())

    store = SQLiteStore(tmp_path / "m.db")
    store.open(now=start)
    await store.save_capacity_samples(samples)
    section = await build_section(store, inventory, 2026, 11, end + 3600)
    await store.close(end + 3600)
    rows = {(r.circuit.name, r.direction): r.figures for r in section.rows}
    aggregate, uplink = rows[("lgwan-13-chiyoda", "out")], rows[("lgwan-uplink-13", "in")]
    assert aggregate.samples == uplink.samples == 8640 and aggregate.coverage == 1.0

    source = tmp_path / "month.om"
    source.write_text(_openmetrics(lines), encoding="utf-8")
    data = tmp_path / "tsdb"
    command = ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)]
    made = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=300, check=False)
    assert made.returncode == 0, made.stdout + made.stderr
    port = free_port()
    (tmp_path / "prometheus.yml").write_text("global: {}\n", encoding="utf-8")
    proc = Process(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={data}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=20y"],
        tmp_path / "prometheus.log",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(f"{base}/-/ready")[0] == 200, 60, what="prometheus ready")
        # evaluated 1 s before the month's end (JST) over exactly the month's length: the range (t - r, t]
        # holds the 8,640 samples from 00:00 on the 1st to 23:55 on the 30th, nothing of either side
        at, window = end - 1, f"{int(end - start)}s"
        assert _query(base, f"count_over_time(capacity_utilization[{window}])", at) == 8640
        promql = _query(base, f"quantile_over_time(0.95, capacity_utilization[{window}])", at)
        assert uplink.p95_ratio == promql
        ordered = sorted(x.utilisation for x in samples if x.circuit == "lgwan-uplink-13")
        assert promql != ordered[math.ceil(0.95 * len(ordered)) - 1]  # "nearest rank" would not have matched
        assert uplink.peak_ratio == _query(base, f"max_over_time(capacity_utilization[{window}])", at)
        # the aggregate: Prometheus' percentile of the ports' sum per 5 minutes (a subquery at the slots' instants)
        summed = f"(sum(port_bits_per_second) / {CAPACITY!r})[{window}:5m]"
        assert aggregate.p95_ratio == _query(base, f"quantile_over_time(0.95, {summed})", at)
        assert aggregate.p95_bps == _query(
            base, f"quantile_over_time(0.95, sum(port_bits_per_second)[{window}:5m])", at
        )
        sum_of_percentiles = _query(
            base, f"sum(quantile_over_time(0.95, port_bits_per_second[{window}]))", at
        )  # what an aggregate must not be
        assert sum_of_percentiles == pytest.approx(port_p95_sum)
        assert aggregate.p95_bps is not None and aggregate.p95_bps < 0.9 * sum_of_percentiles
    finally:
        proc.stop()
