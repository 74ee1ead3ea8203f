"""A page range of a document parsed on its own (a worker's sub-job), and its JSON form.

A large scan is split into page ranges that several workers parse at once; each stores its
`PagePart` (the range's blocks before the document-wide steps, its page warnings and
counters) and the worker that completes the last range merges them (providers/pdf.py's
`merge_parts`). JSON, not pickle: parts travel through object storage.

What crosses pages in one parse is settled at the merge (line-end hyphens, running heads
from the whole-document sample, warnings and counters); list nesting is the one state a
range starts afresh, so a text-layer list that runs across a range boundary may indent
differently than in one parse. Splits are planned for scans (OCR'd pages carry no such
state), and extracted pictures (numbered document-wide) turn splitting off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from percolate_reading.parse.document import Block, BlockKind, Table

PART_FORMAT = 1

# Counters of a PDF parse that a part carries to the merge: lists are concatenated in page
# order, numbers summed (attribute names of providers/pdf.py's _PdfParse).
PART_TALLIES = (
    "pages_ocr",
    "pages_with_text",
    "pages_with_images",
    "unreadable",
    "no_text_pages",
    "stamped_pages",
    "margin_lines_dropped",
    "hidden_chars",
    "hidden_pages",
    "garbage_ocr",
    "garbage_kept",
    "forced_kept",
    "table_pages_checked",
    "t_tables",
    "t_ocr",
)


@dataclass(slots=True)
class PagePart:
    pages: tuple[int, int]  # first and last page, 1-based, inclusive
    blocks: list[Block]
    warnings: list[str]
    tallies: dict[str, Any]
    ocr_engine: str | None = None
    ocr_available: bool = False
    timings: dict[str, float] = field(default_factory=dict)


def _table_json(table: Table) -> dict[str, Any]:
    return {
        "rows": [list(r) for r in table.rows],
        "header_rows": table.header_rows,
        "page": table.page,
        "sheet": table.sheet,
        "title": table.title,
        "spans": [list(s) for s in table.spans],
    }


def _table_from(data: dict[str, Any]) -> Table:
    return Table(
        rows=tuple(tuple(r) for r in data["rows"]),
        header_rows=data["header_rows"],
        page=data["page"],
        sheet=data["sheet"],
        title=data["title"],
        spans=tuple((s[0], s[1], s[2], s[3]) for s in data["spans"]),
    )


def block_json(block: Block) -> dict[str, Any]:
    """Every field that differs from its default (a scan's part holds thousands of blocks)."""
    out: dict[str, Any] = {"kind": block.kind.value}
    for name, default in _BLOCK_DEFAULTS.items():
        value = getattr(block, name)
        if value == default and type(value) is type(default):
            continue
        if name == "table":
            out[name] = _table_json(value)
        elif name == "bbox":
            out[name] = list(value)
        else:
            out[name] = value
    return out


def block_from(data: dict[str, Any]) -> Block:
    fields = {k: v for k, v in data.items() if k != "kind"}
    if "table" in fields:
        fields["table"] = _table_from(fields["table"])
    if "bbox" in fields:
        b = fields["bbox"]
        fields["bbox"] = (b[0], b[1], b[2], b[3])
    return Block(BlockKind(data["kind"]), **fields)


_BLOCK_DEFAULTS: dict[str, Any] = {
    name: getattr(Block(BlockKind.PARAGRAPH), name) for name in Block.__dataclass_fields__ if name != "kind"
}


def encode_part(part: PagePart) -> bytes:
    return json.dumps(
        {
            "format": PART_FORMAT,
            "pages": list(part.pages),
            "blocks": [block_json(b) for b in part.blocks],
            "warnings": part.warnings,
            "tallies": part.tallies,
            "ocr_engine": part.ocr_engine,
            "ocr_available": part.ocr_available,
            "timings": part.timings,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")


def decode_part(raw: bytes) -> PagePart:
    data = json.loads(raw)
    if data.get("format") != PART_FORMAT:
        raise ValueError(f"page-range part of format {data.get('format')!r}; expected {PART_FORMAT}")
    first, last = data["pages"]
    return PagePart(
        pages=(first, last),
        blocks=[block_from(b) for b in data["blocks"]],
        warnings=list(data["warnings"]),
        tallies=dict(data["tallies"]),
        ocr_engine=data["ocr_engine"],
        ocr_available=bool(data["ocr_available"]),
        timings=dict(data["timings"]),
    )


def plan_ranges(first: int, last: int, per_part: int) -> list[tuple[int, int]]:
    """Pages `first`..`last` in ranges of `per_part` pages; the remainder is spread over the
    ranges (no short last part: parts finish together)."""
    total = last - first + 1
    count = max(1, -(-total // max(per_part, 1)))
    base, extra = divmod(total, count)
    ranges: list[tuple[int, int]] = []
    start = first
    for i in range(count):
        size = base + (1 if i < extra else 0)
        ranges.append((start, start + size - 1))
        start += size
    return ranges
