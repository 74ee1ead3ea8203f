# mypy: disable-error-code="no-untyped-call"
"""Generate the bundled sample documents in `service/percolate_reading/samples/`.

    python bench/make_samples.py [OUT_DIR]

- `sample-report.pdf`: three pages: headings, paragraphs, a bulleted and a numbered list,
  a two-column page, and a ruled table with known cells.
- `sample-budget.xlsx`: two sheets: a merged title row over a header, dates, numbers and a
  SUM formula whose cached value is stored (as Excel would), and a small lookup sheet.

The output is deterministic (fixed metadata and timestamps) so regenerating does not churn git.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import sys
import zipfile
from pathlib import Path

import openpyxl
import pymupdf
from openpyxl.styles import Alignment, Font

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "service" / "percolate_reading" / "samples"
PDF_NAME = "sample-report.pdf"
XLSX_NAME = "sample-budget.xlsx"

TABLE_ROWS = [
    ["Region", "Q1", "Q2", "Total"],
    ["North", "120", "135", "255"],
    ["South", "98", "110", "208"],
    ["East", "143", "151", "294"],
    ["West", "87", "95", "182"],
]

INTRO = (
    "Percolate Reading turns documents into text that language models can use. This report "
    "describes how the parser reads a PDF: it follows the reading order, keeps headings, and "
    "turns ruled tables into rows and columns."
)
METHOD = (
    "Each page is read once. Text blocks are grouped into paragraphs, and lines that start with "
    "a bullet or a number become list items."
)
LEFT_COLUMN = (
    "The left column comes first. A reader of a newspaper finishes this column before moving "
    "to the right one, and so does the parser. Sentences in this column talk about apples, "
    "which grow in orchards and ripen in autumn."
)
RIGHT_COLUMN = (
    "The right column comes second. Its sentences talk about bicycles, which have two wheels "
    "and a chain. A parser that mixed the columns would interleave apples and bicycles."
)


def _heading(page: pymupdf.Page, y: float, text: str, size: float) -> float:
    page.insert_text((72, y), text, fontname="hebo", fontsize=size)
    return y + size * 1.8


def _paragraph(page: pymupdf.Page, y: float, text: str, x0: float = 72, x1: float = 523) -> float:
    rect = pymupdf.Rect(x0, y - 10, x1, y + 200)
    spare = page.insert_textbox(rect, text, fontname="helv", fontsize=11, lineheight=1.3)
    used = float(rect.height - spare)
    return y + used + 12


def _ruled_table(page: pymupdf.Page, top: float, rows: list[list[str]]) -> None:
    x0, col_w, row_h = 72.0, 110.0, 22.0
    n_cols = len(rows[0])
    shape = page.new_shape()
    for r in range(len(rows) + 1):
        y = top + r * row_h
        shape.draw_line((x0, y), (x0 + n_cols * col_w, y))
    for c in range(n_cols + 1):
        x = x0 + c * col_w
        shape.draw_line((x, top), (x, top + len(rows) * row_h))
    shape.finish(color=(0, 0, 0), width=0.8)
    shape.commit()
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            font = "hebo" if r == 0 else "helv"
            page.insert_text((x0 + c * col_w + 6, top + r * row_h + 15), cell, fontname=font, fontsize=10)


def make_pdf(path: Path) -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    y = _heading(page, 90, "Sample Report", 22)
    y = _heading(page, y, "1. Introduction", 15)
    y = _paragraph(page, y, INTRO)
    y = _heading(page, y, "2. Method", 15)
    y = _paragraph(page, y, METHOD)
    for item in ("Read every page once", "Group lines into paragraphs", "Find ruled tables"):
        page.insert_text((84, y), "\u2022", fontname="helv", fontsize=11)
        page.insert_text((96, y), item, fontname="helv", fontsize=11)
        y += 16
    y += 8
    for i, item in enumerate(("Detect the type", "Parse in a sandbox", "Write the artifacts"), 1):
        page.insert_text((84, y), f"{i}.", fontname="helv", fontsize=11)
        page.insert_text((100, y), item, fontname="helv", fontsize=11)
        y += 16

    page = doc.new_page(width=595, height=842)
    y = _heading(page, 90, "3. Two Columns", 15)
    _paragraph(page, y, LEFT_COLUMN, 72, 287)
    _paragraph(page, y, RIGHT_COLUMN, 308, 523)

    page = doc.new_page(width=595, height=842)
    y = _heading(page, 90, "4. Results", 15)
    y = _paragraph(page, y, "The table lists units sold per region and quarter.")
    _ruled_table(page, y + 6, TABLE_ROWS)

    doc.set_metadata(
        {
            "title": "Sample Report",
            "author": "percolate-reading",
            "creationDate": "D:20260101000000Z",
            "modDate": "D:20260101000000Z",
            "producer": "percolate-reading make_samples",
            "creator": "percolate-reading make_samples",
        }
    )
    data = doc.tobytes(garbage=4, deflate=True, no_new_id=True)
    doc.close()
    path.write_bytes(data)


BUDGET_ROWS: list[tuple[object, ...]] = [
    ("Item", "Date", "Amount"),
    ("Paper", dt.date(2026, 1, 15), 120.5),
    ("Toner", dt.date(2026, 2, 3), 89.99),
    ("Chairs", dt.date(2026, 3, 20), 640.0),
]
BUDGET_TOTAL = round(120.5 + 89.99 + 640.0, 2)


def make_xlsx(path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Budget"
    ws["A1"] = "Office budget 2026"
    ws.merge_cells("A1:C1")
    ws["A1"].font = Font(bold=True)
    ws["A1"].alignment = Alignment(horizontal="center")
    for r, row in enumerate(BUDGET_ROWS, start=2):
        for c, value in enumerate(row, start=1):
            cell = ws.cell(row=r, column=c, value=value)
            if isinstance(value, dt.date):
                cell.number_format = "yyyy-mm-dd"
    total_row = len(BUDGET_ROWS) + 2
    ws.cell(row=total_row, column=1, value="Total")
    ws.cell(row=total_row, column=3, value=f"=SUM(C3:C{total_row - 1})")

    lookup = wb.create_sheet("Codes")
    for code_row in (("Code", "Meaning"), ("A", "Approved"), ("P", "Pending")):
        lookup.append(code_row)

    fixed = dt.datetime(2026, 1, 1)
    wb.properties.created = fixed
    wb.properties.modified = fixed
    wb.properties.creator = "percolate-reading"
    buf = io.BytesIO()
    wb.save(buf)
    path.write_bytes(_with_cached_value(buf.getvalue(), f"C{total_row}", BUDGET_TOTAL))


def _with_cached_value(xlsx: bytes, ref: str, value: float) -> bytes:
    """openpyxl writes formulas without results; store the value Excel would have cached, and
    rewrite the archive with fixed timestamps so the bytes are reproducible."""
    src = zipfile.ZipFile(io.BytesIO(xlsx))
    out = io.BytesIO()
    with src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                text = data.decode("utf-8")
                pattern = re.compile(rf'(<c r="{ref}"[^>]*>)<f>([^<]*)</f><v\s*/?>(</v>)?')
                text, n = pattern.subn(rf"\1<f>\2</f><v>{value}</v>", text)
                if n != 1:
                    raise RuntimeError(f"formula cell {ref} not found in the sheet XML")
                data = text.encode("utf-8")
            elif info.filename == "docProps/core.xml":
                # openpyxl stamps the save time; keep the fixed one.
                text = re.sub(r"(<dcterms:modified[^>]*>)[^<]*", r"\g<1>2026-01-01T00:00:00Z", data.decode())
                data = text.encode("utf-8")
            fixed = zipfile.ZipInfo(info.filename, date_time=(2026, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, data)
    return out.getvalue()


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else DEFAULT_OUT
    out.mkdir(parents=True, exist_ok=True)
    make_pdf(out / PDF_NAME)
    make_xlsx(out / XLSX_NAME)
    for name in (PDF_NAME, XLSX_NAME):
        print(f"{out / name}: {(out / name).stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
