"""SNMP benchmark (not a test): the daemon polling IF-MIB of many devices, side by side with
snmp_exporter + Prometheus on the same agents, and the trap receiver's sustained rate.

    python -m bench.snmp_bench [--devices 2000] [--interfaces 48] [--interval 60] [--measure 150]
                               [--exporter-devices 500] [--out bench/results/snmp.json]
    python -m bench.snmp_bench --sizes 100,500,1000 --measure 90 --skip-traps   # both at each size

Agents: simulated devices (monitor.demo.snmp_agent: system group + IF-MIB with moving counters, one
UDP socket per device on 127.61.x.y:1161) in separate processes, so their CPU is not the poller's.
They count the varbinds they answer: CPU per 1,000 varbinds is (poller CPU) / (varbinds served).

1. daemon: `monitor run` with one SNMP device check (v2c, 48 interfaces, the IF-MIB columns of the
   issue) per device every `interval`; CPU of the daemon process (and of a Prometheus scraping it),
   false DOWNs (checks not UP), failed probes, scheduler lag.
2. peer: prometheus-snmp-exporter (if_mib module, ../shared/data/snmp_exporter/if_mib.yml) scraped by
   Prometheus every `interval` for `exporter-devices` devices; CPU of both.
   With `--sizes`, phases 1 and 2 run one after the other at each number of devices instead.
3. traps: v2c linkDown traps at rising rates into the daemon's trap receiver; the highest rate it
   keeps up with (>= 99% counted).
Everything runs on loopback and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[1]
IF_MIB = ROOT.parent / "shared" / "data" / "snmp_exporter" / "if_mib.yml"
PORT = 1161
# SNMPv3 (--v3): one authPriv user on every simulated device, as the government standard asks
V3_USER, V3_AUTH_PROTOCOL, V3_PRIV_PROTOCOL = "bench", "SHA-256", "AES"
V3_AUTH, V3_PRIV = "bench-auth-key-1", "bench-priv-key-1"
TICKS = os.sysconf("SC_CLK_TCK")


def address(i: int) -> str:
    return f"127.61.{i // 250}.{i % 250 + 1}"


def stop_process(proc: subprocess.Popen[bytes], grace: float = 60) -> None:
    """terminate, and kill what does not stop in time (a Prometheus holding 1.76 M series can take longer
    than 20 s to flush on a loaded machine; the run's figures must not be lost to that)."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 30) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return bytes(resp.read())


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            get(url, 2)
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


# ------------------------------------------------------------------------------------ agent farm


async def serve_agents(first: int, count: int, interfaces: int, stats: Path, v3: bool = False) -> None:
    from monitor.demo.snmp_agent import SimDevice, SimInterface, SnmpAgents

    agents = SnmpAgents(PORT)
    devices: list[SimDevice] = []
    loop = asyncio.get_running_loop()
    for i in range(first, first + count):
        ifaces = [SimInterface(k, f"Gi1/0/{k}", f"port {k}", 1000, 1e6 * (1 + k % 7)) for k in range(1, interfaces + 1)]
        device = SimDevice(f"dev{i}", address(i), b"public", ifaces)
        devices.append(device)
        if v3:  # the same device also answers SNMPv3 (bench.usm_agent) on its socket
            from bench.usm_agent import DualProtocol, UsmAgent

            agent = UsmAgent(device, i, {V3_USER.encode(): (V3_AUTH_PROTOCOL, V3_AUTH.encode(), V3_PRIV_PROTOCOL,
                                                             V3_PRIV.encode())})  # fmt: skip
            await loop.create_datagram_endpoint(
                lambda d=device, a=agent: DualProtocol(d, a), local_addr=(device.address, PORT)
            )  # type: ignore[misc]
        else:
            await agents.add(device)
    while True:
        served = sum(d.served for d in devices)
        stats.write_text(json.dumps({"varbinds": served, "cpu": time.process_time()}))  # noqa: ASYNC240 - tiny, local
        await asyncio.sleep(1.0)


class Farm:
    """Agent processes of ~500 devices each."""

    def __init__(self, devices: int, interfaces: int, tmp: Path, v3: bool = False) -> None:
        self.stats: list[Path] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        per = 500
        for first in range(0, devices, per):
            path = tmp / f"agents-{first}.json"
            self.stats.append(path)
            cmd = [sys.executable, "-m", "bench.snmp_bench", "agents", str(first), str(min(per, devices - first)),
                   str(interfaces), str(path), *(["v3"] if v3 else [])]  # fmt: skip
            self.procs.append(subprocess.Popen(cmd, cwd=ROOT))
        deadline = time.monotonic() + 120
        while not all(p.exists() for p in self.stats):
            if time.monotonic() > deadline:
                raise RuntimeError("agent farm did not start")
            time.sleep(0.5)

    def varbinds(self) -> int:
        return sum(json.loads(p.read_text())["varbinds"] for p in self.stats)

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
            p.wait(10)


# ------------------------------------------------------------------------------------ phases


def prometheus(tmp: Path, name: str, scrape: dict[str, Any], interval: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = {"global": {"scrape_interval": f"{int(interval)}s", "scrape_timeout": f"{int(interval * 0.9)}s"},
              "scrape_configs": [scrape]}  # fmt: skip
    (tmp / f"{name}.yml").write_text(json.dumps(config))
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={tmp / f'{name}.yml'}", f"--storage.tsdb.path={tmp / name}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_http(f"http://127.0.0.1:{port}/-/ready")
    return proc, f"http://127.0.0.1:{port}"


def v3_block() -> dict[str, Any]:
    return {
        "username": V3_USER,
        "security_level": "authPriv",
        "auth_protocol": V3_AUTH_PROTOCOL,
        "auth_key": {"file": "v3auth"},
        "priv_protocol": V3_PRIV_PROTOCOL,
        "priv_key": {"file": "v3priv"},
    }


def daemon_config(devices: int, interval: float, trap_port: int, v3: bool = False) -> dict[str, Any]:
    targets = [{"name": f"dev{i}", "address": address(i), "modules": ["snmp_if"]} for i in range(devices)]
    config = {
        "daemon": {"max_concurrent_probes": 1000},
        "defaults": {"interval": f"{int(interval)}s", "timeout": f"{int(interval * 0.5)}s", "failures_to_down": 2},
        "modules": {"snmp_if": {"kind": "snmp", "snmp": {
            "community": {"file": "community"}, "port": PORT, "timeout": "2s", "retries": 1,
            "max_repetitions": 25, "max_requests_in_flight": 100}}},
        "targets": targets,
        "traps": {"listen": f"127.0.0.1:{trap_port}", "communities": [{"file": "community"}],
                  "rate_limit": {"per_second": 100000, "burst": 100000}},
    }  # fmt: skip
    if v3:
        snmp = config["modules"]["snmp_if"]["snmp"]  # type: ignore[index]
        del snmp["community"]
        snmp.update(version="3", v3=v3_block())
    return config


def metric(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    wanted = "\n".join(line for line in text.splitlines() if line.startswith(name))  # the scrape is large
    for family in text_string_to_metric_families(wanted):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def daemon_phase(args: argparse.Namespace, farm: Farm, tmp: Path, devices: int, v3: bool = False) -> dict[str, Any]:
    tmp = tmp / f"daemon-{devices}{'-v3' if v3 else ''}"
    tmp.mkdir()
    (tmp / "community").write_text("public\n")
    (tmp / "v3auth").write_text(V3_AUTH + "\n")
    (tmp / "v3priv").write_text(V3_PRIV + "\n")
    trap_port = free_port()
    (tmp / "monitor.yml").write_text(yaml.safe_dump(daemon_config(devices, args.interval, trap_port, v3)))
    listen = f"127.0.0.1:{free_port()}"
    log = (tmp / "daemon.log").open("wb")
    daemon = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(tmp / "monitor.yml"),
                               "--listen", listen, "--data-dir", str(tmp / "data"), "--log-level", "warning"],
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://{listen}"
    prom = None
    try:
        try:
            wait_http(f"{base}/readyz")
        except RuntimeError:
            print((tmp / "daemon.log").read_text()[-3000:], file=sys.stderr)
            raise
        prom, _ = prometheus(tmp, "prom-daemon", {"job_name": "monitor", "static_configs": [{"targets": [listen]}]},
                             args.interval)  # fmt: skip
        # warm-up: the first polls of all checks come within 10 s (the scheduler's startup spread) and walk
        # the labels too; that burst is several times the steady load and takes a while to drain
        time.sleep(args.warmup)
        cpu0, prom0, vb0, t0 = cpu_seconds(daemon.pid), cpu_seconds(prom.pid), farm.varbinds(), time.monotonic()
        before = get(f"{base}/metrics", 120).decode()
        time.sleep(args.measure)
        cpu1, prom1, vb1, t1 = cpu_seconds(daemon.pid), cpu_seconds(prom.pid), farm.varbinds(), time.monotonic()
        after = get(f"{base}/metrics", 120).decode()
        down = json.loads(get(f"{base}/api/v1/targets?state=down&limit=5"))["count"]
        seconds = t1 - t0
        varbinds = vb1 - vb0
        lag = "monitor_scheduler_lag_seconds_bucket"
        lag_buckets = {le: metric(after, lag, le=le) - metric(before, lag, le=le) for le in ("0.1", "1.0", "+Inf")}
        return {
            "devices": devices,
            "version": "3" if v3 else "2c",
            "interfaces": args.interfaces,
            "interval_s": args.interval,
            "seconds": round(seconds, 1),
            "varbinds_per_s": round(varbinds / seconds),
            "daemon_cpu_share": round((cpu1 - cpu0) / seconds, 3),
            "daemon_cpu_ms_per_1000_varbinds": round((cpu1 - cpu0) / varbinds * 1e6, 2),
            "prometheus_cpu_ms_per_1000_varbinds": round((prom1 - prom0) / varbinds * 1e6, 2),
            "probes_ok": metric(after, "monitor_probes_total", kind="snmp", result="success")
            - metric(before, "monitor_probes_total", kind="snmp", result="success"),
            "probes_failed": metric(after, "monitor_probes_total", kind="snmp", result="failure")
            - metric(before, "monitor_probes_total", kind="snmp", result="failure"),
            "targets_down": down,
            "skipped": metric(after, "monitor_probes_skipped_total") - metric(before, "monitor_probes_skipped_total"),
            "lag_share_over_100ms": round(1 - lag_buckets["0.1"] / max(lag_buckets["+Inf"], 1), 4),
            "lag_share_over_1s": round(1 - lag_buckets["1.0"] / max(lag_buckets["+Inf"], 1), 4),
            "series_per_scrape": after.count("\n"),
        }
    finally:
        if prom is not None:
            stop_process(prom)
        stop_process(daemon)


def probe_cpu_phase(args: argparse.Namespace, farm: Farm, devices: int) -> dict[str, Any]:
    """v2c against v3 authPriv (SHA-256/AES) through the SNMP probe in this process, on the same agents, in
    alternating rounds (each round polls every device once, 100 in flight): CPU-seconds of this process per
    varbind the agents answered. The agents are other processes; no daemon, no Prometheus."""
    try:
        import uvloop  # the daemon's loop

        return uvloop.run(_probe_cpu(args, farm, devices))
    except ImportError:  # pragma: no cover
        return asyncio.run(_probe_cpu(args, farm, devices))


async def _probe_cpu(args: argparse.Namespace, farm: Farm, devices: int) -> dict[str, Any]:
    from probes.base import ProbeRequest
    from probes.snmp.probe import SnmpProbe
    from probes.snmp.settings import SnmpSettings

    os.environ.update(BENCH_COMMUNITY="public", BENCH_V3_AUTH=V3_AUTH, BENCH_V3_PRIV=V3_PRIV)
    common = {"port": PORT, "timeout": "2s", "retries": 1, "max_repetitions": 25, "max_requests_in_flight": 100}
    v3 = {**v3_block(), "auth_key": "${BENCH_V3_AUTH}", "priv_key": "${BENCH_V3_PRIV}"}
    kinds = {
        "2c": SnmpSettings.model_validate({**common, "community": "${BENCH_COMMUNITY}"}),
        "3": SnmpSettings.model_validate({**common, "version": "3", "v3": v3}),
    }
    probe = SnmpProbe()
    limit = asyncio.Semaphore(100)

    async def one(i: int, version: str) -> bool:
        async with limit:
            request = ProbeRequest(address(i), None, PORT, 30.0, {}, f"dev{i}/{version}")
            return (await probe.run(request, kinds[version])).ok

    async def measured(version: str) -> tuple[float, int, int]:
        await asyncio.sleep(1.3)  # the agents write their counts every second
        vb0, c0 = farm.varbinds(), time.process_time()
        ok = sum(await asyncio.gather(*(one(i, version) for i in range(devices))))
        c1 = time.process_time()
        await asyncio.sleep(1.3)
        return c1 - c0, farm.varbinds() - vb0, ok

    out: dict[str, Any] = {"devices": devices, "interfaces": args.interfaces, "rounds": args.probe_rounds}
    for version in kinds:  # first contact: labels walked, v3 engines discovered and keys localized
        cpu, varbinds, ok = await measured(version)
        out[f"first_round_v{version}"] = {"cpu_s": round(cpu, 3), "varbinds": varbinds, "ok": ok}
    totals = {v: [0.0, 0, 0] for v in kinds}
    for r in range(args.probe_rounds):
        for version in ("2c", "3") if r % 2 == 0 else ("3", "2c"):
            cpu, varbinds, ok = await measured(version)
            t = totals[version]
            t[0], t[1], t[2] = t[0] + cpu, t[1] + varbinds, t[2] + ok
    for version, (cpu, varbinds, ok) in totals.items():
        out[f"v{version}"] = {"cpu_s": round(cpu, 3), "varbinds": varbinds, "polls_ok": ok,
                              "polls": devices * args.probe_rounds,
                              "cpu_us_per_varbind": round(cpu / max(varbinds, 1) * 1e6, 3)}  # fmt: skip
    out["v3_over_v2c"] = round(out["v3"]["cpu_us_per_varbind"] / out["v2c"]["cpu_us_per_varbind"], 3)
    out["v3_counters"] = dataclasses.asdict(probe._v3.stats)
    await probe.close()
    return out


def trap_phase(args: argparse.Namespace, tmp: Path) -> list[dict[str, float]]:
    """v2c linkDown traps (from a known agent address) at rising rates for a few seconds each, into a
    daemon that does nothing else (its one target has no checks)."""
    from probes.snmp import ber

    port = free_port()
    config = daemon_config(1, args.interval, port)
    config["targets"][0]["modules"] = []
    (tmp / "traps").mkdir()
    (tmp / "traps" / "community").write_text("public\n")
    (tmp / "traps" / "monitor.yml").write_text(yaml.safe_dump(config))
    listen = f"127.0.0.1:{free_port()}"
    base = f"http://{listen}"
    daemon = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(tmp / "traps" / "monitor.yml"),
                               "--listen", listen, "--data-dir", str(tmp / "traps" / "data"), "--log-level", "error"],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_http(f"{base}/readyz")
        return _blast(args, port, base, daemon.pid, ber)
    finally:
        daemon.terminate()
        daemon.wait(30)


def _blast(args: argparse.Namespace, port: int, base: str, pid: int, ber: Any) -> list[dict[str, float]]:
    varbinds: list[ber.VarBind] = [
        ((1, 3, 6, 1, 2, 1, 1, 3, 0), (ber.TIMETICKS, 1)),
        ((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), (ber.OBJECT_IDENTIFIER, (1, 3, 6, 1, 6, 3, 1, 1, 5, 3))),
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 3), (ber.INTEGER, 3)),
    ]
    datagram = ber.encode(ber.V2C, b"public", ber.TRAP_V2, 1, varbinds)
    results = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((address(0), 0))
        for rate in args.trap_rates:
            before = metric(get(f"{base}/metrics", 120).decode(), "monitor_snmp_traps_total")
            cpu0 = cpu_seconds(pid)
            sent, start = 0, time.monotonic()
            while (elapsed := time.monotonic() - start) < args.trap_seconds:
                due = int(elapsed * rate)
                while sent < due:
                    sock.sendto(datagram, ("127.0.0.1", port))
                    sent += 1
                time.sleep(0.002)
            time.sleep(3)  # let the receiver drain its buffer
            got = metric(get(f"{base}/metrics", 120).decode(), "monitor_snmp_traps_total") - before
            cpu = cpu_seconds(pid) - cpu0
            results.append({"rate": rate, "sent": sent, "counted": got, "share": round(got / sent, 4),
                            "cpu_ms_per_trap": round(cpu / max(got, 1) * 1000, 3)})  # fmt: skip
    return results


