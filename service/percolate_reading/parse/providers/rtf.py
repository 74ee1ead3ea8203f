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


def _unicode_char(arg: bytes) -> str:
    """\\uN: a signed 16-bit code (negative above 32767), U+FFFD when out of range."""
    code = int(arg)
    code = code + 65536 if code < 0 else code
    return chr(code) if 0 <= code < 0x110000 else "\ufffd"


class _RtfReader:
    """The token stream into paragraphs and tables: a stack of groups (what is skipped, the
    \\uc fallback count), the current paragraph's state, and the 8-bit code page."""

    def __init__(self) -> None:
        self.codec = "cp1252"
        self.stack: list[_Group] = [_Group()]
        self.state = _State()
        self.pending_skip = 0  # characters to drop after a \\uN (its ANSI fallback)
        self.dest_next = False  # the group just opened with \\*
        self.group_start = False

    def token(self, m: re.Match[bytes]) -> None:
        word, arg, hexbyte, symbol, brace, text = m.groups()
        if brace is not None:
            self.brace(brace)
            return
        starting, self.group_start = self.group_start, False
        group = self.stack[-1]
        if word is not None:
            self.control_word(group, word, arg, starting)
        elif symbol is not None:
            self.symbol(group, symbol)
        elif group.skip:
            return
        elif hexbyte is not None:
            self.hex_byte(hexbyte)
        elif text is not None:
            self.text(text)

    def brace(self, brace: bytes) -> None:
        if brace == b"{":
            group = self.stack[-1]
            self.stack.append(_Group(skip=group.skip, uc=group.uc))
            self.group_start = True
            return
        if len(self.stack) > 1:
            self.stack.pop()
        self.group_start = False

    def control_word(self, group: _Group, word: bytes, arg: bytes | None, starting: bool) -> None:
        if (starting and word in _SKIP_DESTINATIONS) or self.dest_next:
            group.skip = True
            self.dest_next = False
        elif not group.skip:
            self.word(group, word, arg)

    def word(self, group: _Group, word: bytes, arg: bytes | None) -> None:
        """A control word of visible content: paragraph, list and table structure, characters."""
        state = self.state
        if word == b"ansicpg" and arg:
            with contextlib.suppress(LookupError):
                self.codec = codecs.lookup(f"cp{int(arg)}").name
        elif word in (b"par", b"sect"):
            state.end_paragraph()
        elif word == b"pard":
            state.outline = None
            state.in_table = False
            state.list_level = None
        elif word in (b"outlinelevel", b"ilvl", b"uc", b"u"):
            if arg is not None:
                self.numbered_word(group, word, arg)
        elif word in (b"pntext", b"listtext"):
            group.skip = True  # the rendered bullet/number of a list item
            state.list_level = state.list_level or 0
        elif word == b"intbl":
            state.in_table = True
        elif word == b"cell":
            state.end_cell()
        elif word == b"row":
            state.end_row()
        elif word in _SPECIAL:
            state.text.append(_SPECIAL[word])

    def numbered_word(self, group: _Group, word: bytes, arg: bytes) -> None:
        if word == b"outlinelevel":
            level = int(arg)
            self.state.outline = level if 0 <= level < 9 else None
        elif word == b"ilvl":
            self.state.list_level = max(0, int(arg))
        elif word == b"uc":
            group.uc = max(0, int(arg))
        else:  # \\u
            self.state.text.append(_unicode_char(arg))
            self.pending_skip = group.uc

    def symbol(self, group: _Group, symbol: bytes) -> None:
        if symbol == b"*":
            self.dest_next = True
        elif not group.skip:
            self.state.text.append(_SYMBOLS.get(symbol, ""))

    def hex_byte(self, hexbyte: bytes) -> None:
        if self.pending_skip:
            self.pending_skip -= 1
            return
        self.state.text.append(bytes([int(hexbyte, 16)]).decode(self.codec, errors="replace"))

    def text(self, chunk: bytes) -> None:
        if self.pending_skip:
            drop = min(self.pending_skip, len(chunk))
            chunk = chunk[drop:]
            self.pending_skip -= drop
        if chunk:
            self.state.text.append(chunk.decode(self.codec, errors="replace"))


def rtf_blocks(data: bytes) -> tuple[list[Block], str]:
    """Blocks of an RTF document, and the code page used for 8-bit characters."""
    if not data.lstrip().startswith(b"{\\rtf"):
        raise CorruptDocumentError("not an RTF document (no {\\rtf header)")
    reader = _RtfReader()
    for m in _TOKEN.finditer(data):
        reader.token(m)
    state = reader.state
    state.end_paragraph()
    state.in_table = False
    state.flush_table()
    return state.blocks, reader.codec


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
