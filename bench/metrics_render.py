"""/metrics rendering at 10,000 checks, in process: how long the per-check text takes to build and to
serve, and how big it is.

`python -m bench.metrics_render [--checks N] [--out FILE]`: an engine with N checks (a quarter each of
ICMP, HTTP with TLS facts, DNS and SNMP device polls with 8 interfaces), one result each, then

- rebuild: the whole per-check text from the engine's state (at start and after a reload);
- update: one check's result rewritten, as the daemon does when a result arrives (mean per result);
- scrape: snapshot plus the join of the chunks into the /metrics body (what a scrape waits for);
- body cache (monitor.metrics.body), per format (text, OpenMetrics, protobuf) plain and gzip: CPU of the
  first scrape, of one after a quarter of the checks got a new result (a 15 s scrape of checks probed
  every 60 s), and of one with nothing changed; and the body's size.

`--interfaces N` sets the interfaces per SNMP device (every IF-MIB family the daemon exports, as
probes.snmp.ifmib.FAMILIES: 18 series per interface); the national estate's devices have 48
(`--checks 2256 --interfaces 48`: 564 devices, its SNMP share).

`--out` writes the body, so two versions can be compared byte for byte (`cmp`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor.config.loader import load_config
from monitor.core.engine import Engine
from monitor.metrics.body import BodyCache
from monitor.metrics.exposition import DaemonMetrics, StateCollector, exposition
from monitor.metrics.negotiation import Format
from probes.base import ProbeResult, Series
from probes.snmp.ifmib import FAMILIES as IF_FAMILIES

KINDS = ("ping", "web", "dns", "snmp")
ROLES = ("primary", "backup")  # the circuits of an LGWAN connection: the descriptive labels a real estate carries
INTERFACES = 8
NL = b"\n"


def config_text(targets: int) -> str:
    rows = "\n".join(
        f"  - {{name: t{i}, address: 127.1.{i // 250}.{i % 250 + 1}, labels: {{tier: municipality,"
        f' prefecture: "{i % 47 + 1:02d}", system: lgwan, role: {ROLES[i % len(ROLES)]}, site: muni-{i % 1788}}},'
        f" modules: [ping, web, dns, snmp]}}"
        for i in range(targets)
    )
    return f"""
modules:
  ping: {{kind: icmp}}
  web: {{kind: http, http: {{scheme: https}}}}
  dns: {{kind: dns, dns: {{query_name: bench.example.jp}}}}
  snmp: {{kind: snmp, snmp: {{community: {{file: community}}}}}}
