"""Plain text, Markdown and CSV/TSV providers.

- Text: decoded by BOM, then UTF-8, else windows-1252 (UTF-16 without BOM recognised by its
  zero bytes); paragraphs are runs of lines between blank lines.
- Markdown: CommonMark plus tables (markdown-it-py), mapped onto the same blocks: headings,
  paragraphs, nested lists, fenced/indented code with its language, pipe tables, images
  as figures. Front matter (`---` YAML block at the top) is kept as a code block.
- CSV/TSV: the delimiter and quoting are sniffed from the first 64 KiB (`,` `;` tab `|`);
  one table, the header row and a title row found the way the XLSX provider finds them.
"""

from __future__ import annotations

import csv
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from percolate_reading.config import Settings
from percolate_reading.errors import DocumentTooLargeError
from percolate_reading.parse.detect import decode_unicode
from percolate_reading.parse.document import Block, BlockKind, DocumentType, ParsedDocument, Table
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.xlsx import (
    DEFAULT_MAX_CELLS,
    _Sheet,
    detect_header_rows,
    split_title,
)

DEFAULT_MAX_TEXT_BYTES = 256 * 1024 * 1024
_NUMBER = re.compile(r"^[-+]?(?:\d{1,3}(?:[,\s]\d{3})+|\d+)?(?:[.,]\d+)?(?:[eE][-+]?\d+)?%?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?)?$")
_BLANK_LINES = re.compile(r"\n\s*\n")


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding) of a text file: BOM, UTF-16 by its zeros, UTF-8, else windows-1252."""
    unicode = decode_unicode(data)
    if unicode is not None:
        return unicode
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), "cp1252"


def _read(path: Path, source_name: str, max_bytes: int) -> tuple[str, str]:
    size = path.stat().st_size
    if size > max_bytes:
        raise DocumentTooLargeError(f"{source_name}: {size} bytes of text, over the {max_bytes} byte limit")
    text, encoding = decode_text(path.read_bytes())
    return text.replace("\r\n", "\n").replace("\r", "\n"), encoding


@dataclass(frozen=True)
class TextProvider:
    max_bytes: int = DEFAULT_MAX_TEXT_BYTES
    doc_type = DocumentType.TEXT

    @staticmethod
    def paragraphs(text: str) -> list[Block]:
        """Runs of lines between blank lines, as paragraphs (line breaks inside kept)."""
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        out: list[Block] = []
        for para in _BLANK_LINES.split(text):
            para = "\n".join(line.rstrip() for line in para.strip("\n").split("\n")).strip()
            if para:
                out.append(Block(kind=BlockKind.PARAGRAPH, text=para))
        return out

    def parse(self, path: Path, source_name: str, options: ParseOptions) -> ParsedDocument:
        t0 = time.perf_counter()
        text, encoding = _read(path, source_name, self.max_bytes)
        doc = ParsedDocument(source_name=source_name, doc_type=DocumentType.TEXT)
        doc.blocks = self.paragraphs(text)
        doc.metadata.update(reader="text", encoding=encoding, lines=text.count("\n") + 1)
        doc.timings["read"] = time.perf_counter() - t0
        if not doc.blocks:
            doc.warnings.append("the file has no text")
        return doc


# --- Markdown ----------------------------------------------------------------------------


def _inline_text(token: Any) -> str:
    parts: list[str] = []
    for child in token.children or ():
        if child.type in ("text", "code_inline", "html_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "image":
            parts.append(child.content or "")
    return "".join(parts)


def _figures(inline: Any) -> list[Block]:
    """A paragraph of only images, as one FIGURE each; [] when the paragraph has text."""
    children = inline.children or ()
    pics = [c for c in children if c.type == "image"]
    if not pics or "".join(c.content for c in children if c.type == "text").strip():
        return []
    return [
        Block(
            kind=BlockKind.FIGURE,
            text=pic.content,
            caption=str(pic.attrs.get("title") or ""),
            label=str(pic.attrs.get("src") or "") or None,
        )
        for pic in pics
    ]


def _table(tokens: list[Any], i: int) -> tuple[Table | None, int]:
    """The table opened at tokens[i], and the index after its table_close."""
    rows: list[tuple[str, ...]] = []
    header = 0
    in_head = False
    j = i + 1
    current: list[str] = []
    while j < len(tokens) and tokens[j].type != "table_close":
        t = tokens[j]
        if t.type in ("thead_open", "thead_close"):
            in_head = t.type == "thead_open"
        elif t.type == "tr_open":
            current = []
        elif t.type == "tr_close":
            rows.append(tuple(current))
            header += in_head
        elif t.type == "inline":
            current.append(_inline_text(t).strip())
        j += 1
    if not rows:
        return None, j + 1
    width = max(len(r) for r in rows)
    padded = tuple(r + ("",) * (width - len(r)) for r in rows)
    return Table(rows=padded, header_rows=header), j + 1


class _MarkdownReader:
    """markdown-it's token stream into blocks; list nesting kept on a stack."""

    def __init__(self, tokens: list[Any]) -> None:
        self.tokens = tokens
        self.blocks: list[Block] = []
        self.list_stack: list[bool] = []  # ordered, per open list
        self.images = 0

    def read(self) -> None:
        i = 0
        while i < len(self.tokens):
            i = self.token(i)

    def token(self, i: int) -> int:
        """Handle tokens[i]; the index of the next token to read."""
        tok = self.tokens[i]
        ttype = tok.type
        if ttype == "heading_open":
            content = _inline_text(self.tokens[i + 1]).strip()
            if content:
                self.blocks.append(Block(kind=BlockKind.HEADING, text=content, level=int(tok.tag[1])))
            return i + 3
        if ttype == "paragraph_open":
            self.paragraph(i)
            return i + 3
        if ttype == "table_open":
            table, after = _table(self.tokens, i)
            if table is not None:
                self.blocks.append(Block(kind=BlockKind.TABLE, table=table))
            return after
        if ttype in ("bullet_list_open", "ordered_list_open"):
            self.list_stack.append(ttype == "ordered_list_open")
        elif ttype in ("bullet_list_close", "ordered_list_close"):
            self.list_stack.pop()
        elif ttype in ("fence", "code_block", "html_block"):
            self.code(tok)
        return i + 1

    def code(self, tok: Any) -> None:
        code = tok.content.rstrip("\n")
        if not code.strip():
            return
        if tok.type == "html_block":
            self.blocks.append(Block(kind=BlockKind.CODE, text=code, language="html"))
            return
        lang = tok.info.split()[0] if tok.info.strip() else None
        self.blocks.append(Block(kind=BlockKind.CODE, text=code, language=lang))

    def paragraph(self, i: int) -> None:
        inline = self.tokens[i + 1]
        figures = _figures(inline)
        if figures:
            self.images += len(figures)
            self.blocks.extend(figures)
            return
        content = _inline_text(inline).strip()
        if not content:
            return
        if self.list_stack and self.tokens[i - 1].type == "list_item_open":
            marker = self.tokens[i - 1].info
            ordered = self.list_stack[-1]
            self.blocks.append(
                Block(
                    kind=BlockKind.LIST_ITEM,
                    text=content,
                    level=len(self.list_stack) - 1,
                    ordered=ordered,
                    marker=f"{marker}." if marker and ordered else None,
                )
            )
        else:
            self.blocks.append(Block(kind=BlockKind.PARAGRAPH, text=content))


