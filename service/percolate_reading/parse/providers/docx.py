"""DOCX provider: WordprocessingML read directly with lxml (no python-docx object layer).

Measured: python-docx builds a proxy object per paragraph and run; walking the XML once is
several times faster on long documents and lets us see what python-docx hides (content
controls, text boxes, math, tracked changes, merged cells).

What comes out, in body order:
- Headings from the paragraph style (built-in "heading N", or any style with an outline
  level), the "Title" style as TITLE; list items with their depth and numbering kind from
  numbering.xml; code from preformatted styles; equations (OMML) as FORMULA in linear text.
- Tables with merged cells (gridSpan, vMerge) as spans; the merged value fills every cell
  it covers. Header rows: the rows marked "repeat as header row", else the first.
- Pictures as FIGURE with their alt text, and a "Caption" paragraph after one as its caption.
- Text boxes after the paragraph that anchors them; footnotes and endnotes at the end;
  headers and footers as PAGE_HEADER / PAGE_FOOTER (each distinct one once).
- Tracked changes: insertions kept, deletions dropped (the document as it reads now).
DOCX has no fixed pages, so blocks carry no page numbers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from percolate_reading.config import Settings
from percolate_reading.errors import CorruptDocumentError
from percolate_reading.parse.document import Block, BlockKind, DocumentType, ParsedDocument, Table
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.container import SafeZip, ZipLimits, local, relationships
from percolate_reading.parse.providers.figures import ImageStore, ooxml_image

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_W = f"{{{W}}}"
_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)
_LIST_STYLE_LEVEL = re.compile(r"^list(?: bullet| number| continue| paragraph)?\s+([2-9])$")
_CODE_STYLES = frozenset({"code", "html preformatted", "source code", "preformatted text", "macro text"})
_ORDERED_FORMATS = frozenset(
    {
        "decimal",
        "decimalZero",
        "upperRoman",
        "lowerRoman",
        "upperLetter",
        "lowerLetter",
        "ordinal",
        "cardinalText",
        "ordinalText",
        "decimalEnclosedCircle",
        "decimalEnclosedParen",
        "decimalEnclosedFullstop",
    }
)
# Subtrees whose text is not part of the paragraph as it reads: deleted runs, field codes,
# the VML fallback of a drawing (its text is the same as the modern choice's).
_SKIP = frozenset({"del", "delText", "instrText", "Fallback", "moveFrom", "rPr", "pPr", "commentReference"})


@dataclass(slots=True)
class _Style:
    name: str
    based_on: str | None = None
    outline: int | None = None
    num_id: str | None = None
    ilvl: int = 0


def _no_picture(_drawing: Any) -> str | None:
    return None


@dataclass(slots=True)
class _Context:
    styles: dict[str, _Style]
    ordered: dict[tuple[str, int], bool]  # (numId, ilvl) -> numbered (not bullets)
    blocks: list[Block] = field(default_factory=list)
    figures: int = 0
    formulas: int = 0
    # A drawing's picture -> its artifact path (include_images), else None.
    picture: Callable[[Any], str | None] = field(default=lambda drawing: _no_picture(drawing))


def _style_chain(styles: dict[str, _Style], style_id: str | None) -> list[_Style]:
    chain: list[_Style] = []
    seen: set[str] = set()
    while style_id and style_id in styles and style_id not in seen and len(chain) < 20:
        seen.add(style_id)
        chain.append(styles[style_id])
        style_id = styles[style_id].based_on
    return chain


def _read_styles(zf: SafeZip) -> dict[str, _Style]:
    if not zf.has("word/styles.xml"):
        return {}
    out: dict[str, _Style] = {}
    for st in zf.xml("word/styles.xml").iter(f"{_W}style"):
        sid = st.get(f"{_W}styleId")
        if not sid:
            continue
        name_el = st.find(f"{_W}name")
        style = _Style(name=(name_el.get(f"{_W}val") if name_el is not None else sid) or sid)
        based = st.find(f"{_W}basedOn")
        if based is not None:
            style.based_on = based.get(f"{_W}val")
        ppr = st.find(f"{_W}pPr")
        if ppr is not None:
            outline = ppr.find(f"{_W}outlineLvl")
            if outline is not None:
                style.outline = _int(outline.get(f"{_W}val"))
            num = ppr.find(f"{_W}numPr")
            if num is not None:
                style.num_id, style.ilvl = _num_pr(num)
        out[sid] = style
    return out


def _read_numbering(zf: SafeZip) -> dict[tuple[str, int], bool]:
    if not zf.has("word/numbering.xml"):
        return {}
    root = zf.xml("word/numbering.xml")
    abstract: dict[str, dict[int, bool]] = {}
    for an in root.iter(f"{_W}abstractNum"):
        levels: dict[int, bool] = {}
        for lvl in an.iter(f"{_W}lvl"):
            fmt = lvl.find(f"{_W}numFmt")
            levels[_int(lvl.get(f"{_W}ilvl")) or 0] = (
                fmt is not None and fmt.get(f"{_W}val") in _ORDERED_FORMATS
            )
        abstract[an.get(f"{_W}abstractNumId") or ""] = levels
    out: dict[tuple[str, int], bool] = {}
    for num in root.iter(f"{_W}num"):
        ref = num.find(f"{_W}abstractNumId")
        levels = abstract.get(ref.get(f"{_W}val") or "" if ref is not None else "", {})
        for ilvl, ordered in levels.items():
            out[(num.get(f"{_W}numId") or "", ilvl)] = ordered
    return out


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _num_pr(num: Any) -> tuple[str | None, int]:
    num_id_el = num.find(f"{_W}numId")
    ilvl_el = num.find(f"{_W}ilvl")
    num_id = num_id_el.get(f"{_W}val") if num_id_el is not None else None
    return num_id, (_int(ilvl_el.get(f"{_W}val")) if ilvl_el is not None else None) or 0


def _collect(el: Any, out: list[str], boxes: list[Any], figures: list[Any], maths: list[Any]) -> None:
    """Text of a paragraph's descendants in order; text boxes, drawings and math set aside."""
    for child in el:
        tag = local(child.tag)
        if tag == "t":
            if child.text:
                out.append(child.text)
        elif tag == "tab":
            out.append("\t")
        elif tag in ("br", "cr"):
            out.append("\n")
        elif tag == "noBreakHyphen":
            out.append("-")
        elif tag in _SKIP:
            continue
        elif tag == "txbxContent":
            boxes.append(child)
        elif tag == "docPr":
            figures.append(child)
        elif tag in ("oMath", "oMathPara"):
            maths.append(child)
        else:
            _collect(child, out, boxes, figures, maths)


