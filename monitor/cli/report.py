"""`monitor report`: the monthly availability report from the command line, read-only beside a running daemon;
`monitor report versions|draft|review|approve|pdf` go to the daemon's API (cli/report_versions.py)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from monitor import heap
from monitor.cli.client import common_options
from monitor.cli.common import load_or_complain
from monitor.cli.report_versions import add_arguments as add_version_arguments
from monitor.cli.report_versions import cmd_versions

if TYPE_CHECKING:
    from monitor.cli.common import Subparsers


def add_parser(sub: Subparsers) -> None:
    report = sub.add_parser(
        "report",
        help="the monthly availability report (月次稼働報告)",
        parents=[common_options()],  # --url, --token: the version verbs reach the daemon
    )
    add_version_arguments(report)
    # required for the report itself; the version verbs talk to the daemon instead (checked in cmd_report)
    source = report.add_mutually_exclusive_group()
    source.add_argument("--config", type=Path, help="the inventory the report is about")
    source.add_argument("--demo", action="store_true", help="the demo's inventory (from --data-dir/demo-config)")
    report.add_argument(
        "--data-dir",
        type=Path,
        action="append",
        help="the daemon's store (default: the config's daemon.data_dir); given N times, the stores of "
        "`monitor run --shard 1/N` .. N/N in that order: one report over the union",
    )
    report.add_argument("--month", required=True, help="YYYY-MM (a calendar month in JST)")
    report.add_argument("--format", choices=["html", "csv", "json", "pdf"], default="html")
    report.add_argument("--lang", choices=["ja", "en"], default="ja", help="language of the HTML and PDF report")
    report.add_argument("--output", type=Path, help="file to write (default: standard output)")
    report.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from monitor.availability.html_report import render_html
    from monitor.availability.pdf import PdfError, live_stamp, render_pdf
    from monitor.availability.periods import parse_month
    from monitor.availability.report import ReportBuilder, merge_reports, to_csv, to_json
    from monitor.cluster.sharding import shard_inventory
    from monitor.demo.response_config import DEMO_TOKEN_ENV
    from monitor.store import open_store
    from monitor.store.base import Store
    from monitor.store.sqlite import SQLiteStore

    try:
        parse_month(args.month)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.action is not None:
        return cmd_versions(args)
    if args.config is None and not args.demo:
        print("error: one of the arguments --config --demo is required", file=sys.stderr)
        return 2
    heap.for_batch_run()
    dirs: list[Path] = args.data_dir or []
    if args.demo:
        if len(dirs) != 1:
            print("error: --demo needs --data-dir (the directory given to `monitor demo --data-dir`)", file=sys.stderr)
            return 2
        for env in DEMO_TOKEN_ENV.values():  # the demo's config names its API tokens; a report needs none
            os.environ.setdefault(env, "unused-by-reports")
        config_path = dirs[0] / "demo-config" / "monitor.yml"
    else:
        config_path = args.config
    loaded = load_or_complain(config_path)
    if loaded is None:
        return 1
    inventory = loaded.inventory
    if dirs:
        stores: list[Store] = [SQLiteStore(d / "monitor.db") for d in dirs]
    else:
        stores = [open_store(inventory.daemon, inventory.daemon.data_dir)]
    try:
        for store in stores:
            store.open_readonly()
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    async def build() -> bytes:
        now = time.time()
        parts = []
        try:
            for index, store in enumerate(stores, start=1):
                share = shard_inventory(inventory, index, len(stores))
                parts.append(await ReportBuilder(store, share).build(args.month, now))
        finally:
            for store in stores:
                await store.close(now)
        report = parts[0] if len(parts) == 1 else merge_reports(parts, list(inventory.services))
        if args.format == "html":
            return render_html(report, args.lang).encode()
        if args.format == "pdf":  # computed now, so stamped as no version (`monitor report versions` has those)
            return render_pdf(report, live_stamp(report), args.lang)
        return to_csv(report) if args.format == "csv" else to_json(report).encode()

    try:
        body = asyncio.run(build())
    except PdfError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.output:
        args.output.write_bytes(body)
    else:
        sys.stdout.buffer.write(body)
    return 0
