"""`monitor security ...`: the disconnect playbook from a shell, through the daemon's API (so roles,
two-person approval and the audit log apply exactly as for any other caller).

    monitor security list [--open]          monitor security show ID
    monitor security approve ID             monitor security deny ID [REASON]
    monitor security execute ID [--dry-run] monitor security reconnect ID [REASON]
    monitor security event --signature S (--source ADDR | --organisation O | --connection C) [--severity S]
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from monitor.cli.client import call, common_options, show

if TYPE_CHECKING:
    from monitor.cli.common import Subparsers


def security(args: argparse.Namespace) -> int:
    if args.action == "list":
        data = call(args, "GET", "/api/v1/security-incidents" + ("?status=open" if args.open else ""))
        rows = [["ID", "PHASE", "SEVERITY", "CONNECTION", "SOURCE", "OPENED", "SUMMARY"]]
        rows += [
            [str(i["id"]), i["phase"], i["severity"], i["connection"], i["source"], i["opened_at"], i["summary"][:80]]
            for i in data["security_incidents"]
        ]
        show(args, data, rows)
        return 0
    if args.action == "show":
        show(args, call(args, "GET", f"/api/v1/security-incidents/{args.id}"))
        return 0
    if args.action == "event":
        body: dict[str, Any] = {"signature": args.signature, "severity": args.severity}
        for key in ("source", "organisation", "connection"):
            if getattr(args, key):
                body[key] = getattr(args, key)
        data = call(args, "POST", "/api/v1/security-events", body)
        print(
            f"security incident #{data['security_incident']} ({data['connection']}): "
            f"{'opened' if data['new'] else 'evidence added'}, {data['phase']}"
        )
        return 0
    body = {}
    if args.action in ("deny", "reconnect") and args.reason:
        body["reason"] = args.reason
    if args.action == "execute" and args.dry_run:
        body["dry_run"] = True
    data = call(args, "POST", f"/api/v1/security-incidents/{args.id}/{args.action}", body)
    if data.get("dry_run"):
        print(f"dry run, nothing changed: {data['text']}")
    elif args.json:
        show(args, data)
    else:
        print(f"security incident #{args.id}: {data['phase']}")
    return 0


def add_parser(sub: Subparsers) -> None:
    common = common_options()
    sec = sub.add_parser("security", help="the disconnect playbook (接続遮断): list, approve, deny, execute, reconnect")
    sec_sub = sec.add_subparsers(dest="action", required=True)
    sec_sub.add_parser("list", parents=[common]).add_argument("--open", action="store_true", help="open ones only")
    sec_sub.add_parser("show", parents=[common]).add_argument("id", type=int)
    sec_sub.add_parser("approve", parents=[common]).add_argument("id", type=int)
    for action in ("deny", "reconnect"):
        parser = sec_sub.add_parser(action, parents=[common])
        parser.add_argument("id", type=int)
        parser.add_argument("reason", nargs="?")
    execute = sec_sub.add_parser("execute", parents=[common])
    execute.add_argument("id", type=int)
    execute.add_argument("--dry-run", action="store_true", help="show what would be done; change nothing")
    event = sec_sub.add_parser("event", parents=[common], help="push an IDS event (token with the ids role)")
    event.add_argument("--signature", required=True)
    event.add_argument("--severity", default="major", choices=["critical", "major", "minor", "warning"])
    event.add_argument("--source", help="an address of the organisation")
    event.add_argument("--organisation")
    event.add_argument("--connection")
    sec.set_defaults(func=security)
