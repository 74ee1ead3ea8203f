"""HTML provider (also the reader behind EPUB chapters and HTML e-mail bodies).

Decoding: a BOM wins, then a `<meta charset>` / `http-equiv` declaration in the first
8 KiB, then UTF-8; bytes that are not UTF-8 are read as windows-1252 (what browsers do for
unlabelled Western pages). Parsing: lxml's HTML parser (libxml2), which never resolves
entities beyond HTML's own and never touches the network.

Boilerplate dropped: scripts, styles, templates, forms, navigation (`nav`, ARIA navigation,
banner and contentinfo landmarks, page-level `header`/`footer`, `aside`), hidden elements.
When the page has a `<main>`, only that is read. Tables are kept: a data table becomes a
TABLE (th rows as header, colspan/rowspan as spans); a layout table (one holding other
tables or headings, or marked role=presentation) is read as a container. Headings, lists
with depth, `pre` as CODE (language from a `language-*` class), figures and images with alt
text and captions, MathML as FORMULA (its TeX annotation when present).

Pictures (`include_images`): only those inside the page, as `data:image/...` URIs, are
kept as artifacts. An image URL is never fetched: a parser that followed URLs found in
uploads would call whatever host a tenant names, inside our network (SSRF).
"""

from __future__ import annotations

import codecs
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from percolate_reading.config import Settings
from percolate_reading.errors import CorruptDocumentError, DocumentTooLargeError
from percolate_reading.parse.detect import decode_unicode
from percolate_reading.parse.document import Block, BlockKind, DocumentType, ParsedDocument, Table
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.figures import ImageStore, data_uri_image

DEFAULT_MAX_HTML_BYTES = 64 * 1024 * 1024
# Deeper nesting is read as flat text: the walker recurses (Python's stack), libxml2 does not.
_MAX_DEPTH = 200
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.IGNORECASE)
_WS = re.compile(r"\s+")
_DROP = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "head",
        "form",
        "button",
        "select",
        "option",
        "input",
        "textarea",
        "nav",
        "aside",
        "iframe",
        "object",
        "embed",
        "svg",
        "canvas",
        "dialog",
        "link",
        "meta",
    }
)
_DROP_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar"})
_BLOCK = frozenset(
    {
        "p",
        "div",
        "section",
        "article",
        "main",
        "body",
        "html",
        "blockquote",
        "address",
        "center",
        "dl",
        "dt",
        "dd",
        "fieldset",
        "header",
        "footer",
        "hr",
        "figcaption",
        "details",
        "summary",
        "caption",
        "tbody",
        "thead",
        "tfoot",
        "tr",
        "td",
        "th",
    }
)
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}


def decode_html(data: bytes) -> tuple[str, str]:
    """(text, encoding used) of an HTML document's bytes."""
    unicode = decode_unicode(data)
    if unicode is not None:
        return unicode
    declared = _META_CHARSET.search(data, 0, 8192)
    if declared:
        name = declared.group(1).decode("ascii", errors="replace").lower()
        try:
            codec = codecs.lookup(name).name
        except LookupError:
            codec = ""
        if codec in ("latin-1", "iso8859-1", "ascii"):
            codec = "cp1252"  # the WHATWG rule: these labels mean windows-1252
        if codec and codec not in ("utf-16-le", "utf-16-be", "utf-16"):
            try:
                return data.decode(codec), codec
            except (UnicodeDecodeError, LookupError):
                pass
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), "cp1252"


def _text(el: Any) -> str:
    return _WS.sub(" ", "".join(el.itertext())).strip()


def _classes(el: Any) -> str:
    return str(el.get("class") or "")


def _is_dropped(el: Any) -> bool:
    tag = el.tag if isinstance(el.tag, str) else ""
    if tag in _DROP:
        return True
    if el.get("hidden") is not None or el.get("aria-hidden") == "true":
        return True
    if (el.get("role") or "").lower() in _DROP_ROLES:
        return True
    style = (el.get("style") or "").replace(" ", "").lower()
    if "display:none" in style or "visibility:hidden" in style:
        return True
    # Page-level header/footer (not one inside an article or section, which is content).
    if tag in ("header", "footer"):
        parent = el.getparent()
        while parent is not None:
            if parent.tag in ("article", "section", "main"):
                return False
            parent = parent.getparent()
        return True
    return False


