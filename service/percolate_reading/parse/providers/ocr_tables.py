"""Tables in scanned pages: rows and columns recovered from OCR boxes and ruling lines.

OCR returns one box per run of text; in a table, each cell is one box (or a few), so a table
shows up as consecutive visual rows of several boxes separated by wide gaps, whose gaps line
up from row to row. Steps:

1. Visual rows: boxes whose vertical centres are within half a box height of each other.
2. Table runs: consecutive rows of two or more boxes separated by at least half a line height
   (a lone narrow box, such as a label in the first column or the second line of a wrapped
   cell, may sit inside a run or right under its last row); more than TABLE_GAP line heights
   of blank space between two rows ends a run.
3. Columns: vertical ruling lines inside the run (dark pixel columns spanning most of its
   height) where the raster shows them, else vertical whitespace that no box of the run
   crosses. Two columns of long boxes are prose columns, not a table.
4. Rows: where horizontal ruling lines exist, the visual rows between two rules are one table
   row (a cell wrapped over two lines stays one cell); otherwise each visual row is a row.

Pure functions over OcrLine boxes and an optional grayscale raster (numpy, 0 = black); the
image and PDF providers emit the result as TABLE blocks, which the renderer writes as
Markdown tables and tables/<n>.csv.
"""

from __future__ import annotations

import io
import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from percolate_reading.parse.document import Block, BlockKind, Table
from percolate_reading.parse.providers.ocr import OcrLine, paragraph_boxes
from percolate_reading.parse.providers.ocr_spacing import flag_runs

MIN_ROWS = 3
MIN_CELL_GAP = 0.5  # line heights between two cells of one row (words are ~0.3 apart)
TABLE_GAP = 2.5  # line heights of blank space between two rows: two tables, not one
PROSE_BOX_WIDTH = 6.0  # line heights: columns of boxes this wide on average are prose
RULE_COVER = 0.8  # share of the run's height (or width) a ruling line spans
DARK = 128
# What find_tables reads ruling lines from: a grayscale or RGB array, a Pillow image, encoded bytes.
Raster = Any


@dataclass(frozen=True)
class _Box:
    index: int  # position in the OCR lines
    line: OcrLine

    @property
    def x0(self) -> float:
        return self.line.bbox[0]

    @property
    def x1(self) -> float:
        return self.line.bbox[2]

    @property
    def cx(self) -> float:
        return (self.x0 + self.x1) / 2


@dataclass(frozen=True)
class OcrTable:
    table: Table
    top: float
    lines: frozenset[int]  # indices of the OCR lines the table holds


def visual_rows(lines: Sequence[OcrLine]) -> list[list[_Box]]:
    """Boxes grouped into rows (top to bottom), each left to right."""
    rows: list[list[_Box]] = []
    for i, line in sorted(enumerate(lines), key=lambda p: p[1].center_y):
        box = _Box(i, line)
        if rows:
            ref = rows[-1][0].line
            if abs(line.center_y - ref.center_y) < 0.5 * min(line.height, ref.height):
                rows[-1].append(box)
                continue
        rows.append([box])
    return [sorted(row, key=lambda b: b.x0) for row in rows]


def _is_cell_row(row: list[_Box], line_h: float) -> bool:
    return len(row) >= 2 and all(b.x0 - a.x1 >= MIN_CELL_GAP * line_h for a, b in itertools.pairwise(row))


def table_runs(rows: list[list[_Box]], line_h: float) -> list[list[list[_Box]]]:
    """Runs of consecutive cell rows; a single narrow box between two cell rows stays in."""
    runs: list[list[list[_Box]]] = []
    current: list[list[_Box]] = []
    for i, row in enumerate(rows):
        if _is_cell_row(row, line_h):
            if current and _top(row) - _bottom(current[-1]) > TABLE_GAP * line_h:
                runs.append(current)  # blank space, not a row gap: the next table starts
                current = []
            current.append(row)
            continue
        if current and len(row) == 1 and _narrow(row[0], current):
            inside = i + 1 < len(rows) and _is_cell_row(rows[i + 1], line_h)
            # The second line of a wrapped cell in the last row sits right under it.
            wrapped = row[0].line.bbox[1] - _bottom(current[-1]) < 0.5 * line_h
            if inside or wrapped:
                current.append(row)
                continue
        if current:
            runs.append(current)
        current = []
    if current:
        runs.append(current)
    return [run for run in runs if sum(len(r) >= 2 for r in run) >= MIN_ROWS - 1 and len(run) >= MIN_ROWS]


