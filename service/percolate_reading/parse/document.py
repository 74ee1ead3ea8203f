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
    DOCX = "docx"
    PPTX = "pptx"
    HTML = "html"
    CSV = "csv"  # CSV and TSV: the delimiter is sniffed
    TEXT = "text"
    MARKDOWN = "markdown"
    EML = "eml"
    MSG = "msg"
    XLS = "xls"
    ODS = "ods"
    ODT = "odt"
    ODP = "odp"
    EPUB = "epub"
    RTF = "rtf"
    DOC = "doc"  # legacy binaries: through LibreOffice when it is installed
    PPT = "ppt"


# What the object store records as Content-Type for a staged upload of each type.
MEDIA_TYPES: dict[DocumentType, str] = {
    DocumentType.PDF: "application/pdf",
    DocumentType.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    DocumentType.DOCX: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    DocumentType.PPTX: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    DocumentType.HTML: "text/html",
    DocumentType.CSV: "text/csv",
    DocumentType.TEXT: "text/plain",
    DocumentType.MARKDOWN: "text/markdown",
    DocumentType.EML: "message/rfc822",
    DocumentType.MSG: "application/vnd.ms-outlook",
    DocumentType.XLS: "application/vnd.ms-excel",
    DocumentType.ODS: "application/vnd.oasis.opendocument.spreadsheet",
    DocumentType.ODT: "application/vnd.oasis.opendocument.text",
    DocumentType.ODP: "application/vnd.oasis.opendocument.presentation",
    DocumentType.EPUB: "application/epub+zip",
    DocumentType.RTF: "application/rtf",
    DocumentType.DOC: "application/msword",
    DocumentType.PPT: "application/vnd.ms-powerpoint",
}


class BlockKind(StrEnum):
    HEADING = "heading"
    PARAGRAPH = "paragraph"
    LIST_ITEM = "list_item"
    TABLE = "table"
    PAGE_BREAK = "page_break"
    TRANSCRIPT_SEGMENT = "transcript_segment"
    TITLE = "title"
    FIGURE = "figure"
    CODE = "code"
    FORMULA = "formula"
    PAGE_HEADER = "page_header"
    PAGE_FOOTER = "page_footer"
    EMAIL_HEADER = "email_header"


# A rectangle in page coordinates: (x0, y0, x1, y1), origin top left (PDF points, image pixels).
BBox = tuple[float, float, float, float]


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
    # Merged cells as (row, col, row_span, col_span) of their top-left cell; `rows` holds the
    # value in every cell the merge covers, so readers that ignore spans still see labels.
    spans: tuple[tuple[int, int, int, int], ...] = ()

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
    - TRANSCRIPT_SEGMENT: `text`, `start`/`end` in seconds, optional `speaker`, `language`
    - TITLE: `text` (the document's title)
    - FIGURE: `caption` (may be empty), optional `text` (alt text / OCR), `label` (image name),
      `image` (the artifact path of the extracted picture, with `include_images`)
    - CODE: `text` = the code's lines (indentation kept), rendered as a fenced block; optional `language`
    - FORMULA: `text` (LaTeX or the source's linear form)
    - PAGE_HEADER / PAGE_FOOTER: `text`, running heads and feet kept apart from the body
    - EMAIL_HEADER: `label` = header name (From, To, ...), `text` = its value

    Every kind may carry `bbox` (page coordinates) where the source has geometry; slides are
    numbered in `page` (the document type says whether a page is a slide).
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
    bbox: BBox | None = None
    caption: str | None = None
    label: str | None = None
    language: str | None = None
    image: str | None = None

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
    # Documents inside this one (e-mail attachments), each parsed on its own.
    children: list[ParsedDocument] = field(default_factory=list)
    # Extracted pictures (`include_images`): artifact path (images/<n>.<ext>) -> bytes.
    images: dict[str, bytes] = field(default_factory=dict)

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