def _is_layout_table(table: Any) -> bool:
    if (table.get("role") or "").lower() in ("presentation", "none"):
        return True
    rows = [tr for tr in table.iter("tr") if _owner_table(tr) is table]
    if len(rows) <= 1 and all(len([c for c in tr if c.tag in ("td", "th")]) <= 1 for tr in rows):
        return True  # a one-cell table is a frame, not data
    for el in table.iterdescendants():
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag == "table" or tag in _HEADINGS or tag in ("ul", "ol", "article", "section"):
            return True
    return False


def _is_header_row(tr: Any, cells: list[Any]) -> bool:
    """Only <th> cells, or a row of <thead>."""
    if cells and all(td.tag == "th" for td in cells):
        return True
    return tr.getparent() is not None and tr.getparent().tag == "thead"


def _cell_value(td: Any) -> str:
    return "\n".join(line for line in (_WS.sub(" ", s).strip() for s in _cell_lines(td)) if line)


def _place_cells(
    cells: list[Any],
    r: int,
    n_rows: int,
    grid: dict[tuple[int, int], str],
    spans: list[tuple[int, int, int, int]],
) -> int:
    """Put one row's cells on the grid, past cells that rows above span into; its width."""
    c = 0
    for td in cells:
        while (r, c) in grid:
            c += 1
        text = _cell_value(td)
        colspan = _span(td.get("colspan"), 1000)
        rowspan = min(_span(td.get("rowspan"), 10000), n_rows - r)
        grid.update(((r + dr, c + dc), text) for dr in range(rowspan) for dc in range(colspan))
        if colspan > 1 or rowspan > 1:
            spans.append((r, c, rowspan, colspan))
        c += colspan
    return c


def html_table(table: Any) -> Table | None:
    """A data table as a Table: rows from thead/tbody/tfoot in order, spans placed on a grid."""
    rows_el = [tr for tr in table.iter("tr") if _owner_table(tr) is table]
    grid: dict[tuple[int, int], str] = {}
    spans: list[tuple[int, int, int, int]] = []
    header_rows = 0
    counting = True
    width = 0
    for r, tr in enumerate(rows_el):
        cells = [td for td in tr if td.tag in ("td", "th")]
        counting = counting and _is_header_row(tr, cells)
        header_rows += counting
        width = max(width, _place_cells(cells, r, len(rows_el), grid, spans))
    if not rows_el or width == 0:
        return None
    rows = tuple(tuple(grid.get((r, c), "") for c in range(width)) for r in range(len(rows_el)))
    caption = table.find("caption")
    if not header_rows and len(rows) > 1:
        header_rows = 1  # no <th>: the first row labels the columns in nearly every table
    return Table(
        rows=rows,
        header_rows=header_rows,
        spans=tuple(spans),
        title=_text(caption) if caption is not None and _text(caption) else None,
    )


def _cell_lines(td: Any) -> list[str]:
    lines = [""]
    for piece in td.iter():
        if piece is not td and piece.tag in ("br", "p", "div", "li") and lines[-1]:
            lines.append("")
        if piece.text and piece is not td and not _is_dropped(piece):
            lines[-1] += piece.text
        elif piece is td and td.text:
            lines[-1] += td.text
        if piece.tail and piece is not td:
            lines[-1] += piece.tail
    return lines


def _owner_table(el: Any) -> Any:
    parent = el.getparent()
    while parent is not None and parent.tag != "table":
        parent = parent.getparent()
    return parent


def _span(value: str | None, cap: int) -> int:
    try:
        return max(1, min(int(str(value).strip()), cap)) if value else 1
    except ValueError:
        return 1


