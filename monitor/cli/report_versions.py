"""`monitor report versions|draft|review|approve|pdf --month M`: the monthly report's versions, through the
daemon's API (a token with the `report` permission for draft, review and approve), so every step is
authorised and audited like any other API call.

monitor report versions --month 2026-11
monitor report draft    --month 2026-11 [--reason R]
monitor report review   --month 2026-11 --version 1 --comment "数値を確認した"
monitor report approve  --month 2026-11 --version 1 --comment "承認する"
monitor report pdf      --month 2026-11 --version 1 [--lang en] --output report.pdf
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from typing import Any

from monitor.cli.client import call, show

ACTIONS = ("versions", "draft", "review", "approve", "pdf")


def add_arguments(report: argparse.ArgumentParser) -> None:
    """The versions' verbs as the report command's optional first word (the report itself needs none)."""
    report.add_argument("action", nargs="?", choices=ACTIONS, help="a version verb (through the daemon's API)")
    report.add_argument("--version", type=int, dest="number", help="the version (review, approve, pdf)")
    report.add_argument("--comment", help="what was checked (review), why it is approved (approve)")
    report.add_argument("--reason", help="why this draft is made (draft)")


def _row(v: dict[str, Any]) -> list[str]:
    reviewed, approved = v.get("reviewed") or {}, v.get("approved") or {}
    return [v["month"], str(v["version"]), v["status"], reviewed.get("by") or "-", approved.get("by") or "-",
            v["data_sha256"][:16], v["reason"][:40]]  # fmt: skip


def _pdf(args: argparse.Namespace, path: str) -> bytes:
    headers = {"Accept": "application/pdf"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    request = urllib.request.Request(args.url.rstrip("/") + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"error: GET {path}: HTTP {exc.code} {exc.read()[:300].decode(errors='replace')}") from None
    except urllib.error.URLError as exc:
        raise SystemExit(f"error: cannot reach the daemon at {args.url}: {exc.reason}") from None


def cmd_versions(args: argparse.Namespace) -> int:
    base = f"/api/v1/reports/{args.month}/versions"
    if args.action in ("review", "approve", "pdf") and args.number is None:
        print(f"error: monitor report {args.action} needs --version N", file=sys.stderr)
        return 2
    if args.action in ("review", "approve") and not (args.comment or "").strip():
        print(f"error: monitor report {args.action} needs --comment", file=sys.stderr)
        return 2
    if args.action == "versions":
        data = call(args, "GET", base)
        head = ["MONTH", "VERSION", "STATUS", "REVIEWED", "APPROVED", "SHA-256", "REASON"]
        show(args, data, [head, *(_row(v) for v in data["versions"])])
    elif args.action == "draft":
        made = call(args, "POST", base, {"reason": args.reason} if args.reason else {})
        row = [made["month"], str(made["version"]), made["status"], made["data_sha256"], made["reason"]]
        show(args, made, [["MONTH", "VERSION", "STATUS", "SHA-256", "REASON"], row])
    elif args.action in ("review", "approve"):
        done = call(args, "POST", f"{base}/{args.number}/{args.action}", {"comment": args.comment})
        head = ["MONTH", "VERSION", "STATUS", "REVIEWED", "APPROVED", "SHA-256", "REASON"]
        show(args, done, [head, _row(done)])
    else:
        body = _pdf(args, f"{base}/{args.number}?format=pdf&lang={args.lang}")
        if args.output:
            args.output.write_bytes(body)
        else:
            sys.stdout.buffer.write(body)
    return 0