def _math_text(el: Any) -> str:
    return "".join(t.text or "" for t in el.iter() if local(t.tag) == "t")


def _paragraph_text(p: Any) -> tuple[str, list[Any], list[Any], list[Any]]:
    parts: list[str] = []
    boxes: list[Any] = []
    figures: list[Any] = []
    maths: list[Any] = []
    _collect(p, parts, boxes, figures, maths)
    return "".join(parts), boxes, figures, maths


def _para_props(p: Any, ctx: _Context) -> tuple[str | None, int | None, str | None, int]:
    """(style name, outline level, numId, ilvl) of a paragraph, following the style chain."""
    ppr = p.find(f"{_W}pPr")
    style_id = None
    outline = None
    num_id: str | None = None
    ilvl = 0
    if ppr is not None:
        ps = ppr.find(f"{_W}pStyle")
        style_id = ps.get(f"{_W}val") if ps is not None else None
        ol = ppr.find(f"{_W}outlineLvl")
        if ol is not None:
            outline = _int(ol.get(f"{_W}val"))
        num = ppr.find(f"{_W}numPr")
        if num is not None:
            num_id, ilvl = _num_pr(num)
    chain = _style_chain(ctx.styles, style_id)
    name = chain[0].name if chain else style_id
    for st in chain:
        if outline is None and st.outline is not None:
            outline = st.outline
        if num_id is None and st.num_id is not None:
            num_id, ilvl = st.num_id, st.ilvl
    return name, outline, num_id, ilvl