@dataclass(slots=True)
class HtmlWalker:
    """Turns an lxml HTML tree into blocks in reading order."""

    blocks: list[Block] = field(default_factory=list)
    inline: list[str] = field(default_factory=list)
    list_depth: int = -1
    list_ordered: list[bool] = field(default_factory=list)
    in_li: bool = False
    figures: int = 0
    dropped: int = 0
    # An <img> src -> the artifact path of its picture (include_images), else None.
    picture: Callable[[str], str | None] | None = None

    def flush(self) -> None:
        text = _WS.sub(" ", "".join(self.inline)).strip()
        self.inline.clear()
        if not text:
            return
        if self.in_li and self.list_depth >= 0:
            ordered = self.list_ordered[-1] if self.list_ordered else False
            self.blocks.append(
                Block(kind=BlockKind.LIST_ITEM, text=text, level=self.list_depth, ordered=ordered)
            )
            self.in_li = False  # further paragraphs of the same item read as paragraphs
        else:
            self.blocks.append(Block(kind=BlockKind.PARAGRAPH, text=text))

    def walk(self, el: Any, depth: int = 0) -> None:
        tag = el.tag if isinstance(el.tag, str) else ""
        if not tag:  # comments, processing instructions
            pass
        elif _is_dropped(el):
            self.dropped += 1
        elif depth > _MAX_DEPTH:
            self.inline.append(" " + _text(el) + " ")
        else:
            self.element(el, tag, depth)
        if el.tail:
            self.inline.append(el.tail)

    def element(self, el: Any, tag: str, depth: int) -> None:
        """One element by its tag: headings, data tables and the tags in _TAG_STEPS have a
        step of their own; other block tags end the running paragraph; inline tags add to it."""
        step = _TAG_STEPS.get(tag)
        if tag in _HEADINGS:
            self.heading(el, tag)
        elif tag == "table" and not _is_layout_table(el):
            self.table(el)
        elif step is not None:
            step(self, el, depth)
        elif tag in _BLOCK or tag == "table":
            self.flush()
            if el.text:
                self.inline.append(el.text)
            self._children(el, depth, skip_text=True)
            self.flush()
        else:
            if el.text:
                self.inline.append(el.text)
            self._children(el, depth, skip_text=True)

    def heading(self, el: Any, tag: str) -> None:
        self.flush()
        text = _text(el)
        if text:
            self.blocks.append(Block(kind=BlockKind.HEADING, text=text, level=_HEADINGS[tag]))

    def table(self, el: Any) -> None:
        self.flush()
        table = html_table(el)
        if table is not None and any(any(c for c in r) for r in table.rows):
            self.blocks.append(Block(kind=BlockKind.TABLE, table=table))

    def pre(self, el: Any, depth: int) -> None:
        self.flush()
        code = "".join(el.itertext()).strip("\n")
        if code.strip():
            self.blocks.append(Block(kind=BlockKind.CODE, text=code, language=_code_language(el)))

    def list_block(self, el: Any, depth: int) -> None:
        self.flush()
        self.list_depth += 1
        self.list_ordered.append(el.tag == "ol")
        self._children(el, depth)
        self.flush()
        self.list_depth -= 1
        self.list_ordered.pop()

    def list_item(self, el: Any, depth: int) -> None:
        self.flush()
        self.in_li = True
        self._children(el, depth)
        self.flush()
        self.in_li = False

    def figure(self, el: Any, depth: int) -> None:
        self.flush()
        caption_el = el.find(".//figcaption")
        caption = _text(caption_el) if caption_el is not None else ""
        images = list(el.iter("img"))
        alt = " ".join(a for img in images if (a := (img.get("alt") or "").strip()))
        if images or caption:
            self.figures += 1
            src = images[0].get("src") if images else None
            self.blocks.append(
                Block(
                    kind=BlockKind.FIGURE,
                    text=alt,
                    caption=caption,
                    label=_label(src),
                    image=self._picture(src),
                )
            )
        for child in el:
            if child.tag not in ("img", "figcaption", "picture"):
                self.walk(child, depth + 1)

    def image(self, el: Any, depth: int) -> None:
        alt = (el.get("alt") or "").strip()
        src = el.get("src")
        picture = self._picture(src)
        if alt or picture:
            self.flush()
            self.figures += 1
            self.blocks.append(
                Block(kind=BlockKind.FIGURE, text=alt, caption="", label=_label(src), image=picture)
            )

    def _picture(self, src: str | None) -> str | None:
        return self.picture(src) if src and self.picture is not None else None

    def math(self, el: Any, depth: int) -> None:
        tex = next((a for a in el.iter("annotation") if "tex" in (a.get("encoding") or "").lower()), None)
        formula = (tex.text or "").strip() if tex is not None else _text(el)
        if formula:
            self.flush()
            self.blocks.append(Block(kind=BlockKind.FORMULA, text=formula))

    def line_break(self, el: Any, depth: int) -> None:
        self.inline.append("\n")

    def rule(self, el: Any, depth: int) -> None:
        self.flush()

    def _children(self, el: Any, depth: int, skip_text: bool = False) -> None:
        if not skip_text and el.text:
            self.inline.append(el.text)
        for child in el:
            self.walk(child, depth + 1)


