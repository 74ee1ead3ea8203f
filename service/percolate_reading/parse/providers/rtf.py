"""RTF provider: a small tokenizer for the RTF 1.x syntax, not a text stripper.

It keeps what the structure says: paragraphs (`\\par`), headings (`\\outlinelevelN`), tables
(`\\intbl` ... `\\cell` ... `\\row`), line breaks and tabs; decodes `\\'hh` in the document's
code page (`\\ansicpgN`, default windows-1252) and `\\uN` with its `\\ucN` fallback skip; and
skips destinations that are not body text (font/colour/style tables, document info, pictures,
embedded objects, field instructions, and every `{\\*\\...}` group). Group nesting is kept on
an explicit stack: a hostile file with a million braces costs memory linear in its size,
never recursion.
"""

from __future__ import annotations

import codecs
import contextlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from percolate_reading.errors import CorruptDocumentError, DocumentTooLargeError
from percolate_reading.parse.document import Block, BlockKind, DocumentType, ParsedDocument, Table
from percolate_reading.parse.providers.base import ParseOptions

DEFAULT_MAX_RTF_BYTES = 256 * 1024 * 1024
_TOKEN = re.compile(
    rb"\\([a-zA-Z]{1,32})(-?\d{1,10})? ?|\\'([0-9a-fA-F]{2})|\\([^a-zA-Z])|([{}])|[\r\n]+|([^\\{}\r\n]+)"
)
_SKIP_DESTINATIONS = frozenset(
    {
        b"fonttbl",
        b"colortbl",
        b"stylesheet",
        b"info",
        b"pict",
        b"object",
        b"themedata",
        b"colorschememapping",
        b"latentstyles",
        b"datastore",
        b"xmlnstbl",
        b"listtable",
        b"listoverridetable",
        b"rsidtbl",
        b"generator",
        b"fldinst",
        b"filetbl",
        b"revtbl",
        b"header",
        b"headerl",
        b"headerr",
        b"headerf",
        b"footer",
        b"footerl",
        b"footerr",
        b"footerf",
        b"mmathPr",
        b"pgdsctbl",
        b"bkmkstart",
        b"bkmkend",
        b"nonshppict",
        b"shppict",
        b"blipuid",
    }
)
_SPECIAL = {
    b"emdash": "\u2014",
    b"endash": "\u2013",
    b"bullet": "\u2022",
    b"lquote": "\u2018",
    b"rquote": "\u2019",
    b"ldblquote": "\u201c",
    b"rdblquote": "\u201d",
    b"tab": "\t",
    b"line": "\n",
    b"emspace": " ",
    b"enspace": " ",
    b"qmspace": " ",
}
_SYMBOLS = {b"~": "\u00a0", b"_": "\u2011", b"-": "", b"\\": "\\", b"{": "{", b"}": "}", b"|": "", b":": ""}


@dataclass(slots=True)
class _Group:
    skip: bool = False
    uc: int = 1


@dataclass(slots=True)
class _State:
    blocks: list[Block] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    cell: list[str] = field(default_factory=list)
    row: list[str] = field(default_factory=list)
    rows: list[tuple[str, ...]] = field(default_factory=list)
    outline: int | None = None
    in_table: bool = False
    list_level: int | None = None

    def end_paragraph(self) -> None:
        text = "".join(self.text).strip()
        self.text.clear()
        if self.in_table:
            if text:
                self.cell.append(text)
            return
        self.flush_table()
        if not text:
            return
        if self.outline is not None:
            self.blocks.append(Block(kind=BlockKind.HEADING, text=text, level=min(self.outline + 1, 6)))
        elif self.list_level is not None:
            self.blocks.append(
                Block(kind=BlockKind.LIST_ITEM, text=text.lstrip("\u2022\u00b7-* \t"), level=self.list_level)
            )
        else:
            self.blocks.append(Block(kind=BlockKind.PARAGRAPH, text=text))

    def end_cell(self) -> None:
        text = "".join(self.text).strip()
        self.text.clear()
        if text:
            self.cell.append(text)
        self.row.append("\n".join(self.cell))
        self.cell.clear()

    def end_row(self) -> None:
        if self.text or self.cell:
            self.end_cell()
        if self.row:
            self.rows.append(tuple(self.row))
        self.row = []

    def flush_table(self) -> None:
        if self.rows:
            width = max(len(r) for r in self.rows)
            rows = tuple(r + ("",) * (width - len(r)) for r in self.rows)
            self.blocks.append(
                Block(kind=BlockKind.TABLE, table=Table(rows=rows, header_rows=1 if len(rows) > 1 else 0))
            )
            self.rows = []


