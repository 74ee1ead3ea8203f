"""OpenDocument text (ODT) and presentations (ODP): content.xml read with lxml.

ODT: headings by outline level (the "Title" style as TITLE), paragraphs, nested lists,
tables with column/row spans (covered cells take the merged value), frames with images
(their title/description as alt text, a caption paragraph inside the frame as caption; with
`include_images` the picture itself, from Pictures/ in the package, as an artifact),
text boxes, formulas (embedded MathML objects as FORMULA), notes at the end.
ODP: each draw:page is a slide (PAGE_BREAK, `page` = slide number); frames in position
order, the title frame first, with their box in points.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from percolate_reading.config import Settings
from percolate_reading.errors import CorruptDocumentError, DocumentTooLargeError
from percolate_reading.parse.document import BBox, Block, BlockKind, DocumentType, ParsedDocument, Table
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.container import SafeZip, ZipLimits, local
from percolate_reading.parse.providers.figures import ImageStore, odf_image

TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
DRAW = "{urn:oasis:names:tc:opendocument:xmlns:drawing:1.0}"
OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
STYLE = "{urn:oasis:names:tc:opendocument:xmlns:style:1.0}"
SVG = "{urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0}"
PRESENTATION = "{urn:oasis:names:tc:opendocument:xmlns:presentation:1.0}"
_LENGTH = re.compile(r"^(-?[\d.]+)\s*(cm|mm|in|pt|pc|px)?$")
_TO_POINTS = {"cm": 72 / 2.54, "mm": 72 / 25.4, "in": 72.0, "pt": 1.0, "pc": 12.0, "px": 0.75, None: 1.0}
_SKIP = frozenset(
    {"note", "annotation", "tracked-changes", "bookmark-start", "bookmark-end", "soft-page-break"}
)


def _inline(el: Any, out: list[str], frames: list[Any], notes: list[Any]) -> None:
    if el.text:
        out.append(el.text)
    for child in el:
        tag = local(child.tag)
        if tag == "s":
            out.append(" " * int(child.get(f"{TEXT}c", "1") or 1))
        elif tag == "tab":
            out.append("\t")
        elif tag == "line-break":
            out.append("\n")
        elif tag == "frame":
            frames.append(child)
        elif tag == "note":
            notes.append(child)
        elif tag not in _SKIP:
            _inline(child, out, frames, notes)
        if child.tail:
            out.append(child.tail)


def _para_text(el: Any) -> tuple[str, list[Any], list[Any]]:
    out: list[str] = []
    frames: list[Any] = []
    notes: list[Any] = []
    _inline(el, out, frames, notes)
    return "".join(out), frames, notes


def _length(value: str | None) -> float | None:
    if not value:
        return None
    m = _LENGTH.match(value.strip())
    if m is None:
        return None
    return float(m.group(1)) * _TO_POINTS[m.group(2)]


def _frame_box(frame: Any) -> BBox | None:
    x, y = _length(frame.get(f"{SVG}x")), _length(frame.get(f"{SVG}y"))
    w, h = _length(frame.get(f"{SVG}width")), _length(frame.get(f"{SVG}height"))
    if x is None or y is None or w is None or h is None:
        return None
    return (round(x, 2), round(y, 2), round(x + w, 2), round(y + h, 2))


def _cell_text(cell: Any) -> str:
    lines = []
    for el in cell.iter(f"{TEXT}p", f"{TEXT}h"):
        text = _para_text(el)[0].strip()
        if text:
            lines.append(text)
    return "\n".join(lines)


_MARGIN_CLASSES = ("page-number", "date-time", "footer", "header")


def _frame_key(frame: Any) -> tuple[float, float]:
    """Top to bottom, then left to right; frames without geometry last."""
    box = _frame_box(frame)
    return (box[1], box[0]) if box is not None else (1e9, 1e9)


def _slide_titles(titles: list[Any], number: int, walker: _Walker) -> None:
    for frame in titles:
        walker.box = _frame_box(frame)
        text = " ".join(t for p in frame.iter(f"{TEXT}p") if (t := _para_text(p)[0].strip()))
        if text:
            walker.add(BlockKind.TITLE if number == 1 else BlockKind.HEADING, text=text, level=2)


def _slide_frame(frame: Any, number: int, walker: _Walker) -> None:
    walker.box = _frame_box(frame)
    if frame.get(f"{PRESENTATION}class") in _MARGIN_CLASSES:
        return
    walker.frames([frame])
    tbl = frame.find(f"{TABLE}table")
    table = odf_table(tbl, number) if tbl is not None else None
    if table is not None:
        walker.blocks.append(Block(kind=BlockKind.TABLE, table=table, page=number, bbox=walker.box))


def _slide_notes(page: Any, number: int, walker: _Walker) -> None:
    notes = page.find(f"{PRESENTATION}notes")
    for p in notes.iter(f"{TEXT}p") if notes is not None else ():
        text = _para_text(p)[0].strip()
        if text:
            walker.blocks.append(Block(kind=BlockKind.PARAGRAPH, text=text, page=number, label="notes"))


def _slide(page: Any, number: int, walker: _Walker) -> None:
    """One slide: titles, then the other frames in reading position, then speaker notes."""
    walker.page = number
    walker.blocks.append(Block(kind=BlockKind.PAGE_BREAK, page=number))
    frames = [f for f in page.iter(f"{DRAW}frame") if local(f.getparent().tag) in ("page", "g")]
    titles = [f for f in frames if f.get(f"{PRESENTATION}class") == "title"]
    rest = sorted((f for f in frames if f not in titles), key=_frame_key)
    _slide_titles(titles, number, walker)
    for frame in rest:
        _slide_frame(frame, number, walker)
    walker.box = None
    _slide_notes(page, number, walker)


def _table_rows(tbl: Any) -> list[tuple[Any, bool]]:
    """The table's row elements, each with whether it is a header row."""
    rows: list[tuple[Any, bool]] = []
    for child in tbl:
        tag = local(child.tag)
        if tag == "table-header-rows":
            rows.extend((r, True) for r in child if local(r.tag) == "table-row")
        elif tag == "table-row":
            rows.append((child, False))
        elif tag == "table-rows":
            rows.extend((r, False) for r in child if local(r.tag) == "table-row")
    return rows