def _paragraph(p: Any, ctx: _Context) -> None:
    text, boxes, figures, maths = _paragraph_text(p)
    name, outline, num_id, ilvl = _para_props(p, ctx)
    _figures(figures, ctx)
    _formulas(maths, ctx)
    if text.strip():
        block = _text_block(text, name, outline, num_id, ilvl, ctx)
        if block is not None:
            ctx.blocks.append(block)
    for box in boxes:
        _body(box, ctx)


def _figures(figures: list[Any], ctx: _Context) -> None:
    for fig in figures:
        ctx.figures += 1
        alt = (fig.get("descr") or fig.get("title") or "").strip()
        image = ctx.picture(fig.getparent())  # docPr's inline/anchor holds the picture
        ctx.blocks.append(
            Block(kind=BlockKind.FIGURE, text=alt, label=fig.get("name") or None, caption="", image=image)
        )


def _formulas(maths: list[Any], ctx: _Context) -> None:
    for m in maths:
        formula = _math_text(m).strip()
        if formula:
            ctx.formulas += 1
            ctx.blocks.append(Block(kind=BlockKind.FORMULA, text=formula))


def _text_block(
    text: str, name: str | None, outline: int | None, num_id: str | None, ilvl: int, ctx: _Context
) -> Block | None:
    """The paragraph's block by its style: title, heading, caption (None: it captioned the
    figure before it), list item, code or paragraph."""
    lname = (name or "").lower()
    stripped = text.strip()
    heading = _HEADING_STYLE.match(lname)
    if lname == "title":
        return Block(kind=BlockKind.TITLE, text=stripped)
    if heading or (outline is not None and 0 <= outline < 9):
        level = int(heading.group(1)) if heading else (outline or 0) + 1
        return Block(kind=BlockKind.HEADING, text=stripped, level=min(level, 6))
    if lname == "caption" and ctx.blocks and ctx.blocks[-1].kind is BlockKind.FIGURE:
        last = ctx.blocks[-1]
        if last.caption:
            return Block(kind=BlockKind.PARAGRAPH, text=stripped)
        ctx.blocks[-1] = replace(last, caption=stripped)
        return None
    if num_id is not None and num_id != "0":
        ordered = ctx.ordered.get((num_id, ilvl), False)
        # "List Bullet 2" style families nest by style, with ilvl 0 in their own numbering.
        by_style = _LIST_STYLE_LEVEL.match(lname)
        level = ilvl or (int(by_style.group(1)) - 1 if by_style else 0)
        return Block(kind=BlockKind.LIST_ITEM, text=stripped, level=level, ordered=ordered)
    if lname in _CODE_STYLES:
        return Block(kind=BlockKind.CODE, text=text.rstrip())
    return Block(kind=BlockKind.PARAGRAPH, text=stripped)


def _cell_text(tc: Any) -> str:
    """A cell's text: its paragraphs (and nested tables' cells) on separate lines."""
    lines: list[str] = []
    for el in tc:
        tag = local(el.tag)
        if tag == "p":
            lines.append(_paragraph_text(el)[0].strip())
        elif tag == "tbl":
            for tr in el.iter(f"{_W}tr"):
                cells = [_cell_text(c) for c in tr.iter(f"{_W}tc") if c.getparent() is tr]
                lines.append(" | ".join(cells))
        elif tag in ("sdt", "customXml"):
            lines.append(_cell_text(el.find(f"{_W}sdtContent") if tag == "sdt" else el) or "")
    return "\n".join(x for x in lines if x)


def _row_cells(tr: Any) -> list[Any]:
    cells: list[Any] = []
    for el in tr:
        tag = local(el.tag)
        if tag == "tc":
            cells.append(el)
        elif tag in ("sdt", "customXml"):
            inner = el.find(f"{_W}sdtContent") if tag == "sdt" else el
            if inner is not None:
                cells.extend(_row_cells(inner))
    return cells