def _top(row: list[_Box]) -> float:
    return min(b.line.bbox[1] for b in row)


def _bottom(row: list[_Box]) -> float:
    return max(b.line.bbox[3] for b in row)


def _narrow(box: _Box, run: list[list[_Box]]) -> bool:
    left = min(b.x0 for r in run for b in r)
    right = max(b.x1 for r in run for b in r)
    return box.x1 - box.x0 < 0.5 * (right - left)


def _span(run: list[list[_Box]]) -> tuple[float, float, float, float]:
    boxes = [b.line.bbox for r in run for b in r]
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _rule_positions(profile: Any, length: int) -> list[float]:
    """Centres of runs of pixel lines whose dark count reaches RULE_COVER of `length`."""
    runs = flag_runs([v >= RULE_COVER * length for v in profile.tolist()])
    return [(start + end - 1) / 2 for start, end in runs]


def ruling_lines(
    gray: Any, span: tuple[float, float, float, float], pad: float
) -> tuple[list[float], list[float]]:
    """(x of vertical rules, y of horizontal rules) in the raster around a table's text span."""
    h, w = gray.shape
    x0, y0 = max(int(span[0] - pad), 0), max(int(span[1] - pad), 0)
    x1, y1 = min(int(span[2] + pad), w), min(int(span[3] + pad), h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return [], []
    dark = gray[y0:y1, x0:x1] < DARK
    horizontal = [y0 + y for y in _rule_positions(dark.sum(axis=1), x1 - x0)]
    if len(horizontal) >= 2:  # vertical rules run from the top rule to the bottom one
        top, bottom = int(horizontal[0]) - y0, int(horizontal[-1]) + 1 - y0
        dark = dark[top:bottom, :]
    vertical = [x0 + x for x in _rule_positions(dark.sum(axis=0), dark.shape[0])]
    return vertical, horizontal


def whitespace_columns(run: list[list[_Box]], min_gap: float) -> list[float]:
    """Cuts at vertical gaps that no box of a cell row crosses."""
    intervals = sorted((b.x0, b.x1) for row in run if len(row) >= 2 for b in row)
    cuts: list[float] = []
    reach = intervals[0][1]
    for lo, hi in intervals[1:]:
        if lo - reach >= min_gap:
            cuts.append((reach + lo) / 2)
        reach = max(reach, hi)
    return cuts


def _prose(columns: list[list[_Box]], line_h: float) -> bool:
    return all(
        statistics.fmean(b.x1 - b.x0 for b in col) >= PROSE_BOX_WIDTH * line_h for col in columns if col
    )


def _column(box: _Box, cuts: list[float]) -> int:
    return sum(box.cx > c for c in cuts)


def _row_groups(run: list[list[_Box]], rules_y: list[float]) -> list[list[_Box]]:
    """Visual rows merged into table rows between horizontal rules (each row alone if none)."""
    if len(rules_y) < 2:
        return [list(r) for r in run]
    groups: dict[int, list[_Box]] = {}
    for row in run:
        cy = row[0].line.center_y
        groups.setdefault(sum(cy > y for y in rules_y), []).extend(row)
    return [groups[k] for k in sorted(groups)]


def _cells(group: list[_Box], cuts: list[float]) -> tuple[str, ...]:
    cells: list[list[_Box]] = [[] for _ in range(len(cuts) + 1)]
    for box in group:
        cells[_column(box, cuts)].append(box)
    return tuple(
        " ".join(b.line.text for b in sorted(cell, key=lambda b: (round(b.line.center_y), b.x0)))
        for cell in cells
    )


def _header_rows(rows: list[tuple[str, ...]]) -> int:
    first = rows[0]
    numeric = any(c and c.replace(".", "").replace(",", "").isdigit() for c in first)
    return 1 if all(first) and not numeric else 0


def _table(run: list[list[_Box]], gray: Any | None, line_h: float, page: int | None) -> OcrTable | None:
    span = _span(run)
    vertical, horizontal = ruling_lines(gray, span, line_h) if gray is not None else ([], [])
    # Outer borders are not column cuts.
    cuts = [x for x in vertical if span[0] < x < span[2]] or whitespace_columns(run, MIN_CELL_GAP * line_h)
    if not cuts:
        return None
    boxes = [b for row in run for b in row]
    columns: list[list[_Box]] = [[] for _ in range(len(cuts) + 1)]
    for b in boxes:
        columns[_column(b, cuts)].append(b)
    if not vertical and _prose(columns, line_h):
        return None
    rows = [_cells(g, cuts) for g in _row_groups(run, horizontal)]
    table = Table(rows=tuple(rows), header_rows=_header_rows(rows), page=page)
    return OcrTable(table=table, top=span[1], lines=frozenset(b.index for b in boxes))


def find_tables(lines: Sequence[OcrLine], raster: Raster = None, page: int | None = None) -> list[OcrTable]:
    """Tables among a page's OCR lines, top to bottom. `raster` (the OCR'd image: a 2-D uint8
    array, a Pillow image or encoded bytes) lets ruling lines decide columns and rows; it is
    decoded only when the boxes show a table."""
    if len(lines) < 2 * MIN_ROWS:
        return []
    line_h = statistics.median(ln.height for ln in lines) or 1.0
    runs = table_runs(visual_rows(lines), line_h)
    if not runs:
        return []
    gray = None if raster is None else grayscale(raster)
    found = (_table(run, gray, line_h, page) for run in runs)
    return [t for t in found if t is not None]


def grayscale(image: Raster) -> Any:
    """A 2-D uint8 numpy array of an image (an RGB array, a Pillow image or encoded bytes)."""
    import numpy as np
    from PIL import Image

    if image is None:
        return None
    if isinstance(image, np.ndarray):
        return image if image.ndim == 2 else np.asarray(Image.fromarray(image).convert("L"))
    if isinstance(image, bytes):
        with Image.open(io.BytesIO(image)) as img:
            return np.asarray(img.convert("L"))
    return np.asarray(image.convert("L"))


def _paragraphs(lines: Sequence[OcrLine], page: int | None) -> list[Block]:
    return [
        Block(BlockKind.PARAGRAPH, text=p, page=page, bbox=box) for p, box in paragraph_boxes(list(lines))
    ]


def _box(lines: Sequence[OcrLine]) -> tuple[float, float, float, float] | None:
    if not lines:
        return None
    return (
        min(ln.bbox[0] for ln in lines),
        min(ln.bbox[1] for ln in lines),
        max(ln.bbox[2] for ln in lines),
        max(ln.bbox[3] for ln in lines),
    )


def page_blocks(lines: Sequence[OcrLine], raster: Raster = None, page: int | None = None) -> list[Block]:
    """A page's OCR lines (in reading order) as paragraph and table blocks, tables placed
    where they stand: the text above a table comes before it. Boxes in the raster's pixels."""
    tables = find_tables(lines, raster, page)
    used = frozenset().union(*(t.lines for t in tables)) if tables else frozenset()
    rest = [(i, ln) for i, ln in enumerate(lines) if i not in used]
    blocks: list[Block] = []
    for t in tables:
        above = [ln for _i, ln in rest if ln.center_y < t.top]
        rest = [(i, ln) for i, ln in rest if ln.center_y >= t.top]
        blocks.extend(_paragraphs(above, page))
        table_box = _box([lines[i] for i in sorted(t.lines)])
        blocks.append(Block(BlockKind.TABLE, table=t.table, page=page, bbox=table_box))
    blocks.extend(_paragraphs([ln for _i, ln in rest], page))
    return [b for b in blocks if b.kind is BlockKind.TABLE or b.text.strip()]