def _place_row(
    row: Any, r: int, grid: dict[tuple[int, int], str], spans: list[tuple[int, int, int, int]]
) -> int:
    """Put one row's cells in the grid (a merged value in every cell it covers); its width."""
    c = 0
    for cell in row:
        tag = local(cell.tag)
        if tag not in ("table-cell", "covered-table-cell"):
            continue
        repeat = min(int(cell.get(f"{TABLE}number-columns-repeated", "1") or 1), 1024)
        if tag == "covered-table-cell":
            c += repeat
            continue
        while (r, c) in grid:
            c += 1
        text = _cell_text(cell)
        cols = int(cell.get(f"{TABLE}number-columns-spanned", "1") or 1)
        rws = int(cell.get(f"{TABLE}number-rows-spanned", "1") or 1)
        for _ in range(repeat):
            grid.update(((r + dr, c + dc), text) for dr in range(rws) for dc in range(cols))
            if cols > 1 or rws > 1:
                spans.append((r, c, rws, cols))
            c += cols
    return c


def _trimmed(rows: list[tuple[str, ...]]) -> tuple[list[tuple[str, ...]], int]:
    """Without the trailing empty rows and columns office suites pad with; (rows, width)."""
    while rows and not any(rows[-1]):
        rows.pop()
    used = max((max((i for i, v in enumerate(r) if v), default=-1) for r in rows), default=-1) + 1
    return [r[:used] for r in rows], used


def odf_table(tbl: Any, page: int | None = None) -> Table | None:
    grid: dict[tuple[int, int], str] = {}
    spans: list[tuple[int, int, int, int]] = []
    rows_el = _table_rows(tbl)
    if not rows_el:
        return None
    width = 0
    for r, (row, _is_header) in enumerate(rows_el[:100_000]):
        width = max(width, _place_row(row, r, grid, spans))
    header_rows = sum(is_header for _row, is_header in rows_el[:100_000])
    rows, used = _trimmed([tuple(grid.get((r, c), "") for c in range(width)) for r in range(len(rows_el))])
    if not rows or used == 0:
        return None
    return Table(
        rows=tuple(rows),
        header_rows=header_rows or (1 if len(rows) > 1 else 0),
        page=page,
        spans=tuple(s for s in spans if s[0] < len(rows) and s[1] < used),
    )


