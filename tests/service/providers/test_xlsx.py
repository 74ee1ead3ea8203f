"""XlsxProvider on workbooks written with openpyxl at test time (and patched where openpyxl
cannot produce the case, e.g. a formula with a cached value as Excel saves it)."""

from __future__ import annotations

import datetime as dt
import re
import struct
import zipfile
from pathlib import Path

import openpyxl
import pytest

from percolate_reading.errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
    EncryptedDocumentError,
    UnsupportedTypeError,
)
from percolate_reading.parse.document import BlockKind, ParsedDocument
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.xlsx import XlsxProvider, format_number
from percolate_reading.parse.render.markdown import to_markdown

OPTIONS = ParseOptions()


def _parse(path: Path, provider: XlsxProvider | None = None) -> ParsedDocument:
    return (provider or XlsxProvider()).parse(path, path.name, OPTIONS)


def _rewrite_member(src: Path, dest: Path, member: str, text: str) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in zin.namelist():
            zout.writestr(name, text if name == member else zin.read(name))


def test_sheets_become_heading_and_table(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Sales"
    ws.append(["Region", "Units", "Price", "Shipped"])
    ws.append(["North", 12, 2.5, dt.date(2024, 3, 5)])
    ws.append(["South", 7, 1.0, dt.datetime(2024, 3, 6, 14, 30)])
    ws.append(["East", 0, 0.1 + 0.2, None])
    other = wb.create_sheet("Notes")
    other["A1"] = "checked"
    other["A2"] = "by Ann"
    path = tmp_path / "book.xlsx"
    wb.save(path)

    doc = _parse(path)
    assert [(b.kind, b.text, b.level, b.sheet) for b in doc.blocks] == [
        (BlockKind.HEADING, "Sales", 2, "Sales"),
        (BlockKind.TABLE, "", 0, "Sales"),
        (BlockKind.HEADING, "Notes", 2, "Notes"),
        (BlockKind.TABLE, "", 0, "Notes"),
    ]
    sales, notes = doc.tables
    assert sales.sheet == "Sales"
    assert sales.header_rows == 1
    assert sales.rows == (
        ("Region", "Units", "Price", "Shipped"),
        ("North", "12", "2.5", "2024-03-05"),
        ("South", "7", "1", "2024-03-06T14:30:00"),
        ("East", "0", "0.3", ""),
    )
    # All text, header row not distinct from the body by type or shape: no header.
    assert notes.rows == (("checked",), ("by Ann",))
    assert notes.header_rows == 0
    assert doc.metadata["sheet_count"] == 2
    assert doc.metadata["sheets"] == ["Sales", "Notes"]
    assert doc.metadata["cells"] == 17
    assert doc.warnings == []


def test_merged_cells_are_written_once_per_row(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Quarterly"
    ws["A1"] = "Region"
    ws["B1"] = "2024"
    ws["B2"] = "Q1"
    ws["C2"] = "Q2"
    ws.merge_cells("A1:A2")
    ws.merge_cells("B1:C1")
    ws.append(["North", 10, 11])
    ws.append(["South", 20, 21])
    path = tmp_path / "merged.xlsx"
    wb.save(path)

    table = _parse(path).tables[0]
    # "2024" spans two columns: once; "Region" spans two rows: it labels both.
    assert table.rows == (
        ("Region", "2024", ""),
        ("Region", "Q1", "Q2"),
        ("North", "10", "11"),
        ("South", "20", "21"),
    )
    assert table.header_rows == 2


def test_numbers_dates_and_booleans(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["value", "when"])
    ws.append([1e-7, dt.time(9, 15)])
    ws.append([12345678901, dt.datetime(1999, 12, 31, 23, 59, 58)])
    ws.append([-3.75, True])
    path = tmp_path / "values.xlsx"
    wb.save(path)
    assert _parse(path).tables[0].rows == (
        ("value", "when"),
        ("0.0000001", "09:15:00"),
        ("12345678901", "1999-12-31T23:59:58"),
        ("-3.75", "TRUE"),
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), (0.1 + 0.2, "0.3"), (2.675, "2.675"), (1e20, "100000000000000000000"), (-0.5, "-0.5")],
)
def test_format_number(value: float, text: str) -> None:
    assert format_number(value) == text


