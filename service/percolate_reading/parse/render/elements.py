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


def table_html(table: Table) -> str:
    """The table as an HTML <table>, merged cells as colspan/rowspan, header rows in <thead>."""
    covered: set[tuple[int, int]] = set()
    span_at = {(r, c): (rs, cs) for r, c, rs, cs in table.spans}
    for (r, c), (rs, cs) in span_at.items():
        for dr in range(rs):
            for dc in range(cs):
                if dr or dc:
                    covered.add((r + dr, c + dc))
    out = ["<table>"]
    if table.title:
        out.append(f"<caption>{html.escape(table.title)}</caption>")
    for r, row in enumerate(table.rows):
        if r == 0 and table.header_rows:
            out.append("<thead>")
        if r == table.header_rows and table.header_rows:
            out.append("</thead><tbody>")
        elif r == 0:
            out.append("<tbody>")
        tag = "th" if r < table.header_rows else "td"
        cells = []
        for c, value in enumerate(row):
            if (r, c) in covered:
                continue
            rs, cs = span_at.get((r, c), (1, 1))
            attrs = (f' rowspan="{rs}"' if rs > 1 else "") + (f' colspan="{cs}"' if cs > 1 else "")
            cells.append(f"<{tag}{attrs}>{html.escape(value).replace(chr(10), '<br>')}</{tag}>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    if table.rows and table.header_rows >= len(table.rows):
        out.append("</thead>")
    elif table.rows:
        out.append("</tbody>")
    out.append("</table>")
    return "".join(out)


def table_cells(table: Table) -> list[dict[str, Any]]:
    covered: set[tuple[int, int]] = set()
    span_at = {(r, c): (rs, cs) for r, c, rs, cs in table.spans}
    for (r, c), (rs, cs) in span_at.items():
        for dr in range(rs):
            for dc in range(cs):
                if dr or dc:
                    covered.add((r + dr, c + dc))
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


def build_elements(doc: ParsedDocument) -> list[dict[str, Any]]:
    """The document's elements in reading order, as JSON-ready dicts."""
    doc_key = document_key(doc)
    slides = doc.doc_type in SLIDE_TYPES
    language = doc.metadata.get("language")
    out: list[dict[str, Any]] = []
    sections: list[tuple[int, str]] = []  # (level, element id): the open heading path
    table_number = 0
    page: int | None = None
    for block in doc.blocks:
        if block.kind is BlockKind.PAGE_BREAK:
            page = block.page
            continue
        type_name = _TYPE_NAMES.get(block.kind)
        if type_name is None:
            continue
        if block.kind is BlockKind.TABLE and (block.table is None or not block.table.rows):
            continue
        index = len(out)
        element_id = _element_id(doc_key, index, block)
        block_page = block.page if block.page is not None else (block.table.page if block.table else None)
        block_page = block_page if block_page is not None else page
        sheet = block.sheet or (block.table.sheet if block.table is not None else None)
        level = 0 if block.kind is BlockKind.TITLE else min(max(block.level, 1), 6)
        if block.kind in (BlockKind.TITLE, BlockKind.HEADING):
            while sections and sections[-1][0] >= level:
                sections.pop()
        parent = sections[-1][1] if sections else None
        element: dict[str, Any] = {
            "id": element_id,
            "type": type_name,
            "index": index,
            "text": block.text,
            "parent_id": parent,
            "page": None if slides else block_page,
            "slide": block_page if slides else None,
            "sheet": sheet,
            "bbox": list(block.bbox) if block.bbox is not None else None,
        }
        if block.kind is BlockKind.HEADING:
            element["level"] = level
        elif block.kind is BlockKind.LIST_ITEM:
            element["depth"] = max(block.level, 0)
            element["ordered"] = block.ordered
        elif block.kind is BlockKind.TABLE and block.table is not None:
            table_number += 1
            table = block.table
            element["text"] = "\n".join(" | ".join(row) for row in table.rows)
            element["table"] = {
                "rows": [list(r) for r in table.rows],
                "n_rows": table.n_rows,
                "n_cols": table.n_cols,
                "header_rows": table.header_rows,
                "title": table.title,
                "cells": table_cells(table),
                "html": table_html(table),
                "csv": table_path(table_number),
            }
        elif block.kind is BlockKind.FIGURE:
            element["caption"] = block.caption or None
            element["image"] = block.label
            element["artifact"] = block.image  # images/<n>.<ext> when the picture was extracted
        elif block.kind is BlockKind.CODE:
            element["language"] = block.language
        elif block.kind is BlockKind.TRANSCRIPT_SEGMENT:
            element.update(
                start=block.start, end=block.end, speaker=block.speaker, language=block.language or language
            )
        elif block.kind is BlockKind.EMAIL_HEADER:
            element["name"] = block.label
            element["value"] = block.text
        if block.kind is BlockKind.PARAGRAPH and block.label:
            element["role"] = block.label  # "notes" (speaker notes), "footnote 3", ...
        out.append(element)
        if block.kind in (BlockKind.TITLE, BlockKind.HEADING):
            sections.append((level, element_id))
    return out


def elements_jsonl(elements: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in elements).encode(
        "utf-8"
    )
