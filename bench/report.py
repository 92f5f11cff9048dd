"""Results: the machine's description, and the Markdown tables printed at the end of a run (and
pasted into BENCHMARKS.md)."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

from bench.context import BLACKBOX, PROMETHEUS, REPO

TARGET_RATIO = 0.5  # daemon CPU per 1,000 probes at most half the peer's
TARGET_P99_S = 0.100
TARGET_RSS_MB = 300.0


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not found"
    return (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else "unknown"


def machine() -> dict[str, Any]:
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        models = re.findall(r"^model name\s*:\s*(.+)$", fh.read(), re.M)
    try:
        import uvloop

        uvloop_version = uvloop.__version__
    except ImportError:
        uvloop_version = "not installed"
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": models[0] if models else platform.processor(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "uvloop": uvloop_version,
        "prometheus": _version([PROMETHEUS, "--version"]),
        "blackbox_exporter": _version([BLACKBOX, "--version"]),
    }


def git_revision(rev: str | None) -> dict[str, Any]:
    """The code under test: an exported revision, or the work tree (with its uncommitted changes)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False)
        return done.stdout.rstrip()

    if rev:
        return {"describe": git("rev-parse", "--short", rev), "source": f"git archive {rev}"}
    changed = [line for line in git("status", "--porcelain", "--", "monitor", "probes").splitlines() if line]
    return {"describe": git("describe", "--always", "--dirty"), "source": "work tree", "changed_files": changed}


def _f(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.1f}"


def _pct(share: float | None) -> str:
    return "–" if share is None else f"{share * 100:.1f}%"


