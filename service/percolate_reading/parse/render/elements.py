"""ParsedDocument -> `elements.jsonl`: one typed element per line, in reading order.

The structured output for programs (what DoclingDocument or Unstructured's elements are to
those projects), validated by the versioned JSON Schema `elements.schema.json` next to this
module (and served by the gateway). Every element has:
- `id`: stable for the same file (a hash of the file's sha256, the reading index and the
  element's content), so re-parsing gives the same ids;
- `type`, `index` (reading order), `text`;
- where it is: `page` (PDF page, image frame), `slide` (presentations), `sheet`, `bbox`
  ([x0, y0, x1, y1] in page coordinates: PDF points, image pixels, slide points) where the
  source has geometry;
- `parent_id`: the heading (or title) whose section holds it.
Type-specific fields: heading `level`; list item `depth` and `ordered`; table `table`
(rows, header rows, cells with spans, HTML, its CSV artifact); figure `caption` and
`image`; code `language`; transcript segment `start`/`end`/`speaker`/`language`; e-mail
header `name`/`value`; page header/footer are marked by their type.
"""

from __future__ import annotations

import hashlib
import html
import json
from functools import cache
from importlib import resources
from typing import Any

from percolate_reading.parse.document import Block, BlockKind, DocumentType, ParsedDocument, Table
from percolate_reading.parse.render.tables import table_path

ELEMENTS_SCHEMA_VERSION = "1.0"
ELEMENTS_SCHEMA_ID = f"https://percolate.dev/schemas/elements/{ELEMENTS_SCHEMA_VERSION}"
SLIDE_TYPES = frozenset({DocumentType.PPTX, DocumentType.ODP, DocumentType.PPT})

_TYPE_NAMES = {
    BlockKind.TITLE: "title",
    BlockKind.HEADING: "heading",
    BlockKind.PARAGRAPH: "paragraph",
    BlockKind.LIST_ITEM: "list_item",
    BlockKind.TABLE: "table",
    BlockKind.FIGURE: "figure",
    BlockKind.CODE: "code",
    BlockKind.FORMULA: "formula",
    BlockKind.PAGE_HEADER: "page_header",
    BlockKind.PAGE_FOOTER: "page_footer",
    BlockKind.TRANSCRIPT_SEGMENT: "transcript_segment",
    BlockKind.EMAIL_HEADER: "email_header",
}


