"""Incidents through redundancy, merges and recoveries on the lab (issue 18 points 4, 5, 8).

`monitor lab run` (as root, cuts are real kernel drops) with 2 prefectures and a daemon on the lab's
config plus a webhook playbook of one level. The schedule, per prefecture:
1. LGWAN link: the primary circuit is cut (link DEGRADED), 35 s later the backup too (link DOWN), 35 s
   later both are restored.
2. The edge router is cut for 60 s (everything behind it UNREACHABLE), then restored.
Read back: the incidents about each link (one is right), the pages that reached the webhook (their
subjects: a severity change must be one), and, for the edge cut, which incidents list the services
behind the router (the router's, not a recovery blip's; none may end with no services).

Run as root, alone on the lab: `flock /tmp/lab.lock .venv/bin/python -m bench.transitions_lab_bench`
(~5 minutes). `--code DIR` runs the daemon from another checkout (before/after); `--group-wait` sets it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from monitor.demo.lab import read_env_file
from tests.e2e.peers import ROOT, Process, Receiver, free_port, http_get, wait_for


def lab_fault(lab: str, target: str, mode: str) -> None:
    done = subprocess.run([sys.executable, "-m", "monitor", "lab", "fault", target, mode, "--lab", lab],
                          capture_output=True, text=True, timeout=30, cwd=ROOT)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr)


def bench_config(config_dir: Path, hook: str, group_wait: str | None) -> Path:
    config: dict[str, Any] = yaml.safe_load((config_dir / "monitor.yml").read_text(encoding="utf-8"))
    if group_wait:
        config.setdefault("incidents", {})["group_wait"] = group_wait
    config["notifiers"] = {"hook": {"kind": "webhook", "url": hook, "secret": "${BENCH_HOOK_SECRET}"}}
    config["contacts"] = {"noc": {"name": "NOC", "webhook": "hook"}}
    config["playbooks"] = {"default": {"levels": [{"notify": [{"contacts": ["noc"], "via": ["hook"]}]}]}}
    path = config_dir / "bench-transitions.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def get(base: str, path: str) -> Any:
    status, body = http_get(f"{base}{path}")
    if status != 200:
        raise RuntimeError(f"{path}: HTTP {status}")
    return json.loads(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout the daemon runs from")
    parser.add_argument("--group-wait", help="override incidents.group_wait")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="transitions-"))
    lab = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BENCH_HOOK_SECRET": "bench-secret-0123456789"}
    lab_proc = Process([sys.executable, "-m", "monitor", "lab", "run", "--prefectures", "2", "--listen", lab,
                        "--config-dir", str(tmp / "config")], tmp / "lab.log", env)  # fmt: skip
    daemon: Process | None = None
    hook = Receiver()
    try:
        wait_for(lambda: "lab_ready" in lab_proc.output(), 90, what="lab ready")
        env.update(read_env_file(tmp / "config" / "lab.env"))
        port = free_port()
        config = bench_config(tmp / "config", hook.url, args.group_wait)
        daemon_env = {**env, "PYTHONPATH": str(args.code)}
        # -P: not the working directory (this checkout) first on the path, but --code
        daemon = Process([sys.executable, "-P", "-m", "monitor", "run", "--config", str(config), "--listen",
                          f"127.0.0.1:{port}"], tmp / "daemon.log", daemon_env)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_get(f"{base}/readyz")[0] == 200, 90, what="daemon ready")
        up = lambda: all(t["state"] == "up" for t in get(base, "/api/v1/targets?limit=1000")["targets"])  # noqa: E731
        wait_for(up, 90, what="everything up")
        names = [t["name"] for t in get(base, "/api/v1/targets?limit=1000")["targets"]]
        prefs = sorted({m.group(1) for n in names if (m := re.fullmatch(r"pref(\d\d)-edge", n))})
        started = time.time()
        for p in prefs:  # 1. a link: primary, then backup too
            lab_fault(lab, f"lgwan-{p}-01-primary", "cut")
        time.sleep(35)
        for p in prefs:
            lab_fault(lab, f"lgwan-{p}-01-backup", "cut")
        time.sleep(35)
        for p in prefs:
            lab_fault(lab, f"lgwan-{p}-01-primary", "up")
            lab_fault(lab, f"lgwan-{p}-01-backup", "up")
        time.sleep(40)
        edge_at = time.time()
        for p in prefs:  # 2. the edge router
            lab_fault(lab, f"pref{p}-edge", "cut")
        time.sleep(60)
        for p in prefs:
            lab_fault(lab, f"pref{p}-edge", "up")
        time.sleep(60)
        incidents = get(base, "/api/v1/incidents?limit=200")["incidents"]
        details = [get(base, f"/api/v1/incidents/{i['id']}") for i in incidents]
        mine = [d for d in details if d["opened_at"] and _epoch(d["opened_at"]) >= started]
        version = subprocess.run([sys.executable, "-P", "-c", "import monitor; print(monitor.__file__)"],
                                 capture_output=True, text=True, env=daemon_env, check=True).stdout.strip()  # fmt: skip
        result: dict[str, Any] = {"code": version, "group_wait": args.group_wait or "(config)", "links": {}}
        for p in prefs:
            circuits = {f"lgwan-{p}-01-primary", f"lgwan-{p}-01-backup"}
            about = [d for d in mine if d["key"].removeprefix("target:") in circuits and not d["merged_into"]]
            ids = {d["id"] for d in about}
            pages = [x["json"] for x in hook.deliveries if x["json"].get("incident", {}).get("id") in ids]
            result["links"][p] = {
                "incidents": len(about),
                "severities": [d["severity"] for d in about],
                "pages": [f"{x['event']}: {x['subject']}" for x in pages],
            }
        edge_window = [d for d in mine if _epoch(d["opened_at"]) >= edge_at and not d["merged_into"]]
        result["edge"] = [
            {"key": d["key"], "services": sorted(d["affected"].get("services", {})),
             "seconds": round(_epoch(d["resolved_at"]) - _epoch(d["opened_at"]), 1) if d["resolved_at"] else None,
             "paged": any(x["json"].get("incident", {}).get("id") == d["id"] for x in hook.deliveries)}
            for d in edge_window
        ]  # fmt: skip
        result["resolved_pages"] = [x["json"]["subject"] for x in hook.deliveries if x["json"]["event"] == "resolved"]
        print(json.dumps(result, ensure_ascii=False, indent=1))
    finally:
        if daemon is not None:
            daemon.stop()
        lab_proc.stop()
        hook.server.shutdown()


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


if __name__ == "__main__":
    main()
