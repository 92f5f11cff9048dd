"""The monthly report as a PDF (WeasyPrint): a month of scripted data rendered to A4 in Japanese and English,
turned into PNG pages by pdftoppm and left in artifacts/ to look at; the same version gives the same bytes;
every page carries the month, the version, the approvers and the page number; the data hash is printed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from monitor.availability.pdf import live_stamp, render_pdf, render_pdf_async, report_data
from monitor.availability.stamp import Change, Sign, Stamp, canonical, sha256
from monitor.core.inventory import Inventory
from monitor.store.sqlite import SQLiteStore
from tests.availability.test_calc import at
from tests.availability.test_report import ARTIFACTS, build, seeded

__all__ = ["seeded"]  # the fixture, shared with test_report

needs_poppler = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed")


def _stamp(data_hash: str) -> Stamp:
    return Stamp(
        "2026-11", 2, "approved", at("2026-12-03T10:00"), data_hash,
        reviewed=Sign("佐藤", at("2026-12-03T11:00"), "数値を確認した"),
        approved=Sign("鈴木課長", at("2026-12-03T15:00"), "承認する"),
        supersedes=1,
        changes=(Change("services/pref-net-13/availability", "99.861%", "99.907%", "事前連絡済み工事"),),
    )  # fmt: skip


def _tool(*command: str) -> str:
    """A poppler tool's output (a second or so: run from the async tests without an executor)."""
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120).stdout


def _pages_text(pdf: Path) -> list[str]:
    text = _tool("pdftotext", "-layout", str(pdf), "-")
    return [page for page in text.split("\f") if page.strip()]


@needs_poppler
async def test_pdf_is_reproducible_and_stamped_on_every_page(seeded: tuple[SQLiteStore, Inventory]) -> None:
    report = await build(seeded)
    data_hash = sha256(canonical(report_data(report)))
    stamp = _stamp(data_hash)
    first = render_pdf(report, stamp, "ja")
    second = await render_pdf_async(report, stamp, "ja")  # in a child process, as the daemon renders
    assert first[:5] == b"%PDF-" and first == second  # same version, same bytes
    ARTIFACTS.mkdir(exist_ok=True)
    pdf = ARTIFACTS / "availability-report-2026-11-v2.pdf"
    pdf.write_bytes(first)
    info = _tool("pdfinfo", "-isodates", str(pdf))
    assert re.search(r"CreationDate:\s+2026-12-03T01:00:00", info)
    assert re.search(r"ModDate:\s+2026-12-03T01:00:00", info)
    assert re.search(r"Page size:\s+595.276 x 841.89 pts \(A4\)", info)
    pages = _pages_text(pdf)
    assert len(pages) >= 2
    for number, page in enumerate(pages, start=1):
        assert "月次稼働報告 2026-11" in page and "第2版" in page and "承認: 鈴木課長" in page, page[:300]
        assert "確認: 佐藤" in page and re.search(rf"\b{number}\s*/\s*{len(pages)}\b", page)
        assert data_hash in page.replace("\n", "")  # the footer
    whole = "".join(pages)
    assert "承認済み第1版からの変更" in whole and "事前連絡済み工事" in whole and "住基ネット" in whole
    for old in ARTIFACTS.glob("availability-report-2026-11-v2-page-*.png"):
        old.unlink()
    _tool("pdftoppm", "-png", "-r", "60", str(pdf), str(ARTIFACTS / "availability-report-2026-11-v2-page"))
    pngs = sorted(ARTIFACTS.glob("availability-report-2026-11-v2-page-*.png"))
    assert len(pngs) == len(pages) and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    fonts = _tool("pdffonts", str(pdf))
    # the Japanese glyphs come from the embedded CJK font (no tofu boxes), the charts' labels too (no serif)
    assert "Noto-Sans-CJK-JP" in fonts and "Serif" not in fonts


@needs_poppler
async def test_english_and_live_pdf(seeded: tuple[SQLiteStore, Inventory]) -> None:
    """A report computed on demand is printed too, saying it is no version; the English one is English."""
    report = await build(seeded)
    stamp = live_stamp(report)
    pdf = ARTIFACTS / "availability-report-2026-11-live-en.pdf"
    ARTIFACTS.mkdir(exist_ok=True)
    pdf.write_bytes(render_pdf(report, stamp, "en"))
    pages = _pages_text(pdf)
    assert "Monthly availability report 2026-11" in pages[0] and "no version" in pages[0]
    # the whole 12-column table fits A4 in English too (a PDF clips what overflows the page)
    assert "Budget" in pages[0] and "69.4%" in pages[0]
    assert re.search(rf"\b1\s*/\s*{len(pages)}\s*page", pages[0]) and stamp.data_sha256 in pages[-1].replace("\n", "")
    changed = render_pdf(report, Stamp("2026-11", None, "live", stamp.created_at + 1, stamp.data_sha256), "en")
    assert changed != pdf.read_bytes()  # the time is in the file: a different time, a different document
