"""`monitor check-config` fails on a coverage gap of the next 28 days, overrides in the store included (one
that leaves a slot empty), in the issue's words; it passes the same config while every hour is covered."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from monitor.store.oncall_records import OnCallChange
from monitor.store.sqlite import SQLiteStore
from tests.oncall.world import JST, config

ROOT = Path(__file__).parents[2]
NIGHT = '          - {name: 夜勤, start: "20:30", end: "08:30"}'
SPLIT = (
    '          - {name: 夜勤, start: "20:30", end: "03:00"}\n'
    '          - {name: 早朝, start: "03:00", end: "08:30"}'
)  # fmt: skip


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", str(path)],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def next_sunday() -> date:
    """A Sunday 2 to 8 days ahead (its 03:00 slot is in the future and well inside the 28 days)."""
    today = datetime.now(JST).date()
    ahead = (6 - today.weekday()) % 7
    return today + timedelta(days=ahead if ahead >= 2 else ahead + 7)


def test_check_config_fails_on_a_gap_an_override_made(tmp_path: Path) -> None:
    text = "daemon: {data_dir: data}\n" + config().replace(NIGHT, SPLIT).replace("2026-12-01", "2026-01-01")
    path = tmp_path / "monitor.yml"
    path.write_text(text, encoding="utf-8")
    fine = check(path)
    assert fine.returncode == 0, fine.stderr
    assert "OK (" in fine.stdout and "no store yet: coverage checked without overrides" in fine.stderr

    sunday = next_sunday()
    store = SQLiteStore(tmp_path / "data" / "monitor.db")
    store.open(now=time.time())
    key = f"noc/base/早朝/{sunday.isoformat()}"
    change = OnCallChange("noc", "override", {key: None}, {key: "yamada"}, "noc-lead", time.time(), "欠員")
    asyncio.run(store.oncall.add_change(change))
    asyncio.run(store.close(time.time()))

    failed = check(path)
    assert failed.returncode == 1, failed.stdout
    assert (
        "playbooks.default.levels.0: nobody on level 1 on Sun 03:00-08:30 JST in the next 28 days "
        f"({sunday.isoformat()}; schedule noc)"
    ) in failed.stderr
    assert f"{path}: INVALID (1 coverage gap)" in failed.stderr


def test_check_config_fails_on_a_gap_of_the_config(tmp_path: Path) -> None:
    """A weekday-only rotation leaves the weekends to nobody: each uncovered stretch is named."""
    text = config().replace(
        "        rotation_start: 2026-12-01\n", "        rotation_start: 2026-01-01\n        days: workdays\n"
    )
    path = tmp_path / "monitor.yml"
    path.write_text(text, encoding="utf-8")
    failed = check(path)
    assert failed.returncode == 1
    assert "nobody on level 1 on Sat 08:30-Mon 08:30 JST in the next 28 days" in failed.stderr
