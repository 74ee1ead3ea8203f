"""tables/<n>.csv: one CSV per table, numbered in document order, RFC 4180 quoting."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from percolate_reading.parse.document import Block, BlockKind, DocumentType, ParsedDocument, Table
from percolate_reading.parse.parsing import parse_file
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.render.tables import tables_to_csv


def test_tables_numbered_from_one_with_exact_bytes() -> None:
    doc = ParsedDocument(
        source_name="t.pdf",
        doc_type=DocumentType.PDF,
        blocks=[
            Block(BlockKind.PARAGRAPH, text="no table here"),
            Block(BlockKind.TABLE, table=Table(rows=(("Item", "Price"), ("Tea, green", "3.50")), page=1)),
            Block(BlockKind.PAGE_BREAK, page=2),
            Block(
                BlockKind.TABLE,
                table=Table(rows=(("Quote", "Note"), ('say "hi"', "line1\nline2"), ("short",)), page=2),
            ),
        ],
    )
    out = tables_to_csv(doc)
    assert [name for name, _ in out] == ["tables/1.csv", "tables/2.csv"]
    assert out[0][1] == b'Item,Price\r\n"Tea, green",3.50\r\n'
    assert out[1][1] == b'Quote,Note\r\n"say ""hi""","line1\nline2"\r\nshort,\r\n'
    # And it reads back to the same cells (rows padded to the table's width).
    rows = list(csv.reader(io.StringIO(out[1][1].decode("utf-8"), newline="")))
    assert rows == [["Quote", "Note"], ['say "hi"', "line1\nline2"], ["short", ""]]


def test_unicode_is_utf8_and_no_tables_gives_nothing() -> None:
    doc = ParsedDocument(
        source_name="s.xlsx",
        doc_type=DocumentType.XLSX,
        blocks=[Block(BlockKind.TABLE, table=Table(rows=(("Straße", "€"),), sheet="Ü"))],
    )
    assert tables_to_csv(doc) == [("tables/1.csv", "Straße,€\r\n".encode())]
    assert tables_to_csv(ParsedDocument(source_name="e", doc_type=DocumentType.PDF)) == []


def test_formula_cells_are_neutralized_per_owasp() -> None:
    from percolate_reading.parse.render.tables import neutralize_formula

    live = ["=1+1", "@SUM(A1:A2)", "+cmd|' /C calc'!A0", "-2+3", "\t=1+2", "\r=1", " =HYPERLINK(x)", "=", "@"]
    for cell in live:
        assert neutralize_formula(cell) == "'" + cell, cell
    for cell in ["", "plain", "-5", "+3.25", "-1e5", "12%", "a=b", "email@example.com", "'=quoted", "  "]:
        assert neutralize_formula(cell) == cell, cell


def test_workbook_formulas_reach_the_csv_neutralized(tmp_path: Path) -> None:
    """Through the real XLSX provider and renderer: no cell of tables/*.csv starts live."""
    from tests.harness.documents import make_xlsx

    path = tmp_path / "inject.xlsx"
    # openpyxl writes strings starting with '=' as formulas unless typed as strings; both reach us.
    path.write_bytes(
        make_xlsx([["name", "value"], ["a", "@SUM(1+1)*cmd|' /C calc'!A0"], ["b", "\t=1+2"], ["c", -7]])
    )
    doc = parse_file(path, ParseOptions(ocr_enabled=False), None)
    cells = [
        c for _, data in tables_to_csv(doc) for row in csv.reader(io.StringIO(data.decode())) for c in row
    ]
    assert "'@SUM(1+1)*cmd|' /C calc'!A0" in cells
    assert any(c.startswith("'") and c.lstrip("'").lstrip().startswith("=1+2") for c in cells), cells
    assert "-7" in cells
    for cell in cells:
        assert not cell.lstrip().startswith(("=", "+", "@")), cell