def exporter_v3_config(path: Path) -> Path:
    """upstream's if_mib module, polling SNMPv3 authPriv with the farm's user (snmp_exporter 0.21 syntax)."""
    modules = yaml.safe_load(IF_MIB.read_text())
    names = {"SHA-256": "SHA256", "SHA": "SHA", "AES": "AES"}
    auth = {"security_level": "authPriv", "username": V3_USER, "password": V3_AUTH, "priv_password": V3_PRIV,
            "auth_protocol": names[V3_AUTH_PROTOCOL], "priv_protocol": names[V3_PRIV_PROTOCOL]}  # fmt: skip
    modules["if_mib"].update(version=3, auth=auth)
    path.write_text(yaml.safe_dump(modules))
    return path


def peer_phase(args: argparse.Namespace, farm: Farm, tmp: Path, devices: int, v3: bool = False) -> dict[str, Any]:
    tmp = tmp / f"peer-{devices}{'-v3' if v3 else ''}"
    tmp.mkdir()
    port = free_port()
    config = exporter_v3_config(tmp / "if_mib_v3.yml") if v3 else IF_MIB
    exporter = subprocess.Popen(["prometheus-snmp-exporter", f"--config.file={config}",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    prom = None
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        targets = [f"{address(i)}:{PORT}" for i in range(devices)]
        scrape = {
            "job_name": "snmp", "metrics_path": "/snmp", "params": {"module": ["if_mib"]},
            "static_configs": [{"targets": targets}],
            "relabel_configs": [
                {"source_labels": ["__address__"], "target_label": "__param_target"},
                {"source_labels": ["__param_target"], "target_label": "instance"},
                {"target_label": "__address__", "replacement": f"127.0.0.1:{port}"},
            ],
        }  # fmt: skip
        prom, prom_url = prometheus(tmp, "prom-exporter", scrape, args.interval)
        time.sleep(min(args.warmup, args.interval + 15))
        e0, p0, vb0, t0 = cpu_seconds(exporter.pid), cpu_seconds(prom.pid), farm.varbinds(), time.monotonic()
        time.sleep(args.measure)
        e1, p1, vb1, t1 = cpu_seconds(exporter.pid), cpu_seconds(prom.pid), farm.varbinds(), time.monotonic()
        query = urllib.request.quote("count(up == 0)")
        failed = json.loads(get(f"{prom_url}/api/v1/query?query={query}"))["data"]["result"]
        varbinds = vb1 - vb0
        return {
            "devices": devices,
            "version": "3" if v3 else "2c",
            "seconds": round(t1 - t0, 1),
            "varbinds_per_s": round(varbinds / (t1 - t0)),
            "exporter_cpu_ms_per_1000_varbinds": round((e1 - e0) / varbinds * 1e6, 2),
            "prometheus_cpu_ms_per_1000_varbinds": round((p1 - p0) / varbinds * 1e6, 2),
            "cpu_share": round((e1 - e0 + p1 - p0) / (t1 - t0), 3),
            "targets_failing": int(float(failed[0]["value"][1])) if failed else 0,
        }
    finally:
        if prom is not None:
            stop_process(prom)
        stop_process(exporter)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "agents":
        first, count, interfaces, stats = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5])
        asyncio.run(serve_agents(first, count, interfaces, stats, v3=sys.argv[6:7] == ["v3"]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--interfaces", type=int, default=48)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--measure", type=float, default=150.0)
    parser.add_argument("--exporter-devices", type=int, default=500)
    parser.add_argument("--trap-rates", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--trap-seconds", type=float, default=5.0)
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--skip-traps", action="store_true")
    parser.add_argument("--sizes", help="comma-separated device counts: the daemon and the peer at each (100,500,1000)")
    parser.add_argument(
        "--warmup", type=float, help="seconds before a window (2 intervals + 15 s; with --sizes 1 + 15 s)"
    )
    parser.add_argument("--v3", action="store_true",
                        help="SNMPv3 authPriv (SHA-256/AES) agents: v2c vs v3 in this process, then the daemon and "
                             "snmp_exporter polling v3")  # fmt: skip
    parser.add_argument("--probe-devices", type=int, default=500, help="--v3: devices per in-process round")
    parser.add_argument("--probe-rounds", type=int, default=4, help="--v3: measured rounds of each version")
    parser.add_argument("--skip-daemon", action="store_true")
    parser.add_argument("--daemon-version", choices=["2c", "3"], default="3",
                        help="--v3: the daemon's version on the (dual) agents: 2c for a run beside v3")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "snmp.json")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",") if n] if args.sizes else []
    if args.warmup is None:
        args.warmup = (1 if sizes else 2) * args.interval + 15
    with tempfile.TemporaryDirectory(prefix="snmp-bench-") as tmp_name:
        tmp = Path(tmp_name)
        farm = Farm(max(args.devices, args.exporter_devices, *sizes), args.interfaces, tmp, v3=args.v3)
        try:
            started = farm.cpu()
            report: dict[str, Any] = {}
            if args.v3:
                if args.probe_rounds:
                    report["probe_cpu"] = probe_cpu_phase(args, farm, min(args.probe_devices, args.devices))
                    print(json.dumps(report["probe_cpu"], indent=2), flush=True)
                if not args.skip_daemon:
                    v3_daemon = args.daemon_version == "3"
                    report["daemon"] = daemon_phase(args, farm, tmp, args.devices, v3=v3_daemon)
                if not args.skip_peer:
                    report["snmp_exporter"] = peer_phase(args, farm, tmp, args.exporter_devices, v3=True)
            elif sizes:
                report["sizes"] = [
                    {"daemon": daemon_phase(args, farm, tmp, n), "snmp_exporter": peer_phase(args, farm, tmp, n)}
                    for n in sizes
                ]
            else:
                report["daemon"] = daemon_phase(args, farm, tmp, args.devices)
                if not args.skip_peer:
                    report["snmp_exporter"] = peer_phase(args, farm, tmp, args.exporter_devices)
            if not args.skip_traps and not args.v3:
                report["traps"] = trap_phase(args, tmp)
            report["agent_farm_cpu_s"] = round(farm.cpu() - started, 1)
        finally:
            farm.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    if sizes:
        print(size_table(report["sizes"]))


