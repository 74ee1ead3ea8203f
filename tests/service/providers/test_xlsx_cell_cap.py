"""The XLSX cell cap holds for every layout: rows and cells without `r=`, many small sheets,
unusual attribute spellings, sheets outside xl/worksheets/.

Workbooks are written by hand (openpyxl always writes `r=`), small enough to be quick but above
a low cap set per test. The bound the pre-scan computes is also checked against what calamine
really allocates, on layouts that mix every positioning rule.
"""

from __future__ import annotations

import io
import random
import time
import zipfile
from pathlib import Path

import pytest
import python_calamine

from percolate_reading.config import load_settings
from percolate_reading.errors import DocumentTooLargeError, PercolateError
from percolate_reading.parse.parsing import parse_file
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.xlsx import XlsxProvider
from percolate_reading.parse.providers.xlsx_scan import MemberScan, WorkbookScan, pieces
from percolate_reading.parse.sandbox import SandboxLimits

NS = b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
REL_NS = b'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
SHEET_REL = b"http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"


def workbook(sheets: list[bytes], targets: list[str] | None = None) -> bytes:
    """A minimal XLSX with one worksheet per `sheetData` body; `targets` places the sheet parts
    (default xl/worksheets/sheetN.xml)."""
    targets = targets or [f"xl/worksheets/sheet{i + 1}.xml" for i in range(len(sheets))]
    book = b"".join(
        b'<sheet name="S%d" sheetId="%d" r:id="rId%d"/>' % (i, i + 1, i + 1) for i in range(len(sheets))
    )
    rels = b"".join(
        b'<Relationship Id="rId%d" Type="%s" Target="/%s"/>' % (i + 1, SHEET_REL, t.encode())
        for i, t in enumerate(targets)
    )
    parts = {
        "[Content_Types].xml": b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        b'<Default Extension="xml" ContentType="application/xml"/></Types>',
        "_rels/.rels": b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        b'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": b"<workbook " + NS + b" " + REL_NS + b"><sheets>" + book + b"</sheets></workbook>",
        "xl/_rels/workbook.xml.rels": b'<Relationships xmlns="http://schemas.openxmlformats.org/package/'
        b'2006/relationships">' + rels + b"</Relationships>",
    }
    for target, body in zip(targets, sheets, strict=True):
        parts[target] = b"<worksheet " + NS + b"><sheetData>" + body + b"</sheetData></worksheet>"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    return buf.getvalue()


def rows_without_r(rows: int, cols: int) -> bytes:
    row = b"<row>" + b"<c><v>1</v></c>" * cols + b"</row>"
    return row * rows


def parse(tmp_path: Path, data: bytes, cap: int) -> None:
    path = tmp_path / "book.xlsx"
    path.write_bytes(data)
    XlsxProvider(max_cells=cap).parse(path, path.name, ParseOptions())


def test_rows_without_r_split_over_sheets_hit_the_cap(tmp_path: Path) -> None:
    # 12 sheets of 1,000 cells: each alone is under the cap, the workbook is over it.
    data = workbook([rows_without_r(100, 10)] * 12)
    parse(tmp_path, data, cap=20_000)  # the layout itself reads
    with pytest.raises(DocumentTooLargeError, match=r"at least 1[01]\d\d\d cells.*10000 cell cap"):
        parse(tmp_path, data, cap=10_000)


def test_a_wide_row_then_a_tall_column_is_counted_as_their_rectangle(tmp_path: Path) -> None:
    # 400 cells, but calamine allocates 201 x 200: the dense rectangle is what costs memory.
    body = rows_without_r(1, 200) + rows_without_r(200, 1)
    with pytest.raises(DocumentTooLargeError, match="span at least"):
        parse(tmp_path, workbook([body]), cap=10_000)


@pytest.mark.parametrize(
    "cell",
    [
        b"<c r='XFD1048576'><v>1</v></c>",  # single quotes
        b'<c r = "XFD1048576"><v>1</v></c>',  # spaces around =
        b'<c r="xfd1048576"><v>1</v></c>',  # lower-case column
        b'<x:c xmlns:x="urn:x" r="XFD1048576"><v>1</v></x:c>',  # a namespace prefix
        b'<c t="n"r="XFD1048576"><v>1</v></c>',  # no space before r
    ],
)
def test_far_reference_in_any_spelling_is_a_cell_bomb(tmp_path: Path, cell: bytes) -> None:
    body = b'<row r="1"><c r="A1"><v>1</v></c>' + cell + b"</row>"
    with pytest.raises(DocumentTooLargeError, match="cell cap"):
        parse(tmp_path, workbook([body]), cap=1_000_000)


