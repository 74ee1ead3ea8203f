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