def size_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: the daemon (with the Prometheus that keeps its series) against snmp_exporter + Prometheus."""
    lines = [
        "| devices | varbinds/s daemon / peer | poller ms per 1k varbinds daemon / exporter "
        "| total with Prometheus daemon / peer | ratio | cores daemon+Prom / peer | failed polls / failing targets |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        d, p = row["daemon"], row["snmp_exporter"]
        total_d = d["daemon_cpu_ms_per_1000_varbinds"] + d["prometheus_cpu_ms_per_1000_varbinds"]
        total_p = p["exporter_cpu_ms_per_1000_varbinds"] + p["prometheus_cpu_ms_per_1000_varbinds"]
        cores_d = d["daemon_cpu_share"] * (total_d / d["daemon_cpu_ms_per_1000_varbinds"])
        lines.append(
            f"| {d['devices']:,} | {d['varbinds_per_s']:,} / {p['varbinds_per_s']:,} "
            f"| {d['daemon_cpu_ms_per_1000_varbinds']:.1f} / {p['exporter_cpu_ms_per_1000_varbinds']:.1f} "
            f"| {total_d:.1f} / {total_p:.1f} | **{total_d / total_p:.2f}** | {cores_d:.2f} / {p['cpu_share']:.2f} "
            f"| {d['probes_failed']:.0f} / {p['targets_failing']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