def _cell_props(tc: Any) -> tuple[int, str | None]:
    """(grid columns the cell spans, its vMerge: "restart", "continue" or None)."""
    tcpr = tc.find(f"{_W}tcPr")
    if tcpr is None:
        return 1, None
    gs = tcpr.find(f"{_W}gridSpan")
    span = max((_int(gs.get(f"{_W}val")) if gs is not None else None) or 1, 1)
    vm = tcpr.find(f"{_W}vMerge")
    return span, (vm.get(f"{_W}val") or "continue") if vm is not None else None


@dataclass(slots=True)
class _TableReader:
    """Rows into a grid where merged cells repeat their value, plus the merges' spans."""

    grid: list[list[str]] = field(default_factory=list)
    spans: list[list[int]] = field(default_factory=list)  # [row, col, row_span, col_span]
    open_vmerge: dict[int, list[int]] = field(default_factory=dict)  # column -> its span entry
    header_rows: int = 0
    counting_header: bool = True

    def row(self, tr: Any) -> None:
        trpr = tr.find(f"{_W}trPr")
        is_header = trpr is not None and trpr.find(f"{_W}tblHeader") is not None
        if self.counting_header and is_header:
            self.header_rows += 1
        else:
            self.counting_header = False
        row: list[str] = []
        grid_before = trpr.find(f"{_W}gridBefore") if trpr is not None else None
        if grid_before is not None:
            row.extend([""] * (_int(grid_before.get(f"{_W}val")) or 0))
        for tc in _row_cells(tr):
            self.cell(tc, row)
        self.grid.append(row)

    def cell(self, tc: Any, row: list[str]) -> None:
        r, col = len(self.grid), len(row)
        span, vmerge = _cell_props(tc)
        if vmerge == "continue" and col in self.open_vmerge and r > 0:
            entry = self.open_vmerge[col]
            entry[2] += 1
            above = self.grid[entry[0]][col] if col < len(self.grid[entry[0]]) else ""
            row.extend([above] * span)
            return
        row.extend([_cell_text(tc)] * span)
        entry = [r, col, 1, span]
        if vmerge == "restart":
            self.open_vmerge[col] = entry
        else:
            self.open_vmerge.pop(col, None)
        self.spans.append(entry)

    def table(self) -> Table | None:
        if not self.grid:
            return None
        width = max(len(r) for r in self.grid)
        rows = tuple(tuple(r + [""] * (width - len(r))) for r in self.grid)
        merged = tuple((a, b, c, d) for a, b, c, d in self.spans if c > 1 or d > 1)
        return Table(rows=rows, header_rows=self.header_rows or (1 if len(rows) > 1 else 0), spans=merged)


def _table(tbl: Any) -> Table | None:
    reader = _TableReader()
    for tr in tbl.iter(f"{_W}tr"):
        if tr.getparent() is not tbl and local(tr.getparent().tag) not in ("sdtContent", "customXml"):
            continue  # a nested table's row
        reader.row(tr)
    return reader.table()


def _body(container: Any, ctx: _Context) -> None:
    for el in container:
        tag = local(el.tag)
        if tag == "p":
            _paragraph(el, ctx)
        elif tag == "tbl":
            table = _table(el)
            if table is not None and any(any(c for c in r) for r in table.rows):
                ctx.blocks.append(Block(kind=BlockKind.TABLE, table=table))
        elif tag == "sdt":
            content = el.find(f"{_W}sdtContent")
            if content is not None:
                _body(content, ctx)
        elif tag in ("customXml", "ins", "smartTag", "moveTo"):
            _body(el, ctx)
        elif tag == "AlternateContent":
            choice = next((c for c in el if local(c.tag) == "Choice"), None)
            if choice is not None:
                _body(choice, ctx)