def markdown_blocks(text: str) -> tuple[list[Block], int]:
    """Blocks of a Markdown document, and the number of images seen."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark").enable("table")
    front = re.match(r"^---\n(.*?)\n(?:---|\.\.\.)\n", text, re.DOTALL)
    blocks: list[Block] = []
    if front:
        blocks.append(Block(kind=BlockKind.CODE, text=front.group(1), language="yaml", label="front matter"))
        text = text[front.end() :]
    reader = _MarkdownReader(md.parse(text))
    reader.read()
    return blocks + reader.blocks, reader.images


@dataclass(frozen=True)
class MarkdownProvider:
    max_bytes: int = DEFAULT_MAX_TEXT_BYTES
    doc_type = DocumentType.MARKDOWN

    def parse(self, path: Path, source_name: str, options: ParseOptions) -> ParsedDocument:
        t0 = time.perf_counter()
        text, encoding = _read(path, source_name, self.max_bytes)
        blocks, images = markdown_blocks(text)
        doc = ParsedDocument(source_name=source_name, doc_type=DocumentType.MARKDOWN, blocks=blocks)
        doc.metadata.update(reader="markdown-it-py (CommonMark + tables)", encoding=encoding, figures=images)
        doc.timings["read"] = time.perf_counter() - t0
        if not blocks:
            doc.warnings.append("the file has no text")
        return doc


# --- CSV / TSV ---------------------------------------------------------------------------


def sniff_dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
    lines = sample.split("\n")
    if len(lines) > 2:
        sample = "\n".join(lines[:-1])  # the last line may be cut by the sample size
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        # One column, or an irregular sample: the most frequent delimiter, standard quoting.
        counts = {d: sample.count(d) for d in ",;\t|"}
        best = max(counts, key=lambda d: counts[d])

        class Fallback(csv.excel):
            delimiter = best if counts[best] else ","

        return Fallback


def _kind(value: str) -> str:
    if not value:
        return ""
    if _NUMBER.match(value.strip()) and any(ch.isdigit() for ch in value):
        return "n"
    if _DATE.match(value.strip()):
        return "d"
    return "s"


@dataclass(frozen=True)
class CsvProvider:
    max_bytes: int = DEFAULT_MAX_TEXT_BYTES
    max_cells: int = DEFAULT_MAX_CELLS
    doc_type = DocumentType.CSV

    @classmethod
    def from_settings(cls, settings: Settings) -> CsvProvider:
        return cls(max_cells=settings.xlsx_max_cells)

    def parse(self, path: Path, source_name: str, options: ParseOptions) -> ParsedDocument:
        t0 = time.perf_counter()
        text, encoding = _read(path, source_name, self.max_bytes)
        dialect = sniff_dialect(text[: 64 * 1024])
        rows: list[list[str]] = []
        cells = 0
        csv.field_size_limit(max(self.max_bytes, 1 << 20))
        try:
            for row in csv.reader(text.split("\n"), dialect):
                cells += len(row)
                if cells > self.max_cells:
                    raise DocumentTooLargeError(
                        f"{source_name}: more than {self.max_cells} cells, over the cell cap"
                    )
                rows.append(row)
        except csv.Error:
            # Unbalanced quotes: read it without quoting rather than refuse a near-CSV.
            rows = [line.split(dialect.delimiter) for line in text.split("\n")]
        while rows and not any(c.strip() for c in rows[-1]):
            rows.pop()
        while rows and not any(c.strip() for c in rows[0]):
            rows.pop(0)
        doc = ParsedDocument(source_name=source_name, doc_type=DocumentType.CSV)
        delimiter = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}.get(
            dialect.delimiter, dialect.delimiter
        )
        doc.metadata.update(reader="csv (sniffed dialect)", encoding=encoding, delimiter=delimiter)
        if rows:
            width = max(len(r) for r in rows)
            grid = tuple(tuple(c.strip() for c in r) + ("",) * (width - len(r)) for r in rows)
            kinds = tuple(tuple(_kind(c) for c in r) for r in grid)
            sheet = _Sheet("", grid, kinds, frozenset(), sum(1 for r in kinds for k in r if k))
            title, body = split_title(sheet)
            header = detect_header_rows(body.rows, body.kinds, False)
            doc.blocks.append(
                Block(kind=BlockKind.TABLE, table=Table(rows=body.rows, header_rows=header, title=title))
            )
            doc.metadata.update(rows=len(body.rows), columns=width)
        else:
            doc.warnings.append("the file has no rows")
        doc.timings["read"] = time.perf_counter() - t0
        return doc