@cache
def elements_schema() -> dict[str, Any]:
    """The JSON Schema every `elements.jsonl` line validates against."""
    text = (
        resources.files("percolate_reading.parse.render").joinpath("elements.schema.json").read_text("utf-8")
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


def _spans(table: Table) -> tuple[dict[tuple[int, int], tuple[int, int]], set[tuple[int, int]]]:
    """(top-left cell -> (row span, col span), the cells a merge covers besides its top-left)."""
    covered: set[tuple[int, int]] = set()
    span_at = {(r, c): (rs, cs) for r, c, rs, cs in table.spans}
    for (r, c), (rs, cs) in span_at.items():
        covered.update((r + dr, c + dc) for dr in range(rs) for dc in range(cs) if dr or dc)
    return span_at, covered


def _html_row(
    table: Table, r: int, span_at: dict[tuple[int, int], tuple[int, int]], covered: set[tuple[int, int]]
) -> str:
    tag = "th" if r < table.header_rows else "td"
    cells = []
    for c, value in enumerate(table.rows[r]):
        if (r, c) in covered:
            continue
        rs, cs = span_at.get((r, c), (1, 1))
        attrs = (f' rowspan="{rs}"' if rs > 1 else "") + (f' colspan="{cs}"' if cs > 1 else "")
        cells.append(f"<{tag}{attrs}>{html.escape(value).replace(chr(10), '<br>')}</{tag}>")
    return "<tr>" + "".join(cells) + "</tr>"


def table_html(table: Table) -> str:
    """The table as an HTML <table>, merged cells as colspan/rowspan, header rows in <thead>."""
    span_at, covered = _spans(table)
    out = ["<table>"]
    if table.title:
        out.append(f"<caption>{html.escape(table.title)}</caption>")
    head = min(table.header_rows, len(table.rows))
    sections = (("thead", range(head)), ("tbody", range(head, len(table.rows))))
    for tag, rows in sections:
        if rows:
            out.append(f"<{tag}>")
            out.extend(_html_row(table, r, span_at, covered) for r in rows)
            out.append(f"</{tag}>")
    out.append("</table>")
    return "".join(out)


def table_cells(table: Table) -> list[dict[str, Any]]:
    span_at, covered = _spans(table)
    cells: list[dict[str, Any]] = []
    for r, row in enumerate(table.rows):
        for c, value in enumerate(row):
            if (r, c) in covered:
                continue
            rs, cs = span_at.get((r, c), (1, 1))
            cells.append(
                {
                    "row": r,
                    "col": c,
                    "row_span": rs,
                    "col_span": cs,
                    "text": value,
                    "header": r < table.header_rows,
                }
            )
    return cells


def _element_id(doc_key: str, index: int, block: Block) -> str:
    content = block.text or (repr(block.table.rows[:2]) if block.table is not None else "")
    return hashlib.sha256(f"{doc_key}\x00{index}\x00{block.kind.value}\x00{content}".encode()).hexdigest()[
        :24
    ]


def document_key(doc: ParsedDocument) -> str:
    return str(doc.metadata.get("sha256") or hashlib.sha256(doc.text().encode("utf-8")).hexdigest())


def _page_of(block: Block, current: int | None) -> int | None:
    """The block's own page, its table's, or the page the last PAGE_BREAK opened."""
    if block.page is not None:
        return block.page
    if block.table is not None and block.table.page is not None:
        return block.table.page
    return current


def _table_fields(table: Table, number: int) -> dict[str, Any]:
    return {
        "rows": [list(r) for r in table.rows],
        "n_rows": table.n_rows,
        "n_cols": table.n_cols,
        "header_rows": table.header_rows,
        "title": table.title,
        "cells": table_cells(table),
        "html": table_html(table),
        "csv": table_path(number),
    }


def _type_fields(block: Block, level: int, language: str | None) -> dict[str, Any]:
    """What each element type adds to the common fields (tables: see _table_fields)."""
    kind = block.kind
    if kind is BlockKind.HEADING:
        return {"level": level}
    if kind is BlockKind.LIST_ITEM:
        return {"depth": max(block.level, 0), "ordered": block.ordered}
    if kind is BlockKind.FIGURE:
        # artifact: images/<n>.<ext> when the picture was extracted
        return {"caption": block.caption or None, "image": block.label, "artifact": block.image}
    if kind is BlockKind.CODE:
        return {"language": block.language}
    if kind is BlockKind.TRANSCRIPT_SEGMENT:
        return {
            "start": block.start,
            "end": block.end,
            "speaker": block.speaker,
            "language": block.language or language,
        }
    if kind is BlockKind.EMAIL_HEADER:
        return {"name": block.label, "value": block.text}
    if kind is BlockKind.PARAGRAPH and block.label:
        return {"role": block.label}  # "notes" (speaker notes), "footnote 3", ...
    return {}


def _elements_of(doc: ParsedDocument) -> list[tuple[Block, int | None]]:
    """The blocks that become elements, each with its page."""
    out: list[tuple[Block, int | None]] = []
    page: int | None = None
    for block in doc.blocks:
        if block.kind is BlockKind.PAGE_BREAK:
            page = block.page
        elif block.kind in _TYPE_NAMES and not (
            block.kind is BlockKind.TABLE and (block.table is None or not block.table.rows)
        ):
            out.append((block, _page_of(block, page)))
    return out


def build_elements(doc: ParsedDocument) -> list[dict[str, Any]]:
    """The document's elements in reading order, as JSON-ready dicts."""
    doc_key = document_key(doc)
    slides = doc.doc_type in SLIDE_TYPES
    language = doc.metadata.get("language")
    out: list[dict[str, Any]] = []
    sections: list[tuple[int, str]] = []  # (level, element id): the open heading path
    table_number = 0
    for index, (block, page) in enumerate(_elements_of(doc)):
        element_id = _element_id(doc_key, index, block)
        level = 0 if block.kind is BlockKind.TITLE else min(max(block.level, 1), 6)
        opens_section = block.kind in (BlockKind.TITLE, BlockKind.HEADING)
        while opens_section and sections and sections[-1][0] >= level:
            sections.pop()
        element: dict[str, Any] = {
            "id": element_id,
            "type": _TYPE_NAMES[block.kind],
            "index": index,
            "text": block.text,
            "parent_id": sections[-1][1] if sections else None,
            "page": None if slides else page,
            "slide": page if slides else None,
            "sheet": block.sheet or (block.table.sheet if block.table is not None else None),
            "bbox": list(block.bbox) if block.bbox is not None else None,
        }
        if block.kind is BlockKind.TABLE and block.table is not None:
            table_number += 1
            element["text"] = "\n".join(" | ".join(row) for row in block.table.rows)
            element["table"] = _table_fields(block.table, table_number)
        element.update(_type_fields(block, level, language))
        out.append(element)
        if opens_section:
            sections.append((level, element_id))
    return out


def elements_jsonl(elements: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in elements).encode(
        "utf-8"
    )
