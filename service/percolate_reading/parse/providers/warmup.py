"""One small PDF parse at import: imported by the sandbox's forkserver only.

Each parse runs in a child forked from that server. What a process loads lazily on its
first parse (MuPDF's built-in fonts, the table finder's state, imports inside functions,
compiled patterns) would otherwise be loaded again in every child: a few ms per document,
more than the whole parse of a short one. Loaded once in the server, children inherit it.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

from percolate_reading.parse.document import DocumentType
from percolate_reading.parse.parsing import run_provider
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.mupdf import pymupdf


def sample_pdf() -> bytes:
    """A one-page PDF with a heading, a paragraph and a ruled 2x2 table."""
    fitz: Any = pymupdf  # PyMuPDF's own annotations are partial
    doc = fitz.open()
    try:
        page = doc.new_page()
        page.insert_text((72, 72), "Warm-up", fontsize=16)
        page.insert_text((72, 100), "A short paragraph of body text for the warm-up parse.", fontsize=10)
        for row in range(3):
            page.draw_line((72, 130 + row * 20), (272, 130 + row * 20))
        for col in range(3):
            page.draw_line((72 + col * 100, 130), (72 + col * 100, 170))
        for row in range(2):
            for col in range(2):
                page.insert_text((80 + col * 100, 145 + row * 20), f"cell {row}{col}", fontsize=9)
        data: bytes = doc.tobytes()
        return data
    finally:
        doc.close()


def warm_up() -> None:
    with tempfile.TemporaryDirectory(prefix="percolate-warmup-") as tmp:
        path = Path(tmp) / "warmup.pdf"
        path.write_bytes(sample_pdf())
        run_provider(DocumentType.PDF, path, path.name, ParseOptions(ocr_enabled=False))


# A failed warm-up costs speed, never a parse.
with contextlib.suppress(Exception):
    warm_up()