def rtf_blocks(data: bytes) -> tuple[list[Block], str]:
    """Blocks of an RTF document, and the code page used for 8-bit characters."""
    if not data.lstrip().startswith(b"{\\rtf"):
        raise CorruptDocumentError("not an RTF document (no {\\rtf header)")
    codec = "cp1252"
    stack: list[_Group] = [_Group()]
    state = _State()
    pending_skip = 0  # characters to drop after a \uN (its ANSI fallback)
    dest_next = False  # the group just opened with \*
    group_start = False
    for m in _TOKEN.finditer(data):
        word, arg, hexbyte, symbol, brace, text = m.groups()
        group = stack[-1]
        if brace == b"{":
            stack.append(_Group(skip=group.skip, uc=group.uc))
            group_start = True
            continue
        if brace == b"}":
            if len(stack) > 1:
                stack.pop()
            group_start = False
            continue
        starting = group_start
        group_start = False
        if word is not None:
            if (starting and word in _SKIP_DESTINATIONS) or dest_next:
                group.skip = True
                dest_next = False
                continue
            if group.skip:
                continue
            if word == b"ansicpg" and arg:
                with contextlib.suppress(LookupError):
                    codec = codecs.lookup(f"cp{int(arg)}").name
            elif word == b"par" or word == b"sect":
                state.end_paragraph()
            elif word == b"pard":
                state.outline = None
                state.in_table = False
                state.list_level = None
            elif word == b"outlinelevel" and arg is not None:
                level = int(arg)
                state.outline = level if 0 <= level < 9 else None
            elif word == b"ilvl" and arg is not None:
                state.list_level = max(0, int(arg))
            elif word == b"pntext" or word == b"listtext":
                group.skip = True  # the rendered bullet/number of a list item
                state.list_level = state.list_level or 0
            elif word == b"intbl":
                state.in_table = True
            elif word == b"cell":
                state.end_cell()
            elif word == b"row":
                state.end_row()
            elif word == b"uc" and arg is not None:
                group.uc = max(0, int(arg))
            elif word == b"u" and arg is not None:
                code = int(arg)
                state.text.append(
                    chr(code + 65536 if code < 0 else code)
                    if 0 <= (code + 65536 if code < 0 else code) < 0x110000
                    else "\ufffd"
                )
                pending_skip = group.uc
            elif word in _SPECIAL:
                state.text.append(_SPECIAL[word])
            continue
        if symbol is not None:
            if symbol == b"*":
                dest_next = True
                continue
            if not group.skip:
                state.text.append(_SYMBOLS.get(symbol, ""))
            continue
        if group.skip:
            continue
        if hexbyte is not None:
            if pending_skip:
                pending_skip -= 1
                continue
            state.text.append(bytes([int(hexbyte, 16)]).decode(codec, errors="replace"))
            continue
        if text is not None:
            chunk = text
            if pending_skip:
                drop = min(pending_skip, len(chunk))
                chunk = chunk[drop:]
                pending_skip -= drop
            if chunk:
                state.text.append(chunk.decode(codec, errors="replace"))
    state.end_paragraph()
    state.in_table = False
    state.flush_table()
    return state.blocks, codec


@dataclass(frozen=True)
class RtfProvider:
    max_bytes: int = DEFAULT_MAX_RTF_BYTES
    doc_type = DocumentType.RTF

    def parse(self, path: Path, source_name: str, options: ParseOptions) -> ParsedDocument:
        t0 = time.perf_counter()
        size = path.stat().st_size
        if size > self.max_bytes:
            raise DocumentTooLargeError(
                f"{source_name}: {size} bytes of RTF, over the {self.max_bytes} byte limit"
            )
        try:
            blocks, codec = rtf_blocks(path.read_bytes())
        except CorruptDocumentError as exc:
            raise CorruptDocumentError(f"{source_name}: {exc.message}") from exc
        doc = ParsedDocument(source_name=source_name, doc_type=DocumentType.RTF, blocks=blocks)
        doc.metadata.update(reader="rtf tokenizer", codepage=codec)
        doc.timings["read"] = time.perf_counter() - t0
        if not blocks:
            doc.warnings.append("the document has no text")
        return doc
