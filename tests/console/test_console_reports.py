"""The console's report page in headless Chromium against a daemon process on loopback: which months are
approved and by whom, with links to the stored PDF (kept in artifacts/console-reports.png)."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import pytest

from monitor.access.auth import token_digest
from monitor.config.loader import load_config
from monitor.store.sqlite import SQLiteStore
from tests.availability.test_report import CONFIG, seed
from tests.console.cdp import Browser
from tests.e2e.peers import daemon_process, free_port, http_get, http_post, wait_for

pytestmark = [pytest.mark.slow]
ARTIFACTS = Path(__file__).parents[2] / "artifacts"
TOKENS = {"sato": "console-sato-1", "suzuki": "console-suzuki-1"}


async def test_reports_page_shows_approvals_and_links_the_pdf(tmp_path: Path) -> None:
    config = tmp_path / "monitor.yml"
    tokens = "\n".join(
        f"    - {{name: {n}, role: manager, token_sha256: {token_digest(t)}}}" for n, t in TOKENS.items()
    )
    config.write_text(textwrap.dedent(CONFIG) + f"auth:\n  tokens:\n{tokens}\n", encoding="utf-8")
    data = tmp_path / "data"
    data.mkdir()
    store = SQLiteStore(data / "monitor.db")  # November 2026 as the report tests script it
    await seed(store, load_config(config).inventory)
    await store.close(now=1_796_050_800.0)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["run", "--config", str(config), "--listen", f"127.0.0.1:{port}", "--data-dir", str(data)]
    with daemon_process(args, tmp_path):
        await asyncio.to_thread(wait_for, lambda: http_get(base + "/readyz")[0] == 200, 20, what="daemon ready")
        versions = f"{base}/api/v1/reports/2026-11/versions"

        def post(url: str, who: str, body: dict[str, str]) -> int:
            return http_post(url, json.dumps(body).encode(), 60, TOKENS[who])[0]

        assert await asyncio.to_thread(post, versions, "sato", {}) == 201
        assert await asyncio.to_thread(post, f"{versions}/1/review", "sato", {"comment": "確認した"}) == 200
        assert await asyncio.to_thread(post, f"{versions}/1/approve", "suzuki", {"comment": "承認する"}) == 200
        async with Browser() as browser:
            await browser.goto(base + "/#/reports")
            await browser.wait("document.querySelector('#report-versions')?.textContent.includes('suzuki')", 15)
            row = await browser.js("document.querySelector('[data-version=\"2026-11/1\"]').textContent")
            assert "承認済み" in row and "sato" in row and "suzuki" in row and "承認する" in row
            link = await browser.js("document.querySelector('[data-version=\"2026-11/1\"] a').href")
            await browser.screenshot(ARTIFACTS / "console-reports.png")
        status, pdf = await asyncio.to_thread(http_get, link, 30)
        assert status == 200 and pdf[:5] == b"%PDF-"
