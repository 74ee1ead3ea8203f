"""PPTX provider: PresentationML read directly with lxml.

Slides in presentation order (the `sldIdLst`, not the part names); on each slide the title
placeholder first, then the shapes top-to-bottom, left-to-right (group shapes flattened),
which is how people read a slide, not the z-order the XML keeps. Each slide starts with a
PAGE_BREAK; blocks carry the slide number in `page` and the shape's box in points.
- Title placeholders -> HEADING level 2 (the first slide's title is the document TITLE).
- Text frames -> paragraphs, or list items when the paragraph has a bullet or a level.
- Tables (a:tbl) -> TABLE with gridSpan/rowSpan merges as spans.
- Pictures -> FIGURE with alt text; speaker notes -> paragraphs labelled "notes".
Hidden slides are skipped with a warning.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from percolate_reading.config import Settings
from percolate_reading.errors import CorruptDocumentError, DocumentTooLargeError
from percolate_reading.parse.document import BBox, Block, BlockKind, DocumentType, ParsedDocument, Table
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.container import SafeZip, ZipLimits, local, relationships
from percolate_reading.parse.providers.docx import main_part
from percolate_reading.parse.providers.figures import ImageStore, ooxml_image

P = "{http://schemas.openxmlformats.org/presentationml/2006/main}"
A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_EMU_PER_POINT = 12700.0
_TITLE_TYPES = frozenset({"title", "ctrTitle"})
_SKIP_PLACEHOLDERS = frozenset({"sldNum", "dt", "ftr"})


def _bbox(el: Any) -> BBox | None:
    xfrm = None
    for child in el.iter():
        if local(child.tag) == "xfrm":
            xfrm = child
            break
    if xfrm is None:
        return None
    off = xfrm.find(f"{A}off")
    ext = xfrm.find(f"{A}ext")
    if off is None or ext is None:
        return None
    try:
        x, y = int(off.get("x", 0)) / _EMU_PER_POINT, int(off.get("y", 0)) / _EMU_PER_POINT
        w, h = int(ext.get("cx", 0)) / _EMU_PER_POINT, int(ext.get("cy", 0)) / _EMU_PER_POINT
    except ValueError:
        return None
    return (round(x, 2), round(y, 2), round(x + w, 2), round(y + h, 2))


def _placeholder_type(sp: Any) -> str | None:
    for el in sp.iter(f"{P}ph"):
        return str(el.get("type") or "body")
    return None


def _para_text(p: Any) -> str:
    parts: list[str] = []
    for el in p.iter():
        tag = local(el.tag)
        if tag == "t" and el.text:
            parts.append(el.text)
        elif tag == "br":
            parts.append("\n")
        elif tag == "tab":
            parts.append("\t")
    return "".join(parts)


def _text_blocks(body: Any, slide: int, box: BBox | None) -> list[Block]:
    out: list[Block] = []
    for p in body.iter(f"{A}p"):
        text = _para_text(p).strip()
        if not text:
            continue
        ppr = p.find(f"{A}pPr")
        level = int(ppr.get("lvl", 0)) if ppr is not None and (ppr.get("lvl") or "0").isdigit() else 0
        bullet = None
        if ppr is not None:
            for child in ppr:
                if local(child.tag) in ("buChar", "buAutoNum", "buBlip"):
                    bullet = local(child.tag)
                elif local(child.tag) == "buNone":
                    bullet = None
        if bullet is not None or level > 0:
            out.append(
                Block(
                    kind=BlockKind.LIST_ITEM,
                    text=text,
                    level=level,
                    ordered=bullet == "buAutoNum",
                    page=slide,
                    bbox=box,
                )
            )
        else:
            out.append(Block(kind=BlockKind.PARAGRAPH, text=text, page=slide, bbox=box))
    return out


def _table_cell(tc: Any, r: int, c: int, row: list[str], grid: list[list[str]]) -> str:
    """A cell's text; a cell a merge covers repeats the merged value (see Table)."""
    if tc.get("hMerge") == "1" and row:
        return row[-1]
    if tc.get("vMerge") == "1" and r > 0 and c < len(grid[r - 1]):
        return grid[r - 1][c]
    return "\n".join(t for p in tc.iter(f"{A}p") if (t := _para_text(p).strip()))


def _cell_span(tc: Any, r: int, c: int) -> tuple[int, int, int, int] | None:
    """(row, col, row span, col span) of a merge's top-left cell, else None."""
    if tc.get("hMerge") == "1" or tc.get("vMerge") == "1":
        return None
    row_span = int(tc.get("rowSpan", "1") or 1)
    col_span = int(tc.get("gridSpan", "1") or 1)
    return (r, c, row_span, col_span) if row_span > 1 or col_span > 1 else None


