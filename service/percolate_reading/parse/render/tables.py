"""ParsedDocument -> `tables/<n>.csv`: one RFC 4180 CSV per table, numbered from 1 in
document order (the same numbering `metadata.json`'s table index uses)."""

from __future__ import annotations

import csv
import io
import re

from percolate_reading.parse.document import ParsedDocument, Table


def table_path(index: int) -> str:
    """Artifact path of the table with 1-based `index`."""
    return f"tables/{index}.csv"


# OWASP CSV injection: a cell a spreadsheet would read as a formula starts with one of these
# (TAB and CR included: tools strip them and then see the formula).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Plain numbers start with + or - too and are not formulas; they stay as they are.
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?%?")


def neutralize_formula(cell: str) -> str:
    """Prefix a formula-looking cell with a single quote, which spreadsheet tools show but
    never evaluate; checked on the cell as written and with leading whitespace stripped."""
    stripped = cell.lstrip()
    if not stripped or NUMBER.fullmatch(cell.strip()):
        return cell
    if cell.startswith(FORMULA_START) or stripped.startswith(FORMULA_START):
        return "'" + cell
    return cell


def table_csv(table: Table) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    n_cols = table.n_cols
    for row in table.rows:
        # Rectangular output: spreadsheet tools and pandas expect equal-length rows.
        writer.writerow([neutralize_formula(c) for c in row] + [""] * (n_cols - len(row)))
    return buf.getvalue().encode("utf-8")


def tables_to_csv(doc: ParsedDocument) -> list[tuple[str, bytes]]:
    return [(table_path(i), table_csv(t)) for i, t in enumerate(doc.tables, start=1)]