def test_a_cell_below_its_row_is_counted_at_its_own_row(tmp_path: Path) -> None:
    body = b'<row r="1"><c r="A1"><v>1</v></c><c r="C1048576"><v>2</v></c></row>'
    with pytest.raises(DocumentTooLargeError, match="cell cap"):
        parse(tmp_path, workbook([body]), cap=1_000_000)


def test_a_sheet_outside_worksheets_is_counted(tmp_path: Path) -> None:
    data = workbook(
        [rows_without_r(60, 10), rows_without_r(60, 10)], ["xl/worksheets/a.xml", "xl/other/b.xml"]
    )
    parse(tmp_path, data, cap=2_000)
    with pytest.raises(DocumentTooLargeError, match="cell cap"):
        parse(tmp_path, data, cap=1_000)


def test_many_duplicate_positions_are_still_cells(tmp_path: Path) -> None:
    # Every cell claims A1: the rectangle is 1 cell, the list calamine collects is not.
    body = b'<row r="1">' + b'<c r="A1"><v>1</v></c>' * 3_000 + b"</row>"
    with pytest.raises(DocumentTooLargeError, match="at least 3000 cells"):
        parse(tmp_path, workbook([body]), cap=2_000)


def _random_sheet(rng: random.Random) -> bytes:
    """Rows and cells with and without `r=`, in order as real writers emit them."""
    out = []
    row = 0
    for _ in range(rng.randint(1, 12)):
        row += rng.randint(1, 4)
        with_r = rng.random() < 0.5
        out.append(b'<row r="%d">' % row if with_r else b"<row>")
        col = 0
        for _ in range(rng.randint(0, 9)):
            col += rng.randint(1, 3)
            if rng.random() < 0.5:
                letters = ""
                n = col
                while n:
                    n, rem = divmod(n - 1, 26)
                    letters = chr(65 + rem) + letters
                out.append(b'<c r="%s%d"><v>%d</v></c>' % (letters.encode(), row, col))
            else:
                out.append(b"<c><v>%d</v></c>" % col)
        out.append(b"</row>")
    return b"".join(out)


def test_the_bound_covers_what_calamine_allocates(tmp_path: Path) -> None:
    rng = random.Random(14)
    for i in range(40):
        body = _random_sheet(rng)
        path = tmp_path / f"r{i}.xlsx"
        path.write_bytes(workbook([body]))
        with python_calamine.CalamineWorkbook.from_path(str(path)) as wb:
            sheet = wb.get_sheet_by_index(0)
            end = sheet.end  # to_python(skip_empty_area=False) fills from A1 to here
            allocated = (end[0] + 1) * (end[1] + 1) if end else 0
        scan = MemberScan("sheet")
        scan.feed(body, track_formulas=False)
        assert scan.area >= allocated, body
        assert scan.cells == body.count(b"<c")


def test_pieces_never_split_or_repeat_a_tag() -> None:
    body = rows_without_r(300, 7) + b'<row r="900"><c r="B900" t="s"><v>3</v></c></row>'
    whole = MemberScan("whole")
    whole.feed(body, track_formulas=False)
    for size in (32, 57, 64, 1000):  # longer than any one tag
        split = MemberScan("split")
        parts = list(pieces(io.BytesIO(body), chunk_size=size))
        assert b"".join(parts) == body
        for part in parts:
            split.feed(part, track_formulas=False)
        assert (split.cells, split.area) == (whole.cells, whole.area), size


def test_a_large_hostile_workbook_fails_fast(tmp_path: Path) -> None:
    # 40 sheets x 20,000 cells without r= (the red-team layout, scaled down): the scan stops at
    # the cap instead of reading on.
    data = workbook([rows_without_r(2_000, 10)] * 40)
    path = tmp_path / "hostile.xlsx"
    path.write_bytes(data)
    scan = WorkbookScan(path.name, 80_000)
    t0 = time.process_time()
    with zipfile.ZipFile(path) as zf, pytest.raises(DocumentTooLargeError):
        scan.scan(zf)
    assert time.process_time() - t0 < 5
    assert len(scan.members) < 10  # stopped at the fifth or so sheet, not the fortieth


def test_the_job_fails_with_too_large(tmp_path: Path) -> None:
    path = tmp_path / "upload.xlsx"
    path.write_bytes(workbook([rows_without_r(100, 10)] * 12))
    settings = load_settings().model_copy(update={"xlsx_max_cells": 10_000})
    limits = SandboxLimits(memory_mb=768, timeout_s=60, cpu_s=60)
    with pytest.raises(PercolateError) as info:
        parse_file(path, ParseOptions.from_settings(settings), limits, path.name, settings)
    assert info.value.code == "too_large"
    assert "upload.xlsx" in info.value.message
    assert "cell cap" in info.value.message