def _table(header: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _find(phases: list[dict[str, Any]], contender: str, scenario: str) -> dict[str, Any] | None:
    return next((p for p in phases if p.get("contender") == contender and p.get("scenario") == scenario), None)


CONTENDED_CORES = 0.3  # other work above this in a window makes its numbers doubtful


def _flag(*windows: dict[str, Any], verdicts: tuple[dict[str, Any], ...] = ()) -> str:
    """A mark for rows measured on a busy machine or with targets judged down on a healthy farm."""
    marks = []
    if any(w.get("other_cores", 0.0) > CONTENDED_CORES for w in windows):
        marks.append("busy machine")
    if any(v.get("last_probe_ok_share", 1.0) < 0.99 for v in verdicts):
        marks.append("targets judged down")
    return f" ⚠ {', '.join(marks)}" if marks else ""


KIND_LABEL = {"tcp": "connect", "http": "GET 2xx", "icmp": "one echo", "dns": "A over UDP"}


def _checks(phase: dict[str, Any]) -> int:
    return sum(phase.get(f"{kind}_checks", 0) for kind in KIND_LABEL)


def comparison(phases: list[dict[str, Any]]) -> str:
    rows = []
    for scenario in KIND_LABEL:
        daemon, peer = _find(phases, "daemon", scenario), _find(phases, "peer", scenario)
        if not daemon or not peer:
            continue
        alone, window = daemon["alone"], peer["window"]
        with_prom = daemon.get("with_prometheus", {})
        d, dp, p = alone["daemon_cpu_per_1k"], with_prom.get("with_prometheus_cpu_per_1k"), window["peer_cpu_per_1k"]
        farm_d = 1000 * alone["farm_cpu_s"] / alone["probes"] if alone["probes"] else None
        farm_p = 1000 * window["farm_cpu_s"] / window["probes"] if window["probes"] else None
        flag = _flag(alone, window, verdicts=(daemon["verdicts"], peer["verdicts"]))
        rows.append(
            [
                f"{scenario.upper()} ({KIND_LABEL[scenario]}){flag}",
                f"{_checks(daemon):,}",
                f"{alone['probes_per_s']:.0f} / {window['probes_per_s']:.0f}",
                _f(d),
                _f(dp),
                f"{_f(p)} ({_f(window['blackbox_cpu_per_1k'])} + {_f(window['prometheus_cpu_per_1k'])})",
                _f(d / p if d and p else None, 2),
                _f(dp / p if dp and p else None, 2),
                f"{_pct(daemon['verdicts']['last_probe_ok_share'])} / {_pct(peer['verdicts']['last_probe_ok_share'])}",
                f"{_f(farm_d)} / {_f(farm_p)}",
                f"{alone['other_cores']:.2f} / {window['other_cores']:.2f}",
            ]
        )
    header = [
        "probe",
        "checks",
        "probes/s daemon / peer",
        "daemon CPU-s per 1k",
        "daemon + its Prometheus",
        "peer: exporter + Prometheus",
        "ratio daemon / peer",
        "ratio with Prometheus",
        "judged up daemon / peer",
        "farm CPU-s per 1k (daemon / peer phase)",
        "other load, cores (daemon / peer phase)",
    ]
    return _table(header, rows) if rows else ""


def _daemon_row(phase: dict[str, Any], window: dict[str, Any], memory: dict[str, float]) -> list[str]:
    return [
        f"{_checks(phase):,}",
        f"{window['probes_per_s']:.0f}",
        _f(window["daemon_cpu_per_1k"]),
        f"{window['daemon_cores'] * 100:.0f}%",
        _ms(window["lag"]["p50_s"]),
        _ms(window["lag"]["p99_s"]),
        f"{memory.get('VmRSS', 0):.0f} ({memory.get('VmHWM', 0):.0f})",
        f"{window['failed_probes']:.0f} / {window['skipped_runs']:.0f}",
        f"{window['other_cores']:.2f}",
    ]


DAEMON_HEADER = [
    "checks",
    "probes/s",
    "CPU-s per 1k probes",
    "of a core",
    "lag p50 ms",
    "lag p99 ms",
    "RSS MB (peak)",
    "failed / skipped",
    "other load, cores",
]


def mixed(phases: list[dict[str, Any]]) -> str:
    phase = _find(phases, "daemon", "mixed")
    if not phase:
        return ""
    rows = [["alone" + _flag(phase["alone"]), *_daemon_row(phase, phase["alone"], phase["memory_mb"])]]
    if "with_prometheus" in phase:
        w = phase["with_prometheus"]
        row = _daemon_row(phase, w, phase.get("memory_mb_with_prometheus", {}))
        row[2] += f" (+ Prometheus: {_f(w.get('with_prometheus_cpu_per_1k'))})"
        rows.append(["scraped every 15 s" + _flag(w), *row])
    table = _table(["daemon", *DAEMON_HEADER], rows)
    windows = [("alone", phase["alone"], phase["memory_mb"])]
    if "with_prometheus" in phase:
        windows.append(("scraped", phase["with_prometheus"], phase.get("memory_mb_with_prometheus", {})))
    verdicts = []
    for name, window, memory in windows:
        p99, rss = window["lag"]["p99_s"], memory.get("VmRSS", 0.0)
        lag_ok = p99 is not None and p99 < TARGET_P99_S
        verdicts.append(
            f"{name}: p99 lag < 100 ms {'met' if lag_ok else 'MISSED'}, "
            f"RSS < 300 MB {'met' if rss < TARGET_RSS_MB else 'MISSED'}"
        )
    checks = _checks(phase)
    up = _pct(phase["verdicts"]["last_probe_ok_share"])
    return f"{table}\n\nTargets at {checks:,} checks: {'; '.join(verdicts)}. Judged up: {up}."


def scaling(phases: list[dict[str, Any]]) -> str:
    """Both contenders at each size of the scaling phase (a quarter of each kind), and the daemon as two shards."""
    rows = []
    sizes = sorted({_checks(p) for p in phases if str(p.get("scenario", "")).startswith("all-")})
    for size in sizes:
        peer = _find(phases, "peer", f"all-{size}")
        daemons = (_find(phases, "daemon", f"all-{size}"), _find(phases, "daemon", f"all-{size}-2shards"))
        for daemon in filter(None, daemons):
            shards = f" ({daemon['shards']} shards)" if daemon.get("shards", 1) > 1 else ""
            alone, memory = daemon["alone"], daemon["memory_mb"]
            window = peer["window"] if peer else {}
            d, p = alone["daemon_cpu_per_1k"], window.get("peer_cpu_per_1k")
            peer_rss = sum(m.get("VmRSS", 0.0) for m in peer["memory_mb"].values()) if peer else None
            peer_up = _pct(peer["verdicts"]["last_probe_ok_share"]) if peer else "–"
            verdicts = (daemon["verdicts"], peer["verdicts"]) if peer else (daemon["verdicts"],)
            rows.append(
                [
                    f"{size:,}{shards}{_flag(alone, verdicts=verdicts)}",
                    f"{alone['expected_per_s']:.0f}",
                    f"{alone['probes_per_s']:.0f} / {window.get('probes_per_s', 0):.0f}",
                    f"{_f(d)} / {_f(p)}",
                    _f(d / p if d and p else None, 2),
                    f"{alone['daemon_cores']:.2f} / {window.get('peer_cores', 0):.2f}",
                    _ms(alone["lag"]["p99_s"]),
                    f"{memory.get('VmRSS', 0):.0f} / {_f(peer_rss, 0)}",
                    f"{_pct(daemon['verdicts']['last_probe_ok_share'])} / {peer_up}",
                    f"{alone['other_cores']:.2f} / {window.get('other_cores', 0):.2f}",
                ]
            )
    header = [
        "checks (¼ each TCP, HTTP, ICMP, DNS)",
        "probes/s scheduled",
        "probes/s daemon / peer",
        "CPU-s per 1k daemon / peer",
        "ratio",
        "cores daemon / peer",
        "daemon lag p99 ms",
        "RSS MB daemon / peer",
        "judged up daemon / peer",
        "other load, cores",
    ]
    return _table(header, rows) if rows else ""


def flows(phases: list[dict[str, Any]]) -> str:
    """The daemon probing while its collector decodes and judges a flow export, and nfcapd on the same export."""
    phase = _find(phases, "daemon", "flows")
    if not phase:
        return ""
    peer = next((p for p in phases if p.get("contender") == "nfcapd"), None)
    rows = []
    for name, key, memory in (
        ("alone", "alone", "memory_mb"),
        ("scraped every 15 s", "with_prometheus", "memory_mb_with_prometheus"),
    ):
        if key not in phase:
            continue
        w, f = phase[key], phase[key]["flows"]
        rows.append(
            [
                name + _flag(w),
                f"{_checks(phase):,}",
                f"{w['probes_per_s']:.0f} / {w['expected_per_s']:.0f}",
                f"{f['decoded_per_s']:,.0f} / {f['sent_per_s']:,.0f}",
                _pct(f["loss_share"]),
                f"{w['daemon_cores'] * 100:.0f}%",
                _ms(w["lag"]["p99_s"]),
                f"{phase.get(memory, {}).get('VmRSS', 0):.0f}",
                f"{w['failed_probes']:.0f} / {w['skipped_runs']:.0f}",
                f"{w['other_cores']:.2f}",
            ]
        )
    table = _table(
        ["daemon", "checks", "probes/s done / scheduled", "records/s decoded / sent", "records lost", "of a core",
         "lag p99 ms", "RSS MB", "failed / skipped", "other load, cores"],
        rows,
    )  # fmt: skip
    if peer:
        table += (
            f"\n\nnfcapd on the same export in the same run: {peer['received']:,} of {peer['sent']:,} records "
            f"({_pct(peer['loss_share'])} lost), {peer['cpu_s_per_100k']:.3f} CPU-s per 100,000 records, "
            f"{peer['cores'] * 100:.0f}% of a core."
        )
    return table


def markdown(results: dict[str, Any]) -> str:
    phases = results["phases"]
    m = results["machine"]
    parts = [
        f"Machine: {m['nproc']} x {m['cpu_model']}, kernel {m['kernel']}, Python {m['python']}, uvloop {m['uvloop']}",
        f"Code: {results.get('git', {}).get('describe', '?')}. Window {results['options']['duration']:.0f} s after "
        f"{results['options']['warmup']:.0f} s warm-up. 'Other load' is CPU used on the machine by anything but the "
        "measured processes, the farm and the harness (another user's work): it competes for the 2 cores.",
        "",
    ]
    if text := comparison(phases):
        parts += ["### Daemon vs blackbox_exporter + Prometheus (CPU seconds per 1,000 probes)", text]
    if text := mixed(phases):
        parts += ["", "### Daemon, mixed TCP + HTTP", text]
    if text := flows(phases):
        parts += ["", "### Daemon probing while judging a flow export, and nfcapd on the same export", text]
    if text := scaling(phases):
        parts += ["", "### Cost by number of checks: daemon vs blackbox_exporter + Prometheus", text]
    errors = [p for p in phases if "error" in p]
    if errors:
        parts += ["", "### Phases that failed", *(f"- {p['phase']}: {p['error']}" for p in errors)]
    return "\n".join(parts)
