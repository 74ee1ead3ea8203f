"""ParsedDocument -> `tables/<n>.csv`: one RFC 4180 CSV per table, numbered from 1 in
document order (the same numbering `metadata.json`'s table index uses)."""

from __future__ import annotations

import csv
import io

from percolate_reading.parse.document import ParsedDocument, Table


def table_path(index: int) -> str:
    """Artifact path of the table with 1-based `index`."""
    return f"tables/{index}.csv"


def table_csv(table: Table) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    n_cols = table.n_cols
    for row in table.rows:
        # Rectangular output: spreadsheet tools and pandas expect equal-length rows.
        writer.writerow(list(row) + [""] * (n_cols - len(row)))
    return buf.getvalue().encode("utf-8")


def tables_to_csv(doc: ParsedDocument) -> list[tuple[str, bytes]]:
    return [(table_path(i), table_csv(t)) for i, t in enumerate(doc.tables, start=1)]