@dataclass(slots=True)
class _Walker:
    title_styles: set[str]
    code_styles: set[str]
    blocks: list[Block] = field(default_factory=list)
    notes: list[Block] = field(default_factory=list)
    page: int | None = None
    box: BBox | None = None
    # A draw:image -> its artifact path (include_images), else None.
    picture: Callable[[Any], str | None] = lambda _image: None

    def add(self, kind: BlockKind, **kw: Any) -> None:
        self.blocks.append(Block(kind=kind, page=self.page, bbox=self.box, **kw))

    def frames(self, frames: list[Any]) -> None:
        for frame in frames:
            title = frame.find(f"{SVG}title")
            desc = frame.find(f"{SVG}desc")
            alt = " ".join(
                t.text.strip() for t in (title, desc) if t is not None and t.text and t.text.strip()
            )
            image = frame.find(f"{DRAW}image")
            if image is not None:
                self.add(
                    BlockKind.FIGURE,
                    text=alt,
                    caption="",
                    label=frame.get(f"{DRAW}name"),
                    image=self.picture(image),
                )
            obj = frame.find(f"{DRAW}object")
            math = next((m for m in obj.iter() if local(m.tag) == "math"), None) if obj is not None else None
            if math is not None:
                tex = next((a for a in math.iter() if local(a.tag) == "annotation"), None)
                text = (tex.text or "").strip() if tex is not None else " ".join(math.itertext()).strip()
                if text:
                    self.add(BlockKind.FORMULA, text=text)
            box = frame.find(f"{DRAW}text-box")
            if box is not None:
                self.body(box)

    def paragraph(self, el: Any, heading_level: int | None, list_depth: int | None, ordered: bool) -> None:
        text, frames, notes = _para_text(el)
        self.frames(frames)
        stripped = text.strip()
        style = el.get(f"{TEXT}style-name") or ""
        if stripped:
            if heading_level is not None:
                if style in self.title_styles:
                    self.add(BlockKind.TITLE, text=stripped)
                else:
                    self.add(BlockKind.HEADING, text=stripped, level=min(max(heading_level, 1), 6))
            elif list_depth is not None:
                self.add(BlockKind.LIST_ITEM, text=stripped, level=list_depth, ordered=ordered)
            elif style in self.title_styles:
                self.add(BlockKind.TITLE, text=stripped)
            elif style in self.code_styles:
                self.add(BlockKind.CODE, text=text.rstrip())
            elif self.blocks and self.blocks[-1].kind is BlockKind.FIGURE and "caption" in style.lower():
                self.blocks[-1] = dataclasses.replace(self.blocks[-1], caption=stripped)
            else:
                self.add(BlockKind.PARAGRAPH, text=stripped)
        for note in notes:
            body = note.find(f"{TEXT}note-body")
            if body is not None:
                note_text = "\n".join(t for p in body.iter(f"{TEXT}p") if (t := _para_text(p)[0].strip()))
                if note_text:
                    self.notes.append(Block(kind=BlockKind.PARAGRAPH, text=note_text, label="note"))

    def body(self, container: Any, list_depth: int | None = None, ordered: bool = False) -> None:
        for el in container:
            tag = local(el.tag)
            if tag == "h":
                level = int(el.get(f"{TEXT}outline-level", "1") or 1)
                self.paragraph(el, level, None, False)
            elif tag == "p":
                self.paragraph(el, None, list_depth, ordered)
            elif tag == "list":
                depth = 0 if list_depth is None else list_depth + 1
                numbered = bool(el.get(f"{TEXT}continue-numbering")) or ordered
                self.body(el, depth, numbered)
            elif tag in ("list-item", "list-header"):
                self.body(el, list_depth, ordered)
            elif tag == "table":
                table = odf_table(el, self.page)
                if table is not None:
                    self.blocks.append(
                        Block(kind=BlockKind.TABLE, table=table, page=self.page, bbox=self.box)
                    )
            elif tag in ("section", "text-box", "index-body"):
                self.body(el, list_depth, ordered)
            elif tag in ("table-of-content", "alphabetical-index", "illustration-index"):
                inner = el.find(f"{TEXT}index-body")
                if inner is not None:
                    self.body(inner, list_depth, ordered)
            elif tag == "frame":
                self.frames([el])


