"""`monitor lab run|fault|log`: the simulated national network on its own (monitor/demo/lab.py), and the
command line of its fault API: inject a fault now, at a time or for a while, and read the ground truth."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.cli.common import DEFAULT_LISTEN, run_async
from monitor.demo.estate_snmp import TRAP_LISTEN
from monitor.demo.fault_modes import INTRUDE_KINDS, MODES

if TYPE_CHECKING:
    from monitor.cli.common import Subparsers

DEFAULT_LAB = "127.0.0.1:9320"


def add_parser(sub: Subparsers) -> None:
    lab = sub.add_parser("lab", help="the simulated national network on its own, and its fault API")
    commands = lab.add_subparsers(dest="lab_command", required=True)
    run = commands.add_parser("run", help="start the simulated network and write the daemon's config for it")
    run.add_argument("--prefectures", type=int, default=47, help="how many prefectures (1-47)")
    run.add_argument("--listen", default=DEFAULT_LAB, help=f"the fault API's HOST:PORT (default {DEFAULT_LAB})")
    run.add_argument("--config-dir", type=Path, default=Path("lab-config"), help="where to write monitor.yml")
    run.add_argument("--daemon-listen", default=DEFAULT_LISTEN, help="the listen address written in the config")
    run.add_argument("--trap-to", default=TRAP_LISTEN["demo"], help="where devices send their traps")
    run.add_argument("--schedule", choices=["none", "default"], default="none", help="the demo's fault cycle")
    run.add_argument("--kernel", choices=["auto", "on", "off"], default="auto", help="real drops with nftables (root)")
    run.add_argument("--webhook", help="page this webhook URL (default: the lab's own receiver, /lab/pages)")
    run.add_argument("--ack-timeout", default="20s", help="the lab playbook's time to escalate (default 20s)")
    run.set_defaults(func=cmd_lab_run)
    fault = commands.add_parser("fault", help="inject a fault (now, --at a time, --for a while)")
    fault.add_argument("target")
    fault.add_argument("mode", choices=MODES)
    fault.add_argument("--interface", help="ifName or ifAlias (link-down, link-up, flap, fill)")
    fault.add_argument("--for", dest="duration", type=float, help="seconds until it is undone")
    fault.add_argument("--at", help='when: epoch seconds, "+SECONDS" or ISO 8601 with offset')
    fault.add_argument("--loss", type=float, help="degrade: percent of packets lost (root)")
    fault.add_argument("--fill", type=float, help="fill: traffic as a multiple of the usual rate")
    fault.add_argument("--kind", choices=INTRUDE_KINDS, help="intrude: what the organisation's terminal does")
    fault.add_argument("--note", help="why (kept in the ground-truth log)")
    fault.add_argument("--lab", default=DEFAULT_LAB, help=f"the lab's HOST:PORT (default {DEFAULT_LAB})")
    fault.set_defaults(func=cmd_lab_fault)
    history = commands.add_parser("log", help="the ground truth: every fault and its end, with exact times")
    history.add_argument("--lab", default=DEFAULT_LAB)
    history.add_argument("--json", action="store_true")
    history.set_defaults(func=cmd_lab_log)


def cmd_lab_run(args: argparse.Namespace) -> int:
    from monitor.demo.lab import LabOptions, run_lab  # the simulated network: only for the verb that starts it
    from monitor.logs import setup_logging

    options = LabOptions(
        prefectures=args.prefectures,
        listen=args.listen,
        config_dir=args.config_dir,
        daemon_listen=args.daemon_listen,
        trap_to=args.trap_to,
        schedule=args.schedule == "default",
        kernel=args.kernel,
        webhook=args.webhook,
        ack_timeout=args.ack_timeout,
    )
    setup_logging("info")
    return run_async(run_lab(options), use_uvloop=True)


def _request(lab: str, method: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://{lab}/lab/faults", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace").strip()


def _call(command: str, lab: str, method: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """(exit code, answer): 0 and the JSON answer, 1 and the lab's refusal, 2 when there is no lab."""
    try:
        status, answer = _request(lab, method, body)
    except OSError as exc:
        print(f"monitor lab {command}: no lab at {lab}: {exc}", file=sys.stderr)
        return 2, None
    if status >= 400:
        print(f"monitor lab {command}: {answer}", file=sys.stderr)
        return 1, None
    return 0, answer


def cmd_lab_fault(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"target": args.target, "mode": args.mode}
    for key, value in (("interface", args.interface), ("for", args.duration), ("at", args.at), ("loss", args.loss),
                       ("fill", args.fill), ("kind", args.kind), ("note", args.note)):  # fmt: skip
        if value is not None:
            body[key] = value
    code, answer = _call("fault", args.lab, "POST", body)
    if code == 0:
        print(json.dumps(answer, ensure_ascii=False))
    return code


def cmd_lab_log(args: argparse.Namespace) -> int:
    code, answer = _call("log", args.lab, "GET")
    if code != 0:
        return code
    if args.json:
        print(json.dumps(answer["log"], ensure_ascii=False, indent=1))
        return 0
    for record in answer["log"]:
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record["at"])) + f".{int(record['at'] % 1 * 1000):03d}Z"
        kernel = " [kernel]" if record["kernel"] else ""
        print(f"{at}  {record['target']:<28} {record['mode']:<30}{kernel} {record['note']}")
    return 0
