"""ParsedDocument -> `structured.md`.

Markdown that both people and LLMs read: headings, paragraphs, nested lists, tables as pipe
tables, `<!-- page N -->` markers a reader can cite, transcript lines with timestamps, and a
`## Sheet: name` heading for each spreadsheet sheet the provider did not head itself.
The block-level helpers are shared with the chunker so chunks read exactly like the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from percolate_reading.parse.document import Block, BlockKind, ParsedDocument, Table

_NUMERIC_MARKER = re.compile(r"^\d{1,9}[.)]$")
_NEWLINES = re.compile(r"\r\n|\r|\n")
# Line starts Markdown would read as structure: headings, quotes, HTML, table rows, bullets,
# rules / setext underlines, and ordered-list numbers ("12." / "12)").
_LINE_START = re.compile(
    r"^(\s*)([#><|]|[-+*](?=\s|$)|[-*_=](?=[-*_=\s]*$))"
    r"|^(\s*\d{1,9})([.)])(?=\s|$)"
)


def no_comments(text: str) -> str:
    """Content never opens an HTML comment: it would hide text and could forge page markers."""
    return text.replace("<!--", "<\\!--")


def page_marker(page: int) -> str:
    return f"<!-- page {page} -->"


def sheet_heading(sheet: str) -> str:
    return f"## Sheet: {_one_line(sheet)}"


def heading_line(block: Block) -> str:
    level = min(max(block.level, 1), 6)
    return f"{'#' * level} {_one_line(block.text)}"


def format_timestamp(seconds: float) -> str:
    """`HH:MM:SS.mmm`; hours keep counting past 99."""
    millis = round(max(seconds, 0.0) * 1000)
    hours, rem = divmod(millis, 3_600_000)
    minutes, rem = divmod(rem, 60_000)
    secs, ms = divmod(rem, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"


def transcript_line(block: Block) -> str:
    start = format_timestamp(block.start or 0.0)
    end = format_timestamp(block.end if block.end is not None else (block.start or 0.0))
    speaker = f"{_one_line(block.speaker)}: " if block.speaker else ""
    return f"[{start} - {end}] {speaker}{_one_line(block.text)}"


def code_fence(text: str, language: str | None = None) -> str:
    """A fenced code block (with its language's info string when known); the fence is longer
    than any backtick run inside the code."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language or ''}\n{no_comments(text.rstrip())}\n{fence}"


def escape_paragraph(text: str) -> str:
    """Paragraph text that stays a paragraph: a line that would start a heading, list, quote,
    rule or HTML comment (a forged `<!-- page N -->` marker) gets its first mark escaped."""
    lines = _NEWLINES.split(no_comments(text.strip()))
    return "\n".join(_LINE_START.sub(_escape_mark, line) for line in lines)


def _escape_mark(m: re.Match[str]) -> str:
    if m.group(2) is not None:
        return f"{m.group(1)}\\{m.group(2)}"
    return f"{m.group(3)}\\{m.group(4)}"


def escape_cell(text: str) -> str:
    return _NEWLINES.sub("<br>", no_comments(text.strip())).replace("|", "\\|")


def table_row_line(cells: Iterable[str], n_cols: int) -> str:
    padded = [escape_cell(c) for c in cells]
    padded += [""] * (n_cols - len(padded))
    return "| " + " | ".join(padded) + " |"


def table_lines(table: Table) -> tuple[list[str], list[str]]:
    """(header lines incl. the separator, body lines). Markdown has exactly one header row:
    a table without one gets an empty header, extra header rows become body rows."""
    n_cols = max(table.n_cols, 1)
    rows = list(table.rows)
    if table.header_rows >= 1 and rows:
        header = table_row_line(rows[0], n_cols)
        body_rows = rows[1:]
    else:
        header = table_row_line([], n_cols)
        body_rows = rows
    separator = "|" + "|".join(["---"] * n_cols) + "|"
    return [header, separator], [table_row_line(r, n_cols) for r in body_rows]


def table_markdown(table: Table) -> str:
    head, body = table_lines(table)
    lines = head + body
    if table.title:
        lines.insert(0, f"**{_one_line(table.title)}**\n")
    return "\n".join(lines)


class ListState:
    """Numbering and indentation of consecutive list items (one list = one run of items)."""

    def __init__(self) -> None:
        self._content_cols: list[int] = []  # content column per nesting level
        self._counters: list[int] = []

    def reset(self) -> None:
        self._content_cols.clear()
        self._counters.clear()

    def line(self, block: Block) -> str:
        level = max(block.level, 0)
        # A jump of several levels nests one level deeper than the last item.
        level = min(level, len(self._content_cols))
        del self._content_cols[level + 1 :]
        del self._counters[level + 1 :]
        indent = self._content_cols[level - 1] if level > 0 else 0
        if len(self._counters) <= level:
            self._counters.append(0)
        self._counters[level] += 1
        if block.ordered:
            if block.marker and _NUMERIC_MARKER.match(block.marker.strip()):
                marker = block.marker.strip()
            else:
                marker = f"{self._counters[level]}."
        else:
            marker = "-"
        content_col = indent + len(marker) + 1
        if len(self._content_cols) <= level:
            self._content_cols.append(content_col)
        else:
            self._content_cols[level] = content_col
        continuation = "\n" + " " * content_col
        text = continuation.join(_NEWLINES.split(no_comments(block.text.strip())))
        return f"{' ' * indent}{marker} {text}"


def page_of(block: Block) -> int | None:
    if block.page is not None:
        return block.page
    return block.table.page if block.table is not None else None


def sheet_of(block: Block) -> str | None:
    if block.sheet is not None:
        return block.sheet
    return block.table.sheet if block.table is not None else None


def to_markdown(doc: ParsedDocument) -> str:
    """Render the whole document; ends with a single newline (empty string if no content)."""
    parts: list[str | list[str]] = []  # a list part = the lines of one Markdown list
    list_lines: list[str] = []
    lists = ListState()
    page: int | None = None
    sheet: str | None = None
    in_list = False
    list_ordered = False
    for block in doc.blocks:
        if block.kind is not BlockKind.LIST_ITEM:
            in_list = False
        block_sheet = sheet_of(block)
        if block_sheet is not None and block_sheet != sheet:
            sheet = block_sheet
            page = None
            in_list = False
            if block.kind is not BlockKind.HEADING:
                parts.append(sheet_heading(sheet))
        target_page = page_of(block)
        if target_page is not None and target_page != page:
            page = target_page
            in_list = False
            parts.append(page_marker(page))
        if block.kind is BlockKind.PAGE_BREAK:
            continue
        if block.kind is BlockKind.LIST_ITEM:
            if in_list and block.level <= 0 and block.ordered != list_ordered:
                in_list = False  # bullets then numbers at the top level: two lists
            if block.level <= 0:
                list_ordered = block.ordered
            if not in_list:
                lists.reset()
                in_list = True
                list_lines = []
                parts.append(list_lines)
            list_lines.append(lists.line(block))
            continue
        rendered = render_block(block)
        if rendered:
            parts.append(rendered)
    text = "\n\n".join(p if isinstance(p, str) else "\n".join(p) for p in parts)
    return text + "\n" if parts else ""


def render_block(block: Block) -> str:
    """One non-list block as Markdown ('' for blocks that render to nothing)."""
    if block.kind is BlockKind.HEADING:
        return heading_line(block) if block.text.strip() else ""
    if block.kind is BlockKind.PARAGRAPH:
        return escape_paragraph(block.text)
    if block.kind is BlockKind.TABLE:
        return table_markdown(block.table) if block.table is not None and block.table.rows else ""
    if block.kind is BlockKind.TRANSCRIPT_SEGMENT:
        return transcript_line(block)
    if block.kind is BlockKind.CODE:
        return code_fence(block.text, block.language) if block.text.strip() else ""
    if block.kind is BlockKind.LIST_ITEM:
        state = ListState()
        return state.line(block)
    return _render_extra(block)


def _render_extra(block: Block) -> str:
    """The kinds beyond the original six. Page headers/footers are boilerplate: not rendered
    (elements.jsonl keeps them, marked)."""
    kind = block.kind
    if kind is BlockKind.TITLE:
        return f"# {_one_line(block.text)}" if block.text.strip() else ""
    if kind is BlockKind.CODE:
        fence = "```"
        while fence in block.text:
            fence += "`"
        return f"{fence}{block.language or ''}\n{block.text}\n{fence}"
    if kind is BlockKind.FORMULA:
        return f"$$\n{no_comments(block.text.strip())}\n$$" if block.text.strip() else ""
    if kind is BlockKind.FIGURE:
        return _figure(block)
    if kind is BlockKind.EMAIL_HEADER:
        return f"**{_one_line(block.label or '')}:** {_one_line(block.text)}" if block.text.strip() else ""
    return ""


def _figure(block: Block) -> str:
    """Caption and alt text; the extracted picture (include_images) linked above them."""
    caption = _one_line(block.caption or "")
    alt = _one_line(block.text or "")
    line = f"*Figure: {caption}*" if caption else ""
    if alt and alt != caption:
        line = f"{line}\n\n{escape_paragraph(alt)}" if line else escape_paragraph(alt)
    if block.image:  # stored next to structured.md
        link = f"![{_link_text(alt or caption)}]({block.image})"
        line = f"{link}\n\n{line}" if line else link
    return line


def _link_text(text: str) -> str:
    return _one_line(text).replace("[", "\\[").replace("]", "\\]")


def _one_line(text: str) -> str:
    return no_comments(" ".join(text.split()))
