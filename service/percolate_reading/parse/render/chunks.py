"""ParsedDocument -> retrieval chunks (`chunks.jsonl`).

A heading (or a new sheet) closes the current chunk, and the chunk carries the heading path
that leads to it; only sections smaller than `min_chars` (a heading and a line, common on
design-heavy pages) share a chunk with a neighbour, under the path both have in common.
Inside a section, blocks are packed up to `max_chars`; consecutive chunks of one section
share up to `overlap_chars` of text.
Long paragraphs are cut at sentence, then word boundaries; tables are cut between rows, each
part repeating the header row, so no chunk holds half a row unless a single row is itself
too long. Chunk text is the same Markdown `structured.md` shows for those blocks.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from percolate_reading.config import Settings
from percolate_reading.parse.document import Block, BlockKind, ParsedDocument, Table
from percolate_reading.parse.render.markdown import (
    ListState,
    code_fence,
    escape_paragraph,
    heading_line,
    page_of,
    render_block,
    sheet_heading,
    sheet_of,
    table_lines,
    transcript_line,
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_PARA = "\n\n"


CHUNK_STRATEGIES = ("heading", "page", "fixed")


@dataclass(frozen=True, slots=True)
class ChunkOptions:
    """`strategy`: "heading" (a heading closes a chunk: chunks never span sections), "page"
    (a new page closes one too), "fixed" (pack to size across headings; the heading path is
    still tracked)."""

    max_chars: int = 2000
    overlap_chars: int = 200
    min_chars: int = 200  # smaller chunks join a neighbour when both fit in max_chars (0: never)
    strategy: str = "heading"

    def __post_init__(self) -> None:
        if self.max_chars < 20 or not 0 <= self.overlap_chars < self.max_chars or self.min_chars < 0:
            raise ValueError(f"invalid chunk options: {self}")
        if self.strategy not in CHUNK_STRATEGIES:
            raise ValueError(
                f"invalid chunk strategy {self.strategy!r}; one of {', '.join(CHUNK_STRATEGIES)}"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> ChunkOptions:
        return cls(max_chars=settings.chunk_max_chars, overlap_chars=settings.chunk_overlap_chars)


@dataclass(slots=True)
class _Unit:
    """A piece of chunk text that is never split further, with where it came from."""

    text: str
    joiner: str  # put before this unit when it follows another in the same chunk
    page: int | None = None
    sheet: str | None = None
    start: float | None = None
    end: float | None = None
    kind: str = "text"  # text | heading | table | overlap
    group: int | None = None  # parts of one split table: never packed into one chunk
    etype: str | None = None  # the element type (elements.jsonl) this unit comes from


@dataclass(slots=True)
class _Chunk:
    heading_path: list[str]
    units: list[_Unit] = field(default_factory=list)
    length: int = 0  # len(text), kept up to date by append()

    @property
    def text(self) -> str:
        out: list[str] = []
        for i, u in enumerate(self.units):
            if i:
                out.append(u.joiner)
            out.append(u.text)
        return "".join(out)

    def append(self, unit: _Unit) -> None:
        self.length = self.length_with(unit)
        self.units.append(unit)

    def length_with(self, unit: _Unit) -> int:
        if not self.units:
            return len(unit.text)
        return self.length + len(unit.joiner) + len(unit.text)

    @property
    def has_content(self) -> bool:
        return any(u.kind in ("text", "table") for u in self.units)


class _Chunker:
    def __init__(self, options: ChunkOptions) -> None:
        self.options = options
        self.fixed = options.strategy == "fixed"
        self.done: list[_Chunk] = []
        self.stack: list[tuple[int, str]] = []
        self.current = _Chunk(heading_path=[])

    # -- section boundaries ----------------------------------------------------------
    def flush(self) -> None:
        if self.current.units:
            self.done.append(self.current)
        self.current = _Chunk(heading_path=[t for _, t in self.stack])

    def heading(
        self, level: int, text: str, line: str, page: int | None, sheet: str | None, etype: str = "heading"
    ) -> None:
        if self.current.has_content and not self.fixed:
            self.flush()
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, text))
        if not self.current.has_content or not self.fixed:
            self.current.heading_path = [t for _, t in self.stack]
        self.add(_Unit(line, _PARA, page=page, sheet=sheet, kind="heading", etype=etype))

    def new_sheet(self) -> None:
        self.flush()
        self.stack.clear()
        self.current.heading_path = []

    # -- packing -----------------------------------------------------------------------
    def add(self, unit: _Unit) -> None:
        max_chars = self.options.max_chars
        last = self.current.units[-1] if self.current.units else None
        if unit.group is not None and last is not None and last.group == unit.group:
            self.flush()
        if self.current.length_with(unit) <= max_chars:
            self.current.append(unit)
            return
        previous = self.current
        self.flush()
        overlap = self._overlap(previous, max_chars - len(unit.text) - len(unit.joiner))
        if overlap is not None:
            self.current.append(overlap)
        self.current.append(unit)

    def _overlap(self, previous: _Chunk, room: int) -> _Unit | None:
        size = min(self.options.overlap_chars, room)
        last = previous.units[-1] if previous.units else None
        # A table part repeats its header instead; half a table row would only mislead.
        if size <= 0 or last is None or last.kind in ("table", "heading") or not previous.has_content:
            return None
        text = previous.text
        tail = text[-size:]
        if len(text) > size and not text[-size - 1].isspace():
            cut = re.search(r"\s", tail)
            tail = tail[cut.end() :] if cut else ""
        tail = tail.strip()
        if not tail:
            return None
        return _Unit(
            tail, _PARA, page=last.page, sheet=last.sheet, start=last.start, end=last.end, kind="overlap"
        )

    def result(self) -> list[_Chunk]:
        self.flush()
        # By page, a page is a chunk however small: no merging across the boundary asked for.
        min_chars = 0 if self.options.strategy == "page" else self.options.min_chars
        return _merge_small(self.done, self.options.max_chars, min_chars)


def _mergeable(a: _Chunk, b: _Chunk, max_chars: int, min_chars: int) -> bool:
    if not a.units or not b.units or min(a.length, b.length) >= min_chars:
        return False
    if {u.sheet for u in a.units} != {u.sheet for u in b.units}:
        return False
    first = next((u for u in b.units if u.kind != "overlap"), None)
    if first is None or (first.group is not None and first.group == a.units[-1].group):
        return False
    return (
        a.length
        + len(first.joiner)
        + sum(len(u.joiner) + len(u.text) for u in b.units if u.kind != "overlap")
        <= max_chars
    )


def _merge_small(chunks: list[_Chunk], max_chars: int, min_chars: int) -> list[_Chunk]:
    """Chunks shorter than `min_chars` joined with a neighbour when both fit one chunk."""
    out: list[_Chunk] = []
    for chunk in chunks:
        last = out[-1] if out else None
        if last is None or not _mergeable(last, chunk, max_chars, min_chars):
            out.append(chunk)
            continue
        common: list[str] = []
        for x, y in zip(last.heading_path, chunk.heading_path, strict=False):
            if x != y:
                break
            common.append(x)
        last.heading_path = common
        for unit in chunk.units:
            if unit.kind != "overlap":  # text `last` already holds
                last.append(unit)
    return out


def _split_text(text: str, max_chars: int) -> list[str]:
    """Cut `text` into pieces of at most `max_chars`: at sentence ends, then words, then hard."""
    if len(text) <= max_chars:
        return [text]
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        if len(sentence) <= max_chars:
            pieces.append(sentence)
            continue
        line = ""
        for word in sentence.split():
            while len(word) > max_chars:
                if line:
                    pieces.append(line)
                    line = ""
                pieces.append(word[:max_chars])
                word = word[max_chars:]
            if not word:
                continue
            if line and len(line) + 1 + len(word) > max_chars:
                pieces.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        if line:
            pieces.append(line)
    return [p for p in pieces if p]


def _text_units(text: str, joiner: str, max_chars: int, **where: Any) -> list[_Unit]:
    pieces = _split_text(text, max_chars)
    return [_Unit(p, joiner if i == 0 else " ", **where) for i, p in enumerate(pieces)]


def _split_code(text: str, max_chars: int) -> list[str]:
    """Code cut between lines into pieces that fit a chunk once fenced; a line longer than a
    chunk is cut."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.rstrip().split("\n"):
        while len(line) > max_chars:
            line_part, line = line[:max_chars], line[max_chars:]
            if current:
                pieces.append("\n".join(current))
                current, size = [], 0
            pieces.append(line_part)
        if current and size + 1 + len(line) > max_chars:
            pieces.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        pieces.append("\n".join(current))
    return pieces


