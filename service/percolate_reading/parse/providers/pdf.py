"""PDF provider (PyMuPDF): text in reading order, headings, lists, ruled tables, OCR fallback.

Two passes, both streaming: a sample of up to SAMPLE_PAGES pages yields the document's body
font size, heading size tiers and running headers/footers; then every page is extracted,
cleaned and turned into blocks, and only its blocks are kept (sampled pages' compact text is
reused, so no page is extracted twice). Expensive work runs only where it can pay off:
`find_tables` on pages whose drawings could form a grid, OCR on pages with images and no text.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from percolate_reading.errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
    EncryptedDocumentError,
)
from percolate_reading.parse.document import BBox, Block, BlockKind, DocumentType, ParsedDocument
from percolate_reading.parse.parts import PART_TALLIES, PagePart
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.figures import ImageStore
from percolate_reading.parse.providers.mupdf import pymupdf
from percolate_reading.parse.providers.pdf_layout import (
    SAMPLE_PAGES,
    DocStats,
    Line,
    ListState,
    PageText,
    TableItem,
    build_blocks,
    doc_stats,
    drop_lines_inside,
    drop_margin_lines,
    list_marker,
    page_text,
    resolve_hyphens,
    text_layer_garbage,
)
from percolate_reading.parse.providers.pdf_tables import (
    band_rows,
    find_band_tables,
    find_page_tables,
    grid_candidate,
    rule_bands,
)

# No images in the dict (they are large and unused); keep whitespace so words stay apart.
# Ligatures (U+FB00-FB06: "eﬃcient") are expanded by MuPDF, so search finds "efficient".
# CLIP drops characters outside the page and outside clip paths (hidden by clipping).
WORD_FLAGS = pymupdf.TEXT_PRESERVE_WHITESPACE | pymupdf.TEXT_MEDIABOX_CLIP | pymupdf.TEXT_CLIP
# Vector paths come in the same pass (table candidates) at no measurable extra cost.
TEXT_FLAGS = WORD_FLAGS | pymupdf.TEXT_COLLECT_VECTORS
OCR_DPI = 200
# Pages with more vector paths than this are drawings/charts, where MuPDF's table finder can
# run for many seconds; they are not searched for ruled tables (noted in the warnings).
MAX_TABLE_VECTORS = 5000
# A page that is one big picture with only a stamp of text (a Bates number, "EXHIBIT 7") on
# top is a scan: OCR it like a page without a text layer.
SCAN_MAX_TEXT_CHARS = 40
SCAN_MIN_IMAGE_COVER = 0.7
_fitz: Any = pymupdf  # PyMuPDF's own annotations are partial: use its API as dynamic
# Errors MuPDF raises for damaged content inside an otherwise opened document.
_MUPDF_ERRORS: tuple[type[BaseException], ...] = (RuntimeError, ValueError, pymupdf.mupdf.FzErrorBase)


def sample_page_numbers(page_count: int, limit: int = SAMPLE_PAGES) -> list[int]:
    """Evenly spread 0-based page numbers (all pages when the document is short)."""
    if page_count <= limit:
        return list(range(page_count))
    step = page_count / limit
    return sorted({int(i * step) for i in range(limit)})


def page_ranges(pages: list[int]) -> str:
    """1, 2, 3, 5, 7, 8 -> '1-3, 5, 7-8'."""
    parts: list[str] = []
    start = prev = pages[0]
    for n in [*pages[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(parts)


def _open(path: Path, name: str, options: ParseOptions) -> tuple[Any, list[str]]:
    """Open and unlock the PDF; `name` is what error messages call it (the upload's name)."""
    warnings: list[str] = []
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CorruptDocumentError(f"cannot read PDF {name}: {exc.strerror}") from exc
    if size == 0:
        raise EmptyDocumentError(f"{name} is empty (0 bytes)")
    try:
        doc = _fitz.open(path, filetype="pdf")
    except _fitz.EmptyFileError as exc:
        raise EmptyDocumentError(f"{name} is empty (0 bytes)") from exc
    except (_fitz.FileDataError, *_MUPDF_ERRORS) as exc:
        # MuPDF's message names the sandbox's temp path; the user knows the file by `name`.
        raise CorruptDocumentError(f"{name} is not a readable PDF: MuPDF cannot open or repair it") from exc
    try:
        _check_opened(doc, name, options, warnings)
    except _MUPDF_ERRORS as exc:
        doc.close()
        if any(hint in str(exc).lower() for hint in ("memory", "alloc")):
            raise  # the sandbox names it the memory limit
        # A page tree MuPDF cannot walk (loops, absurd /Count): the file is broken, not us.
        raise CorruptDocumentError(f"{name}: the PDF's page tree cannot be read ({exc})") from exc
    except BaseException:
        doc.close()
        raise
    return doc, warnings


def _check_opened(doc: Any, name: str, options: ParseOptions, warnings: list[str]) -> None:
    if doc.needs_pass:
        if not options.password:
            raise EncryptedDocumentError(f"{name} is encrypted; supply its password to parse it")
        if not doc.authenticate(options.password):
            raise EncryptedDocumentError(f"{name} is encrypted and the supplied password is wrong")
    if doc.is_repaired:
        warnings.append("the PDF was damaged and repaired by MuPDF; some content may be missing")
    if doc.page_count == 0:
        raise CorruptDocumentError(f"{name} has no readable pages")
    if doc.page_count > options.max_pages:
        raise DocumentTooLargeError(f"{name} has {doc.page_count} pages; the limit is {options.max_pages}")


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _gapped_rows(text: PageText, band: tuple[float, float, float, float]) -> int:
    """Rows inside `band` made of column-separated cells (one line with wide gaps, or
    several blocks side by side): evidence of a table there."""
    lines = [ln for block in text.blocks for ln in block.lines]
    return sum(1 for _y0, _y1, frags in band_rows(lines, band) if len(frags) >= 2)


def _image_boxes(page: Any) -> list[tuple[float, float, float, float]]:
    """Where images are shown on the page (asked only when light text needs a background)."""
    return [tuple(info["bbox"]) for info in page.get_image_info()]


def _load_ocr() -> tuple[Any, Any] | None:
    """The OCR engine module and ocr_tables (paragraphs and tables from the OCR lines)."""
    try:
        ocr = importlib.import_module("percolate_reading.parse.providers.ocr")
        ocr_tables = importlib.import_module("percolate_reading.parse.providers.ocr_tables")
    except ImportError:
        return None
    return ocr, ocr_tables


def _key(text: str) -> str:
    """Letters and digits only, lower case: what a block's text and its source lines share
    once whitespace, hyphenation, list markers and dot leaders are gone."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


_PREFIX = 4


class _LinePool:
    """The page's text lines, found again by the text of the blocks made from them."""

    def __init__(self, lines: list[Line]) -> None:
        self.by_prefix: dict[str, list[tuple[str, Line]]] = {}
        for line in lines:
            keys = {_key(line.text)}
            marker = list_marker(line.text)
            if marker is not None:
                keys.add(_key(marker[2]))  # list items keep the text after their marker
            for key in keys - {""}:
                self.by_prefix.setdefault(key[:_PREFIX], []).append((key, line))
        self.used: set[int] = set()

    @staticmethod
    def snapshot(text: PageText) -> list[Line]:
        """The page's lines before the layout pass regroups them."""
        return [*(ln for b in text.blocks for ln in b.lines), *text.rotated]

    def take(self, rest: str) -> tuple[int, Line] | None:
        """The unused line whose text starts `rest` (the longest), as (characters, line)."""
        best: tuple[int, Line] | None = None
        for size in range(1, _PREFIX + 1):
            for key, line in self.by_prefix.get(rest[:size], ()):
                if (
                    id(line) not in self.used
                    and rest.startswith(key)
                    and (best is None or len(key) > best[0])
                ):
                    best = (len(key), line)
        if best is not None:
            self.used.add(id(best[1]))
        return best

    def box(self, text: str) -> BBox | None:
        """The union of the lines that spell `text`, consumed in order; None when none do."""
        rest = _key(text)
        box: BBox | None = None
        while rest:
            found = self.take(rest)
            if found is None:
                break
            size, line = found
            rest = rest[size:]
            box = _union_all((box, (line.x0, line.y0, line.x1, line.y1)))
        return box


def place_figures(blocks: list[Block], figures: list[Block]) -> list[Block]:
    """Figures into the page's reading order: before the first block that starts below them."""
    if not figures:
        return blocks
    out = list(blocks)
    for figure in sorted(figures, key=lambda b: b.bbox[1] if b.bbox else 0.0):
        top = figure.bbox[1] if figure.bbox else 0.0
        at = next((i for i, b in enumerate(out) if b.bbox is not None and b.bbox[1] > top), len(out))
        out.insert(at, figure)
    return out


def _union_all(boxes: Iterable[BBox | None]) -> BBox | None:
    found = [b for b in boxes if b is not None]
    if not found:
        return None
    return (
        min(b[0] for b in found),
        min(b[1] for b in found),
        max(b[2] for b in found),
        max(b[3] for b in found),
    )


def _points(pixels: BBox) -> BBox:
    """A box on the page rendered at OCR_DPI, in PDF points."""
    scale = 72 / OCR_DPI
    x0, y0, x1, y1 = pixels
    return _round_box((x0 * scale, y0 * scale, x1 * scale, y1 * scale))


def _round_box(box: BBox) -> BBox:
    x0, y0, x1, y1 = box
    return (round(x0, 2), round(y0, 2), round(x1, 2), round(y1, 2))


def with_boxes(blocks: list[Block], lines: list[Line], tables: list[TableItem]) -> list[Block]:
    """The page's blocks with their bounding boxes (PDF points, origin top left): a table's
    from its detection, a text block's the union of the `lines` its text came from."""
    pool = _LinePool(lines)
    table_boxes = {id(t.table): (t.x0, t.y0, t.x1, t.y1) for t in tables}
    out: list[Block] = []
    for block in blocks:
        if block.bbox is not None:
            box: BBox | None = block.bbox
        elif block.table is not None:
            # A table found in the text layer's aligned rows: where its rows' lines are.
            box = table_boxes.get(id(block.table)) or _union_all(
                pool.box(" ".join(r)) for r in block.table.rows
            )
        else:
            box = pool.box(block.text)
        out.append(replace(block, bbox=_round_box(box)) if box is not None and block.bbox is None else block)
    return out


class _PdfParse:
    """State of one parse: the open document, counters and the blocks produced so far."""

    def __init__(self, doc: Any, source_name: str, options: ParseOptions, warnings: list[str]) -> None:
        self.doc = doc
        self.options = options
        self.result = ParsedDocument(source_name=source_name, doc_type=DocumentType.PDF, warnings=warnings)
        self.pages_ocr = 0
        self.pages_with_text = 0
        self.pages_with_images = 0
        self.unreadable: list[int] = []
        self.no_text_pages: list[int] = []
        self.stamped_pages: list[int] = []  # scans whose text layer is only a stamp
        self.margin_lines_dropped = 0
        self.hidden_chars = 0
        self.hidden_pages: list[int] = []
        self.garbage_ocr: list[int] = []  # pages whose poor text layer was replaced by OCR
        self.garbage_kept: list[int] = []  # ... kept, OCR being off or unavailable
        self.forced_kept: list[int] = []  # ocr=force pages whose text layer was kept (no OCR text)
        self.table_pages_checked = 0
        self.t_tables = 0.0
        self.t_ocr = 0.0
        self._ocr: tuple[Any, Any] | None = None
        self._ocr_loaded = False
        self.lists = ListState()
        self.images = ImageStore(options.include_images)
        self.image_paths: dict[int, str | None] = {}  # xref -> artifact path (shown on many pages)
        self.engine_name: str | None = None  # the OCR engine named by merged parts
        self.prelude_warnings = 0

    @property
    def force_ocr(self) -> bool:
        return self.options.ocr_mode == "force" and self.options.ocr_enabled

    def extract(self, pno: int) -> tuple[Any, PageText] | None:
        try:
            page = self.doc.load_page(pno)
            return page, page_text(page.get_text("dict", flags=TEXT_FLAGS), lambda: _image_boxes(page))
        except _MUPDF_ERRORS as exc:
            self.result.warnings.append(f"page {pno + 1} could not be read: {exc}")
            self.unreadable.append(pno + 1)
            return None

    def tables(self, page: Any, text: PageText, page_no: int) -> list[TableItem]:
        if self.options.table_mode == "fast":
            # MuPDF's ruled-table search is the slow part; tables whose columns line up in
            # the text layer are still found by the layout pass.
            return []
        grid = grid_candidate(text.vectors, text.width, text.height)
        bands = [
            b
            for b in rule_bands(text.vectors, text.width, text.height, lambda g: _gapped_rows(text, g) > 0)
            if _gapped_rows(text, b) >= 2
        ]
        if not grid and not bands:
            return []
        if len(text.vectors) > MAX_TABLE_VECTORS:
            self.result.warnings.append(
                f"page {page_no}: {len(text.vectors)} vector paths; not searched for ruled tables"
            )
            return []
        t0 = time.perf_counter()
        self.table_pages_checked += 1
        try:
            found = find_page_tables(page, page_no, WORD_FLAGS) if grid else []
            # Bands a grid table already covers are that table's own rules.
            bands = [b for b in bands if not any(_overlaps(b, (t.x0, t.y0, t.x1, t.y1)) for t in found)]
            if bands:
                lines = [ln for b in text.blocks for ln in b.lines]
                found += find_band_tables(page, page_no, WORD_FLAGS, bands, text.vectors, lines)
            return found
        except _MUPDF_ERRORS as exc:
            self.result.warnings.append(f"page {page_no}: table detection failed: {exc}")
            return []
        finally:
            self.t_tables += time.perf_counter() - t0

    def ocr_engine(self) -> tuple[Any, Any] | None:
        if not self._ocr_loaded:
            self._ocr = _load_ocr()
            self._ocr_loaded = True
        return self._ocr

    def ocr_page(
        self, page: Any, page_no: int, skipped: list[int] | None = None, *, force: bool = False
    ) -> list[Block]:
        """OCR the rendered page (pages without images only when `force`d); pages OCR cannot
        run on are noted in `skipped`. Paragraph boxes are in PDF points, like the text layer's."""
        skipped = self.no_text_pages if skipped is None else skipped
        if not force:
            if not page.get_images(full=False):
                return []
            self.pages_with_images += 1
        engine = self.ocr_engine() if self.options.ocr_enabled else None
        if engine is None:
            skipped.append(page_no)
            return []
        t0 = time.perf_counter()
        try:
            blocks = self._recognize(engine, page, page_no)
        except ImportError:
            self._ocr = None  # the engine is not installed: stop trying on later pages
            skipped.append(page_no)
            return []
        except (RuntimeError, ValueError, OSError) as exc:
            self.result.warnings.append(f"page {page_no}: OCR failed: {exc}")
            return []
        finally:
            self.t_ocr += time.perf_counter() - t0
        self.pages_ocr += 1
        return [replace(b, bbox=_points(b.bbox)) if b.bbox is not None else b for b in blocks]

    def _recognize(self, engine: tuple[Any, Any], page: Any, page_no: int) -> list[Block]:
        """Paragraphs and tables of the rendered page (boxes in its pixels)."""
        ocr, ocr_tables = engine
        language, languages = self.options.language, self.options.ocr_languages
        import numpy as np

        # The pixmap's own samples, seen as an array: no PNG encoded and decoded again.
        pix = page.get_pixmap(dpi=OCR_DPI, alpha=False)
        rgb = np.frombuffer(pix.samples_mv, dtype=np.uint8).reshape(pix.h, pix.w, pix.n)
        lines = ocr.recognize_pixels(rgb, language=language, languages=languages)
        mismatch = ocr.script_warning(lines, language, languages)
        if mismatch:
            self.result.warnings.append(f"page {page_no}: {mismatch}")
        blocks: list[Block] = ocr_tables.page_blocks(lines, rgb, page_no)
        del rgb, pix
        return blocks

    def mostly_scan(self, page: Any, text: PageText) -> bool:
        chars = sum(len(ln.text.strip()) for b in text.blocks for ln in b.lines)
        if chars >= SCAN_MAX_TEXT_CHARS or not page.get_images(full=False):
            return False
        page_rect = page.rect
        for info in page.get_image_info():
            shown = _fitz.Rect(info["bbox"]) & page_rect
            if shown.width * shown.height >= SCAN_MIN_IMAGE_COVER * page_rect.width * page_rect.height:
                return True
        return False

    def garbage_layer(self, page: Any, text: PageText) -> bool:
        """A scan (an image over most of the page) whose text layer is failed OCR."""
        if not page.get_images(full=False):
            return False
        share = text_layer_garbage(" ".join(ln.text for b in text.blocks for ln in b.lines))
        if share is None:
            return False
        page_rect = page.rect
        area = page_rect.width * page_rect.height
        for info in page.get_image_info():
            shown = _fitz.Rect(info["bbox"]) & page_rect
            if shown.width * shown.height >= 0.5 * area:
                return True
        return False

    def scanned_blocks(self, page: Any, text: PageText, page_no: int) -> list[Block] | None:
        """OCR instead of the text layer where the layer is a stamp on a scan, failed OCR,
        or the request forces OCR; None keeps the text layer."""
        if self.force_ocr:
            if page.get_images(full=False):
                self.pages_with_images += 1
            forced = self.ocr_page(page, page_no, self.forced_kept, force=True)
            if not forced and page_no not in self.forced_kept:
                self.forced_kept.append(page_no)
            return forced or None
        if self.mostly_scan(page, text):
            # OCR reads the rendered page, stamp included; without OCR keep what text there is.
            return self.ocr_page(page, page_no, self.stamped_pages) or None
        if self.garbage_layer(page, text):
            # pymupdf4llm does the same: a scan's own OCR layer that is mostly wrong characters
            # or letter-spaced words reads worse than our OCR of the page image.
            scanned = self.ocr_page(page, page_no, self.garbage_kept)
            if scanned:
                self.garbage_ocr.append(page_no)
                return scanned
        return None

    def page_blocks(self, page: Any, text: PageText, stats: DocStats, page_no: int) -> list[Block]:
        blocks = self.page_content(page, text, stats, page_no)
        if not self.images.enabled:
            return blocks
        return place_figures(blocks, self.figures(page, page_no))

    def figures(self, page: Any, page_no: int) -> list[Block]:
        """FIGURE blocks for the pictures shown on the page, their bytes in the image store.
        A picture over most of the page is the page itself (a scan), not a figure."""
        area = page.rect.width * page.rect.height
        out: list[Block] = []
        for info in page.get_image_info(xrefs=True):
            xref = info.get("xref") or 0
            shown = _fitz.Rect(info["bbox"]) & page.rect
            if xref <= 0 or shown.is_empty or shown.width * shown.height >= SCAN_MIN_IMAGE_COVER * area:
                continue
            if xref not in self.image_paths:
                self.image_paths[xref] = self.extract_image(xref, page_no)
            path = self.image_paths[xref]
            if path is not None:
                box = _round_box((shown.x0, shown.y0, shown.x1, shown.y1))
                out.append(Block(BlockKind.FIGURE, caption="", page=page_no, bbox=box, image=path))
        return out

    def extract_image(self, xref: int, page_no: int) -> str | None:
        try:
            found = self.doc.extract_image(xref)
        except _MUPDF_ERRORS as exc:
            self.result.warnings.append(f"page {page_no}: an image could not be extracted: {exc}")
            return None
        if not found:
            return None
        return self.images.add(
            found["image"], found.get("ext") or "bin", found.get("width"), found.get("height")
        )

    def page_content(self, page: Any, text: PageText, stats: DocStats, page_no: int) -> list[Block]:
        if text.hidden_chars:
            self.hidden_chars += text.hidden_chars
            self.hidden_pages.append(page_no)
        if not text.has_text:
            return self.ocr_page(page, page_no, force=self.force_ocr)
        self.pages_with_text += 1
        self.margin_lines_dropped += drop_margin_lines(text, stats)
        scanned = self.scanned_blocks(page, text, page_no)
        if scanned is not None:
            return scanned
        tables = self.tables(page, text, page_no)
        drop_lines_inside(text, [(t.x0, t.y0, t.x1, t.y1) for t in tables])
        lines = _LinePool.snapshot(text)
        return with_boxes(build_blocks(text, tables, stats, self.lists, page_no), lines, tables)

    def sample(self) -> tuple[DocStats, dict[int, PageText], set[int]]:
        """Pass 1: the sampled pages' statistics, their compact text and the failed ones."""
        sampled: dict[int, tuple[Any, PageText] | None] = {}
        for pno in sample_page_numbers(self.doc.page_count):
            sampled[pno] = self.extract(pno)
        stats = doc_stats([s[1] for s in sampled.values() if s is not None])
        # Keep only the compact text of sampled pages; pages are reloaded when needed.
        cached = {pno: s[1] for pno, s in sampled.items() if s is not None}
        failed = {pno for pno, s in sampled.items() if s is None}
        return stats, cached, failed

    def load(self, pno: int, cached: dict[int, PageText], failed: set[int]) -> tuple[Any, PageText] | None:
        """The page and its compact text (from the sample when it was sampled)."""
        text = cached.pop(pno, None)
        if text is None:
            return None if pno in failed else self.extract(pno)
        try:
            return self.doc.load_page(pno), text
        except _MUPDF_ERRORS as exc:
            self.result.warnings.append(f"page {pno + 1} could not be read: {exc}")
            self.unreadable.append(pno + 1)
            return None

    def page_numbers(self) -> range:
        """0-based numbers of the pages to extract: the requested range, else every page.
        Pages outside it are never loaded (only sampled for the document's statistics)."""
        count = self.doc.page_count
        if self.options.page_range is None:
            return range(count)
        first, last = self.options.page_range
        return range(max(first, 1) - 1, min(last if last is not None else count, count))

    def all_pages(self, stats: DocStats, cached: dict[int, PageText], failed: set[int]) -> None:
        """Pass 2: every requested page's blocks, after its PAGE_BREAK (line-end hyphens
        are settled by the caller, over the whole document)."""
        result = self.result
        for pno in self.page_numbers():
            page_no = pno + 1
            result.blocks.append(Block(BlockKind.PAGE_BREAK, page=page_no))
            loaded = self.load(pno, cached, failed)
            if loaded is None:
                continue
            page, text = loaded
            try:
                result.blocks.extend(self.page_blocks(page, text, stats, page_no))
            except _MUPDF_ERRORS as exc:
                result.warnings.append(f"page {page_no} could not be read: {exc}")
                self.unreadable.append(page_no)

    def check_content(self) -> None:
        """Raise when no requested page could be read, or none holds text or a scan."""
        result, pages = self.result, self.page_numbers()
        page_count = len(pages)
        if page_count and len(set(self.unreadable) & {pno + 1 for pno in pages}) >= page_count:
            # Carry the first page's error: it tells a broken page from a failed allocation
            # (which the sandbox then reports as the memory limit it is).
            first = next((w for w in result.warnings if "could not be read" in w), "")
            raise CorruptDocumentError(
                f"{result.source_name}: no page of the PDF could be read ({first})"
                if first
                else f"{result.source_name}: no page of the PDF could be read"
            )
        if self.options.page_range is not None:
            return  # a range of blank pages is not an empty document: its other pages were not read
        found = any(b.kind is not BlockKind.PAGE_BREAK for b in result.blocks)
        if not self.pages_with_text and not self.pages_with_images and not found:
            raise EmptyDocumentError(
                f"{result.source_name}: no text and no scanned images on any of its {page_count} pages"
            )

    def cleaning_warnings(self, stats: DocStats) -> list[str]:
        """What the text layers lost on the way: running heads, invisible text, bad OCR layers."""
        out: list[str] = []
        if self.margin_lines_dropped:
            shown = "; ".join(repr(t) for t in stats.margin_examples[:3])
            out.append(f"dropped {self.margin_lines_dropped} repeated header/footer lines ({shown})")
        if self.hidden_chars:
            out.append(
                f"dropped {self.hidden_chars} characters of invisible text (transparent or the colour "
                f"of its background) on page(s) {page_ranges(self.hidden_pages)}"
            )
        if self.garbage_ocr:
            out.append(
                f"page(s) {page_ranges(self.garbage_ocr)}: the scan's text layer looks like failed OCR "
                "(implausible words, letters spaced out); OCR'd again instead"
            )
        return out

    def ocr_warnings(self) -> list[str]:
        """Pages that needed OCR and did not get it, and why."""
        why = "disabled" if not self.options.ocr_enabled else "unavailable"
        out: list[str] = []
        if self.garbage_kept:
            out.append(
                f"page(s) {page_ranges(self.garbage_kept)}: the scan's text layer looks like failed OCR "
                f"and was kept as is; OCR {why}"
            )
        if self.no_text_pages:
            if len(self.no_text_pages) <= 10:
                out.extend(f"page {page_no} has no text layer; OCR {why}" for page_no in self.no_text_pages)
            else:  # a scanned book: one line, not hundreds
                out.append(
                    f"{len(self.no_text_pages)} pages have no text layer "
                    f"(pages {page_ranges(self.no_text_pages)}); OCR {why}"
                )
        if self.stamped_pages:
            out.append(
                f"scanned page(s) {page_ranges(self.stamped_pages)} carry only a few words of text "
                f"layer, kept as is; OCR {why}"
            )
        if self.forced_kept:
            out.append(
                f"ocr=force: page(s) {page_ranges(self.forced_kept)} gave no OCR text; "
                f"their text layer was kept (OCR {'unavailable' if self._ocr is None else 'found nothing'})"
            )
        return out

    def ocr_engine_name(self) -> str | None:
        if self.engine_name is not None:
            return self.engine_name  # merged from page-range parts
        if self.pages_ocr and self._ocr is not None:
            name: str = self._ocr[0].engine_for(self.options.language, self.options.ocr_languages)
            return name
        return None

    def record_metadata(self, stats: DocStats) -> None:
        doc, result = self.doc, self.result
        info = doc.metadata or {}
        result.metadata.update(
            page_count=doc.page_count,
            title=(info.get("title") or "").strip() or None,
            author=(info.get("author") or "").strip() or None,
            pages_ocr=self.pages_ocr,
            images_extracted=len(self.images.images),
            ocr_engine=self.ocr_engine_name(),
            ocr_mode=self.options.ocr_mode if self.options.ocr_enabled else "off",
            table_mode=self.options.table_mode,
            tables=sum(1 for b in result.blocks if b.kind is BlockKind.TABLE),
            table_pages_checked=self.table_pages_checked,
            has_text_layer=self.pages_with_text > 0,
            body_font_size=stats.body_size or None,
            parser=f"pymupdf {pymupdf.VersionBind}",
        )

    def run(self) -> ParsedDocument:
        stats = self.extract_pages()
        return self.finish(stats)

    def extract_pages(self) -> DocStats:
        """Sample the whole document, then extract the requested pages."""
        result = self.result
        t0 = time.perf_counter()
        stats, cached, failed = self.sample()
        result.timings["pdf_scan"] = time.perf_counter() - t0
        self.prelude_warnings = len(result.warnings)  # the open's and the sample's
        t1 = time.perf_counter()
        self.all_pages(stats, cached, failed)
        result.timings["pdf_pages"] = time.perf_counter() - t1 - self.t_tables - self.t_ocr
        return stats

    def finish(self, stats: DocStats) -> ParsedDocument:
        """Document-wide steps over every extracted page: hyphens, checks, warnings, metadata."""
        result = self.result
        result.blocks = resolve_hyphens(result.blocks)
        result.timings["pdf_tables"] = self.t_tables
        result.timings["pdf_ocr"] = self.t_ocr
        self.check_content()
        result.warnings.extend(self.cleaning_warnings(stats))
        result.warnings.extend(self.ocr_warnings())
        result.warnings.extend(self.images.warnings())
        result.images = self.images.images
        self.record_metadata(stats)
        return result

    # --- page-range parts: extracted apart (worker sub-jobs), finished together -----------

    def part(self) -> PagePart:
        """The requested range's pages as a part: its blocks before the document-wide steps,
        the page warnings and the counters the finish reads."""
        self.extract_pages()
        result, pages = self.result, self.page_numbers()
        return PagePart(
            pages=(pages.start + 1, pages.stop),
            blocks=result.blocks,
            warnings=result.warnings[self.prelude_warnings :],
            tallies={name: getattr(self, name) for name in PART_TALLIES},
            ocr_engine=self.ocr_engine_name(),
            ocr_available=self._ocr is not None,
            timings=dict(result.timings),
        )

    def merge(self, parts: list[PagePart]) -> ParsedDocument:
        """The document from its parts, as one parse of the same pages would give it: the
        sample is taken again (it covers the whole document either way), the parts' pages
        follow in page order, then the document-wide steps run once."""
        result = self.result
        t0 = time.perf_counter()
        stats, _cached, _failed = self.sample()
        result.timings["pdf_scan"] = time.perf_counter() - t0
        ordered = sorted(parts, key=lambda p: p.pages[0])
        for part in ordered:
            result.blocks.extend(part.blocks)
            result.warnings.extend(part.warnings)
            for name in PART_TALLIES:
                setattr(self, name, getattr(self, name) + part.tallies[name])
            self.engine_name = self.engine_name or part.ocr_engine
        if any(p.ocr_available for p in ordered):
            self._ocr = (None, None)  # loaded in a part: only "was it there" is read from here on
        result.timings["pdf_pages"] = sum(p.timings.get("pdf_pages", 0.0) for p in ordered)
        return self.finish(stats)


class PdfProvider:
    """Parses PDFs with PyMuPDF; see the module docstring for the passes."""

    doc_type = DocumentType.PDF

    def parse(self, path: Path, source_name: str, options: ParseOptions) -> ParsedDocument:
        t0 = time.perf_counter()
        doc, warnings = _open(path, source_name, options)
        try:
            open_s = time.perf_counter() - t0
            result = _PdfParse(doc, source_name, options, warnings).run()
            result.timings["pdf_open"] = open_s
            return result
        finally:
            doc.close()


def parse_part(path: Path, source_name: str, options: ParseOptions) -> PagePart:
    """The pages of `options.page_range` as a part, for `merge_parts` (a worker's sub-job)."""
    doc, warnings = _open(path, source_name, options)
    try:
        return _PdfParse(doc, source_name, options, warnings).part()
    finally:
        doc.close()


def merge_parts(path: Path, source_name: str, options: ParseOptions, parts: list[PagePart]) -> ParsedDocument:
    """One document from parts that together cover `options.page_range` (else every page):
    the same document a single parse gives (see `_PdfParse.merge`)."""
    t0 = time.perf_counter()
    doc, warnings = _open(path, source_name, options)
    try:
        result = _PdfParse(doc, source_name, options, warnings).merge(parts)
        result.timings["pdf_open"] = time.perf_counter() - t0
        return result
    finally:
        doc.close()


def probe_scan(path: Path, source_name: str, options: ParseOptions, check: int = 3) -> tuple[int, int, int]:
    """(page count, pages checked, how many need OCR) over the first `check` requested pages:
    pages with no text layer, or a scan with only a stamp of text."""
    doc, warnings = _open(path, source_name, options)
    try:
        state = _PdfParse(doc, source_name, options, warnings)
        pages = list(state.page_numbers())[:check]
        scanned = 0
        for pno in pages:
            loaded = state.extract(pno)
            if loaded is None:
                continue
            page, text = loaded
            if page.get_images(full=False) and (not text.has_text or state.mostly_scan(page, text)):
                scanned += 1
        return doc.page_count, len(pages), scanned
    finally:
        doc.close()
