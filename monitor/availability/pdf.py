"""The monthly report as an A4 PDF, printed from the same HTML page the HTML report is (html_report.py, with
its print stylesheet: the record stamp, running header and footer from stamp.py), by WeasyPrint.

Why WeasyPrint and not headless Chromium's print-to-PDF (also on this machine): a signed copy must be
checkable against a regeneration, so the same data must give the same bytes. WeasyPrint takes the PDF's
CreationDate/ModDate from the page's `dcterms.created`/`dcterms.modified` meta tags (we write the version's
time) and the file identifier (/ID) from `pdf_identifier` (we derive it from the data hash and version;
pydyf's second /ID half is an MD5 of the content), so nothing in the file depends on the clock or on chance.
Chromium's Skia PDF backend stamps the wall-clock time and a fresh document id into every file and offers no
switch for either. WeasyPrint also lays out CSS paged media (`@page` margin boxes, `counter(pages)`), which
gives the running header and footer without a second template.

Rendering is CPU work of a second or more: the daemon runs it in a separate process (render_pdf_async), so
the event loop that runs the probes never waits for a layout."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from monitor.availability.html_report import render_html
from monitor.availability.report import Report, to_json
from monitor.availability.stamp import Stamp, canonical, sha256

# the font the report's CSS names first; fonts-noto-cjk (scripts/system-deps.sh) provides it
PDF_FONT = "Noto Sans CJK JP"


class PdfError(Exception):
    """The PDF could not be rendered here (the renderer or its fonts are missing): a local failure."""


def identifier(stamp: Stamp) -> bytes:
    """The PDF's /ID: fixed by what the document is (data hash, month, version), never random."""
    return f"{stamp.data_sha256[:32]}:{stamp.month}:{stamp.version or 0}".encode()


def html_to_pdf(html: str, pdf_id: bytes) -> bytes:
    """WeasyPrint, imported here: it loads pango through cffi, which only the PDF paths need."""
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # OSError: pango's shared library is not installed
        raise PdfError(f"the PDF renderer is not available: {exc}") from None
    pdf = HTML(string=html, base_url=None).write_pdf(pdf_identifier=pdf_id)
    assert isinstance(pdf, bytes)  # write_pdf without a target returns the bytes
    return pdf


def render_pdf(report: Report, stamp: Stamp, lang: str = "ja") -> bytes:
    return html_to_pdf(render_html(report, lang, stamp), identifier(stamp))


async def render_pdf_async(report: Report, stamp: Stamp, lang: str = "ja") -> bytes:
    """render_pdf in a child process."""
    (pdf,) = await render_many_async([(report, stamp, lang)])
    return pdf


async def render_many_async(jobs: list[tuple[Report, Stamp, str]]) -> list[bytes]:
    """Several PDFs, one after the other in one child process (spawned: a fork of a daemon with threads and
    sockets is unsafe; one process: WeasyPrint's import and font scan are paid once, and one core at most)."""
    if not jobs:
        return []
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return [
            await loop.run_in_executor(pool, html_to_pdf, render_html(report, lang, stamp), identifier(stamp))
            for report, stamp, lang in jobs
        ]


def report_data(report: Report) -> object:
    """The report's data as stored and hashed: its JSON document (schema availability-report/v1)."""
    return json.loads(to_json(report))


def live_stamp(report: Report) -> Stamp:
    """The stamp of a report computed on demand (`--format pdf` of a month, not a stored version): it says
    it is no record, and still carries the hash of the data it shows."""
    return Stamp(report.month, None, "live", report.generated_at, sha256(canonical(report_data(report))))
