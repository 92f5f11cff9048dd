"""One phase with the peer: blackbox_exporter driven by a Prometheus that scrapes /probe for every
target every 10 s (one scrape = one probe), measured over one window.

Probes done in the window are counted from Prometheus's own counter of scrapes,
`prometheus_target_interval_length_seconds_count` (observed once per scrape of every target after
its first), read from Prometheus's /metrics before and after the window. Two cross-checks are
reported: the connections the farm served in the window and, by PromQL at the end of the window,
the `up` samples Prometheus stored in it. The verdict is `probe_success` of each target's last probe.
"""

from __future__ import annotations

import time
from typing import Any

from bench import promtext
from bench.configs import INTERVAL_S, Scenario, blackbox_config, peer_prometheus_config
from bench.context import BLACKBOX, Context, Window, measure, prometheus_argv
from bench.procs import free_port, wait_http

SCRAPES = "prometheus_target_interval_length_seconds_count"


def _result(window: Window, scenario: Scenario, prom_url: str) -> dict[str, Any]:
    rate = window.rate(promtext.total(window.after, SCRAPES) - promtext.total(window.before, SCRAPES))
    done = rate * window.seconds  # probes in the CPU window
    served = sum(window.farm_served.values())
    cpu = window.cpu["blackbox"] + window.cpu["prometheus"]
    span = f"{round(window.seconds)}s"
    return {
        "window_s": round(window.seconds, 2),
        "probes": round(done),
        "probes_per_s": rate,
        "expected_per_s": scenario.expected_rate,
        "farm_served_per_s": served / window.seconds,
        "up_samples_in_window": promtext.query_value(prom_url, f"sum(count_over_time(up[{span}]))"),
        "failed_scrapes_in_window": promtext.query_value(
            prom_url, f"sum(count_over_time(up[{span}])) - sum(sum_over_time(up[{span}]))"
        ),
        "cpu_s": {k: round(v, 3) for k, v in window.cpu.items()},
        "peer_cpu_per_1k": 1000 * cpu / done if done else None,
        "peer_cpu_per_1k_by_farm_count": 1000 * cpu / served if served else None,
        "blackbox_cpu_per_1k": 1000 * window.cpu["blackbox"] / done if done else None,
        "prometheus_cpu_per_1k": 1000 * window.cpu["prometheus"] / done if done else None,
        "peer_cores": cpu / window.seconds,
        "farm_cpu_s": round(window.farm_cpu, 3),
        "farm_served": window.farm_served,
        "machine_busy": round(window.machine_busy, 3),
        "other_cores": round(window.other_cores, 3),
    }


def _verdicts(prom_url: str, scenario: Scenario) -> dict[str, Any]:
    ok = promtext.query_value(prom_url, "count(probe_success == 1)") or 0.0
    return {
        "checks": scenario.checks,
        "last_probe_ok": ok,
        "last_probe_ok_share": ok / scenario.checks,
        "targets_up": promtext.query_value(prom_url, "count(up == 1)"),
        "avg_probe_duration_s": promtext.query_value(prom_url, "avg(probe_duration_seconds)"),
    }


def _wait_first_scrapes(prom_url: str, targets: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (promtext.query_value(prom_url, "count(up)") or 0) >= targets:
            return
        time.sleep(1.0)
    raise RuntimeError(f"Prometheus had not scraped all {targets} targets after {timeout:.0f}s")


def run(ctx: Context, scenario: Scenario) -> dict[str, Any]:
    workdir = ctx.dir(f"peer-{scenario.name}")
    exporter = f"127.0.0.1:{free_port()}"
    bb_argv = [BLACKBOX, f"--config.file={blackbox_config(workdir / 'blackbox.yml')}"]
    blackbox = ctx.procs.start(f"blackbox-{scenario.name}", [*bb_argv, f"--web.listen-address={exporter}"])
    wait_http(f"http://{exporter}/metrics", blackbox)
    prom_listen = f"127.0.0.1:{free_port()}"
    prom_config = peer_prometheus_config(scenario, ctx.farm.ports, exporter, workdir / "prometheus.yml")
    started = time.monotonic()
    prometheus = ctx.procs.start(f"prometheus-peer-{scenario.name}", prometheus_argv(prom_config, prom_listen))
    prom_url = f"http://{prom_listen}"
    wait_http(f"{prom_url}/-/ready", prometheus)
    ready_s = time.monotonic() - started
    _wait_first_scrapes(prom_url, scenario.checks)
    first_s = time.monotonic() - started
    # the scrape counter counts a target's scrapes after its first: every target must be past its
    # first scrape before the window, and the window must start at least one interval after that
    pause = max(ctx.options.warmup - first_s, INTERVAL_S + 1.0)
    ctx.log(f"  blackbox_exporter + Prometheus ready in {ready_s:.1f}s, all scraped at {first_s:.1f}s; +{pause:.0f}s")
    time.sleep(pause)

    def snapshot() -> list[promtext.Sample]:
        return promtext.scrape(f"{prom_url}/metrics", [SCRAPES])

    window = measure(ctx, {"blackbox": blackbox, "prometheus": prometheus}, snapshot)
    result: dict[str, Any] = {
        "contender": "peer",
        "scenario": scenario.name,
        **{f"{kind}_checks": getattr(scenario, kind) for kind in ("tcp", "http", "icmp", "dns")},
        "startup_s": round(ready_s, 2),
        "window": _result(window, scenario, prom_url),
        "memory_mb": {"blackbox": blackbox.memory(), "prometheus": prometheus.memory()},
        "verdicts": _verdicts(prom_url, scenario),
    }
    w = result["window"]
    ctx.log(
        f"  peer: {w['probes_per_s']:.0f} probes/s, {w['peer_cpu_per_1k']:.3f} CPU-s/1k probes "
        f"(exporter {w['blackbox_cpu_per_1k']:.3f} + Prometheus {w['prometheus_cpu_per_1k']:.3f})"
    )
    ctx.procs.stop(prometheus)
    ctx.procs.stop(blackbox)
    return result
