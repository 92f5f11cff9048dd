"""One phase with this daemon: start it on a generated config, wait the warm-up, measure a window
with the daemon alone (one process, or `Scenario.shards` processes with `--shard i/N`, whose CPU,
counters and memory are summed), then (optionally) start a Prometheus scraping its /metrics every 15 s and
measure a second window with both.

From the daemon's /metrics, read before and after each window: `monitor_probes_total` (probes
done), `monitor_scheduler_lag_seconds` (p50/p99 from the bucket deltas), `monitor_probes_skipped_total`,
and at the end `monitor_probe_success` (the verdict of each check's last probe).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import promtext
from bench.configs import Scenario, daemon_config, daemon_prometheus_config
from bench.context import MONITOR, Context, Window, measure, prometheus_argv
from bench.flow_bench import free_port as free_udp_port
from bench.flow_load import FlowSender
from bench.procs import Proc, free_port, http_get, wait_http

LAG = "monitor_scheduler_lag_seconds"
COUNTERS = ("monitor_probes_total", "monitor_probes_skipped_total", f"{LAG}_bucket")
FLOW_COUNTERS = ("monitor_flow_records_total", "monitor_flow_dropped_total", "monitor_flow_policy_records_total")
SENT = "bench_flow_records_sent"  # not the daemon's: the sender's count, put among the samples at each edge


def _validate(config: str, env: dict[str, str] | None) -> None:
    done = subprocess.run(
        [str(MONITOR), "check-config", config],
        capture_output=True,
        text=True,
        check=False,
        env=None if env is None else {**os.environ, **env},
    )
    if done.returncode != 0:
        raise RuntimeError(f"generated config is invalid:\n{done.stdout}{done.stderr}")


def _lag(window: Window) -> dict[str, Any]:
    before, after = window.before, window.after
    delta = promtext.bucket_delta(promtext.buckets(before, LAG), promtext.buckets(after, LAG))
    finite = sorted(le for le in delta if le != float("inf"))
    over = {f"over_{le:g}s": delta[float("inf")] - delta[le] for le in finite if le in (0.1, 1.0)}
    return {
        "observations": delta[float("inf")],
        "p50_s": promtext.histogram_quantile(0.5, delta),
        "p99_s": promtext.histogram_quantile(0.99, delta),
        "p999_s": promtext.histogram_quantile(0.999, delta),
        **over,
    }


def _window_result(window: Window, scenario: Scenario) -> dict[str, Any]:
    def probes(**match: str) -> float:
        return promtext.total(window.after, "monitor_probes_total", **match) - promtext.total(
            window.before, "monitor_probes_total", **match
        )

    rate = window.rate(probes())
    done = rate * window.seconds  # probes in the CPU window
    served = sum(window.farm_served.values())
    cpu = sum(seconds for name, seconds in window.cpu.items() if name.startswith("daemon"))
    result: dict[str, Any] = {
        "window_s": round(window.seconds, 2),
        "probes": round(done),
        "probes_per_s": rate,
        "expected_per_s": scenario.expected_rate,
        "farm_served_per_s": served / window.seconds,
        "failed_probes": probes(result="failure"),
        "skipped_runs": promtext.total(window.after, "monitor_probes_skipped_total")
        - promtext.total(window.before, "monitor_probes_skipped_total"),
        "cpu_s": {k: round(v, 3) for k, v in window.cpu.items()},
        "daemon_cpu_per_1k": 1000 * cpu / done if done else None,
        "daemon_cpu_per_1k_by_farm_count": 1000 * cpu / served if served else None,
        "daemon_cpu_per_1k_scheduled": 1000 * cpu / (scenario.expected_rate * window.seconds),
        "daemon_cores": cpu / window.seconds,
        "lag": _lag(window),
        "farm_cpu_s": round(window.farm_cpu, 3),
        "farm_served": window.farm_served,
        "machine_busy": round(window.machine_busy, 3),
        "other_cores": round(window.other_cores, 3),
        "snapshot_span_s": round(window.snapshot_span, 2),
        "metrics_scrape_s": round(window.snapshot_seconds, 3),  # the harness's /metrics GET at the window start
    }
    if "prometheus" in window.cpu:
        both = cpu + window.cpu["prometheus"]
        result["with_prometheus_cpu_per_1k"] = 1000 * both / done if done else None
    if scenario.flow_rate:
        result["flows"] = _flows(window)
    return result


def _flows(window: Window) -> dict[str, Any]:
    """Records sent against records decoded and judged in the window (loss is what the collector never saw)."""

    def delta(name: str, **match: str) -> float:
        return promtext.total(window.after, name, **match) - promtext.total(window.before, name, **match)

    sent = delta(SENT)
    decoded = delta("monitor_flow_records_total", outcome="decoded")
    return {
        "sent_per_s": window.rate(sent),
        "decoded_per_s": window.rate(decoded),
        "judged_per_s": window.rate(delta("monitor_flow_policy_records_total")),
        "rate_limited": delta("monitor_flow_records_total", outcome="rate_limited"),
        "kernel_dropped_datagrams": delta("monitor_flow_dropped_total", reason="kernel"),
        # the edges of the two counts are read a few ms apart: within a datagram or two either way
        "loss_share": max(0.0, 1 - decoded / sent) if sent else None,
    }


def _verdicts(metrics_urls: list[str], scenario: Scenario) -> dict[str, Any]:
    names = ["monitor_probe_success", "monitor_check_state"]
    found = [sample for url in metrics_urls for sample in promtext.scrape(url, names)]
    success = [s.value for s in found if s.name == "monitor_probe_success"]
    up = promtext.total(found, "monitor_check_state", state="up")
    return {
        "checks": scenario.checks,
        "last_probe_ok": sum(success),
        "last_probe_ok_share": sum(success) / scenario.checks,
        "state_up_share": up / scenario.checks,
    }


def _prometheus_health(url: str) -> dict[str, Any]:
    return {
        "up": promtext.query_value(url, 'up{job="monitor"}'),
        "scrape_duration_s": promtext.query_value(url, 'scrape_duration_seconds{job="monitor"}'),
        "samples_scraped": promtext.query_value(url, 'scrape_samples_scraped{job="monitor"}'),
        "scrapes": promtext.query_value(url, 'count_over_time(up{job="monitor"}[10m])'),
    }


def _start(ctx: Context, scenario: Scenario, config: str, workdir: Path) -> list[tuple[Proc, str]]:
    """The daemon, or one process per shard; (process, /metrics URL) for each, once all are ready."""
    started = []
    for index in range(1, scenario.shards + 1):
        listen = f"127.0.0.1:{free_port()}"
        data = workdir / f"data-{index}"
        argv = [str(MONITOR), "run", "--config", config, "--listen", listen, "--data-dir", str(data)]
        name = f"daemon-{scenario.name}"
        if scenario.shards > 1:
            argv += ["--shard", f"{index}/{scenario.shards}"]
            name += f"-shard{index}"
        started.append((ctx.procs.start(name, argv, env=ctx.daemon_env), listen))
    for proc, listen in started:
        wait_http(f"http://{listen}/readyz", proc)
    return [(proc, f"http://{listen}/metrics") for proc, listen in started]


def _memory(daemons: list[Proc]) -> dict[str, float]:
    """VmRSS and VmHWM, summed over the shards."""
    total: dict[str, float] = {}
    for proc in daemons:
        for key, value in proc.memory().items():
            total[key] = total.get(key, 0.0) + value
    return total


def run(ctx: Context, scenario: Scenario, with_prometheus: bool) -> dict[str, Any]:
    workdir = ctx.dir(f"daemon-{scenario.name}")
    flow_port = free_udp_port() if scenario.flow_rate else 0
    config = str(daemon_config(scenario, ctx.farm.ports, workdir / "monitor.yml", flow_port))
    _validate(config, ctx.daemon_env)
    started = time.monotonic()
    shards = _start(ctx, scenario, config, workdir)
    ready_s = time.monotonic() - started
    daemons = {f"daemon{i}": proc for i, (proc, _) in enumerate(shards)}
    urls = [url for _, url in shards]
    warm_until = time.monotonic() + ctx.options.warmup
    time.sleep(min(ctx.options.warmup / 2, 12.0))
    t0 = time.monotonic()
    bodies = [http_get(url) for url in urls]  # the first /metrics fills the label caches: keep it out of the window
    first_scrape = {
        "seconds": round(time.monotonic() - t0, 3),
        "bytes": sum(len(b) for b in bodies),
        "lines": sum(b.count(b"\n") for b in bodies),
    }
    del bodies
    ctx.log(f"  daemon ready in {ready_s:.1f}s ({scenario.shards} process(es)); first /metrics {first_scrape}")
    sender = FlowSender(flow_port, scenario.flow_rate).start() if scenario.flow_rate else None
    names = COUNTERS + FLOW_COUNTERS if sender else COUNTERS
    time.sleep(max(0.0, warm_until - time.monotonic()))

    def snapshot() -> list[promtext.Sample]:
        sent = [promtext.Sample(SENT, {}, float(sender.records_sent()))] if sender else []
        return sent + [sample for url in urls for sample in promtext.scrape(url, names)]

    alone = measure(ctx, daemons, snapshot)
    result: dict[str, Any] = {
        "contender": "daemon",
        "scenario": scenario.name,
        **{f"{kind}_checks": getattr(scenario, kind) for kind in ("tcp", "http", "icmp", "dns")},
        "shards": scenario.shards,
        "startup_s": round(ready_s, 2),
        "first_metrics_scrape": first_scrape,
        "alone": _window_result(alone, scenario),
        "memory_mb": _memory(list(daemons.values())),
        "verdicts": _verdicts(urls, scenario),
    }
    ctx.log(f"  alone: {summary(result['alone'])}")
    if with_prometheus:
        prom_dir = ctx.dir(f"prometheus-daemon-{scenario.name}")
        prom_listen = f"127.0.0.1:{free_port()}"
        scraped = [url.removeprefix("http://").removesuffix("/metrics") for url in urls]
        prom_config = daemon_prometheus_config(scraped, prom_dir / "prometheus.yml")
        prometheus = ctx.procs.start(f"prometheus-daemon-{scenario.name}", prometheus_argv(prom_config, prom_listen))
        wait_http(f"http://{prom_listen}/-/ready", prometheus)
        time.sleep(ctx.options.prom_warmup)
        both = measure(ctx, {**daemons, "prometheus": prometheus}, snapshot)
        result["with_prometheus"] = _window_result(both, scenario)
        result["with_prometheus"]["prometheus_memory_mb"] = prometheus.memory()
        result["with_prometheus"]["scrape"] = _prometheus_health(f"http://{prom_listen}")
        result["memory_mb_with_prometheus"] = _memory(list(daemons.values()))
        ctx.log(f"  with its Prometheus: {summary(result['with_prometheus'])}")
        ctx.procs.stop(prometheus)
    if sender:
        sender.stop()
    for proc in daemons.values():
        ctx.procs.stop(proc)
    return result


def summary(window: dict[str, Any]) -> str:
    lag = window["lag"]
    p99 = lag["p99_s"]
    text = (
        f"{window['probes_per_s']:.0f} probes/s, {window['daemon_cpu_per_1k']:.3f} CPU-s/1k probes, "
        f"lag p99 {p99 * 1000 if p99 is not None else float('nan'):.1f} ms, failed {window['failed_probes']:.0f}"
    )
    if "flows" in window:
        flows = window["flows"]
        text += f", flows {flows['decoded_per_s']:.0f}/s of {flows['sent_per_s']:.0f}/s sent"
    if "with_prometheus_cpu_per_1k" in window:
        text += f", with Prometheus {window['with_prometheus_cpu_per_1k']:.3f} CPU-s/1k"
    return text
