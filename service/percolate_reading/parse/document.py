"""The parsed-document model every provider produces and every renderer consumes.

Plain frozen dataclasses: cheap to build in a hot loop, picklable across the sandbox's
process boundary, and free of I/O. Locations (page, sheet, time span) live on each block so
renderers can cite them without a second pass over the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class DocumentType(StrEnum):
    PDF = "pdf"
    XLSX = "xlsx"
    AUDIO = "audio"
    IMAGE = "image"


class BlockKind(StrEnum):
    HEADING = "heading"
    PARAGRAPH = "paragraph"
    LIST_ITEM = "list_item"
    TABLE = "table"
    PAGE_BREAK = "page_break"
    TRANSCRIPT_SEGMENT = "transcript_segment"
    CODE = "code"


def _field_values(obj: Any) -> tuple[Any, ...]:
    """Constructor arguments of a slotted dataclass, for a fast pickle. (The default for
    slots=True calls dataclasses.fields() on every object unpickled: a parse result crossing
    from the sandbox child holds thousands of blocks.)"""
    return tuple(getattr(obj, name) for name in obj.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class Table:
    """A table as rows of cell strings; `header_rows` leading rows are the header."""

    rows: tuple[tuple[str, ...], ...]
    header_rows: int = 1
    page: int | None = None  # 1-based page for PDFs
    sheet: str | None = None  # sheet name for spreadsheets
    title: str | None = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Table, _field_values(self))

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    @property
    def n_cols(self) -> int:
        return max((len(r) for r in self.rows), default=0)


@dataclass(frozen=True, slots=True)
class Block:
    """One unit of document content in reading order.

    - HEADING: `text`, `level` 1..6
    - PARAGRAPH: `text`
    - LIST_ITEM: `text`, `level` = nesting depth (0 = top), `ordered`, optional `marker`
    - TABLE: `table`
    - PAGE_BREAK: `page` = the page that starts here (1-based)
    - TRANSCRIPT_SEGMENT: `text`, `start`/`end` in seconds, optional `speaker`
    - CODE: `text` = the code's lines (indentation kept), rendered as a fenced block
    """

    kind: BlockKind
    text: str = ""
    level: int = 0
    page: int | None = None
    sheet: str | None = None
    table: Table | None = None
    ordered: bool = False
    marker: str | None = None
    start: float | None = None
    end: float | None = None
    speaker: str | None = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Block, _field_values(self))


@dataclass(slots=True)
class ParsedDocument:
    """What a provider returns. `metadata` holds type-specific facts (page_count, sheet_count,
    duration_s, language, ...); `timings` holds per-stage seconds; `warnings` holds
    human-readable notes about content that was skipped or degraded."""

    source_name: str
    doc_type: DocumentType
    blocks: list[Block] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def tables(self) -> list[Table]:
        return [b.table for b in self.blocks if b.kind is BlockKind.TABLE and b.table is not None]

    def text(self) -> str:
        """All block text joined, for quick checks and search; tables contribute their cells."""
        parts: list[str] = []
        for b in self.blocks:
            if b.table is not None:
                parts.extend(" ".join(row) for row in b.table.rows)
            elif b.text:
                parts.append(b.text)
        return "\n".join(parts)
