"""`monitor oncall ...`: who is on call, and swaps and overrides of shift slots, through the daemon's API
(each audited under the token's name); and the coverage check `monitor check-config` runs.

monitor oncall now                              who is on call at each level of each playbook, and per schedule
monitor oncall slots SCHEDULE [--days 7]        the coming slots (their keys are what swaps and overrides name)
monitor oncall swap SCHEDULE SLOT SLOT [--reason R]
monitor oncall override SCHEDULE SLOT (--to CONTACT | --nobody) [--reason R]
monitor oncall changes [SCHEDULE]               monitor oncall cancel ID
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from monitor.cli.client import call, common_options, show

if TYPE_CHECKING:
    from monitor.cli.common import Subparsers
    from monitor.core.inventory import Inventory


def coverage_problems(inventory: Inventory, now: float | None = None) -> tuple[list[tuple[str, str]], list[str]]:
    """(where, message) for each coverage gap of the next 28 days, with the overrides in the store; and
    notes (the store could not be read: the gaps are the config's alone, said so, never reported as fine)."""
    from monitor.oncall.coverage import describe, level_gaps
    from monitor.oncall.roster import fold
    from monitor.store import open_store

    response = inventory.response
    if not response.schedules:
        return [], []
    at = time.time() if now is None else now
    notes: list[str] = []
    overrides: dict[str, Any] = {}
    store = open_store(inventory.daemon, inventory.daemon.data_dir)
    try:
        store.open_readonly()
    except FileNotFoundError:
        notes.append("no store yet: coverage checked without overrides")
    except Exception as exc:  # the store is ours, not the config's: say so and check the config alone
        notes.append(f"store not readable ({exc}): coverage checked without overrides")
    else:

        async def read() -> None:
            try:
                overrides.update(fold(await store.oncall.changes()))
            finally:
                await store.close(at)

        try:
            asyncio.run(read())
        except Exception as exc:
            notes.append(f"overrides not readable ({exc}): coverage checked without them")
    return describe(level_gaps(response, overrides, at), response), notes


def _path(schedule: str) -> str:
    return f"/api/v1/oncall/schedules/{quote(schedule, safe='')}"


def oncall(args: argparse.Namespace) -> int:
    if args.action == "now":
        data = call(args, "GET", "/api/v1/oncall")
        rows = [["PLAYBOOK", "LEVEL", "ON CALL", "UNTIL"]]
        for level in data["levels"]:
            names = ", ".join(p["name"] for p in level["people"]) or "NOBODY"
            rows.append([level["playbook"], str(level["level"]), names, level.get("until") or ""])
        show(args, data, rows)
        return 0
    if args.action == "slots":
        data = call(args, "GET", f"{_path(args.schedule)}/slots?days={args.days}")
        rows = [["SLOT", "START", "END", "ON DUTY", "BY"]]
        for s in data["slots"]:
            by = f"change #{s['change_id']}" if s["change_id"] else "rotation"
            rows.append([s["key"], s["start"], s["end"], s["person"] or "NOBODY", by])
        show(args, data, rows)
        return 0
    if args.action == "changes":
        data = call(
            args, "GET", "/api/v1/oncall/changes" + (f"?schedule={quote(args.schedule)}" if args.schedule else "")
        )
        rows = [["ID", "KIND", "SCHEDULE", "BY", "AT", "CANCELLED", "SLOTS"]]
        for c in data["changes"]:
            slots = "; ".join(f"{k}: {v['from'] or '-'} -> {v['to'] or '-'}" for k, v in c["slots"].items())
            rows.append(
                [str(c["id"]), c["kind"], c["schedule"], c["actor"], c["created_at"], c["cancelled_at"] or "", slots]
            )
        show(args, data, rows)
        return 0
    if args.action == "swap":
        body: dict[str, Any] = {"kind": "swap", "slots": [args.first, args.second], "reason": args.reason}
        data = call(args, "POST", f"{_path(args.schedule)}/changes", body)
    elif args.action == "override":
        body = {"kind": "override", "slot": args.slot, "to": None if args.nobody else args.to, "reason": args.reason}
        data = call(args, "POST", f"{_path(args.schedule)}/changes", body)
    else:
        data = call(args, "DELETE", f"/api/v1/oncall/changes/{args.id}")
    if args.json:
        show(args, data)
    else:
        state = "cancelled" if data.get("cancelled_at") else "made"
        moves = "; ".join(f"{k}: {v['from'] or 'nobody'} -> {v['to'] or 'nobody'}" for k, v in data["slots"].items())
        print(f"on-call change #{data['id']} ({data['kind']}) {state}: {moves}")
    return 0


def add_parser(sub: Subparsers) -> None:
    common = common_options()
    parser = sub.add_parser("oncall", help="who is on call; swaps and overrides of shift slots")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("now", parents=[common], help="who is on call now at each level")
    slots = actions.add_parser("slots", parents=[common], help="the coming slots of a schedule")
    slots.add_argument("schedule")
    slots.add_argument("--days", type=int, default=7)
    changes = actions.add_parser("changes", parents=[common], help="overrides and swaps made")
    changes.add_argument("schedule", nargs="?")
    swap = actions.add_parser("swap", parents=[common], help="exchange the people of two slots")
    swap.add_argument("schedule")
    swap.add_argument("first", help="slot key, e.g. noc/base/日勤/2026-12-10")
    swap.add_argument("second")
    swap.add_argument("--reason", default="")
    override = actions.add_parser("override", parents=[common], help="give a slot to someone else, or nobody")
    override.add_argument("schedule")
    override.add_argument("slot")
    who = override.add_mutually_exclusive_group(required=True)
    who.add_argument("--to", help="contact name")
    who.add_argument("--nobody", action="store_true", help="leave the slot empty (managers only)")
    override.add_argument("--reason", default="")
    cancel = actions.add_parser("cancel", parents=[common], help="undo an override or swap")
    cancel.add_argument("id", type=int)
    parser.set_defaults(func=oncall)
