"""`monitor notices ...`: notices (お知らせ) from a shell, through the daemon's API (operator token).

monitor notices list [--status draft|published|closed]
monitor notices create --template T --service ID [--service ID ...] [--prefecture 13] [--incident N]
                       [--maintenance N] [--starts ISO] [--ends ISO] [--estimate ISO] [--title T] [--body B]
monitor notices update ID [--template T] [--estimate ISO] [--body B] [--no-notify]
monitor notices publish ID          monitor notices close ID
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from monitor.cli.client import call, common_options, show
from monitor.status.templates import TEMPLATES

if TYPE_CHECKING:
    from monitor.cli.common import Subparsers


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    pairs = (
        ("template", "template"),
        ("incident", "incident_id"),
        ("maintenance", "maintenance_id"),
        ("starts", "starts_at"),
        ("ends", "ends_at"),
        ("estimate", "estimate_at"),
        ("title", "title"),
        ("body", "body"),
    )
    for arg, key in pairs:
        if getattr(args, arg, None) is not None:
            body[key] = getattr(args, arg)
    if getattr(args, "service", None):
        body["services"] = args.service
    if getattr(args, "prefecture", None):
        body["prefectures"] = args.prefecture
    return body


def notices(args: argparse.Namespace) -> int:
    if args.action == "list":
        data = call(args, "GET", "/api/v1/notices" + (f"?status={args.status}" if args.status else ""))
        rows = [["ID", "STATUS", "REV", "TEMPLATE", "UPDATED", "TITLE"]]
        rows += [
            [str(n["id"]), n["status"], str(n["revision"]), n["template"], n["updated_at"], n["title"]]
            for n in data["notices"]
        ]
        show(args, data, rows)
        return 0
    if args.action == "create":
        data = call(args, "POST", "/api/v1/notices", _fields(args))
    elif args.action == "update":
        body = _fields(args)
        if args.no_notify:
            body["notify"] = False
        data = call(args, "PATCH", f"/api/v1/notices/{args.id}", body)
    elif args.action == "close":
        data = call(args, "PATCH", f"/api/v1/notices/{args.id}", {"status": "closed"})
    else:
        data = call(args, "POST", f"/api/v1/notices/{args.id}/publish", {})
    if args.json:
        show(args, data)
    else:
        print(f"notice #{data['id']} {data['status']} (revision {data['revision']}): {data['title']}")
    return 0


def add_parser(sub: Subparsers) -> None:
    common = common_options()
    parser = sub.add_parser("notices", help="notices (お知らせ) for the status page and the governments' contacts")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", parents=[common]).add_argument("--status", choices=["draft", "published", "closed"])
    for name in ("create", "update"):
        p = actions.add_parser(name, parents=[common])
        if name == "update":
            p.add_argument("id", type=int)
            p.add_argument("--no-notify", action="store_true", help="update without telling the subscribers")
        p.add_argument("--template", choices=TEMPLATES, required=name == "create")
        p.add_argument("--service", action="append", help="a public service id (repeatable)")
        p.add_argument("--prefecture", action="append", help="a JIS prefecture code (repeatable)")
        p.add_argument("--incident", type=int)
        p.add_argument("--maintenance", type=int)
        p.add_argument("--starts", help="ISO 8601 (JST unless an offset is given)")
        p.add_argument("--ends")
        p.add_argument("--estimate", help="expected recovery, ISO 8601")
        p.add_argument("--title")
        p.add_argument("--body")
    for name in ("publish", "close"):
        actions.add_parser(name, parents=[common]).add_argument("id", type=int)
    parser.set_defaults(func=notices)
