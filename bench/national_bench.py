"""The national estate in one daemon process, scraped by Prometheus every 15 s (issue 23's first target:
p99 scheduling lag < 100 ms, RSS < 400 MB, /metrics < 100 ms of daemon CPU per scrape; and as two shards).

The estate is `monitor.demo.national` on loopback (3,576 LGWAN circuits by ICMP, 2,400 LGWAN-ASP services
over HTTPS, 517 prefecture devices of 48 interfaces polled over SNMPv3 authPriv every 60 s with their
management ports and ICMP, the access points' uplinks, 288 national servers and VIPs with HTTPS, OCSP,
CRL, the national API and DNS), with the module ports moved to unprivileged ones and the TLS checks
trusting the bench's CA. Its peers are the lab's own simulators, in processes of their own: one serves
every TCP, HTTP(S), OCSP and DNS listener (monitor.demo.network), two serve the SNMP agents, each device an
authoritative SNMPv3 engine (bench.usm_agent); the kernel answers ICMP on 127/8. Notifications go to a
closed loopback port: nothing leaves the machine.

Windows: after `--warmup` (the first SNMP walks and label reads), one of `--duration` seconds with the daemon
alone, then one with a real Prometheus scraping every 15 s. "CPU per scrape" is the daemon's extra CPU
in the scraped window over the alone one, per scrape (rendering, compression and the HTTP exchange).

    .venv/bin/python -m bench.national_bench                  # one process (~6 minutes)
    .venv/bin/python -m bench.national_bench --shards 2       # two processes, `--shard i/2`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from bench import promtext
from bench.context import MONITOR, prometheus_argv
from bench.daemon_phase import _memory as daemon_memory
from bench.daemon_phase import _validate as validate
from bench.procs import Proc, Processes, free_port, http_get, machine_busy, wait_http
from monitor.demo.estate import Estate, SimServer

PORTS = {"tcp": 2222, "http": 8080, "https": 8443, "dns": 5353, "snmp": 1161}
OCSP_PORT = 80  # OCSP checks of CSV rows have no port of their own
SNMP_PROCESSES = 2
SCRAPE_INTERVAL = 15.0
LAG = "monitor_scheduler_lag_seconds"
LOCAL = "monitor_probe_local_failures_total"
COUNTERS = ("monitor_probes_total", "monitor_probes_skipped_total", f"{LAG}_bucket", LOCAL)
CLOSED = "127.0.0.1:9"  # the discard port, nothing listens: notifications fail here, locally
# what the simulator serves for each module of the estate (ICMP: the kernel)
PROTO = {"mgmt_ssh": "tcp", "https": "https", "chukan_api": "https", "http": "http", "crl": "http",
         "jpki_ocsp": "http", "dns": "dns"}  # fmt: skip
SNMP_MODULES = ("snmp_device", "snmp_uplink")


# ------------------------------------------------------------------------------------ the estate


def write_estate(directory: Path) -> Path:
    """The national estate on loopback, made runnable here: its config, CSVs, secrets and the bench CA."""
    from monitor.demo.national import build_national
    from monitor.demo.pki import DemoPKI

    estate = build_national(loopback=True)
    config = estate.config
    for module in config["modules"].values():
        for section in ("tcp", "http", "dns", "snmp"):
            body = module.get(section)
            if not isinstance(body, dict):
                continue
            if "port" in body:
                body["port"] = PORTS["https" if body.get("scheme") == "https" else section]
            if "tls_config" in body:
                body["tls_config"] = {"ca_file": "certs/demo-ca.pem"}
        ocsp = module.get("ocsp")
        if isinstance(ocsp, dict) and "crl" in ocsp:  # by address: the estate's names resolve in its own DNS only
            crl = next(t for t in config["targets"] if t["name"] == "crl-east")
            ocsp["crl"] = f"http://{crl['address']}:{PORTS['http']}/crl/jpki.crl"
    for target in config["targets"]:
        for check in target.get("checks", []):
            if "port" in check:
                check["port"] = PORTS["http"]
    config["traps"]["listen"] = f"127.0.0.1:{free_port()}"
    for notifier in config["notifiers"].values():
        if "urls" in notifier:
            notifier["urls"] = [f"http://{CLOSED}"]
        if "host" in notifier:
            notifier["host"], notifier["port"] = CLOSED.split(":")[0], int(CLOSED.split(":")[1])
    for key in ("console_url", "runbook_url"):
        config["incidents"].pop(key, None)
    path = estate.write(directory, "# The national estate on loopback, by bench.national_bench\n")
    DemoPKI.create(directory / "certs")
    return path


def _rows(directory: Path) -> list[dict[str, Any]]:
    """Every target of the written estate (YAML and CSV), as the daemon will read them."""
    import csv

    config = yaml.safe_load((directory / "monitor.yml").read_text(encoding="utf-8"))
    rows: list[dict[str, Any]] = list(config["targets"])
    for item in config["inventories"]:
        with (directory / item["csv"]).open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                rows.append({**row, "modules": [m for m in row["modules"].split(";") if m]})
    return rows


def _modules_of(row: dict[str, Any]) -> set[str]:
    return {*row.get("modules", []), *(c["module"] for c in row.get("checks", []))}


def simulated(directory: Path) -> Estate:
    """The written estate with the listeners its checks need (estate.servers) and their names (dns_zone)."""
    config = yaml.safe_load((directory / "monitor.yml").read_text(encoding="utf-8"))
    estate = Estate(config=config, csv_files={})
    estate.files = {"secrets/chukan-api-password": (directory / "secrets/chukan-api-password").read_text()}
    for row in _rows(directory):
        hostname = row.get("hostname") or f"{row['name']}.bench.lgwan.example"
        estate.dns_zone[hostname] = row["address"]
        listeners: set[tuple[str, int]] = set()
        for module, port in [(m, None) for m in row.get("modules", [])] + [
            (c["module"], c.get("port")) for c in row.get("checks", [])
        ]:
            proto = PROTO.get(module)
            if proto is None:
                continue
            # an OCSP check without a port of its own asks http://address/ (port 80: the bench runs as root)
            port = port or (OCSP_PORT if module == "jpki_ocsp" else PORTS["https" if proto == "https" else proto])
            if module == "jpki_ocsp":  # the simulator answers OCSP and the API only on hosts that serve them
                estate.ocsp_hosts.add(row["name"])
            elif module == "chukan_api":
                estate.api_hosts.add(row["name"])
            if (proto, port) not in listeners:
                listeners.add((proto, port))
                estate.servers.append(SimServer(row["name"], row["address"], port, proto, hostname))  # type: ignore[arg-type]
    return estate


async def serve_network(directory: Path) -> None:
    """Every TCP, HTTP(S), OCSP, CRL, API and DNS listener of the estate (monitor.demo.network)."""
    from monitor.demo.network import SimNetwork
    from monitor.demo.pki import DemoPKI

    estate = simulated(directory)
    network = SimNetwork(estate, DemoPKI.create(directory / "certs"))
    await network.start()
    print(json.dumps({"listeners": len(estate.servers)}), flush=True)
    await asyncio.Event().wait()


async def serve_agents(directory: Path, part: int, parts: int) -> None:
    """The SNMP devices of the estate, every `parts`-th from `part`: 48 interfaces each, v2c and SNMPv3."""
    from bench.usm_agent import DualProtocol, UsmAgent
    from monitor.demo.snmp_agent import SimDevice, SimInterface

    config = yaml.safe_load((directory / "monitor.yml").read_text(encoding="utf-8"))
    v3 = config["modules"]["snmp_device"]["snmp"]["v3"]
    auth, priv = ((directory / v3[key]["file"]).read_bytes().strip() for key in ("auth_key", "priv_key"))
    users = {v3["username"].encode(): (v3["auth_protocol"], auth, v3["priv_protocol"], priv)}
    devices = [row for row in _rows(directory) if _modules_of(row) & set(SNMP_MODULES)]
    loop = asyncio.get_running_loop()
    served = 0
    for index, row in enumerate(devices):
        if index % parts != part:
            continue
        interfaces = [SimInterface(1, "Te0/0/0", "LGWAN uplink primary", 10_000, 2.0e8),
                      SimInterface(2, "Te0/0/1", "LGWAN uplink backup", 10_000, 2.0e7)]  # fmt: skip
        interfaces += [SimInterface(k, f"Gi1/0/{k}", f"port {k}", 1000, 1e6 * (1 + k % 7)) for k in range(3, 49)]
        device = SimDevice(row["name"], row["address"], b"public", interfaces)
        agent = UsmAgent(device, index, users)
        await loop.create_datagram_endpoint(
            partial(DualProtocol, device, agent), local_addr=(device.address, PORTS["snmp"])
        )
        served += 1
    print(json.dumps({"devices": served}), flush=True)
    await asyncio.Event().wait()


# ------------------------------------------------------------------------------------ the run


def _snapshot(urls: list[str]) -> list[promtext.Sample]:
    return [sample for url in urls for sample in promtext.scrape(url, COUNTERS)]


def _window(daemons: list[Proc], urls: list[str], seconds: float, others: list[Proc]) -> dict[str, Any]:
    before, cpu0, t0 = _snapshot(urls), [p.cpu() for p in daemons], time.monotonic()
    other0, busy0 = sum(p.cpu() for p in others), machine_busy()
    time.sleep(seconds)
    after, cpu1, t1 = _snapshot(urls), [p.cpu() for p in daemons], time.monotonic()
    other1, busy1 = sum(p.cpu() for p in others), machine_busy()
    span = t1 - t0
    delta = promtext.bucket_delta(promtext.buckets(before, LAG), promtext.buckets(after, LAG))

    def counted(name: str, **match: str) -> float:
        return promtext.total(after, name, **match) - promtext.total(before, name, **match)

    cpu = sum(cpu1) - sum(cpu0)
    probes = counted("monitor_probes_total")
    return {
        "window_s": round(span, 1),
        "probes_per_s": round(probes / span, 1),
        "failed_probes": counted("monitor_probes_total", result="failure"),
        "skipped_runs": counted("monitor_probes_skipped_total"),
        "gaps_overload": counted(LOCAL, reason="overload"),  # timeouts our own late loop caused (runner.starved)
        "daemon_cores": round(cpu / span, 3),
        "daemon_cpu_per_1k_probes": round(1000 * cpu / probes, 3) if probes else None,
        "lag_p50_ms": _ms(promtext.histogram_quantile(0.5, delta)),
        "lag_p99_ms": _ms(promtext.histogram_quantile(0.99, delta)),
        "lag_over_100ms": delta[float("inf")] - delta.get(0.1, 0.0),
        "lag_observations": delta[float("inf")],
        "peers_and_prometheus_cores": round((other1 - other0) / span, 3),
        "machine_busy_cores": round((busy1[0] - busy0[0]) / (busy1[1] - busy0[1]) * (os.cpu_count() or 1), 3)
        if busy1[1] > busy0[1]
        else None,
        "memory_mb": {k: round(v, 1) for k, v in daemon_memory(daemons).items()},
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _verdicts(urls: list[str]) -> dict[str, float]:
    found = [s for url in urls for s in promtext.scrape(url, ["monitor_check_state"])]
    states: dict[str, float] = {}
    for sample in found:
        state = sample.labels.get("state", "")
        states[state] = states.get(state, 0.0) + sample.value
    return states


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    config_dir = workdir / "estate"
    config = write_estate(config_dir)
    validate(str(config), None)  # the generated config must load: its error, not a daemon that never starts
    result: dict[str, Any] = {"shards": args.shards}
    with Processes(workdir) as procs:
        serve = [sys.executable, "-m", "bench.national_bench"]
        network = procs.start("network", [*serve, "serve-network", str(config_dir)])
        agents = [
            procs.start(f"agents-{i}", [*serve, "serve-agents", str(config_dir), str(i), str(SNMP_PROCESSES)])
            for i in range(SNMP_PROCESSES)
        ]
        peers = [network, *agents]
        for proc in peers:  # each prints one JSON line once it listens
            _wait_started(proc)
        result["peers"] = {p.name: p.log_tail(1) for p in peers}
        daemons, urls = [], []
        started = time.monotonic()
        for index in range(1, args.shards + 1):
            listen = f"127.0.0.1:{free_port()}"
            argv = [str(MONITOR), "run", "--config", str(config), "--listen", listen,
                    "--data-dir", str(workdir / f"data-{index}")]  # fmt: skip
            if args.shards > 1:
                argv += ["--shard", f"{index}/{args.shards}"]
            daemons.append(procs.start(f"daemon-{index}", argv))
            urls.append(f"http://{listen}/metrics")
        for proc, url in zip(daemons, urls, strict=True):
            wait_http(url.replace("/metrics", "/readyz"), proc, timeout=300)
        result["startup_s"] = round(time.monotonic() - started, 1)
        time.sleep(max(0.0, args.warmup - (time.monotonic() - started)))
        bodies = [http_get(url) for url in urls]
        result["metrics_text"] = {"bytes": sum(map(len, bodies)), "lines": sum(b.count(b"\n") for b in bodies)}
        del bodies
        result["checks"] = _verdicts(urls)
        result["alone"] = _window(daemons, urls, args.duration, peers)
        log(f"alone: {result['alone']}")
        prom_dir = workdir / "prometheus"
        prom_dir.mkdir()
        prom_listen = f"127.0.0.1:{free_port()}"
        targets = [u.removeprefix("http://").removesuffix("/metrics") for u in urls]
        prom_config = prom_dir / "prometheus.yml"
        prom_config.write_text(json.dumps({
            "global": {"scrape_interval": f"{SCRAPE_INTERVAL:g}s", "scrape_timeout": "10s"},
            "scrape_configs": [{"job_name": "monitor", "static_configs": [{"targets": targets}]}],
        }))  # fmt: skip
        argv = prometheus_argv(prom_config, prom_listen)
        if args.prometheus_nice:  # a diagnosis: Prometheus on the same 2 cores, yielding them to the daemon
            argv = ["nice", "-n", str(args.prometheus_nice), *argv]
        prometheus = procs.start("prometheus", argv)
        wait_http(f"http://{prom_listen}/-/ready", prometheus)
        time.sleep(args.prom_warmup)
        scraped = _window(daemons, urls, args.duration, [*peers, prometheus])
        extra = scraped["daemon_cores"] - result["alone"]["daemon_cores"]
        scraped["daemon_cpu_ms_per_scrape"] = round(1000 * extra * SCRAPE_INTERVAL / args.shards, 1)
        base = f"http://{prom_listen}"
        scraped["prometheus_scrape_s"] = promtext.query_value(base, 'max(scrape_duration_seconds{job="monitor"})')
        scraped["samples_per_scrape"] = promtext.query_value(base, 'sum(scrape_samples_scraped{job="monitor"})')
        scraped["prometheus_up"] = promtext.query_value(base, 'min(up{job="monitor"})')
        result["scraped"] = scraped
        result["checks_end"] = _verdicts(urls)
        log(f"scraped: {scraped}")
    return result


def _wait_started(proc: Proc, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited: {proc.log_tail()}")
        if '{"' in proc.log_tail(5):
            return
        time.sleep(0.5)
    raise RuntimeError(f"{proc.name} did not start: {proc.log_tail()}")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "serve-network":
        asyncio.run(serve_network(Path(argv[1])))
        return 0
    if argv and argv[0] == "serve-agents":
        asyncio.run(serve_agents(Path(argv[1]), int(argv[2]), int(argv[3])))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.national_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=1, help="daemon processes (`--shard i/N`)")
    parser.add_argument("--warmup", type=float, default=150.0, help="seconds from the start to the first window")
    parser.add_argument("--duration", type=float, default=90.0, help="seconds per window")
    parser.add_argument("--prom-warmup", type=float, default=35.0, help="seconds from starting Prometheus")
    parser.add_argument(
        "--prometheus-nice",
        type=int,
        default=0,
        help="run Prometheus at this nice level: tells the daemon's own scrape cost from the CPU Prometheus "
        "takes parsing 738k samples on the same two cores (in production it runs on a host of its own)",
    )
    parser.add_argument("--out", type=Path, help="results JSON (default bench/results/national-<time>.json)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="monitor-national-"))
    try:
        result = {"command": " ".join(["python -m bench.national_bench", *argv]), **run(args, workdir)}
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    out = args.out or Path(__file__).parent / "results" / f"national-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2))
    log(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
