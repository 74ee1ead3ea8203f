"""Ruled-table detection for the PDF provider.

`page.find_tables()` costs ~0.4 s a page while text extraction costs ~1 ms, so it only runs
on pages whose vector drawings could form a grid: at least three horizontal and three
vertical rules (or rectangle edges) that cross one another. `grid_candidate` is pure over the
vector blocks the text pass already collected (TEXT_COLLECT_VECTORS): no extra extraction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

from percolate_reading.parse.document import Table
from percolate_reading.parse.providers.pdf_layout import Line, TableItem, Vector, leader_entry

MIN_RULES = 3  # a 2x2 grid has three horizontal and three vertical rules
_THIN = 4.0  # a rectangle thinner than this is a drawn rule
_MIN_LEN = 5.0


WHITE = 0xFFFFFF


def grid_candidate(vectors: Sequence[Vector], page_w: float = 0.0, page_h: float = 0.0) -> bool:
    """True when the page's vector paths hold a grid: at least three horizontal rules that
    each cross two vertical ones, and three vertical rules that each cross two horizontal ones.

    Only axis-aligned rectangles count (MuPDF reports a drawn line as a thin one). Page-sized
    rectangles (backgrounds, frames) and white strokes (Word's hidden layout-table borders)
    are ignored. Counting rules without their crossings sent charts (axes, a legend box) next
    to a booktabs table through the finder, ten times the cost of the page's text.
    """
    horizontal, vertical = _rule_segments(vectors, page_w, page_h)
    if len(horizontal) < MIN_RULES or len(vertical) < MIN_RULES:
        return False
    if len(horizontal) * len(vertical) > _MAX_CROSSING_CHECKS:
        return True  # too many to pair up cheaply: let the finder decide
    return _crossed(horizontal, vertical) and _crossed(vertical, horizontal)


# A rule as (position across it, start, end): y, x0, x1 for a horizontal one.
Segment = tuple[int, int, int]
_CROSS_TOLERANCE = 3  # MuPDF's finder snaps and joins edges within 3 pt
_MAX_CROSSING_CHECKS = 250_000


def _rule_segments(
    vectors: Sequence[Vector], page_w: float, page_h: float
) -> tuple[set[Segment], set[Segment]]:
    """Horizontal and vertical rules, rounded to whole points so that a rule's stroke and its
    fill count once; a rectangle contributes its four edges."""
    horizontal: set[Segment] = set()
    vertical: set[Segment] = set()
    for x0, y0, x1, y1, stroked, is_rect, color in vectors:
        if not is_rect or (stroked and color == WHITE):
            continue
        w, h = x1 - x0, y1 - y0
        if h < _THIN and w > _MIN_LEN:
            horizontal.add((round((y0 + y1) / 2), round(x0), round(x1)))
        elif w < _THIN and h > _MIN_LEN:
            vertical.add((round((x0 + x1) / 2), round(y0), round(y1)))
        elif w > _MIN_LEN and h > _MIN_LEN and not (page_w and w > 0.9 * page_w and h > 0.9 * page_h):
            horizontal.update(((round(y0), round(x0), round(x1)), (round(y1), round(x0), round(x1))))
            vertical.update(((round(x0), round(y0), round(y1)), (round(x1), round(y0), round(y1))))
    return horizontal, vertical


def _crossed(rules: set[Segment], across: set[Segment]) -> bool:
    """Whether MIN_RULES of `rules` each cross (or touch, within the tolerance) two of `across`."""
    tol = _CROSS_TOLERANCE
    count = 0
    for pos, lo, hi in rules:
        hits = 0
        for other_pos, other_lo, other_hi in across:
            if lo - tol <= other_pos <= hi + tol and other_lo - tol <= pos <= other_hi + tol:
                hits += 1
                if hits == 2:
                    count += 1
                    break
        if count >= MIN_RULES:
            return True
    return False


def clean_cell(value: object) -> str:
    if value is None:
        return ""
    return " ".join(str(value).split())


def table_from_rows(
    raw_rows: Sequence[Sequence[object]], header: Sequence[object] | None, page_no: int
) -> Table | None:
    """Normalise `Table.extract()` rows (None for spanned cells); None if not a real grid."""
    rows = [tuple(clean_cell(c) for c in row) for row in raw_rows]
    if header is not None:
        rows.insert(0, tuple(clean_cell(c) for c in header))
    rows = [r for r in rows if any(r)]
    if len(rows) < 2:
        return None
    n_cols = max(len(r) for r in rows)
    if n_cols < 2:
        return None
    rows = [r + ("",) * (n_cols - len(r)) for r in rows]
    # Drop columns that are empty in every row (artefacts of stray vertical rules).
    keep = [c for c in range(n_cols) if any(r[c] for r in rows)]
    if len(keep) < 2:
        return None
    return Table(rows=tuple(tuple(r[c] for c in keep) for r in rows), header_rows=1, page=page_no)


def fill_cells(
    rows: Sequence[tuple[tuple[float, float, float, float], Sequence[Any]]],
    words: Sequence[Sequence[Any]],
) -> list[list[str | None]]:
    """Cell text from MuPDF words (x0, y0, x1, y1, text, ...) by their centres.

    Words keep their characters in visual order ("$4,800"), which the table finder's own
    character-level extraction can scramble; spanned cells (None) stay None.
    """
    grid: list[list[list[str] | None]] = [[None if c is None else [] for c in cells] for _, cells in rows]
    for w in words:
        cx, cy = (w[0] + w[2]) / 2, (w[1] + w[3]) / 2
        for r, (rb, cells) in enumerate(rows):
            if not rb[1] <= cy <= rb[3]:
                continue
            for c, cell in enumerate(cells):
                if cell is not None and cell[0] <= cx <= cell[2]:
                    bucket = grid[r][c]
                    if bucket is not None:
                        bucket.append(str(w[4]))
                    break
            break
    return [[None if cell is None else " ".join(cell) for cell in row] for row in grid]


Box = tuple[float, float, float, float]


def _accept_all(box: Box) -> bool:
    return True


def rule_bands(
    vectors: Sequence[Vector],
    page_w: float,
    page_h: float,
    holds_table_text: Callable[[Box], bool] = _accept_all,
) -> list[Box]:
    """Regions between horizontal rules of one width with no grid: booktabs-style tables.

    Rules of the same x-extent are taken in pairs of neighbours; a gap between two rules is
    part of a table when `holds_table_text` says so (the caller checks for rows of
    column-separated cells), so the paragraph between two tables, or the body between a
    header rule and a footer rule, splits them. Neighbours further apart than 40% of the page
    never pair.
    """
    bands: list[Box] = []
    for x0, x1, ys in _rule_groups(vectors, page_w):
        bands.extend(_bands_between(x0, x1, _distinct(ys), page_h, holds_table_text))
    return bands


def _rule_groups(vectors: Sequence[Vector], page_w: float) -> list[tuple[float, float, list[float]]]:
    """Thin horizontal rules grouped by x-extent: (x0, x1, the rules' y)."""
    groups: list[tuple[float, float, list[float]]] = []
    for x0, y0, x1, y1, stroked, is_rect, color in vectors:
        w, h = x1 - x0, y1 - y0
        if not is_rect or h >= _THIN or w < max(60.0, 0.2 * page_w) or (stroked and color == WHITE):
            continue
        y = (y0 + y1) / 2
        for gx0, gx1, ys in groups:
            if abs(gx0 - x0) < 2 and abs(gx1 - x1) < 2:
                ys.append(y)
                break
        else:
            groups.append((x0, x1, [y]))
    return groups


def _distinct(ys: list[float]) -> list[float]:
    ys = sorted(ys)
    rules = [ys[0]]
    for y in ys[1:]:
        if y - rules[-1] > 1.5:  # a stroke and its fill report the same rule twice
            rules.append(y)
    return rules


def _bands_between(
    x0: float, x1: float, rules: list[float], page_h: float, holds_table_text: Callable[[Box], bool]
) -> list[Box]:
    """Runs of neighbouring rule gaps that hold table text, at least 15 pt tall."""
    bands: list[Box] = []
    band: Box | None = None
    for top, bottom in pairwise(rules):
        gap: Box = (x0, top, x1, bottom)
        if bottom - top <= 0.4 * page_h and holds_table_text(gap):
            band = gap if band is None else (x0, band[1], x1, bottom)
            continue
        if band is not None and band[3] - band[1] >= 15:
            bands.append(band)
        band = None
    if band is not None and band[3] - band[1] >= 15:
        bands.append(band)
    return bands


def merge_header_lines(
    grid: list[list[str | None]], row_boxes: Sequence[Box], header_bottom: float | None
) -> list[list[str | None]]:
    """Join the text rows above the rule under a header ("Inhibitor" / "concentration (g)")
    into one header row, cell by cell."""
    if header_bottom is None:
        return grid
    n = 0
    while n < len(grid) and (row_boxes[n][1] + row_boxes[n][3]) / 2 < header_bottom:
        n += 1
    if n < 2:
        return grid
    width = max(len(r) for r in grid[:n])
    merged: list[str | None] = [
        " ".join(r[c] or "" for r in grid[:n] if c < len(r) and r[c]) for c in range(width)
    ]
    return [merged, *grid[n:]]


def _items(
    found: Any, words: Sequence[Sequence[Any]], page_no: int, header_bottom: float | None = None
) -> list[TableItem]:
    items: list[TableItem] = []
    for tab in found.tables:
        header: Any = getattr(tab, "header", None)
        external = header is not None and bool(getattr(header, "external", False))
        rows = [(tuple(row.bbox), row.cells) for row in tab.rows]
        grid = merge_header_lines(fill_cells(rows, words), [r[0] for r in rows], header_bottom)
        table = table_from_rows(grid, header.names if external else None, page_no)
        if table is None:
            continue
        x0, y0, x1, y1 = tab.bbox
        if external:
            hx0, hy0, hx1, hy1 = header.bbox
            x0, y0, x1, y1 = min(x0, hx0), min(y0, hy0), max(x1, hx1), max(y1, hy1)
        items.append(TableItem(table, float(x0), float(y0), float(x1), float(y1)))
    return items


def _find(page: Any, **kwargs: Any) -> Any:
    try:
        # With the optional pymupdf-layout package installed, PyMuPDF >= 1.27 would otherwise run
        # its ONNX layout model first (~0.5 s and ~200 MB a page) and return results that differ
        # between environments that have the package and those that do not.
        return page.find_tables(use_layout=False, **kwargs)
    except TypeError:  # an older PyMuPDF without the layout gate
        return page.find_tables(**kwargs)


def find_page_tables(page: Any, page_no: int, text_flags: int) -> list[TableItem]:
    """Run MuPDF's ruled-table finder (rules only) on one candidate page."""
    found = _find(page, strategy="lines")
    if not found.tables:
        return []
    return _items(found, page.get_text("words", flags=text_flags), page_no)


def inner_rules(vectors: Sequence[Vector], band: Box) -> list[float]:
    """y of the rules strictly inside a band with the band's width (e.g. the rule under a header)."""
    bx0, by0, bx1, by1 = band
    ys = sorted(
        (y0 + y1) / 2
        for x0, y0, x1, y1, _stroked, is_rect, _color in vectors
        if is_rect and y1 - y0 < _THIN and abs(x0 - bx0) < 2 and abs(x1 - bx1) < 2
    )
    return [y for y in ys if by0 + 1.5 < y < by1 - 1.5]


def find_band_tables(
    page: Any,
    page_no: int,
    text_flags: int,
    bands: Sequence[Box],
    vectors: Sequence[Vector],
    lines: Sequence[Line] = (),
) -> list[TableItem]:
    """Tables inside horizontal-rule bands; the lines above the first inner rule are the
    header. Built from the page's own lines when their cells align (`band_table`), else
    from MuPDF's text-strategy finder."""
    words: Sequence[Sequence[Any]] | None = None
    items: list[TableItem] = []
    for band in bands:
        inner = inner_rules(vectors, band)
        own = band_table(lines, band, inner[0] if inner else None, page_no)
        if own is not None:
            items.append(own)
            continue
        x0, y0, x1, y1 = band
        found = _find(page, strategy="text", clip=(x0 - 1, y0 - 1, x1 + 1, y1 + 1))
        if not found.tables:
            continue
        if words is None:
            words = page.get_text("words", flags=text_flags)
        items.extend(_items(found, words, page_no, inner[0] if inner else None))
    return items


def _column_of(x0: float, x1: float, columns: Sequence[tuple[float, float]]) -> int:
    """The column a fragment belongs to: the one holding its centre, else the one it overlaps
    most (a header over a wider column), else the nearest."""
    mid = (x0 + x1) / 2
    for i, (lo, hi) in enumerate(columns):
        if lo - 2 <= mid <= hi + 2:
            return i
    overlaps = [min(x1, hi) - max(x0, lo) for lo, hi in columns]
    best = max(range(len(columns)), key=lambda i: overlaps[i])
    if overlaps[best] > 0:
        return best
    return min(range(len(columns)), key=lambda i: min(abs(mid - columns[i][0]), abs(mid - columns[i][1])))


Fragment = tuple[float, float, str]


def band_rows(lines: Sequence[Line], band: Box) -> list[tuple[float, float, list[Fragment]]]:
    """The lines inside a band grouped into visual rows, (y0, y1, fragments left to right):
    MuPDF often makes each cell of a row its own block, so rows are rebuilt here."""
    x0, y0, x1, y1 = band
    inside = sorted(
        (ln for ln in lines if x0 - 1 <= (ln.x0 + ln.x1) / 2 <= x1 + 1 and y0 <= (ln.y0 + ln.y1) / 2 <= y1),
        key=lambda ln: (ln.y0 + ln.y1) / 2,
    )
    rows: list[tuple[float, float, list[Fragment]]] = []
    for ln in inside:
        frags = list(ln.cells) or [(ln.x0, ln.x1, ln.text.strip())]
        mid = (ln.y0 + ln.y1) / 2
        if rows and rows[-1][0] <= mid <= rows[-1][1]:
            ry0, ry1, fr = rows[-1]
            rows[-1] = (min(ry0, ln.y0), max(ry1, ln.y1), fr + frags)
        else:
            rows.append((ln.y0, ln.y1, frags))
    return [(ry0, ry1, sorted(fr)) for ry0, ry1, fr in rows]


def _split_across(frag: Fragment, columns: Sequence[tuple[float, float]]) -> list[Fragment]:
    """A fragment MuPDF joined across column gaps ("(k) (k) (k)"): cut into words placed by
    their character offsets (close enough when the gaps are wide)."""
    x0, x1, text = frag
    crossed = sum(1 for lo, hi in columns if min(x1, hi) - max(x0, lo) > 0)
    if crossed < 2 or " " not in text or not text:
        return [frag]
    scale = (x1 - x0) / len(text)
    out: list[Fragment] = []
    for m in re.finditer(r"\S+", text):
        out.append((x0 + m.start() * scale, x0 + m.end() * scale, m.group()))
    return out


def band_table(
    lines: Sequence[Line], band: Box, header_bottom: float | None, page_no: int
) -> TableItem | None:
    """A booktabs table from the text rows between its rules: one row per body row, columns
    from the body's fragments, every row above the header rule merged into one header row.
    None when the body does not show at least two aligned columns."""
    rows = band_rows(lines, band)
    split = header_bottom if header_bottom is not None else band[1]
    head = [fr for ry0, ry1, fr in rows if (ry0 + ry1) / 2 < split]
    body = [fr for ry0, ry1, fr in rows if (ry0 + ry1) / 2 >= split]
    if len(body) < 2 or any(leader_entry(" ".join(f[2] for f in fr)) for fr in body):
        return None
    columns = _body_columns(body)
    if columns is None:
        return None
    grid: list[Sequence[str]] = [_cells_of(fr, columns) for fr in body]
    if head:
        grid.insert(0, _cells_of([f for fr in head for f in fr], columns))
    table = table_from_rows(grid, None, page_no)
    if table is None:
        return None
    if not head:
        table = Table(rows=table.rows, header_rows=0, page=page_no)
    top = min(r[0] for r in rows)
    return TableItem(table, band[0], top, band[2], max(r[1] for r in rows))


def _body_columns(body: Sequence[Sequence[Fragment]]) -> list[tuple[float, float]] | None:
    """Column x-ranges: the union of the fragments of body rows with two or more; None unless
    2..30 columns and at least half the body rows (two or more) hold several fragments."""
    columns: list[tuple[float, float]] = []
    for lo, hi, _ in sorted(f for fr in body if len(fr) >= 2 for f in fr):
        if columns and lo <= columns[-1][1] + 2.0:
            columns[-1] = (columns[-1][0], max(columns[-1][1], hi))
        else:
            columns.append((lo, hi))
    if not 2 <= len(columns) <= 30 or sum(1 for fr in body if len(fr) >= 2) < max(2, len(body) // 2):
        return None
    return columns


def _cells_of(frags: Sequence[Fragment], columns: list[tuple[float, float]]) -> list[str]:
    cells = [""] * len(columns)
    for frag in frags:
        for fx0, fx1, text in _split_across(frag, columns):
            c = _column_of(fx0, fx1, columns)
            cells[c] = f"{cells[c]} {text}".strip()
    return cells
