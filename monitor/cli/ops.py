"""`monitor incidents ...` and `monitor maintenance ...`: the operator actions of the API from a shell.

They talk to a running daemon with a bearer token (client.py), so every action is authorised and audited
like any other.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from monitor.cli.client import call, common_options, show

if TYPE_CHECKING:
    from monitor.cli.common import Subparsers


def incidents(args: argparse.Namespace) -> int:
    if args.action == "list":
        query = f"?status={args.status}" if args.status else ""
        data = call(args, "GET", f"/api/v1/incidents{query}")
        rows = [["ID", "STATUS", "SEVERITY", "LEVEL", "OPENED", "TITLE"]]
        rows += [
            [str(i["id"]), i["status"], i["severity"], str(i["level"]), i["opened_at"], i["title"]]
            for i in data["incidents"]
        ]
        show(args, data, rows)
        return 0
    if args.action == "show":
        show(args, call(args, "GET", f"/api/v1/incidents/{args.id}"))
        return 0
    text = args.text or ""
    paths = {
        "ack": ("ack", {"comment": text}),
        "note": ("notes", {"text": text}),
        "escalate": ("escalate", {"comment": text}),
        "resolve": ("resolve", {"reason": text or "resolved by hand"}),
    }
    path, body = paths[args.action]
    data = call(args, "POST", f"/api/v1/incidents/{args.id}/{path}", body)
    print(f"incident #{data['id']}: {data['status']}, level {data['level']}")
    return 0


def maintenance(args: argparse.Namespace) -> int:
    if args.action == "list":
        data = call(args, "GET", "/api/v1/maintenance")
        rows = [["ID", "NAME", "SOURCE", "ACTIVE", "WHEN", "SCOPE", "REASON"]]
        for w in data["maintenance"]:
            when = (
                f"{w['starts_at']} - {w['ends_at']}" if w["starts_at"] else f"cron '{w['cron']}' for {w['duration']:g}s"
            )
            scope = ",".join(w["scope"].get("targets") or []) or json.dumps(
                w["scope"].get("labels"), ensure_ascii=False
            )
            rows.append(
                [str(w["id"] or "-"), w["name"], w["source"], "yes" if w["active"] else "no", when, scope, w["reason"]]
            )
        show(args, data, rows)
        return 0
    if args.action == "cancel":
        call(args, "DELETE", f"/api/v1/maintenance/{args.id}")
        print(f"maintenance #{args.id} cancelled")
        return 0
    body: dict[str, Any] = {
        "name": args.name,
        "reason": args.reason,
        "targets": args.target or [],
        "timezone": args.timezone,
    }
    body["select"] = dict(s.split("=", 1) for s in args.select or [])
    for key in ("start", "end", "cron", "duration"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    data = call(args, "POST", "/api/v1/maintenance", body)
    print(f"maintenance #{data['id']} {data['name']} created")
    return 0


def add_parsers(sub: Subparsers) -> None:
    common = common_options()

    inc = sub.add_parser("incidents", help="list, show and act on incidents through the daemon's API")
    inc_sub = inc.add_subparsers(dest="action", required=True)
    listing = inc_sub.add_parser("list", parents=[common])
    listing.add_argument("--status", choices=["open", "acknowledged", "resolved"])
    inc_sub.add_parser("show", parents=[common]).add_argument("id", type=int)
    for action, helptext in (("ack", "comment"), ("note", "the note"), ("escalate", "comment"), ("resolve", "reason")):
        parser = inc_sub.add_parser(action, parents=[common])
        parser.add_argument("id", type=int)
        parser.add_argument("text", nargs="?", help=helptext)
    inc.set_defaults(func=incidents)

    mnt = sub.add_parser("maintenance", help="list, schedule and cancel maintenance windows (計画停止)")
    mnt_sub = mnt.add_subparsers(dest="action", required=True)
    mnt_sub.add_parser("list", parents=[common])
    mnt_sub.add_parser("cancel", parents=[common]).add_argument("id", type=int)
    add = mnt_sub.add_parser("add", parents=[common], help="one-off (--start/--end) or recurring (--cron/--duration)")
    add.add_argument("--name", required=True)
    add.add_argument("--reason", required=True)
    add.add_argument("--target", action="append", help="a target name (repeatable)")
    add.add_argument("--select", action="append", help="label=value (repeatable)")
    add.add_argument("--start", help="ISO 8601, e.g. 2026-12-01T01:00 (JST unless an offset is given)")
    add.add_argument("--end")
    add.add_argument("--cron", help='e.g. "0 2 * * 0" (Sundays 02:00)')
    add.add_argument("--duration", help="e.g. 2h")
    add.add_argument("--timezone", default="Asia/Tokyo")
    mnt.set_defaults(func=maintenance)