def _styles(root: Any, zf: SafeZip) -> tuple[set[str], set[str], set[str]]:
    """Style names (content.xml's automatic and styles.xml's common) that mean title, code, ordered list."""
    title: set[str] = {"Title"}
    code: set[str] = {"Preformatted_20_Text", "Source_20_Text"}
    ordered: set[str] = set()
    roots = [root]
    if zf.has("styles.xml"):
        roots.append(zf.xml("styles.xml"))
    for r in roots:
        for st in r.iter(f"{STYLE}style"):
            name = st.get(f"{STYLE}name") or ""
            parent = st.get(f"{STYLE}parent-style-name") or ""
            if parent in title or name == "Title":
                title.add(name)
            if parent in code:
                code.add(name)
        for ls in r.iter(f"{TEXT}list-style"):
            first = next((c for c in ls if local(c.tag).startswith("list-level-style")), None)
            if first is not None and local(first.tag) == "list-level-style-number":
                ordered.add(ls.get(f"{STYLE}name") or "")
    return title, code, ordered


@dataclass(frozen=True)
class _OdfProvider:
    limits: ZipLimits = field(default_factory=ZipLimits)
    kind: DocumentType = DocumentType.ODT

    def _open(self, zf: SafeZip, source_name: str) -> Any:
        if not zf.has("content.xml"):
            raise CorruptDocumentError(f"{source_name}: no content.xml; not an OpenDocument file")
        return zf.xml("content.xml")

    def parse(self, path: Path, source_name: str, options: ParseOptions) -> ParsedDocument:
        t0 = time.perf_counter()
        doc = ParsedDocument(source_name=source_name, doc_type=self.kind)
        with SafeZip(path, source_name, self.limits) as zf:
            root = self._open(zf, source_name)
            title_styles, code_styles, ordered_styles = _styles(root, zf)
            body = root.find(f"{OFFICE}body")
            if body is None:
                raise CorruptDocumentError(f"{source_name}: content.xml has no office:body")
            walker = _Walker(title_styles, code_styles)
            store = ImageStore(options.include_images)
            if store.enabled:
                walker.picture = lambda image: odf_image(store, zf, image)
            if self.kind is DocumentType.ODP:
                self._slides(body, walker, doc, options, source_name)
            else:
                text = body.find(f"{OFFICE}text")
                if text is None:
                    raise CorruptDocumentError(f"{source_name}: not an OpenDocument text (no office:text)")
                self._mark_ordered(text, ordered_styles)
                walker.body(text)
        doc.blocks.extend(walker.blocks)
        doc.blocks.extend(walker.notes)
        doc.images = store.images
        doc.warnings.extend(store.warnings())
        doc.timings["read"] = time.perf_counter() - t0
        doc.metadata.update(reader="lxml (OpenDocument)")
        if not any(b.text or b.table for b in doc.blocks):
            doc.warnings.append("the document has no text")
        return doc

    @staticmethod
    def _mark_ordered(text: Any, ordered_styles: set[str]) -> None:
        # A numbered list style: mark its lists so the walker sees `ordered` (an attribute
        # the walker reads, set on our parsed copy only).
        for lst in text.iter(f"{TEXT}list"):
            if (lst.get(f"{TEXT}style-name") or "") in ordered_styles:
                lst.set(f"{TEXT}continue-numbering", "true")

    def _slides(
        self, body: Any, walker: _Walker, doc: ParsedDocument, options: ParseOptions, source_name: str
    ) -> None:
        pres = body.find(f"{OFFICE}presentation")
        if pres is None:
            raise CorruptDocumentError(f"{source_name}: not an OpenDocument presentation")
        pages = pres.findall(f"{DRAW}page")
        if len(pages) > options.max_pages:
            raise DocumentTooLargeError(
                f"{source_name}: {len(pages)} slides, over the {options.max_pages} page cap"
            )
        for number, page in enumerate(pages, start=1):
            _slide(page, number, walker)
        doc.metadata.update(slide_count=len(pages), page_count=len(pages))


@dataclass(frozen=True)
class OdtProvider(_OdfProvider):
    doc_type = DocumentType.ODT

    @classmethod
    def from_settings(cls, settings: Settings) -> OdtProvider:
        return cls(limits=ZipLimits.from_settings(settings), kind=DocumentType.ODT)


@dataclass(frozen=True)
class OdpProvider(_OdfProvider):
    kind: DocumentType = DocumentType.ODP
    doc_type = DocumentType.ODP

    @classmethod
    def from_settings(cls, settings: Settings) -> OdpProvider:
        return cls(limits=ZipLimits.from_settings(settings), kind=DocumentType.ODP)