def _table_units(table: Table, max_chars: int, **where: Any) -> list[_Unit]:
    head, body = table_lines(table)
    if table.title:
        head = [f"**{' '.join(table.title.split())}**\n", *head]
    whole = "\n".join(head + body)
    if len(whole) <= max_chars:
        return [_Unit(whole, _PARA, kind="table", **where)]
    header = "\n".join(head)
    units: list[_Unit] = []
    rows: list[str] = []
    where = {**where, "group": id(table)}

    def emit() -> None:
        if rows:
            units.append(_Unit("\n".join([header, *rows]), _PARA, kind="table", **where))
            rows.clear()

    for row in body:
        if len(header) + 1 + len(row) > max_chars:
            # One row longer than a chunk: cutting it is unavoidable.
            emit()
            for i in range(0, len(row), max_chars):
                units.append(_Unit(row[i : i + max_chars], _PARA, kind="table", **where))
            continue
        if len(header) + 1 + len("\n".join([*rows, row])) > max_chars:
            emit()
        rows.append(row)
    emit()
    if not units:  # header only
        units.append(_Unit(header[:max_chars], _PARA, kind="table", **where))
    return units


def build_chunks(
    doc: ParsedDocument, options: ChunkOptions, job_id: str | None = None
) -> list[dict[str, Any]]:
    """The document's chunks in order, as JSON-ready dicts (with the document's facts, so a
    vector store needs no join)."""
    chunker = _Chunker(options)
    walk = _BlockWalk(options.max_chars)
    for block in doc.blocks:
        block_sheet = sheet_of(block)
        if block_sheet is not None and block_sheet != walk.sheet:
            walk.sheet = block_sheet
            walk.page = None
            chunker.new_sheet()
            if block.kind is not BlockKind.HEADING:
                chunker.heading(2, f"Sheet: {block_sheet}", sheet_heading(block_sheet), None, block_sheet)
        block_page = page_of(block)
        if (
            options.strategy == "page"
            and block_page is not None
            and walk.page is not None
            and block_page != walk.page
            and chunker.current.has_content
        ):
            chunker.flush()
        walk.page = block_page or walk.page
        if block.kind in (BlockKind.HEADING, BlockKind.TITLE):
            if block.text.strip():
                text = " ".join(block.text.split())
                if block.kind is BlockKind.TITLE:
                    chunker.heading(1, text, render_block(block), walk.page, walk.sheet, etype="title")
                else:
                    level = min(max(block.level, 1), 6)
                    chunker.heading(level, text, heading_line(block), walk.page, walk.sheet)
        else:
            for unit in walk.units(block):
                chunker.add(unit)
        if block.kind is not BlockKind.PAGE_BREAK:
            walk.previous_kind = block.kind
    doc_key = str(doc.metadata.get("sha256") or hashlib.sha256(doc.text().encode("utf-8")).hexdigest())
    facts = {
        "source_name": doc.source_name,
        "job_id": job_id,
        "doc_type": doc.doc_type.value,
        "content_sha256": doc.metadata.get("sha256"),
    }
    slides = doc.doc_type.value in ("pptx", "odp", "ppt")
    chunks = [_chunk_dict(doc_key, i, c) for i, c in enumerate(chunker.result())]
    for chunk in chunks:
        chunk.update(facts)
        chunk["slides"] = chunk["pages"] if slides else None
    return chunks


