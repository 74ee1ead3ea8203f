"""Small real documents for tests, made on the spot."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pymupdf

REPO = Path(__file__).resolve().parents[2]
SPEECH_WAV = REPO / "tests" / "fixtures" / "speech.wav"
SCANNED_NOTE_PNG = REPO / "service" / "percolate_reading" / "samples" / "scanned-note.png"


def make_pdf(text: str | Sequence[str], pages: int = 1) -> bytes:
    """A PDF with a text layer: `text` (a line, or lines) on page 1, then `pages - 1` copies
    of that page (long documents cheaply)."""
    lines = [text] if isinstance(text, str) else list(text)
    doc = pymupdf.open()
    page = doc.new_page()
    for i, line in enumerate(lines):
        page.insert_text((72, 72 + 18 * i), line, fontsize=12)
    for _ in range(pages - 1):
        doc.fullcopy_page(0)
    data: bytes = doc.tobytes()
    doc.close()
    return data


def make_docx(text: str, heading: str = "Attached report") -> bytes:
    """A Word document: one heading, one paragraph."""
    import docx

    d = docx.Document()
    d.add_heading(heading, 1)
    d.add_paragraph(text)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def make_xlsx(rows: list[list[Any]]) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def scanned_pages_pdf(pages: int, dpi: int = 100, *, small: bool = False) -> bytes:
    """A scanned PDF of `pages` pages: each page rasterised (no text layer) at `dpi`, with a
    heading, a sentence and a numbered list that name the page, so OCR has distinct text on
    every page and the merge order can be checked. `small`: a postcard-sized page (OCR of a
    few lines, for quick tests)."""
    out = pymupdf.open()
    width, height = (360, 220) if small else (612, 792)
    for n in range(1, pages + 1):
        art = pymupdf.open()
        page = art.new_page(width=width, height=height)
        page.insert_text((30, 45), f"Chapter {n}", fontsize=20)
        page.insert_text((30, 85), f"Page {n} reports field {n * 7}.", fontsize=14)
        if not small:
            page.insert_text((30, 115), "Rain came late and the river stayed low all summer.", fontsize=13)
        for i in range(1, 3 if small else 5):
            page.insert_text(
                (40, 100 + 26 * i + (30 if not small else 0)), f"{i}. Item {i} of page {n}", fontsize=14
            )
        png = page.get_pixmap(dpi=dpi).tobytes("png")
        art.close()
        scan = out.new_page(width=width, height=height)
        scan.insert_image(scan.rect, stream=png)
    data: bytes = out.tobytes(deflate=True)
    out.close()
    return data
