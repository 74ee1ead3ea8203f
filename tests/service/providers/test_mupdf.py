"""PyMuPDF as the providers import it: no layout model loaded, nothing printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.providers.pdf_fixtures import ruled_table_pdf

# Runs in a fresh interpreter, so nothing this test process imported first decides the outcome.
_PROBE = """
import sys
from percolate_reading.parse.providers.mupdf import pymupdf
layout = sys.modules.get("pymupdf.layout", "absent")
print("layout:", "blocked" if layout is None else "absent" if layout == "absent" else "LOADED")
print("onnxruntime:", "onnxruntime" in sys.modules)
print("pymupdf4llm:", "pymupdf4llm" in sys.modules)
"""


def test_layout_model_is_never_loaded() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True).stdout
    assert "layout: LOADED" not in out
    assert "onnxruntime: False" in out
    assert "pymupdf4llm: False" in out


def test_blocked_packages_stay_importable_by_others() -> None:
    # Only PyMuPDF's own eager import is stopped: code that wants pymupdf4llm still gets it.
    code = (
        "import importlib, importlib.util; import percolate_reading.parse.providers.mupdf; "
        "spec = importlib.util.find_spec('pymupdf4llm'); "
        "print('not installed' if spec is None else importlib.import_module('pymupdf4llm').__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    if out.strip() == "not installed":
        pytest.skip("pymupdf4llm is not installed here")
    assert out.strip() == "pymupdf4llm"


def test_table_search_prints_nothing(tmp_path: Path) -> None:
    # Without the layout package PyMuPDF advertises it on stdout at the first table search;
    # the `parse` CLI's stdout must carry only its own output.
    pdf = tmp_path / "table.pdf"
    pdf.write_bytes(ruled_table_pdf())
    code = (
        "import sys; from pathlib import Path; "
        "from percolate_reading.parse.providers.pdf import PdfProvider; "
        "from percolate_reading.parse.providers.base import ParseOptions; "
        f"doc = PdfProvider().parse(Path({str(pdf)!r}), 'table.pdf', ParseOptions(ocr_enabled=False)); "
        "sys.stderr.write(f'tables={len(doc.tables)}')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "tables=1" in done.stderr
    assert done.stdout == ""
