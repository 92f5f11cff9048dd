"""How the API verbs (incidents, maintenance, notices, security) reach a running daemon.

`--url` (default $MONITOR_URL or http://127.0.0.1:9310) and a bearer token (`--token`, default $MONITOR_TOKEN),
so every action is authorised and audited like any other API call; an HTTP problem becomes one error line.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:9310"


def call(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
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


def show(args: argparse.Namespace, data: Any, table: list[list[str]] | None = None) -> None:
    if args.json or table is None:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


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
