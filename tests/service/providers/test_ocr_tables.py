"""Tables in scanned pages: structure from OCR boxes and ruling lines.

The unit tests feed boxes and rasters built here (fast, no OCR); the end-to-end tests draw a
table with Pillow, OCR it with the bundled RapidOCR models (as an image, and as a scanned PDF
page) and check that key cells land in the right row and column, in Markdown and CSV.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pymupdf
import pytest
from PIL import Image, ImageDraw, ImageFont

from percolate_reading.parse.document import BlockKind, Table
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.image import ImageProvider
from percolate_reading.parse.providers.ocr import OcrLine
from percolate_reading.parse.providers.ocr_tables import find_tables, page_blocks
from percolate_reading.parse.providers.pdf import PdfProvider
from percolate_reading.parse.render.markdown import to_markdown
from percolate_reading.parse.render.tables import table_csv


def box(text: str, x0: float, y0: float, x1: float, h: float = 30) -> OcrLine:
    return OcrLine(text, (x0, y0, x1, y0 + h), 0.99)


def grid_lines(rows: list[list[str]], xs: list[float], top: float = 100, pitch: float = 60) -> list[OcrLine]:
    out = []
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            if cell:
                out.append(box(cell, xs[j] + 10, top + i * pitch + 15, xs[j] + 10 + 18 * len(cell)))
    return out


PROSE_ABOVE = box("The shipments of the quarter are listed in the table below.", 60, 20, 900)
PROSE_BELOW = box("Totals were checked by the billing office.", 60, 520, 700)
ROWS = [["Region", "Units", "Price"], ["North", "12", "2.50"], ["South", "", "1.00"], ["West", "9", "12.75"]]


def test_whitespace_columns_and_rows_from_boxes() -> None:
    lines = [PROSE_ABOVE, *grid_lines(ROWS, [60, 330, 530]), PROSE_BELOW]
    (found,) = find_tables(lines)
    assert found.table.rows == (
        ("Region", "Units", "Price"),
        ("North", "12", "2.50"),
        ("South", "", "1.00"),  # the empty cell keeps its column
        ("West", "9", "12.75"),
    )
    assert found.table.header_rows == 1
    kinds = [b.kind for b in page_blocks(lines)]
    assert kinds == [BlockKind.PARAGRAPH, BlockKind.TABLE, BlockKind.PARAGRAPH]


def test_two_tables_apart_only_by_blank_space_stay_two() -> None:
    # Rows 60 apart (30-high boxes); the second table starts 150 below the first one's last row.
    second = [["Team", "Score", "Rank"], ["Blue", "31", "2"], ["Green", "44", "1"]]
    lines = [*grid_lines(ROWS, [60, 330, 530]), *grid_lines(second, [60, 330, 530], top=100 + 3 * 60 + 150)]
    first_found, second_found = find_tables(lines)
    assert first_found.table.rows[0] == ("Region", "Units", "Price")
    assert len(first_found.table.rows) == len(ROWS)
    assert second_found.table.rows == tuple(tuple(r) for r in second)


def test_two_prose_columns_are_not_a_table() -> None:
    left = [box("lorem ipsum dolor sit amet consectetur", 60, 100 + 45 * i, 480) for i in range(8)]
    right = [box("adipiscing elit sed do eiusmod tempor", 540, 100 + 45 * i, 960) for i in range(8)]
    assert find_tables(left + right) == []


def test_ruling_lines_decide_columns_and_keep_wrapped_cells_whole() -> None:
    # Columns only 20 px apart (under the whitespace threshold) but ruled; "East" / "Coast"
    # wrapped over two lines inside one ruled row.
    gray = np.full((500, 800), 255, dtype=np.uint8)
    xs, ys = [50, 250, 450, 650], [100, 160, 260, 320]
    for x in xs:
        gray[ys[0] : ys[-1] + 1, x : x + 2] = 0
    for y in ys:
        gray[y : y + 2, xs[0] : xs[-1] + 1] = 0
    lines = [
        box("Region", 60, 115, 240),
        box("Units", 260, 115, 440),
        box("Sold", 460, 115, 640),
        box("East", 60, 175, 160),
        box("Coast", 60, 215, 170),
        box("140", 260, 195, 440),
        box("yes", 460, 195, 640),
        box("West", 60, 275, 240),
        box("9", 260, 275, 440),
        box("no", 460, 275, 640),
    ]
    (found,) = find_tables(lines, gray)
    assert found.table.rows == (
        ("Region", "Units", "Sold"),
        ("East Coast", "140", "yes"),
        ("West", "9", "no"),
    )

    # The last row wraps too: its second line belongs to the table, not to the text below.
    gray[ys[-1] : ys[-1] + 2, :] = 255
    gray[ys[-1] + 40 : ys[-1] + 42, xs[0] : xs[-1] + 1] = 0
    for x in xs:
        gray[ys[0] : ys[-1] + 41, x : x + 2] = 0
    lines += [box("Wales", 60, 312, 170), box("Totals were checked twice by the office.", 60, 420, 700)]
    (found,) = find_tables(lines, gray)
    assert found.table.rows[-1] == ("West Wales", "9", "no")
    assert "Totals" not in str(found.table.rows)


def _draw_table(rows: list[list[str]], ruled: bool) -> Image.Image:
    font = ImageFont.load_default(size=30)
    img = Image.new("RGB", (1100, 640), "white")
    d = ImageDraw.Draw(img)
    d.text((60, 30), "Quarterly shipments by region are listed below.", font=font, fill="black")
    xs, top, pitch = [60, 330, 530, 730, 1030], 110, 60
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            d.text((xs[j] + 12, top + i * pitch + 14), cell, font=font, fill="black")
    if ruled:
        for i in range(len(rows) + 1):
            d.line([(xs[0], top + i * pitch), (xs[-1], top + i * pitch)], fill="black", width=2)
        for x in xs:
            d.line([(x, top), (x, top + len(rows) * pitch)], fill="black", width=2)
    d.text(
        (60, top + len(rows) * pitch + 40),
        "Totals are checked by the billing office.",
        font=font,
        fill="black",
    )
    return img


SCANNED = [
    ["Region", "Units", "Price", "Shipped"],
    ["North", "12", "2.50", "March 5"],
    ["South", "", "1.00", "March 6"],
    ["East", "140", "0.30", "April 11"],
    ["West", "9", "12.75", "May 2"],
]


def _check_scanned_table(table: Table) -> None:
    rows = [[c.replace(" ", "") for c in r] for r in table.rows]
    assert len(rows) == 5, table.rows
    assert all(len(r) == 4 for r in rows), table.rows
    assert rows[0][:3] == ["Region", "Units", "Price"]
    assert [r[0] for r in rows[1:]] == ["North", "South", "East", "West"]
    assert [r[1] for r in rows[1:]] == ["12", "", "140", "9"]
    assert [r[2] for r in rows[1:]] == ["2.50", "1.00", "0.30", "12.75"]
    assert rows[4][3] == "May2"


@pytest.mark.ocr
def test_scanned_table_image_becomes_a_table_and_csv(tmp_path: Path) -> None:
    path = tmp_path / "table.png"
    _draw_table(SCANNED, ruled=False).save(path)
    doc = ImageProvider().parse(path, path.name, ParseOptions())
    assert [b.kind for b in doc.blocks] == [BlockKind.PARAGRAPH, BlockKind.TABLE, BlockKind.PARAGRAPH]
    (table,) = [b.table for b in doc.blocks if b.table is not None]
    _check_scanned_table(table)
    markdown = to_markdown(doc)
    assert "| Region | Units | Price |" in markdown.replace(" Shipped |", "")
    assert markdown.index("Quarterly") < markdown.index("| North") < markdown.index("Totals")
    rows = list(csv.reader(io.StringIO(table_csv(table).decode())))
    assert [r[0] for r in rows] == ["Region", "North", "South", "East", "West"]


@pytest.mark.ocr
def test_scanned_pdf_page_with_a_ruled_table(tmp_path: Path) -> None:
    buf = io.BytesIO()
    _draw_table(SCANNED, ruled=True).save(buf, "PNG")
    pdf = pymupdf.open()
    page = pdf.new_page(width=612, height=356)
    page.insert_image(page.rect, stream=buf.getvalue())
    path = tmp_path / "scan.pdf"
    pdf.save(path)
    pdf.close()
    doc = PdfProvider().parse(path, path.name, ParseOptions())
    tables = [b for b in doc.blocks if b.kind is BlockKind.TABLE]
    assert len(tables) == 1
    assert tables[0].page == 1
    assert tables[0].table is not None
    _check_scanned_table(tables[0].table)