def test_formula_cached_values(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Calc"
    ws.append(["a", "double", "uncached"])
    ws.append([21, "=A2*2", "=A2+1"])
    src = tmp_path / "src.xlsx"
    wb.save(src)
    # openpyxl writes formulas without results; Excel stores the result in <v>. Add one, as
    # Excel would, to B2 only.
    with zipfile.ZipFile(src) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    # An empty value: `<v />`, or `<v></v>` when openpyxl serialises through lxml.
    empty = re.search(r"<f>A2\*2</f>(<v ?/>|<v></v>)", sheet)
    assert empty is not None, sheet
    patched = tmp_path / "calc.xlsx"
    _rewrite_member(
        src, patched, "xl/worksheets/sheet1.xml", sheet.replace(empty.group(0), "<f>A2*2</f><v>42</v>")
    )

    table = _parse(patched).tables[0]
    # The cached result is read, never the formula; no cached value reads as empty.
    assert table.rows == (("a", "double", "uncached"), ("21", "42", ""))


def test_empty_sheet_skipped_and_edges_trimmed(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Data"
    ws["C3"] = "name"
    ws["D3"] = "age"
    ws["C4"] = "Ann"
    ws["D4"] = 41
    ws["F9"].value = None  # an empty cell element far out: trailing rows/columns to trim
    ws["F9"].number_format = "0.00"
    wb.create_sheet("Blank")
    path = tmp_path / "edges.xlsx"
    wb.save(path)

    doc = _parse(path)
    assert [b.text for b in doc.blocks if b.kind is BlockKind.HEADING] == ["Data"]
    assert doc.tables[0].rows == (("name", "age"), ("Ann", "41"))
    assert doc.tables[0].header_rows == 1
    assert doc.warnings == ["sheet 'Blank' is empty; skipped"]
    assert doc.metadata["sheet_count"] == 2
    assert doc.metadata["tables"] == ["Data"]


def test_hidden_sheet_is_read_and_listed(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active["A1"] = "visible"
    hidden = wb.create_sheet("Lookup")
    hidden["A1"] = "secret"
    hidden.sheet_state = "hidden"
    path = tmp_path / "hidden.xlsx"
    wb.save(path)
    doc = _parse(path)
    assert doc.metadata["hidden_sheets"] == ["Lookup"]
    assert doc.tables[1].rows == (("secret",),)


def _cfb(streams: dict[str, bytes]) -> bytes:
    """A minimal Compound File Binary (v3, 512-byte sectors) holding the given streams, each
    padded to >= 4096 bytes so they live in regular sectors (no mini stream)."""
    sector = 512
    end, free, fat_sect = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD
    data = [s.ljust(4096, b"\0") for s in streams.values()]
    n_data = sum(-(-len(d) // sector) for d in data)
    n_dir = -(-(len(streams) + 1) * 128 // sector)
    n_fat = 1  # 128 entries cover everything here
    fat = [fat_sect]
    dir_start = len(fat)
    fat += [*range(dir_start + 1, dir_start + n_dir), end]
    starts = []
    for d in data:
        start = len(fat)
        n = -(-len(d) // sector)
        starts.append(start)
        fat += [*range(start + 1, start + n), end]
    assert len(fat) == n_fat + n_dir + n_data <= 128
    fat += [free] * (128 - len(fat))

    def entry(name: str, kind: int, start: int, size: int, child: int, right: int) -> bytes:
        raw = (name + "\0").encode("utf-16-le")
        return (
            raw.ljust(64, b"\0")
            + struct.pack("<HBB", len(raw), kind, 1)
            + struct.pack("<III", free, right, child)
            + b"\0" * 16
            + b"\0" * 4
            + b"\0" * 16
            + struct.pack("<IQ", start, size)
        )

    names = list(streams)
    # Root's child is the first stream; siblings chained through the right pointer.
    dirs = [entry("Root Entry", 5, end, 0, 1, free)]
    for i, (name, d) in enumerate(zip(names, data, strict=True)):
        right = i + 2 if i + 1 < len(names) else free
        dirs.append(entry(name, 2, starts[i], len(d), free, right))
    directory = b"".join(dirs).ljust(n_dir * sector, b"\0")
    header = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + b"\0" * 16
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
        + b"\0" * 6
        + struct.pack("<IIII", 0, n_fat, dir_start, 0)
        + struct.pack("<IIIII", 4096, end, 0, end, 0)
        + struct.pack("<109I", 0, *([free] * 108))  # DIFAT: the one FAT sector is sector 0
    )
    assert len(header) == 512
    fat_bytes = struct.pack(f"<{len(fat)}I", *fat)
    return header + fat_bytes + directory + b"".join(data)


def test_password_protected_workbook(tmp_path: Path) -> None:
    path = tmp_path / "locked.xlsx"
    path.write_bytes(
        _cfb({"EncryptionInfo": b"\x04\x00\x04\x00\x40\x00\x00\x00", "EncryptedPackage": b"\x00" * 64})
    )
    with pytest.raises(EncryptedDocumentError, match="password-protected"):
        _parse(path)


def test_legacy_xls_container_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "old.xls"
    path.write_bytes(_cfb({"Workbook": b"\x09\x08" * 10}))
    with pytest.raises(UnsupportedTypeError, match=r"\.xls"):
        _parse(path)


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "fake.xlsx"
    path.write_bytes(b"this is plainly text, not a workbook\n" * 10)
    with pytest.raises(CorruptDocumentError, match="not a readable XLSX zip"):
        _parse(path)


def test_truncated_workbook(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active["A1"] = "x"
    good = tmp_path / "good.xlsx"
    wb.save(good)
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CorruptDocumentError):
        _parse(bad)


def test_zip_without_workbook(tmp_path: Path) -> None:
    path = tmp_path / "doc.xlsx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("word/document.xml", "<w/>")
    with pytest.raises(CorruptDocumentError, match=r"no xl/workbook\.xml"):
        _parse(path)


def test_zero_bytes(tmp_path: Path) -> None:
    path = tmp_path / "empty.xlsx"
    path.write_bytes(b"")
    with pytest.raises(EmptyDocumentError):
        _parse(path)


def test_zip_bomb_ratio(tmp_path: Path) -> None:
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
        with z.open("xl/worksheets/sheet1.xml", "w") as f:
            block = b" " * (1024 * 1024)
            for _ in range(64):  # 64 MiB of spaces: deflates ~1000x
                f.write(block)
    with pytest.raises(DocumentTooLargeError, match="zip bomb"):
        _parse(path)


def test_uncompressed_total_cap(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    for i in range(200):
        wb.active.append([f"row {i}", i, i * 2.5])
    path = tmp_path / "rows.xlsx"
    wb.save(path)
    with pytest.raises(DocumentTooLargeError, match="bytes uncompressed"):
        _parse(path, XlsxProvider(max_uncompressed_bytes=10_000))


def test_far_cell_is_a_cell_bomb(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["A1"] = "first"
    ws["XFD1048576"] = "last"  # 17 billion dense cells if a reader allocated the grid
    path = tmp_path / "far.xlsx"
    wb.save(path)
    with pytest.raises(DocumentTooLargeError, match="cell cap"):
        _parse(path)


def test_cell_cap_setting(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    for i in range(30):
        wb.active.append([i, i, i, i])
    path = tmp_path / "cells.xlsx"
    wb.save(path)
    with pytest.raises(DocumentTooLargeError, match="120 cells"):
        _parse(path, XlsxProvider(max_cells=100))


_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 2 else "") + ";") * 10}">' for i in range(2, 10)
    )
    + "]>"
)


def _laughs_book(tmp_path: Path, member: str, needle: str, replacement: str) -> Path:
    wb = openpyxl.Workbook()
    wb.active.title = "S"
    wb.active["A1"] = "x"
    src = tmp_path / "src.xlsx"
    wb.save(src)
    with zipfile.ZipFile(src) as z:
        xml = z.read(member).decode()
    body = xml.split("?>", 1)[1] if xml.startswith("<?xml") else xml
    assert needle in body
    path = tmp_path / "laughs.xlsx"
    _rewrite_member(src, path, member, _LAUGHS + body.replace(needle, replacement))
    return path


def test_billion_laughs_in_sheet_is_refused(tmp_path: Path) -> None:
    path = _laughs_book(tmp_path, "xl/worksheets/sheet1.xml", "<sheetData>", "<sheetData><!-- &lol9; -->")
    with pytest.raises(CorruptDocumentError, match="entit"):
        _parse(path)


def test_billion_laughs_in_workbook_is_refused(tmp_path: Path) -> None:
    path = _laughs_book(tmp_path, "xl/workbook.xml", 'name="S"', 'name="&lol9;"')
    with pytest.raises(CorruptDocumentError, match="entity"):
        _parse(path)


def test_title_above_the_table(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Plain"
    ws["A1"] = "Stock by warehouse"
    ws.append([])
    ws.append(["Warehouse", "Items"])
    ws.append(["Oslo", 120])
    ws.append(["Bergen", 75])
    banner = wb.create_sheet("Banner")
    banner["B2"] = "Staff list"
    banner.merge_cells("B2:D2")
    banner.append([None, "Name", "Team", "Since"])
    banner.append([None, "Ann", "Ops", dt.date(2020, 1, 6)])
    path = tmp_path / "titles.xlsx"
    wb.save(path)

    plain, merged = _parse(path).tables
    assert plain.title == "Stock by warehouse"
    assert plain.rows == (("Warehouse", "Items"), ("Oslo", "120"), ("Bergen", "75"))
    assert plain.header_rows == 1
    assert merged.title == "Staff list"
    assert merged.rows == (("Name", "Team", "Since"), ("Ann", "Ops", "2020-01-06"))
    assert merged.header_rows == 1


def test_a_one_cell_first_row_of_a_short_table_is_not_a_title(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Total"])
    ws.append(["apples", 3])
    path = tmp_path / "short.xlsx"
    wb.save(path)
    table = _parse(path).tables[0]
    assert table.title is None
    assert table.rows == (("Total", ""), ("apples", "3"))


def test_a_banner_across_the_sheet_is_written_once(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Section A: inventory", *[None] * 9])
    ws.merge_cells("A1:J1")
    ws.append([f"c{i}" for i in range(10)])
    ws.append(list(range(10)))
    ws.append(list(range(10, 20)))
    path = tmp_path / "banner.xlsx"
    wb.save(path)
    doc = _parse(path)
    table = doc.tables[0]
    assert table.title == "Section A: inventory"
    assert to_markdown(doc).count("Section A: inventory") == 1
    assert table.rows[0] == tuple(f"c{i}" for i in range(10))


def test_sub_tables_split_on_blank_rows_and_columns(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Report"
    # Two tables side by side (blank column C), a titled table below a blank row.
    for row in (
        ["Fruit", "Kg", None, "City", "Visits"],
        ["apple", 3, None, "Oslo", 12],
        ["pear", 5, None, "Rome", 7],
    ):
        ws.append(row)
    ws.append([])
    ws.append(["Staff"])
    ws.append([])
    ws.append(["Name", "Since"])
    ws.append(["Ann", 2020])
    ws.append(["Bob", 2021])
    path = tmp_path / "blocks.xlsx"
    wb.save(path)
    fruit, cities, staff = _parse(path).tables
    assert fruit.rows == (("Fruit", "Kg"), ("apple", "3"), ("pear", "5"))
    assert cities.rows == (("City", "Visits"), ("Oslo", "12"), ("Rome", "7"))
    assert staff.title == "Staff"
    assert staff.rows == (("Name", "Since"), ("Ann", "2020"), ("Bob", "2021"))
    assert (fruit.header_rows, cities.header_rows, staff.header_rows) == (1, 1, 1)


def test_formulas_without_cached_values_are_reported(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Data"
    wb.create_sheet("Calc", 0)  # first in the workbook, second part in the zip
    calc = wb["Calc"]
    calc.append(["a", "double", "plus"])
    calc.append([21, "=A2*2", "=A2+1"])
    ws.append(["x", "y"])
    ws.append([1, 2])
    path = tmp_path / "uncached.xlsx"
    wb.save(path)
    doc = _parse(path)
    (warning,) = [w for w in doc.warnings if "formula" in w]
    assert warning.startswith("sheet 'Calc': 2 formula cell(s)")
    assert "(B2, C2)" in warning
    assert doc.metadata["sheet_count"] == len(doc.metadata["sheet_names"]) == 2
