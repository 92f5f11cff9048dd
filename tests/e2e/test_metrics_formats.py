"""/metrics in OpenMetrics and protobuf, scraped by real Prometheus servers: one as installed (it asks for
OpenMetrics first), one with native histograms enabled (it asks for protobuf first), both with gzip. They
must end up holding the same series with the same values as the text format gives."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from monitor.metrics.negotiation import OPENMETRICS_TYPE, PROTOBUF_TYPE
from tests.e2e.peers import daemon_process, free_port, http_get, prom_query, prometheus, prometheus_available, wait_for
from tests.e2e.test_daemon_process import TOKEN, TCPGate, config_text, servers
from tests.test_metrics_body import PROMETHEUS_2_DEFAULT, PROMETHEUS_2_NATIVE_HISTOGRAMS, decode_delimited, text_samples

pytestmark = pytest.mark.slow
__all__ = ["servers"]  # the fixture, shared with the daemon's end-to-end test


def scrape(url: str, accept: str) -> tuple[str, bytes]:
    """(Content-Type, body) of /metrics asked for with `accept`."""
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return resp.headers["Content-Type"], resp.read()


def series(prom: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every series Prometheus scraped from the daemon (not its own scrape series), without instance."""
    found = prom_query(prom, '{job="monitor",__name__=~"monitor_.+"}')
    return {
        tuple(sorted((k, v) for k, v in row["metric"].items() if k != "instance")): float(row["value"][1])
        for row in found
    }


@pytest.mark.skipif(not prometheus_available(), reason="prometheus (Debian package) not installed")
def test_prometheus_scrapes_openmetrics_and_protobuf_to_the_same_series(
    tmp_path: Path, servers: tuple[int, TCPGate, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    http_port, gate, closed = servers
    monkeypatch.setenv("E2E_OPERATOR_TOKEN", TOKEN)
    config = tmp_path / "monitor.yml"
    config.write_text(config_text(http_port, gate.port, closed), encoding="utf-8")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (tmp_path / "om").mkdir()
    (tmp_path / "pb").mkdir()
    args = ["run", "--config", str(config), "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "d")]
    with (
        daemon_process(args, tmp_path) as daemon,
        prometheus(tmp_path / "om", [f"127.0.0.1:{port}"], "1s") as om,
        prometheus(tmp_path / "pb", [f"127.0.0.1:{port}"], "1s", features=("native-histograms",)) as pb,
    ):
        wait_for(lambda: http_get(f"{base}/readyz")[0] == 200, 30, what="daemon ready")
        # what each Prometheus asks for is what the daemon answers with
        content_type, body = scrape(f"{base}/metrics", PROMETHEUS_2_NATIVE_HISTOGRAMS)
        assert content_type == PROTOBUF_TYPE
        assert decode_delimited(body) & text_samples(http_get(f"{base}/metrics")[1].decode())
        content_type, _ = scrape(f"{base}/metrics", PROMETHEUS_2_DEFAULT)
        assert content_type == OPENMETRICS_TYPE.format(version="1.0.0")
        if shutil.which("curl"):  # curl reads one gzip member only: the body must be one
            done = subprocess.run(["curl", "-sf", "--compressed", f"{base}/metrics"], capture_output=True, check=False)
            assert done.returncode == 0 and done.stdout.endswith(b"\n") and b"monitor_check_info" in done.stdout

        def settled() -> bool:  # both scraping fine, and the checks' states confirmed
            return all(
                prom_query(p, 'up{job="monitor"} == 1')
                and prom_query(p, 'monitor_check_state{check="dead/tcp",state="down"} == 1')
                and prom_query(p, 'monitor_check_state{check="gate/tcp",state="up"} == 1')
                for p in (om, pb)
            )

        wait_for(settled, 60, what="both Prometheus servers scraping and the states confirmed")
        for p in (om, pb):
            targets = prom_query(p, 'scrape_samples_post_metric_relabeling{job="monitor"}')
            assert targets and float(targets[0]["value"][1]) > 100
        # the series that do not move between two scrapes are the same, value for value, in both
        steady = ("monitor_check_info", "monitor_service_info", "monitor_check_state", "monitor_prefecture_info",
                  "monitor_build_info", "monitor_checks", "monitor_service_state")  # fmt: skip
        by_format = [series(p) for p in (om, pb)]
        for name in steady:
            a, b = ({k: v for k, v in s.items() if dict(k)["__name__"] == name} for s in by_format)
            assert a and a == b, name
        # and every series name is in both (values of counters and timestamps move between scrapes)
        names = [{dict(k)["__name__"] for k in s} for s in by_format]
        assert names[0] == names[1], names[0] ^ names[1]
        assert {"monitor_scheduler_lag_seconds_bucket", "monitor_probes_total"} <= names[1]
        info = prom_query(pb, 'monitor_check_info{check="web/http"}')[0]["metric"]
        assert info["prefecture"] == "13" and info["tier"] == "national"
        assert daemon.proc.poll() is None, daemon.output()