def _notes(zf: SafeZip, part: str, kind: str, ctx: _Context) -> int:
    if not zf.has(part):
        return 0
    root = zf.xml(part)
    count = 0
    for note in root:
        if local(note.tag) != kind or note.get(f"{_W}type") in ("separator", "continuationSeparator"):
            continue
        text = "\n".join(t for p in note.iter(f"{_W}p") if (t := _paragraph_text(p)[0].strip()))
        if text:
            count += 1
            ctx.blocks.append(
                Block(kind=BlockKind.PARAGRAPH, text=text, label=f"{kind} {note.get(f'{_W}id')}")
            )
    return count


def _headers_footers(zf: SafeZip, main: str) -> list[Block]:
    out: list[Block] = []
    seen: set[str] = set()
    for kind, target, _mode in relationships(zf, main).values():
        if kind not in ("header", "footer") or not zf.has(target):
            continue
        text = "\n".join(t for p in zf.xml(target).iter(f"{_W}p") if (t := _paragraph_text(p)[0].strip()))
        if text and text not in seen:
            seen.add(text)
            block_kind = BlockKind.PAGE_HEADER if kind == "header" else BlockKind.PAGE_FOOTER
            out.append(Block(kind=block_kind, text=text))
    return out


def _core_properties(zf: SafeZip) -> dict[str, str]:
    if not zf.has("docProps/core.xml"):
        return {}
    out: dict[str, str] = {}
    for el in zf.xml("docProps/core.xml"):
        name = local(el.tag)
        wanted = name in ("title", "creator", "subject", "created", "modified", "lastModifiedBy", "keywords")
        if wanted and el.text and el.text.strip():
            out[name] = el.text.strip()
    return out


def main_part(zf: SafeZip, default: str) -> str:
    """The officeDocument part the package relationships point at (usually `default`)."""
    for kind, target, _mode in relationships(zf, "").values():
        if kind == "officeDocument" and zf.has(target):
            return target
    return default


@dataclass(frozen=True)
class DocxProvider:
    limits: ZipLimits = field(default_factory=ZipLimits)
    doc_type = DocumentType.DOCX

    @classmethod
    def from_settings(cls, settings: Settings) -> DocxProvider:
        return cls(limits=ZipLimits.from_settings(settings))

    def parse(self, path: Path, source_name: str, options: ParseOptions) -> ParsedDocument:
        t0 = time.perf_counter()
        doc = ParsedDocument(source_name=source_name, doc_type=DocumentType.DOCX)
        with SafeZip(path, source_name, self.limits) as zf:
            main = main_part(zf, "word/document.xml")
            if not zf.has(main):
                raise CorruptDocumentError(f"{source_name}: no word/document.xml; not a Word document")
            ctx = _Context(styles=_read_styles(zf), ordered=_read_numbering(zf))
            store = ImageStore(options.include_images)
            if store.enabled:
                rels = relationships(zf, main)
                ctx.picture = lambda drawing: ooxml_image(store, zf, rels, drawing)
            root = zf.xml(main)
            t1 = time.perf_counter()
            body = root.find(f"{_W}body")
            if body is None:
                raise CorruptDocumentError(f"{source_name}: the document has no body")
            headers = _headers_footers(zf, main)
            _body(body, ctx)
            ctx.picture = _no_picture  # notes' drawings name their own parts' relationships
            footnotes = _notes(zf, "word/footnotes.xml", "footnote", ctx)
            endnotes = _notes(zf, "word/endnotes.xml", "endnote", ctx)
            props = _core_properties(zf)
        doc.blocks = [b for b in headers if b.kind is BlockKind.PAGE_HEADER] + ctx.blocks
        doc.blocks += [b for b in headers if b.kind is BlockKind.PAGE_FOOTER]
        doc.timings.update(read=t1 - t0, structure=time.perf_counter() - t1)
        doc.images = store.images
        doc.warnings.extend(store.warnings())
        doc.metadata.update(
            reader="lxml (WordprocessingML)",
            figures=ctx.figures,
            formulas=ctx.formulas,
            footnotes=footnotes,
            endnotes=endnotes,
            **{f"core_{k}": v for k, v in props.items()},
        )
        if not any(b.text.strip() or b.table for b in doc.blocks):
            doc.warnings.append("the document has no text")
        return doc
