"""`monitor incidents ...` and `monitor maintenance ...`: the operator actions of the API from a shell.

They talk to a running daemon (`--url`, default $MONITOR_URL or http://127.0.0.1:9310) with a bearer
token (`--token`, default $MONITOR_TOKEN), so every action is authorised and audited like any other.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:9310"


def _call(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    url = args.url.rstrip("/") + path
    headers = {"Accept": "application/json"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    data = None
    if body is not None:
        data = json.dumps(body, ensure_ascii=False).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            problem = json.loads(exc.read())
            message = f"{problem.get('title', '')}: {problem.get('detail', '')}".strip(": ")
        except ValueError:
            message = exc.reason
        raise SystemExit(f"error: {method} {path}: HTTP {exc.code} {message}") from None
    except urllib.error.URLError as exc:
        raise SystemExit(f"error: cannot reach the daemon at {args.url}: {exc.reason}") from None


def _print(args: argparse.Namespace, data: Any, table: list[list[str]] | None = None) -> None:
    if args.json or table is None:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def incidents(args: argparse.Namespace) -> int:
    if args.action == "list":
        query = f"?status={args.status}" if args.status else ""
        data = _call(args, "GET", f"/api/v1/incidents{query}")
        rows = [["ID", "STATUS", "SEVERITY", "LEVEL", "OPENED", "TITLE"]]
        rows += [
            [str(i["id"]), i["status"], i["severity"], str(i["level"]), i["opened_at"], i["title"]]
            for i in data["incidents"]
        ]
        _print(args, data, rows)
        return 0
    if args.action == "show":
        _print(args, _call(args, "GET", f"/api/v1/incidents/{args.id}"))
        return 0
    text = args.text or ""
    paths = {
        "ack": ("ack", {"comment": text}),
        "note": ("notes", {"text": text}),
        "escalate": ("escalate", {"comment": text}),
        "resolve": ("resolve", {"reason": text or "resolved by hand"}),
    }
    path, body = paths[args.action]
    data = _call(args, "POST", f"/api/v1/incidents/{args.id}/{path}", body)
    print(f"incident #{data['id']}: {data['status']}, level {data['level']}")
    return 0


def maintenance(args: argparse.Namespace) -> int:
    if args.action == "list":
        data = _call(args, "GET", "/api/v1/maintenance")
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
        _print(args, data, rows)
        return 0
    if args.action == "cancel":
        _call(args, "DELETE", f"/api/v1/maintenance/{args.id}")
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
    data = _call(args, "POST", "/api/v1/maintenance", body)
    print(f"maintenance #{data['id']} {data['name']} created")
    return 0


def common_options() -> argparse.ArgumentParser:
    """--url, --token, --json, --timeout: how every API command reaches the daemon."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", default=os.environ.get("MONITOR_URL", DEFAULT_URL), help="the daemon (default $MONITOR_URL)"
    )
    common.add_argument(
        "--token", default=os.environ.get("MONITOR_TOKEN"), help="bearer token (default $MONITOR_TOKEN)"
    )
    common.add_argument("--json", action="store_true", help="print the API's JSON")
    common.add_argument("--timeout", type=float, default=30.0)
    return common


def add_parsers(sub: Any) -> None:
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
