"""Detection latency on the lab: from an injected hard outage to the incident and to the page.

`monitor lab run` (as root, a cut is a real drop of every packet in the kernel, so probes time out as on
a cut fibre) and a daemon on the lab's config, 10 s interval, 3 s timeout, 2 failures to DOWN. Each
round cuts every prefecture's edge router at a random moment within one interval (so the cut falls at
every phase of the schedule), waits for the incidents and pages, restores, and waits for recovery.
Measured against the lab's ground-truth log (the exact time of each cut):
- detection: the cut to the incident being opened (the target confirmed DOWN);
- page: the cut to the page arriving at a webhook receiver (detection + group_wait, 10 s here).
Once per `--retry` value: by default fast re-probe on (retry_interval 2 s: a failure is re-checked at
once) and off (retry_interval = interval); `--retry 5s` measures the shipped default. Target: detection
of a hard outage in under 15 s at a 10 s interval.

Run: `make bench-detection` (~8 minutes); writes bench/results/detection.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from monitor.demo.lab import read_env_file
from tests.e2e.peers import Process, Receiver, free_port, http_get, http_post, wait_for

RESULTS = Path(__file__).parent / "results"
INTERVAL = 10.0


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_config(config_dir: Path, hook: str, retry: str) -> Path:
    config: dict[str, Any] = yaml.safe_load((config_dir / "monitor.yml").read_text(encoding="utf-8"))
    config["defaults"]["retry_interval"] = retry
    config["notifiers"] = {"hook": {"kind": "webhook", "url": hook, "secret": "${BENCH_HOOK_SECRET}"}}
    config["contacts"] = {"noc": {"name": "NOC", "webhook": "hook"}}
    config["playbooks"] = {"default": {"levels": [{"notify": [{"contacts": ["noc"], "via": ["hook"]}]}]}}
    path = config_dir / f"bench-{retry}.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def run_mode(lab: str, config_dir: Path, env: dict[str, str], retry: str, rounds: int, tmp: Path) -> dict[str, Any]:
    hook = Receiver()
    port = free_port()
    config = bench_config(config_dir, hook.url, retry)
    args = [sys.executable, "-m", "monitor", "run", "--config", str(config), "--listen", f"127.0.0.1:{port}",
            "--data-dir", str(tmp / f"data-{retry}")]  # fmt: skip
    daemon = Process(args, tmp / f"daemon-{retry}.log", env)
    base = f"http://127.0.0.1:{port}"
    detection: list[float] = []
    page: list[float] = []
    try:
        wait_for(lambda: http_get(f"{base}/readyz")[0] == 200, 60, what="daemon ready")

        def targets() -> dict[str, str]:
            return {t["name"]: t["state"] for t in json.loads(http_get(f"{base}/api/v1/targets")[1])["targets"]}

        wait_for(lambda: set(targets().values()) == {"up"}, 90, what="everything up")
        edges = sorted(n for n in targets() if n.endswith("-edge"))
        for number in range(rounds):
            time.sleep(random.uniform(0, INTERVAL))
            start = time.time()
            for edge in edges:
                body = {"target": edge, "mode": "cut", "at": start + random.uniform(0, INTERVAL), "note": "bench"}
                # 202: scheduled; 200: applied at once (its moment had come by the time the lab read it)
                assert http_post(f"http://{lab}/lab/faults", json.dumps(body).encode())[0] in (200, 202)
            seen = len(hook.deliveries)

            def opened() -> dict[str, dict[str, Any]]:
                listing = json.loads(http_get(f"{base}/api/v1/incidents?limit=500")[1])["incidents"]
                return {i["key"].removeprefix("target:"): i for i in listing if i["status"] != "resolved"}

            incidents = wait_for(lambda: set(edges) <= set(opened()) and opened(), 60, what="incidents")
            wait_for(lambda s=seen: all(any(e in json.dumps(d["json"]) for d in hook.deliveries[s:]) for e in edges),
                     60, what="pages")  # fmt: skip
            truth = json.loads(http_get(f"http://{lab}/lab/faults")[1])["log"]
            for edge in edges:
                cut_at = max(r["at"] for r in truth if r["target"] == edge and r["mode"] == "cut")
                detection.append(datetime.fromisoformat(incidents[edge]["opened_at"]).timestamp() - cut_at)
                paged = min(d["at"] for d in hook.deliveries[seen:] if edge in json.dumps(d["json"]))
                page.append(paged - cut_at)
            for edge in edges:
                http_post(f"http://{lab}/lab/faults", json.dumps({"target": edge, "mode": "up"}).encode())
            wait_for(lambda: set(targets().values()) == {"up"} and not opened(), 120, what="recovered")
            print(f"  {retry}: round {number + 1}/{rounds} done", file=sys.stderr)
    finally:
        daemon.stop()
    return {
        "retry_interval": retry,
        "samples": len(detection),
        "detection_median_s": round(statistics.median(detection), 2),
        "detection_p99_s": round(quantile(detection, 0.99), 2),
        "detection_max_s": round(max(detection), 2),
        "page_median_s": round(statistics.median(page), 2),
        "page_p99_s": round(quantile(page, 0.99), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefectures", type=int, default=8, help="cuts per round (one edge router each)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--retry", default="2s,10s", help="retry_interval values, one run each (2s,10s)")
    parser.add_argument("--out", type=Path, default=RESULTS / "detection.json")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-detection-"))
    lab = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BENCH_HOOK_SECRET": "bench"}
    lab_proc = Process([sys.executable, "-m", "monitor", "lab", "run", "--prefectures", str(args.prefectures),
                        "--listen", lab, "--config-dir", str(tmp / "config")], tmp / "lab.log", env)  # fmt: skip
    try:
        wait_for(lambda: "lab_ready" in lab_proc.output(), 60, what="lab ready")
        kernel = json.loads(http_get(f"http://{lab}/lab/faults")[1])["kernel"]
        env.update(read_env_file(tmp / "config" / "lab.env"))
        results = [run_mode(lab, tmp / "config", env, retry, args.rounds, tmp) for retry in args.retry.split(",")]
    finally:
        lab_proc.stop()
    out = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "kernel_drops": kernel, "interval_s": INTERVAL,
           "group_wait_s": 10, "results": results}  # fmt: skip
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1), encoding="utf-8")
    print("| fast re-probe | cuts | detection median / p99 / max | page median / p99 |")
    print("|---|---|---|---|")
    for r in results:
        on = {"2s": "on (retry 2 s)", "10s": "off (retry = interval)"}.get(r["retry_interval"], r["retry_interval"])
        detection = f"{r['detection_median_s']} / {r['detection_p99_s']} / {r['detection_max_s']} s"
        print(f"| {on} | {r['samples']} | {detection} | {r['page_median_s']} / {r['page_p99_s']} s |")


if __name__ == "__main__":
    main()