def _table(tbl: Any, slide: int) -> Table:
    grid: list[list[str]] = []
    spans: list[tuple[int, int, int, int]] = []
    for r, tr in enumerate(tbl.iter(f"{A}tr")):
        row: list[str] = []
        for c, tc in enumerate(tr.iter(f"{A}tc")):
            row.append(_table_cell(tc, r, c, row, grid))
            span = _cell_span(tc, r, c)
            if span is not None:
                spans.append(span)
        grid.append(row)
    width = max((len(r) for r in grid), default=0)
    rows = tuple(tuple(r + [""] * (width - len(r))) for r in grid)
    first_row = tbl.find(f"{A}tblPr")
    header = 1 if first_row is None or first_row.get("firstRow") != "0" else 0
    return Table(rows=rows, header_rows=header if len(rows) > 1 else 0, page=slide, spans=tuple(spans))


def _shapes(tree: Any) -> list[Any]:
    """Leaf shapes of a shape tree, group shapes flattened."""
    out: list[Any] = []
    for el in tree:
        tag = local(el.tag)
        if tag == "grpSp":
            out.extend(_shapes(el))
        elif tag in ("sp", "graphicFrame", "pic", "cxnSp"):
            out.append(el)
        elif tag == "AlternateContent":
            choice = next((c for c in el if local(c.tag) == "Choice"), None)
            if choice is not None:
                out.extend(_shapes(choice))
    return out


def _placeholder_key(sp: Any) -> tuple[str, str] | None:
    for el in sp.iter(f"{P}ph"):
        return (str(el.get("type") or "body"), str(el.get("idx") or "0"))
    return None


# Placeholders inherit along slide -> layout -> master only (a master's relationships
# list every layout: following them would read the whole deck's layouts for each slide).
_INHERITS_FROM = {"slide": "slideLayout", "slideLayout": "slideMaster"}


def _layout_boxes(
    zf: SafeZip, part: str, kind: str = "slide", cache: dict[str, dict[tuple[str, str], BBox]] | None = None
) -> dict[tuple[str, str], BBox]:
    """Placeholder boxes a slide inherits: from its layout, which inherits from its master.
    `cache` keeps each layout's and master's boxes for the parse (slides share a few)."""
    cache = {} if cache is None else cache
    parent_kind = _INHERITS_FROM.get(kind)
    out: dict[tuple[str, str], BBox] = {}
    for rel_kind, target, _mode in relationships(zf, part).values():
        if rel_kind == parent_kind and zf.has(target):
            if target not in cache:
                cache[target] = {**_layout_boxes(zf, target, rel_kind, cache), **_own_boxes(zf, target)}
            out.update(cache[target])
    return out


def _own_boxes(zf: SafeZip, part: str) -> dict[tuple[str, str], BBox]:
    """The placeholder boxes a layout or master defines itself."""
    out: dict[tuple[str, str], BBox] = {}
    tree = zf.xml(part).find(f"{P}cSld/{P}spTree")
    for sp in _shapes(tree) if tree is not None else ():
        key = _placeholder_key(sp)
        box = _bbox(sp)
        if key is not None and box is not None:
            out[key] = box
            out[(key[0], "*")] = box
    return out


def _inherited_box(sp: Any, boxes: dict[tuple[str, str], BBox]) -> BBox | None:
    key = _placeholder_key(sp)
    if key is None:
        return None
    return (
        boxes.get(key)
        or boxes.get((key[0], "*"))
        or next((b for (_t, idx), b in boxes.items() if idx == key[1] and idx != "0"), None)
    )


def _no_picture(_shape: Any) -> str | None:
    return None


def _title_text(body: Any) -> str:
    return " ".join(t for p in body.iter(f"{A}p") if (t := _para_text(p).strip()))


def _frame_blocks(shape: Any, slide: int, box: BBox | None) -> list[Block]:
    """A graphic frame's table (charts and diagrams carry no text we read)."""
    tbl = next(shape.iter(f"{A}tbl"), None)
    if tbl is None:
        return []
    table = _table(tbl, slide)
    return [Block(kind=BlockKind.TABLE, table=table, page=slide, bbox=box)] if table.rows else []


def _picture_blocks(
    shape: Any, slide: int, box: BBox | None, picture: Callable[[Any], str | None]
) -> list[Block]:
    pr = next(shape.iter(f"{P}cNvPr"), None)
    alt = (pr.get("descr") or pr.get("title") or "").strip() if pr is not None else ""
    name = pr.get("name") if pr is not None else None
    return [
        Block(
            kind=BlockKind.FIGURE,
            text=alt,
            label=name,
            caption="",
            page=slide,
            bbox=box,
            image=picture(shape),
        )
    ]


