"""The generated SLO rules for a national-size estate: their size, and what a real Prometheus spends
evaluating them per cycle, for the rules as `monitor rules` writes them and, with `--before REV`, as a
git revision wrote them (name regexes), side by side against the same series.

`python -m bench.slo_rules_eval [--services 4500] [--seconds 60] [--before REV]`: a config of N services
over four SLO variants (the default; national at 99.95% with DEGRADED as down; LGWAN-ASP with office
hours; prefecture at 99.5%), an exporter on loopback serving the series a daemon exports for them
(monitor_service_up/_state/_info, the SLO figures, monitor_ha_leader), a Prometheus scraping it every
5 s and evaluating the rules every 5 s; after `--seconds`, the rule groups' last evaluation durations
summed (prometheus_rule_group_last_duration_seconds; median of the last 5 cycles).

Only `--seconds` of history: the 30-day windows hold that much, so the figures are the cost of the
selectors and joins over the estate's series, not of a month of samples.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from monitor.availability.rules import render
from monitor.availability.slo import slo_for, slo_label
from monitor.config.loader import load_config
from monitor.core.inventory import Inventory
from monitor.core.state import ALL_STATES
from tests.e2e.peers import free_port, http_get, prom_query, wait_for

TIERS = ("municipality", "national", "asp", "prefecture")


def config_text(services: int) -> str:
    targets = "\n".join(
        f"  - {{name: t{i}, address: 127.0.{i // 250}.{i % 250 + 1}, modules: [ping]}}" for i in range(services)
    )
    rows = "\n".join(
        f"  - {{name: svc-{i:05d}, targets: [t{i}], labels: {{tier: {TIERS[i % 4]}, prefecture: "
        f'"{i % 47 + 1:02d}", system: lgwan}}}}'
        for i in range(services)
    )
    return f"""
modules: {{ping: {{kind: icmp}}}}
targets:
{targets}
services:
{rows}
slo:
  hours: {{office: {{start: "09:00", end: "17:00"}}}}
  rules:
    - {{match: {{tier: national}}, objective: 0.9995, degraded: down}}
    - {{match: {{tier: asp}}, service_hours: office}}
    - {{match: {{tier: prefecture}}, objective: 0.995}}
"""


def exposition(inventory: Inventory) -> bytes:
    """What the daemons export for these services (one daemon, the leader), each up, some degraded."""
    lines = ["monitor_ha_leader 1"]
    for n, (name, service) in enumerate(sorted(inventory.services.items())):
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(service.labels.items()))
        slo = slo_label(slo_for(service, inventory.slo))
        lines.append(f'monitor_service_info{{service="{name}",{labels},slo="{slo}"}} 1')
        lines.append(f'monitor_service_up{{service="{name}"}} 1')
        current = "degraded" if n % 50 == 0 else "up"
        lines += [f'monitor_service_state{{service="{name}",state="{s.value}"}} {int(s.value == current)}'
                  for s in ALL_STATES]  # fmt: skip
        lines.append(f'monitor_service_in_service_time{{service="{name}",slo_window="month"}} 1')
        lines.append(f'monitor_service_error_budget_remaining_ratio{{service="{name}",slo_window="month"}} 0.8')
    return ("\n".join(lines) + "\n").encode()


def serve(body: bytes) -> tuple[ThreadingHTTPServer, int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def evaluate(rules: str, exporter: int, seconds: float, tmp: Path) -> tuple[float, int]:
    """(median seconds per evaluation cycle of all groups, rules loaded) in a real Prometheus."""
    tmp.mkdir()
    (tmp / "rules.yml").write_text(rules.replace("interval: 30s", "interval: 5s"), encoding="utf-8")
    port = free_port()
    config = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "rule_files": [str(tmp / "rules.yml")],
        "scrape_configs": [
            {"job_name": "monitor", "static_configs": [{"targets": [f"127.0.0.1:{exporter}"]}]},
            {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]},
        ],
    }
    (tmp / "prometheus.yml").write_text(json.dumps(config), encoding="utf-8")
    args = ["prometheus", f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
    with (tmp / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_get(f"{base}/-/ready")[0] == 200, 60, what="prometheus ready")
        time.sleep(seconds)
        cycles = []
        for _ in range(5):
            rows = prom_query(base, "sum(prometheus_rule_group_last_duration_seconds)")
            cycles.append(float(rows[0]["value"][1]))
            time.sleep(5)
        loaded = prom_query(base, "sum(prometheus_rule_group_rules)")
        groups = json.loads(http_get(f"{base}/api/v1/rules")[1])["data"]["groups"]
        slowest = sorted(((r["evaluationTime"], r["name"], g["name"], r["query"][:90])
                          for g in groups for r in g["rules"]), reverse=True)[:4]  # fmt: skip
        for seconds_, name_, group_, query_ in slowest:
            print(f"    {seconds_ * 1000:8.1f} ms  {group_}  {name_}  {query_}")
        failures = prom_query(base, "sum(prometheus_rule_evaluation_failures_total)")
        if failures and float(failures[0]["value"][1]) > 0:
            raise SystemExit(f"rule evaluations failed: see {tmp / 'prometheus.log'}")
        return statistics.median(cycles), int(float(loaded[0]["value"][1]))
    finally:
        proc.terminate()
        proc.wait(30)


def rules_of(revision: str, config: Path, tmp: Path) -> str:
    """`monitor rules` as a git revision wrote them (its monitor/ exported, run with this interpreter)."""
    tree = tmp / f"rev-{revision}"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", revision, "monitor", "probes"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    out = tmp / f"rules-{revision}"
    subprocess.run([sys.executable, "-m", "monitor", "rules", "--config", str(config), "--output", str(out)],
                   cwd=tree, check=True, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"})  # fmt: skip
    return (out / "slo-rules.yml").read_text(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slo_rules_eval", description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=4500)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--before", help="also the rules of this git revision (e.g. main)")
    parser.add_argument("--repeat", type=int, default=1, help="alternate the rule sets this many times (noise)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        config = tmp / "monitor.yml"
        config.write_text(config_text(args.services), encoding="utf-8")
        inventory = load_config(config).inventory
        server, exporter = serve(exposition(inventory))
        try:
            sets = {"HEAD": render(inventory)}
            if args.before:
                sets[args.before] = rules_of(args.before, config, tmp)
            print(f"{args.services} services, {len(exposition(inventory).splitlines())} series")
            for label, text in [item for _ in range(args.repeat) for item in sets.items()]:
                cycle, loaded = evaluate(text, exporter, args.seconds, Path(tempfile.mkdtemp(dir=tmp)) / label)
                print(f"{label:<10} rules {loaded:>4}  bytes {len(text.encode()):>9}  "
                      f"evaluation per cycle {cycle * 1000:.1f} ms")  # fmt: skip
        finally:
            server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