_ETYPES = {
    BlockKind.PARAGRAPH: "paragraph",
    BlockKind.LIST_ITEM: "list_item",
    BlockKind.TABLE: "table",
    BlockKind.TRANSCRIPT_SEGMENT: "transcript_segment",
    BlockKind.FIGURE: "figure",
    BlockKind.CODE: "code",
    BlockKind.FORMULA: "formula",
    BlockKind.EMAIL_HEADER: "email_header",
}


def langchain_documents(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chunks in the shape LangChain's `Document(**d)` (and LlamaIndex's `Document(text=...,
    metadata=...)`) take: `page_content` + flat `metadata` of scalars, which every vector store
    accepts (lists are joined: heading path with " > ", element types with ",")."""
    out: list[dict[str, Any]] = []
    for c in chunks:
        pages = c.get("pages") or [None, None]
        span = c.get("time_span") or [None, None]
        meta = {
            "chunk_id": c["id"],
            "chunk_index": c["index"],
            "source": c.get("source_name"),
            "job_id": c.get("job_id"),
            "doc_type": c.get("doc_type"),
            "content_sha256": c.get("content_sha256"),
            "heading_path": " > ".join(c.get("heading_path") or []),
            "element_types": ",".join(c.get("element_types") or []),
            "page_start": pages[0],
            "page_end": pages[1],
            "sheet": c.get("sheet"),
            "time_start": span[0],
            "time_end": span[1],
        }
        out.append({"page_content": c["text"], "metadata": {k: v for k, v in meta.items() if v is not None}})
    return out


class _BlockWalk:
    """Where `build_chunks` is in the document, and the units of each non-heading block."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.lists = ListState()
        self.page: int | None = None
        self.sheet: str | None = None
        self.previous_kind: BlockKind | None = None
        self.list_ordered = False

    def units(self, block: Block) -> list[_Unit]:
        kind = block.kind
        where: dict[str, Any] = {"page": self.page, "sheet": self.sheet, "etype": _ETYPES.get(kind)}
        if kind is BlockKind.PARAGRAPH:
            return _text_units(escape_paragraph(block.text), _PARA, self.max_chars, **where)
        if kind is BlockKind.LIST_ITEM:
            continues = self.previous_kind is BlockKind.LIST_ITEM and (
                block.level > 0 or block.ordered == self.list_ordered
            )
            if block.level <= 0:
                self.list_ordered = block.ordered
            if not continues:
                self.lists.reset()
            joiner = "\n" if continues else _PARA
            return _text_units(self.lists.line(block), joiner, self.max_chars, **where)
        if kind is BlockKind.TABLE and block.table is not None and block.table.rows:
            return _table_units(block.table, self.max_chars, **where)
        if kind is BlockKind.CODE and block.text.strip():
            return [
                _Unit(code_fence(part, block.language), _PARA, **where)
                for part in _split_code(block.text, self.max_chars - 8)
            ]
        if kind is BlockKind.TRANSCRIPT_SEGMENT:
            joiner = "\n" if self.previous_kind is BlockKind.TRANSCRIPT_SEGMENT else _PARA
            return _text_units(
                transcript_line(block), joiner, self.max_chars, start=block.start, end=block.end, **where
            )
        if kind in (BlockKind.PAGE_BREAK, BlockKind.PAGE_HEADER, BlockKind.PAGE_FOOTER):
            return []  # running heads and feet stay out of the body's chunks
        rendered = render_block(block)  # figures, formulas, e-mail headers, ...
        if not rendered:
            return []
        joiner = "\n" if kind is BlockKind.EMAIL_HEADER and self.previous_kind is kind else _PARA
        return _text_units(rendered, joiner, self.max_chars, **where)


def _chunk_dict(doc_key: str, index: int, chunk: _Chunk) -> dict[str, Any]:
    text = chunk.text
    pages = [u.page for u in chunk.units if u.page is not None]
    starts = [u.start for u in chunk.units if u.start is not None]
    ends = [u.end for u in chunk.units if u.end is not None]
    sheets = [u.sheet for u in chunk.units if u.sheet is not None]
    digest = hashlib.sha256(f"{doc_key}\x00{index}\x00{text}".encode()).hexdigest()[:32]
    return {
        "id": digest,
        "index": index,
        "text": text,
        "heading_path": chunk.heading_path,
        "pages": [min(pages), max(pages)] if pages else None,
        "sheet": sheets[0] if sheets else None,
        "time_span": [min(starts), max(ends or starts)] if starts else None,
        "char_count": len(text),
        "element_types": list(dict.fromkeys(u.etype for u in chunk.units if u.etype and u.kind != "overlap")),
    }
