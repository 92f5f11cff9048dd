"""The report versions through the daemon's API: `report` permission (admin, manager; not operator),
draft -> review -> approve by two people with comments, each audited (refusals too), the approved PDF
and the data as hashed downloadable; `?format=pdf` of a month; a correction through the API makes version 2."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from monitor.access.auth import token_digest
from monitor.cli.main import main
from monitor.daemon import Daemon
from monitor.http.app import build_app
from tests.availability.test_report import CONFIG, seed
from tests.conftest import Loader

TOKENS = {"sato": "report-sato-1", "suzuki": "report-suzuki-1", "ops": "report-ops-1", "boss": "report-admin-1"}
AUTH = """
auth:
  tokens:
    - {{name: sato, role: manager, token_sha256: {sato}}}
    - {{name: suzuki, role: manager, token_sha256: {suzuki}}}
    - {{name: ops, role: operator, token_sha256: {ops}}}
    - {{name: admin, role: admin, token_sha256: {boss}}}
"""


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


@pytest.fixture
async def api(load_yaml_config: Loader, tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], Daemon]]:
    loaded = load_yaml_config(CONFIG + AUTH.format(**{k: token_digest(v) for k, v in TOKENS.items()}))
    daemon = Daemon(loaded, data_dir=tmp_path / "data")
    await seed(daemon.store, daemon.inventory)  # type: ignore[arg-type]  # a SQLiteStore: the daemon's default
    clock = Clock(1_796_259_600.0)  # 2026-12-03 10:00 JST
    daemon.guard.clock = clock
    daemon.reports.now = clock.now
    daemon.ready = True
    async with TestClient(TestServer(build_app(daemon.http_services()))) as client:
        yield client, daemon
    await daemon.reports.stop()
    await daemon.store.close(now=clock.t)


async def test_draft_review_approve_through_the_api(api: tuple[TestClient[Any, Any], Daemon]) -> None:
    c, daemon = api
    base = "/api/v1/reports/2026-11/versions"
    live = await c.get("/api/v1/reports/2026-11?format=pdf", headers=bearer("ops"))
    assert live.status == 200 and live.content_type == "application/pdf" and (await live.read())[:5] == b"%PDF-"
    assert (await c.post(base, headers=bearer("ops"))).status == 403  # an operator does not sign reports
    made = await c.post(base, headers=bearer("sato"), json={})
    assert made.status == 201, await made.text()
    assert (await made.json())["version"] == 1
    no_comment = await c.post(f"{base}/1/review", headers=bearer("sato"), json={"comment": " "})
    assert no_comment.status == 422
    assert (await c.post(f"{base}/1/review", headers=bearer("sato"), json={"comment": "確認した"})).status == 200
    same = await c.post(f"{base}/1/approve", headers=bearer("sato"), json={"comment": "自分で"})
    assert same.status == 409 and "two-person" in (await same.json())["detail"]
    approved = await c.post(f"{base}/1/approve", headers=bearer("suzuki"), json={"comment": "承認する"})
    assert approved.status == 200, await approved.text()
    body = await approved.json()
    assert (body["status"], body["reviewed"]["by"], body["approved"]["by"]) == ("approved", "sato", "suzuki")
    data = await (await c.get(f"{base}/1?format=data", headers=bearer("ops"))).read()
    assert hashlib.sha256(data).hexdigest() == body["data_sha256"]  # the download is what was hashed
    pdf = await c.get(f"{base}/1?format=pdf", headers=bearer("ops"))
    stored = await daemon.store.report_version("2026-11", 1, pdfs=True)
    assert stored is not None and await pdf.read() == stored.pdf_ja
    record = await (await c.get(f"{base}/1", headers=bearer("ops"))).json()
    assert record["pdf_sha256"]["ja"] == hashlib.sha256(stored.pdf_ja or b"").hexdigest()
    listing = await (await c.get("/api/v1/report-versions", headers=bearer("ops"))).json()
    assert [(v["month"], v["version"], v["status"]) for v in listing["versions"]] == [("2026-11", 1, "approved")]
    clock = daemon.guard.clock
    assert isinstance(clock, Clock)
    clock.t += 86400
    correction = await c.post("/api/v1/corrections", headers=bearer("boss"), json={
        "service": "juki-net", "start": "2026-11-10T10:00", "end": "2026-11-10T10:30", "reason": "計画作業"})  # fmt: skip
    assert correction.status == 201
    assert (await correction.json())["report_versions"] == [{"month": "2026-11", "version": 2, "supersedes": 1}]
    second = await (await c.get(f"{base}/2", headers=bearer("ops"))).json()
    assert second["status"] == "draft" and any(ch["reason"] == "計画作業" for ch in second["changes"])
    draft_pdf = await c.get(f"{base}/2?format=pdf&lang=en", headers=bearer("ops"))  # a draft: printed on demand
    assert draft_pdf.status == 200 and (await draft_pdf.read())[:5] == b"%PDF-"
    entries, _ = await daemon.store.audit_log(limit=50)
    seen = [(e.action, e.outcome, e.actor) for e in reversed(entries) if e.action.startswith("report.")]
    assert seen == [
        ("report.draft", "denied", "ops"),
        ("report.draft", "ok", "sato"),
        ("report.review", "invalid", "sato"),
        ("report.review", "ok", "sato"),
        ("report.approve", "rejected", "sato"),
        ("report.approve", "ok", "suzuki"),
        ("report.draft", "ok", "admin"),
    ]


async def test_cli_verbs_reach_the_daemon(api: tuple[TestClient[Any, Any], Daemon], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """`monitor report draft|review|approve|versions|pdf --month M` through the API of a listening daemon."""
    c, daemon = api
    url = str(c.make_url("/")).rstrip("/")

    def cli(*words: str, token: str = "sato") -> int:
        return main(["report", *words, "--month", "2026-11", "--url", url, "--token", TOKENS[token]])

    assert await asyncio.to_thread(cli, "draft", "--reason", "初版") == 0
    assert await asyncio.to_thread(cli, "review", "--version", "1") == 2  # no comment
    assert await asyncio.to_thread(cli, "review", "--version", "1", "--comment", "確認した") == 0
    with pytest.raises(SystemExit, match=r"HTTP 409 .*two-person"):
        await asyncio.to_thread(cli, "approve", "--version", "1", "--comment", "自分で")
    assert await asyncio.to_thread(cli, "approve", "--version", "1", "--comment", "承認", token="suzuki") == 0
    capsys.readouterr()
    assert await asyncio.to_thread(cli, "versions") == 0
    printed = capsys.readouterr().out.splitlines()  # the daemon's log lines (same process) come through too
    table = printed[next(i for i, line in enumerate(printed) if line.startswith("MONTH")) :]
    assert table[0].split()[:5] == ["MONTH", "VERSION", "STATUS", "REVIEWED", "APPROVED"]
    assert table[1].split()[:5] == ["2026-11", "1", "approved", "sato", "suzuki"]
    out = tmp_path / "v1.pdf"
    assert await asyncio.to_thread(cli, "pdf", "--version", "1", "--output", str(out)) == 0
    stored = await daemon.store.report_version("2026-11", 1, pdfs=True)
    assert stored is not None and out.read_bytes() == stored.pdf_ja
    assert main(["report", "--month", "2026-11"]) == 2  # the report itself still needs --config or --demo