@dataclass
class _SlideReader:
    """One slide's shapes into blocks: titles first, then the rest top to bottom, left to right."""

    slide: int
    first_title: bool
    boxes: dict[tuple[str, str], BBox]
    picture: Callable[[Any], str | None]
    titled: list[Block] = field(default_factory=list)
    placed: list[tuple[tuple[float, float], list[Block]]] = field(default_factory=list)
    title_text: str | None = None

    def title(self, body: Any, box: BBox | None) -> None:
        text = _title_text(body)
        if text:
            self.title_text = self.title_text or text
            kind = BlockKind.TITLE if self.first_title and not self.titled else BlockKind.HEADING
            self.titled.append(Block(kind=kind, text=text, level=2, page=self.slide, bbox=box))

    def shape(self, shape: Any) -> None:
        ph = _placeholder_type(shape)
        if ph in _SKIP_PLACEHOLDERS:
            return
        tag = local(shape.tag)
        box = _bbox(shape) or _inherited_box(shape, self.boxes)
        blocks: list[Block] = []
        if tag == "sp":
            body = shape.find(f"{P}txBody")
            if body is not None and ph in _TITLE_TYPES:
                self.title(body, box)
            elif body is not None:
                blocks = _text_blocks(body, self.slide, box)
        elif tag == "graphicFrame":
            blocks = _frame_blocks(shape, self.slide, box)
        elif tag == "pic":
            blocks = _picture_blocks(shape, self.slide, box, self.picture)
        if blocks:
            key = (box[1], box[0]) if box is not None else (float("inf"), float("inf"))
            self.placed.append((key, blocks))

    def blocks(self) -> list[Block]:
        # Stable sort: shapes without geometry keep their document order, after the placed ones.
        self.placed.sort(key=lambda item: item[0])
        return self.titled + [b for _, bs in self.placed for b in bs]


def _slide_blocks(
    root: Any,
    slide: int,
    first_title: bool,
    boxes: dict[tuple[str, str], BBox],
    picture: Callable[[Any], str | None] = _no_picture,
) -> tuple[list[Block], str | None]:
    tree = root.find(f"{P}cSld/{P}spTree")
    if tree is None:
        return [], None
    reader = _SlideReader(slide, first_title, boxes, picture)
    for shape in _shapes(tree):
        reader.shape(shape)
    return reader.blocks(), reader.title_text


def _notes(zf: SafeZip, slide_part: str, slide: int) -> list[Block]:
    for kind, target, _mode in relationships(zf, slide_part).values():
        if kind == "notesSlide" and zf.has(target):
            root = zf.xml(target)
            out: list[Block] = []
            for sp in root.iter(f"{P}sp"):
                if _placeholder_type(sp) not in ("body", None):
                    continue
                for p in sp.iter(f"{A}p"):
                    text = _para_text(p).strip()
                    if text:
                        out.append(Block(kind=BlockKind.PARAGRAPH, text=text, page=slide, label="notes"))
            return out
    return []


@dataclass(frozen=True)
class PptxProvider:
    limits: ZipLimits = field(default_factory=ZipLimits)
    doc_type = DocumentType.PPTX

    @classmethod
    def from_settings(cls, settings: Settings) -> PptxProvider:
        return cls(limits=ZipLimits.from_settings(settings))

    def parse(self, path: Path, source_name: str, options: ParseOptions) -> ParsedDocument:
        t0 = time.perf_counter()
        doc = ParsedDocument(source_name=source_name, doc_type=DocumentType.PPTX)
        hidden: list[int] = []
        titles: list[str | None] = []
        store = ImageStore(options.include_images)
        layouts: dict[str, dict[tuple[str, str], BBox]] = {}
        with SafeZip(path, source_name, self.limits) as zf:
            main = main_part(zf, "ppt/presentation.xml")
            if not zf.has(main):
                raise CorruptDocumentError(f"{source_name}: no ppt/presentation.xml; not a presentation")
            pres = zf.xml(main)
            rels = relationships(zf, main)
            slide_parts: list[str] = []
            for sld in pres.iter(f"{P}sldId"):
                rel = rels.get(sld.get(f"{R}id") or "")
                if rel is not None and zf.has(rel[1]):
                    slide_parts.append(rel[1])
            if len(slide_parts) > options.max_pages:
                raise DocumentTooLargeError(
                    f"{source_name}: {len(slide_parts)} slides, over the {options.max_pages} page cap"
                )
            for number, part in enumerate(slide_parts, start=1):
                root = zf.xml(part)
                if root.get("show") == "0":
                    hidden.append(number)
                    continue
                doc.blocks.append(Block(kind=BlockKind.PAGE_BREAK, page=number))
                boxes = _layout_boxes(zf, part, cache=layouts)
                picture = _no_picture
                if store.enabled:
                    slide_rels = relationships(zf, part)
                    picture = functools.partial(ooxml_image, store, zf, slide_rels)
                blocks, title = _slide_blocks(root, number, number == 1, boxes, picture)
                titles.append(title)
                doc.blocks.extend(blocks)
                doc.blocks.extend(_notes(zf, part, number))
        doc.timings["read"] = time.perf_counter() - t0
        doc.images = store.images
        doc.warnings.extend(store.warnings())
        doc.metadata.update(
            reader="lxml (PresentationML)",
            slide_count=len(slide_parts),
            page_count=len(slide_parts),
            hidden_slides=hidden,
            slide_titles=titles,
        )
        if hidden:
            doc.warnings.append(f"hidden slides skipped: {', '.join(map(str, hidden))}")
        return doc