_TAG_STEPS: dict[str, Callable[[HtmlWalker, Any, int], None]] = {
    "pre": HtmlWalker.pre,
    "ul": HtmlWalker.list_block,
    "ol": HtmlWalker.list_block,
    "li": HtmlWalker.list_item,
    "figure": HtmlWalker.figure,
    "img": HtmlWalker.image,
    "math": HtmlWalker.math,
    "br": HtmlWalker.line_break,
    "hr": HtmlWalker.rule,
}


def _label(src: str | None) -> str | None:
    """An image's name for the FIGURE label: its URL, but not a data: URI's payload."""
    if src is None or not src.startswith("data:"):
        return src
    return src.partition(",")[0]


def _code_language(pre: Any) -> str | None:
    """From a language-xxx or lang-xxx class on the <pre> or a <code> inside it."""
    return next(
        (
            c.split("-", 1)[1]
            for e in (pre, *pre.iter("code"))
            for c in _classes(e).split()
            if c.startswith(("language-", "lang-"))
        ),
        None,
    )


def html_blocks(
    text: str, picture: Callable[[str], str | None] | None = None
) -> tuple[list[Block], dict[str, Any]]:
    """Blocks and facts (title, figures, dropped elements) of an HTML document given as text.
    `picture` maps an <img> src to the artifact path of its extracted picture (include_images)."""
    from lxml import html as lxml_html

    # lxml refuses str input that carries an XML encoding declaration (XHTML, EPUB chapters).
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text, count=1)
    if not text.strip():
        return [], {}
    # huge_tree: libxml2 otherwise silently drops everything nested deeper than 256 elements;
    # the byte cap bounds the tree instead.
    parser = lxml_html.HTMLParser(huge_tree=True, remove_comments=True, remove_pis=True, no_network=True)
    try:
        root = lxml_html.document_fromstring(text, parser=parser)
    except Exception as exc:  # lxml raises ParserError/ValueError on documents with no elements
        raise CorruptDocumentError(f"the HTML cannot be parsed ({exc})") from exc
    title_el = root.find(".//title")
    title = _text(title_el) if title_el is not None else ""
    body = root.find(".//main")
    if body is None:
        body = root.find("body")
    walker = HtmlWalker(picture=picture)
    walker.walk(body if body is not None else root)
    walker.flush()
    blocks = walker.blocks
    if title and not any(b.kind is BlockKind.HEADING and b.level == 1 and b.text == title for b in blocks):
        blocks.insert(0, Block(kind=BlockKind.TITLE, text=title))
    lang = root.get("lang")
    # libxml2 stops building the tree past 2048 levels of nesting (a resource limit that
    # protects the parser): what lies deeper is lost, and the reader is told.
    truncated = any(e.type_name == "ERR_RESOURCE_LIMIT" for e in parser.error_log)
    return blocks, {
        "title": title or None,
        "figures": walker.figures,
        "dropped_elements": walker.dropped,
        "lang": lang,
        "truncated_at_depth": 2048 if truncated else None,
    }


@dataclass(frozen=True)
class HtmlProvider:
    max_bytes: int = DEFAULT_MAX_HTML_BYTES
    doc_type = DocumentType.HTML

    @classmethod
    def from_settings(cls, settings: Settings) -> HtmlProvider:
        return cls()

    def parse(self, path: Path, source_name: str, options: ParseOptions) -> ParsedDocument:
        t0 = time.perf_counter()
        size = path.stat().st_size
        if size > self.max_bytes:
            raise DocumentTooLargeError(
                f"{source_name}: {size} bytes of HTML, over the {self.max_bytes} byte limit"
            )
        text, encoding = decode_html(path.read_bytes())
        t1 = time.perf_counter()
        # Only pictures inside the page (data: URIs): a URL is never fetched (SSRF).
        store = ImageStore(options.include_images)
        blocks, facts = html_blocks(text, (lambda src: data_uri_image(store, src)) if store.enabled else None)
        doc = ParsedDocument(source_name=source_name, doc_type=DocumentType.HTML, blocks=blocks)
        doc.images = store.images
        doc.warnings.extend(store.warnings())
        doc.metadata.update(
            reader="lxml.html", encoding=encoding, **{k: v for k, v in facts.items() if v is not None}
        )
        doc.timings.update(decode=t1 - t0, structure=time.perf_counter() - t1)
        if facts.get("truncated_at_depth"):
            doc.warnings.append("elements nested deeper than 2048 levels were dropped (parser limit)")
        if not blocks:
            doc.warnings.append("the page has no text content")
        return doc