targets:
{rows}
"""


def result(kind: str, i: int, interfaces: int = INTERFACES) -> ProbeResult:
    """A plausible result of each kind, with the values and series it measures."""
    r = ProbeResult(ok=True, duration=0.01 + i * 1e-7, finished_at=1_700_000_000.0 + i / 7)
    if kind == "ping":
        r.values.update({"rtt_min_seconds": 0.0001, "rtt_avg_seconds": 0.0002 + i * 1e-9, "rtt_max_seconds": 0.0004,
                         "jitter_seconds": 1e-5, "loss_ratio": 0.0, "packets_sent": 3.0})  # fmt: skip
    elif kind == "web":
        r.values.update({"http_status_code": 200.0, "http_redirects": 0.0, "http_version": 1.1,
                         "content_length_bytes": 5120.0, "tls_cert_not_after_timestamp_seconds": 1.8e9,
                         "tls_earliest_cert_not_after_timestamp_seconds": 1.79e9})  # fmt: skip
        r.phases.update({"resolve": 1e-4, "connect": 2e-4, "tls": 3e-3, "processing": 4e-3, "transfer": 1e-4})
    elif kind == "dns":
        r.values.update({"dns_rcode": 0.0, "dns_answer_rrs": 1.0})
        r.phases.update({"query": 3e-4})
    else:
        r.phases.update({"system": 1e-3, "interfaces": 2e-3})
        r.series += [
            Series("monitor_snmp_up", "1 if the SNMP agent answered.", "gauge", (), 1.0),
            Series("monitor_device_uptime_seconds", "sysUpTime.", "gauge", (), 3600.0 + i),
        ]
        for n in range(1, interfaces + 1):
            labels = (("if_index", str(n)), ("if_name", f"GigabitEthernet0/{n}"), ("if_alias", f"to muni-{i}-{n}"))
            for fam in IF_FAMILIES:
                if "direction" in fam.labels:
                    for way in ("in", "out"):
                        r.series.append(Series(fam.name, fam.help, fam.type, (*labels, ("direction", way)), 0.01 * n))
                else:
                    r.series.append(Series(fam.name, fam.help, fam.type, labels, float(i * n * 1000 + 7)))
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_render", description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=10_000)
    parser.add_argument("--interfaces", type=int, default=INTERFACES)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    targets = args.checks // len(KINDS)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "monitor.yml"
        path.write_text(config_text(targets), encoding="utf-8")
        (Path(tmp) / "community").write_text("public\n", encoding="utf-8")
        engine = Engine(load_config(path).inventory)
    registry = CollectorRegistry()
    DaemonMetrics(registry)
    state = StateCollector(engine)
    for i in range(targets):
        for kind in KINDS:
            engine.observe(f"t{i}/{kind}", result(kind, i, args.interfaces), 1.0)

    started = time.perf_counter()
    state.rebuild()
    rebuild = time.perf_counter() - started
    state.attached = True

    ids = [f"t{i}/{kind}" for i in range(targets) for kind in KINDS]
    started = time.perf_counter()
    for cid in ids:
        state.on_result(engine.checks[cid])
    update = (time.perf_counter() - started) / len(ids)

    scrapes = []
    for _ in range(5):
        started = time.perf_counter()
        body = exposition(registry, state, state.snapshot())
        scrapes.append(time.perf_counter() - started)
    if args.out is not None:
        args.out.write_bytes(body)
    digest = hashlib.sha256(body).hexdigest()[:16]
    print(f"checks {len(ids)}  lines {body.count(NL)}  bytes {len(body)}  sha256 {digest}")
    print(f"rebuild {rebuild * 1000:.0f} ms  update {update * 1e6:.1f} us/result  "
          f"scrape median {statistics.median(scrapes) * 1000:.0f} ms (min {min(scrapes) * 1000:.0f})")  # fmt: skip
    body_cache(engine, state, registry, ids, targets, args.interfaces)
    return 0


def rss_mb() -> float:
    """Resident memory now (the cache keeps every form asked for so far: the figure grows down the table)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def body_cache(
    engine: Engine, state: StateCollector, registry: CollectorRegistry, ids: list[str], targets: int, interfaces: int
) -> None:
    """CPU per scrape of the cached body, per format and compression (see the module's docstring)."""
    cache = BodyCache(registry, state, max_age=0)

    def scrape(fmt: Format, zipped: bool) -> tuple[float, int]:
        started = time.process_time()
        body = cache.encode(cache.view(fmt, zipped), fmt, zipped)
        return time.process_time() - started, len(body)

    print(f"{'format':<22}{'bytes':>12}{'per check':>10}{'first':>9}{'1/4 new':>9}{'unchanged':>10}  (CPU ms)"
          f"{'RSS MB':>9}")  # fmt: skip
    for fmt in Format:
        for zipped in (False, True):
            first, size = scrape(fmt, zipped)
            kinds = {cid: cid.rsplit("/", 1)[1] for cid in ids}
            # a quarter of the targets (every kind of check on them) report a new result
            for n, cid in enumerate(ids[k] for k in range(len(ids)) if (k // len(KINDS)) % 4 == 0):
                engine.observe(cid, result(kinds[cid], n + targets, interfaces), 2.0)
                state.on_result(engine.checks[cid])
            quarter, _ = scrape(fmt, zipped)
            unchanged, _ = scrape(fmt, zipped)
            name = f"{fmt.value}{' gzip' if zipped else ''}"
            print(f"{name:<22}{size:>12}{size / len(ids):>10.0f}{first * 1000:>9.0f}{quarter * 1000:>9.0f}"
                  f"{unchanged * 1000:>10.0f}{rss_mb():>19.0f}")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
