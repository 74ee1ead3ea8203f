"""Streaming pre-scan of an XLSX zip: the cell cap that no sheet layout bypasses.

calamine (like any grid reader) collects every cell of a sheet and then allocates the dense
rectangle up to the last one, so the cap must hold before calamine sees the file. The scan
streams every zip member once, in pieces that never split or repeat a tag start, and keeps
two running totals over the whole workbook, failing as soon as either passes the cap:

- cells: every `<c>` element, wherever it is (a sheet reached through an unusual
  relationship target is counted too: every member is scanned, not only xl/worksheets/);
- area: per member, an upper bound of the rectangle calamine allocates, following its
  positioning rules (cells_reader.rs): a cell with `r=` sits at its reference; a cell without
  one sits right of the previous cell of its row; a row without `r=` follows the previous row.
  So the last row is at most the largest row reference plus the rows without `r=`, and the
  last column at most the largest column reference plus the longest run of cells without
  `r=` between two row ends.

References are read from every `r=` attribute in any spelling quick-xml accepts (either
quote, spaces around `=`, lower-case letters, any length); a stray match only raises the
bound. Memory is one piece (4 MiB) plus a few counters; time is a few regex passes at C speed
and stops at the cap.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from percolate_reading.errors import CorruptDocumentError, DocumentTooLargeError

SCAN_CHUNK = 4 * 1024 * 1024
# Larger references than Excel's (1,048,576 rows, XFD columns) only need to be "huge".
_HUGE = 10**12
_MAX_REF_DIGITS = 12

_ATTRS = rb"""(?:\s*[\w:.-]+\s*=\s*(?:"[^"]*"|'[^']*'))*?"""  # whole attributes, either quote
_HAS_R = _ATTRS + rb"\s+r\s*="
# One regex pass yields one token per positional event: b"" for a cell with `r=`, b"c" for a cell
# without, b"/" for a row end, b"r" for a row start without `r=` (rows with one yield nothing).
_POSITIONAL = re.compile(
    rb"<(?:[\w.-]+:)?(?:c(?=[\s/>])(?=" + _HAS_R + rb")"
    rb"|(c(?=[\s/>])|/(?=(?:[\w.-]+:)?row\s*>)|r(?=ow(?=[\s/>])(?!" + _HAS_R + rb"))))"
)
# Any `r=` attribute (cell or row); a match inside another attribute's value only raises the
# bound. Starting with the literal `r` keeps the scan at C speed.
_COL_REF = re.compile(rb"""r(?<![\w:.-]r)\s*=\s*["']([A-Za-z]+)""")
_ROW_NUM = re.compile(rb"""r(?<![\w:.-]r)\s*=\s*["'][A-Za-z]*0*(\d+)""")
_DTD = re.compile(rb"<!(?:DOCTYPE|ENTITY)")
_DTD_WINDOW = 4096  # a DTD comes before the root element
# A cell whose formula has no cached result: `<f>..</f>` (or `<f .../>`) then nothing or `<v/>`.
_UNCACHED_FORMULA = re.compile(
    rb'<(?:\w+:)?c\s[^>]*?\br="([A-Z]{1,3}\d{1,7})"[^>]*>\s*'
    rb"<(?:\w+:)?f\b[^>]*?(?:/>|>[^<]*</(?:\w+:)?f>)\s*"
    rb"(?:<(?:\w+:)?v\s*/>|<(?:\w+:)?v>\s*</(?:\w+:)?v>)?\s*</(?:\w+:)?c>"
)


def column_index(letters: bytes) -> int:
    if len(letters) > 4:
        return _HUGE
    n = 0
    for ch in letters.upper():
        n = n * 26 + (ch - 64)
    return n


def largest_number(numbers: set[bytes]) -> int:
    """The largest of decimal numbers written without leading zeros."""
    longest = max(map(len, numbers))
    if longest > _MAX_REF_DIGITS:
        return _HUGE
    return int(max(d for d in numbers if len(d) == longest) or b"0")


def pieces(stream: IO[bytes], chunk_size: int = SCAN_CHUNK) -> Iterator[bytes]:
    """A member's bytes in pieces that each end just after a `>` (a cell end where there is
    one, so a whole `<c>..</c>` usually stays together), so a tag start is never split
    between two pieces nor seen twice."""
    tail = b""
    while chunk := stream.read(chunk_size):
        buf = tail + chunk
        cut = buf.rfind(b"c>") + 2
        if cut < 2:
            cut = buf.rfind(b">") + 1
        if cut <= 0:
            start = buf.rfind(b"<")  # no tag ends here: keep a trailing tag start whole
            cut = start if start > 0 else len(buf)
        yield buf[:cut]
        tail = buf[cut:]
    if tail:
        yield tail


@dataclass
class MemberScan:
    """Running bounds for one zip member."""

    name: str
    cells: int = 0
    max_row_ref: int = 0
    max_col_ref: int = 0
    rows_without_r: int = 0
    run: int = 0  # cells without `r=` since the last row end
    longest_run: int = 0
    uncached: list[str] = field(default_factory=list)

    @property
    def area(self) -> int:
        return (self.max_row_ref + self.rows_without_r) * (self.max_col_ref + self.longest_run)

    def feed(self, piece: bytes, track_formulas: bool) -> None:
        if not self._count_plain(piece):
            self._count_positional(piece)
        letters = set(_COL_REF.findall(piece))
        if letters:
            self.max_col_ref = max(self.max_col_ref, *(column_index(c) for c in letters))
        numbers = set(_ROW_NUM.findall(piece))
        if numbers:
            self.max_row_ref = max(self.max_row_ref, largest_number(numbers))
        if track_formulas and (b"<f" in piece or b":f" in piece):
            self.uncached.extend(r.decode() for r in _UNCACHED_FORMULA.findall(piece))

    def _count_plain(self, piece: bytes) -> bool:
        """The usual spelling (Excel, LibreOffice, openpyxl): no prefixes, every cell and row
        starts `<c r="` / `<row r="`. Counted with bytes.count; False when the piece is not so."""
        cells = piece.count(b"<c")  # also <col>, <cfRule>: a few too many only raises the count
        rows = piece.count(b"<row")
        if cells != piece.count(b'<c r="') or rows != piece.count(b'<row r="') or b":c" in piece:
            return False
        if b":row" in piece:
            return False
        self.cells += cells
        if b"</row" in piece:
            self.run = 0
        return True

    def _count_positional(self, piece: bytes) -> None:
        tokens = _POSITIONAL.findall(piece)
        events = b"".join(tokens)
        row_ends = events.count(b"/")
        no_r_rows = events.count(b"r")
        self.rows_without_r += no_r_rows
        self.cells += len(tokens) - row_ends - no_r_rows
        if b"c" in events:
            self._follow_runs(events.replace(b"r", b"").split(b"/"))
        elif row_ends:
            self.run = 0

    def _follow_runs(self, runs: list[bytes]) -> None:
        """Runs of cells without `r=` between row ends; the first continues the last piece's."""
        first = self.run + len(runs[0])
        self.longest_run = max(self.longest_run, first, *map(len, runs[1:]))
        self.run = first if len(runs) == 1 else len(runs[-1])


@dataclass
class WorkbookScan:
    """Totals over every member, checked against the cap after each piece."""

    source_name: str
    max_cells: int
    cells: int = 0
    area: int = 0  # of the members already finished
    members: list[MemberScan] = field(default_factory=list)

    def scan(self, zf: zipfile.ZipFile) -> None:
        for info in zf.infolist():
            if not info.is_dir():
                self._scan_member(zf, info.filename)

    def _scan_member(self, zf: zipfile.ZipFile, name: str) -> None:
        sheet = name.startswith("xl/worksheets/") and name.endswith(".xml")
        member = MemberScan(name)
        self.members.append(member)
        counted = self.cells
        seen = 0  # bytes of the member before this piece
        with zf.open(name) as f:
            for piece in pieces(f):
                if sheet and seen < _DTD_WINDOW and _DTD.search(piece, 0, _DTD_WINDOW - seen):
                    raise CorruptDocumentError(
                        f"{self.source_name}: {name} declares a DTD/entities; refused "
                        "(XML entity expansion attack)"
                    )
                seen += len(piece)
                member.feed(piece, track_formulas=sheet)
                self.cells = counted + member.cells
                self._check(member)
        self.area += member.area

    def _check(self, member: MemberScan) -> None:
        if self.cells > self.max_cells:
            raise DocumentTooLargeError(
                f"{self.source_name}: at least {self.cells} cells (counted up to {member.name}), "
                f"over the {self.max_cells} cell cap"
            )
        area = self.area + member.area
        if area > self.max_cells:
            raise DocumentTooLargeError(
                f"{self.source_name}: the sheets span at least {area} cells, over the "
                f"{self.max_cells} cell cap"
            )

    def uncached(self) -> dict[str, list[str]]:
        """Worksheet member -> cells holding a formula without a cached value."""
        return {m.name: m.uncached for m in self.members if m.uncached}
