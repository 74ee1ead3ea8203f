"""Legacy Excel (XLS, BIFF8) and OpenDocument spreadsheets (ODS), both read by calamine.

The same output as the XLSX provider (one heading and one table per non-empty worksheet,
merged values propagated, title rows and header rows detected) through its helpers, so a
workbook reads the same whichever format it was saved in. ODS is a zip: it passes the shared
zip-bomb guard first. Both pass the dense-area cell cap before a sheet is materialised.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from percolate_reading.config import Settings
from percolate_reading.errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    EncryptedDocumentError,
)
from percolate_reading.parse.document import Block, BlockKind, DocumentType, ParsedDocument, Table
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.container import SafeZip, ZipLimits
from percolate_reading.parse.providers.xlsx import (
    DEFAULT_MAX_CELLS,
    _read_sheet,
    _Sheet,
    detect_header_rows,
    split_title,
)


def read_workbook(path: Path, source_name: str, doc: ParsedDocument, max_cells: int) -> None:
    """Fill `doc` with the workbook's sheets (calamine reads XLS, XLSB, ODS and XLSX alike)."""
    import python_calamine as pc

    sheets: list[_Sheet] = []
    names: list[str] = []
    hidden: list[str] = []
    spanned = 0  # cells of every sheet so far: the cap is the workbook's, not each sheet's
    try:
        with pc.CalamineWorkbook.from_path(str(path)) as wb:
            for meta in wb.sheets_metadata:
                names.append(meta.name)
                if meta.typ != pc.SheetTypeEnum.WorkSheet:
                    doc.warnings.append(f"sheet {meta.name!r} is a {meta.typ.name}, not a worksheet; skipped")
                    continue
                if meta.visible != pc.SheetVisibleEnum.Visible:
                    hidden.append(meta.name)
                sheet = wb.get_sheet_by_name(meta.name)
                spanned += sheet.height * sheet.width
                if spanned > max_cells:
                    raise DocumentTooLargeError(
                        f"{source_name}: the sheets up to {meta.name!r} span {spanned} cells, "
                        f"over the {max_cells} cell cap"
                    )
                merged: Any = getattr(sheet, "merged_cell_ranges", None)
                read = _read_sheet(meta.name, sheet.to_python(skip_empty_area=False), merged)
                if read is None:
                    doc.warnings.append(f"sheet {meta.name!r} is empty; skipped")
                else:
                    sheets.append(read)
    except pc.PasswordError as exc:
        raise EncryptedDocumentError(f"{source_name}: the workbook is password-protected") from exc
    except pc.CalamineError as exc:
        raise CorruptDocumentError(f"{source_name}: the workbook cannot be read ({exc})") from exc
    except (ValueError, OSError) as exc:
        raise CorruptDocumentError(f"{source_name}: the workbook cannot be read ({exc})") from exc
    for s in sheets:
        title, body = split_title(s)
        header_rows = detect_header_rows(body.rows, body.kinds, 0 in body.merged_rows)
        doc.blocks.append(Block(kind=BlockKind.HEADING, text=s.name, level=2, sheet=s.name))
        table = Table(rows=body.rows, header_rows=header_rows, sheet=s.name, title=title)
        doc.blocks.append(Block(kind=BlockKind.TABLE, table=table, sheet=s.name))
    doc.metadata.update(
        sheet_count=len(names),
        sheet_names=names,
        hidden_sheets=hidden,
        cells=sum(s.non_empty for s in sheets),
        reader="python-calamine",
    )
    if not sheets:
        doc.warnings.append("the workbook has no non-empty sheets")


@dataclass(frozen=True)
class XlsProvider:
    max_cells: int = DEFAULT_MAX_CELLS
    doc_type = DocumentType.XLS

    @classmethod
    def from_settings(cls, settings: Settings) -> XlsProvider:
        return cls(max_cells=settings.xlsx_max_cells)

    def parse(self, path: Path, source_name: str, options: ParseOptions) -> ParsedDocument:
        t0 = time.perf_counter()
        doc = ParsedDocument(source_name=source_name, doc_type=DocumentType.XLS)
        with path.open("rb") as f:
            if b"E\x00n\x00c\x00r\x00y\x00p\x00t\x00e\x00d\x00P\x00a\x00c\x00k\x00a\x00g\x00e" in f.read(
                1 << 20
            ):
                raise EncryptedDocumentError(f"{source_name}: the workbook is password-protected")
        read_workbook(path, source_name, doc, self.max_cells)
        doc.timings["read"] = time.perf_counter() - t0
        return doc


@dataclass(frozen=True)
class OdsProvider:
    max_cells: int = DEFAULT_MAX_CELLS
    limits: ZipLimits = field(default_factory=ZipLimits)
    doc_type = DocumentType.ODS

    @classmethod
    def from_settings(cls, settings: Settings) -> OdsProvider:
        return cls(max_cells=settings.xlsx_max_cells, limits=ZipLimits.from_settings(settings))

    def parse(self, path: Path, source_name: str, options: ParseOptions) -> ParsedDocument:
        t0 = time.perf_counter()
        doc = ParsedDocument(source_name=source_name, doc_type=DocumentType.ODS)
        with SafeZip(path, source_name, self.limits) as zf:
            if not zf.has("content.xml"):
                raise CorruptDocumentError(f"{source_name}: no content.xml; not an OpenDocument spreadsheet")
            head = zf.read("content.xml")[:65536]
            if b"<!ENTITY" in head:
                raise CorruptDocumentError(f"{source_name}: content.xml declares XML entities; refused")
        read_workbook(path, source_name, doc, self.max_cells)
        doc.timings["read"] = time.perf_counter() - t0
        return doc
