"""Pure layout logic for the PDF provider: MuPDF text dicts in, ordered Blocks out.

Nothing here touches a document: functions take the plain data `page.get_text("dict")`
returns (or the compact records made from it), so they are cheap to test and reason about.

Pipeline per page: `page_blocks` (dict -> TextBlocks of Lines, same-row fragments merged)
-> drop header/footer lines and lines inside tables -> `reading_order` (columns) ->
`build_blocks` (headings, list items, paragraphs with hyphen joins).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

from percolate_reading.parse.document import Block, BlockKind, Table

BOLD_FLAG = 16  # MuPDF span flag: TEXT_FONT_BOLD
MONO_FLAG = 8  # MuPDF span flag: TEXT_FONT_MONOSPACED
# Subset fonts often lack the fixed-pitch flag; their names still say it.
_MONO_NAMES = ("Mono", "Courier", "Consol", "Code", "Menlo", "Typewriter")
MIN_CODE_LINES = 2  # monospace lines in a row that make a code block
HEADER_BAND = 0.1  # top/bottom fraction of the page height where running headers/footers live
SAMPLE_PAGES = 60  # pages sampled for font statistics and header/footer detection
INDENT_STEP = 18.0  # points of indentation per list nesting level
COLUMN_GAP = 1.5  # a gap this many font sizes wide inside a row separates table cells
MIN_TEXT_TABLE_ROWS = 3

EN_DASH = "\u2013"
BULLETS = frozenset("•·▪◦‣●○■□➢►-*" + EN_DASH)
# Glyphs that also occur as separators or dashes: inside a running sentence they continue it.
AMBIGUOUS_BULLETS = frozenset("·-*" + EN_DASH)
_SENTENCE_END = (".", "!", "?", ":", '"', "”", ")")
# A list marker at the start of a line: a bullet glyph, or 1. 1) (1) a) a. i. ii)
_NUMBERED = re.compile(r"^(\(?(?:\d{1,3}|[a-z]|[ivxlc]{1,6})[.)])\s+(?=\S)")
_DIGITS = re.compile(r"\d+")
# C0 controls (MuPDF emits NUL for glyphs without a Unicode mapping), tab and newline kept.
_CONTROLS = dict.fromkeys(c for c in range(32) if c not in (9, 10))
_SPACES = re.compile(r"\s+")


@dataclass(slots=True)
class Line:
    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    size: float  # dominant font size (by characters)
    bold: bool  # every visible character is bold
    # Fragments separated by column-wide gaps, (x0, x1, text): a possible row of an unruled table.
    cells: tuple[tuple[float, float, str], ...] = ()
    mono: bool = False  # every visible character is in a monospaced font


@dataclass(slots=True)
class TextBlock:
    lines: list[Line]
    x0: float = 0.0
    y0: float = 0.0
    x1: float = 0.0
    y1: float = 0.0

    def refit(self) -> None:
        self.x0 = min(ln.x0 for ln in self.lines)
        self.y0 = min(ln.y0 for ln in self.lines)
        self.x1 = max(ln.x1 for ln in self.lines)
        self.y1 = max(ln.y1 for ln in self.lines)


@dataclass(slots=True)
class TableItem:
    """A detected table placed in the reading order like a text block."""

    table: Table
    x0: float
    y0: float
    x1: float
    y1: float


Item = TextBlock | TableItem
Vector = tuple[float, float, float, float, bool, bool, int]


@dataclass(slots=True)
class PageText:
    """The compact text of one page: horizontal blocks plus rotated lines kept aside, and
    the page's vector paths (x0, y0, x1, y1, stroked, is_rect, sRGB colour) for table hints."""

    blocks: list[TextBlock]
    rotated: list[Line]
    width: float
    height: float
    vectors: list[Vector]

    hidden_chars: int = 0  # characters of invisible text dropped (see `page_text`)

    @property
    def has_text(self) -> bool:
        return bool(self.blocks or self.rotated)


# --- dict -> compact records -------------------------------------------------------------


def _clean(text: str) -> str:
    return text if text.isprintable() else text.translate(_CONTROLS)


def _is_mono(flags: int, font: str) -> bool:
    return bool(flags & MONO_FLAG) or any(name in font for name in _MONO_NAMES)


def _line_from_spans(spans: Sequence[dict[str, Any]], bbox: Sequence[float]) -> Line | None:
    if len(spans) == 1:
        span = spans[0]
        text = _clean(span["text"])
        if not text.strip():
            return None
        font = span["font"]
        flags = span["flags"]
        bold = bool(flags & BOLD_FLAG) or "Bold" in font or "Black" in font
        size = round(span["size"] * 2) / 2
        return Line(text, bbox[0], bbox[1], bbox[2], bbox[3], size, bold, (), _is_mono(flags, font))
    parts: list[str] = []
    weights: Counter[float] = Counter()
    bold = mono = True
    for span in spans:
        t = span["text"]
        parts.append(t)
        n = len(t.strip())
        if n:
            weights[round(span["size"] * 2) / 2] += n
            if bold and not (span["flags"] & BOLD_FLAG or "Bold" in span["font"] or "Black" in span["font"]):
                bold = False
            if mono and not _is_mono(span["flags"], span["font"]):
                mono = False
    if not weights:
        return None
    size = weights.most_common(1)[0][0]
    text = _clean("".join(parts))
    if not text.strip():
        return None
    return Line(text, bbox[0], bbox[1], bbox[2], bbox[3], size, bold, (), mono)


def _is_marker(text: str) -> bool:
    t = text.strip()
    return (len(t) == 1 and t in BULLETS) or bool(_NUMBERED.match(t + " x"))


def _merge_row(a: Line, b: Line) -> Line:
    """Join two fragments of one visual row (e.g. a list marker and its text).

    A gap wider than COLUMN_GAP font sizes separates cells: the fragments are kept apart in
    `cells` so that runs of such rows can become a table (a lone list marker never counts).
    """
    gap = b.x0 - a.x1
    size = a.size if len(a.text) >= len(b.text) else b.size
    sep = "" if gap < 0.15 * max(a.size, 1.0) or a.text.endswith(" ") or b.text.startswith(" ") else " "
    cells = a.cells
    if gap > COLUMN_GAP * max(size, 1.0) and (cells or not _is_marker(a.text)):
        cells = (cells or ((a.x0, a.x1, a.text.strip()),)) + ((b.x0, b.x1, b.text.strip()),)
    elif cells:
        x0, _x1, text = cells[-1]
        cells = (*cells[:-1], (x0, b.x1, text + sep + b.text.strip()))
    return Line(
        a.text + sep + b.text,
        min(a.x0, b.x0),
        min(a.y0, b.y0),
        max(a.x1, b.x1),
        max(a.y1, b.y1),
        size,
        a.bold and b.bold,
        cells,
        a.mono and b.mono,
    )


def _same_row(a: Line, b: Line) -> bool:
    overlap = min(a.y1, b.y1) - max(a.y0, b.y0)
    return b.x0 >= a.x1 - 1.0 and overlap > 0.5 * min(a.y1 - a.y0, b.y1 - b.y0)


Box = tuple[float, float, float, float]
# Text this close in luminance to what is behind it cannot be seen (white on white).
MIN_CONTRAST = 0.12
_LIGHT = 0xD0  # a text colour whose channels are all at least this bright may be unreadable


def _luminance(rgb: int) -> float:
    return (0.2126 * (rgb >> 16) + 0.7152 * ((rgb >> 8) & 255) + 0.0722 * (rgb & 255)) / 255


def _is_light(rgb: int) -> bool:
    return rgb >> 16 >= _LIGHT and (rgb >> 8) & 255 >= _LIGHT and rgb & 255 >= _LIGHT


def _background(x: float, y: float, vectors: Sequence[Vector]) -> int | None:
    """Colour of the last filled path drawn under (x, y) before the text, if any."""
    for x0, y0, x1, y1, stroked, _is_rect, color in reversed(vectors):
        if not stroked and x0 <= x <= x1 and y0 <= y <= y1:
            return int(color)
    return None


class _Visibility:
    """Decides whether text can be seen. Invisible text (render mode 3, fully transparent)
    counts only over an image: that is a scan's OCR layer. Light text is compared with the
    last filled path drawn under it before it (the dict lists blocks in drawing order) or,
    with none, the white page; light text on an image is assumed visible. Image boxes are
    asked for only when needed."""

    def __init__(self, image_boxes: Callable[[], Sequence[Box]] | None) -> None:
        self._image_boxes = image_boxes
        self._images: Sequence[Box] | None = None

    def _on_image(self, x: float, y: float) -> bool:
        if self._images is None:
            self._images = self._image_boxes() if self._image_boxes is not None else ()
        return any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in self._images)

    def visible(self, span: dict[str, Any], vectors: Sequence[Vector]) -> bool:
        x0, y0, x1, y1 = span["bbox"]
        x, y = (x0 + x1) / 2, (y0 + y1) / 2
        if not span.get("alpha", 255):
            return self._on_image(x, y)
        color = int(span.get("color", 0))
        if not _is_light(color):
            return True
        bg = _background(x, y, vectors)
        if bg is not None:
            return abs(_luminance(color) - _luminance(bg)) >= MIN_CONTRAST
        return self._on_image(x, y) or 1.0 - _luminance(color) >= MIN_CONTRAST


def _visible_spans(
    spans: list[dict[str, Any]], vectors: Sequence[Vector], seen: _Visibility
) -> list[dict[str, Any]]:
    return [s for s in spans if seen.visible(s, vectors)]


def _needs_check(span: dict[str, Any]) -> bool:
    return not span.get("alpha", 255) or int(span.get("color", 0)) >= _LIGHT << 16


def page_text(page_dict: dict[str, Any], image_boxes: Callable[[], Sequence[Box]] | None = None) -> PageText:
    """Compact a `get_text("dict")` result: text blocks of non-empty lines, rows merged.

    With TEXT_COLLECT_VECTORS the dict also holds vector blocks (type 3): kept as tuples, so
    table candidates come from the same pass instead of a second `get_cdrawings()` walk.
    Invisible text (render mode 3, transparent, or the colour of its background) is dropped;
    `image_boxes` says where images lie (light text on a photo stays).
    """
    blocks: list[TextBlock] = []
    rotated: list[Line] = []
    vectors: list[Vector] = []
    seen = _Visibility(image_boxes)
    hidden = 0
    for raw in page_dict["blocks"]:
        kind = raw.get("type", 0)
        if kind == 3:
            x0, y0, x1, y1 = raw["bbox"]
            vectors.append(
                (x0, y0, x1, y1, bool(raw.get("stroked")), bool(raw.get("isrect")), raw.get("color", 0))
            )
            continue
        if kind != 0:
            continue
        lines: list[Line] = []
        for raw_line in raw["lines"]:
            spans = raw_line["spans"]
            bbox = raw_line["bbox"]
            if any(_needs_check(s) for s in spans):
                shown = _visible_spans(spans, vectors, seen)
                if len(shown) != len(spans):
                    hidden += sum(len(s["text"].strip()) for s in spans) - sum(
                        len(s["text"].strip()) for s in shown
                    )
                    if not shown:
                        continue
                    spans = shown
                    bbox = (
                        min(s["bbox"][0] for s in shown),
                        min(s["bbox"][1] for s in shown),
                        max(s["bbox"][2] for s in shown),
                        max(s["bbox"][3] for s in shown),
                    )
            line = _line_from_spans(spans, bbox)
            if line is None:
                continue
            direction = raw_line.get("dir", (1.0, 0.0))
            if abs(direction[1]) > 0.1:
                rotated.append(line)
                continue
            if lines and _same_row(lines[-1], line):
                lines[-1] = _merge_row(lines[-1], line)
            else:
                lines.append(line)
        if lines:
            block = TextBlock(lines)
            block.refit()
            blocks.append(block)
    return PageText(blocks, rotated, float(page_dict["width"]), float(page_dict["height"]), vectors, hidden)


# --- text layer quality -------------------------------------------------------------------

_VOWELS = frozenset("aeiouyAEIOUYàáâäèéêëìíîïòóôöùúûüÀÁÂÄÈÉÊËÌÍÎÏÒÓÔÖÙÚÛÜ")
_PUNCT = ".,;:!?()[]\"'\u00ab\u00bb\u201c\u201d\u2018\u2019-"
GARBAGE_MIN_CHARS = 200  # below this a page's text is too short to judge
GARBAGE_BAD_SHARE = 0.35  # share of implausible tokens that marks a failed OCR layer


def _implausible(token: str) -> bool:
    """A token no language writes: letters mixed with digits or symbols inside a word
    ("C4éT", "py6nen"), Latin words without vowels, case flipping mid-word ("wOrD")."""
    core = token.strip(_PUNCT)
    if len(core) < 2:
        return False
    letters = sum(1 for c in core if c.isalpha())
    if letters == 0:
        return False  # numbers, dates, codes: fine
    return _mixed_inside(core, letters) or _latin_without_vowels(core) or _case_flips(core)


def _mixed_inside(core: str, letters: int) -> bool:
    """Letters mixed with digits or symbols, except a number with a suffix (3rd, 10km) and
    hyphens or apostrophes inside a word."""
    if letters == len(core) or core.replace("-", "").replace("'", "").replace("\u2019", "").isalpha():
        return False
    return not (core[:1].isdigit() and core[-letters:].isalpha())


def _latin_without_vowels(core: str) -> bool:
    latin = all(c.isascii() or c in _VOWELS for c in core if c.isalpha())
    return latin and len(core) >= 4 and not any(c in _VOWELS for c in core) and not core.isupper()


def _case_flips(core: str) -> bool:
    upper_inside = sum(1 for c in core[1:] if c.isupper())
    return 0 < upper_inside < len(core) - 1 and any(c.islower() for c in core[1:])


def text_layer_garbage(text: str) -> float | None:
    """Share of implausible tokens when a page's text looks like a failed OCR layer (letters
    spaced out one by one, or words no language has), else None."""
    tokens = text.split()
    if sum(len(t) for t in tokens) < GARBAGE_MIN_CHARS:
        return None
    singles = sum(1 for t in tokens if len(t) == 1 and t.isalpha())
    bad = singles + sum(1 for t in tokens if _implausible(t))
    share = bad / len(tokens)
    return share if share >= GARBAGE_BAD_SHARE else None


# --- document statistics: body size, heading tiers, running headers/footers -------------


def margin_key(line: Line, page_height: float) -> str | None:
    """A key for a line in the header/footer band; digits collapsed so page numbers match."""
    if line.y1 <= page_height * HEADER_BAND:
        band = "top"
    elif line.y0 >= page_height * (1 - HEADER_BAND):
        band = "bottom"
    else:
        return None
    norm = _SPACES.sub(" ", _DIGITS.sub("#", line.text.lower())).strip()
    return f"{band}:{norm}" if norm else None


def _edge_lines(page: PageText) -> Iterable[Line]:
    """The two top-most and two bottom-most lines: where running headers/footers sit."""
    lines = sorted((ln for b in page.blocks for ln in b.lines), key=lambda ln: ln.y0)
    if len(lines) <= 4:
        return lines
    return lines[:2] + lines[-2:]


@dataclass(slots=True)
class DocStats:
    body_size: float = 0.0
    heading_sizes: tuple[float, ...] = ()  # distinct sizes above body, largest first
    margin_keys: frozenset[str] = frozenset()
    margin_examples: tuple[str, ...] = ()

    def heading_level(self, size: float, bold: bool, text: str, n_lines: int) -> int:
        """0 for body text, else 1..4: larger sizes by tier, then bold lines near body size."""
        if self.body_size <= 0:
            return 0
        larger_font = size >= self.body_size * 1.12 + 0.3
        if not (larger_font or bold):  # the common case, decided before any text scan
            return 0
        if len(text) > 200 or n_lines > 3 or not any(c.isalpha() for c in text):
            return 0
        if larger_font:
            larger = sum(1 for s in self.heading_sizes if s > size + 0.25)
            return min(larger + 1, 3)
        if (
            bold
            and n_lines == 1
            and size >= self.body_size - 0.75
            and len(text) <= 90
            and not text.rstrip().endswith((".", ",", ";"))
        ):
            tiers = len(self.heading_sizes)
            if size > self.body_size + 0.4:  # slightly larger bold: the next level below the tiers
                return min(tiers + 1, 3)
            return max(3, min(tiers + 1, 4))
        return 0


def doc_stats(pages: Sequence[PageText]) -> DocStats:
    """Body font size (most characters), heading size tiers and running header/footer keys."""
    weights: Counter[float] = Counter()
    for page in pages:
        for block in page.blocks:
            for line in block.lines:
                weights[line.size] += len(line.text)
    if not weights:
        return DocStats()
    body = weights.most_common(1)[0][0]
    tiers = sorted((s for s in weights if s >= body * 1.12 + 0.3), reverse=True)

    keys: frozenset[str] = frozenset()
    examples: list[str] = []
    pages_with_text = [p for p in pages if p.has_text]
    if len(pages_with_text) >= 3:
        counts: Counter[str] = Counter()
        sample_text: dict[str, str] = {}
        for page in pages_with_text:
            seen: set[str] = set()
            for line in _edge_lines(page):
                key = margin_key(line, page.height)
                if key and key not in seen:
                    seen.add(key)
                    counts[key] += 1
                    sample_text.setdefault(key, line.text.strip())
        threshold = max(3, int(0.4 * len(pages_with_text) + 0.999))
        repeated = [k for k, n in counts.items() if n >= threshold]
        keys = frozenset(repeated)
        examples = [sample_text[k] for k in repeated]
    return DocStats(body, tuple(tiers), keys, tuple(examples))


def drop_margin_lines(page: PageText, stats: DocStats) -> int:
    """Remove running headers/footers from a page in place; returns how many lines went."""
    if not stats.margin_keys:
        return 0
    dropped = 0
    kept_blocks: list[TextBlock] = []
    for block in page.blocks:
        kept = [ln for ln in block.lines if margin_key(ln, page.height) not in stats.margin_keys]
        dropped += len(block.lines) - len(kept)
        if kept:
            if len(kept) != len(block.lines):
                block.lines = kept
                block.refit()
            kept_blocks.append(block)
    page.blocks = kept_blocks
    return dropped


def drop_lines_inside(page: PageText, boxes: Sequence[tuple[float, float, float, float]]) -> None:
    """Remove lines whose centre lies inside any box (text already emitted as table cells)."""
    if not boxes:
        return
    kept_blocks: list[TextBlock] = []
    for block in page.blocks:
        kept = []
        for ln in block.lines:
            cx, cy = (ln.x0 + ln.x1) / 2, (ln.y0 + ln.y1) / 2
            if not any(b[0] - 1 <= cx <= b[2] + 1 and b[1] - 1 <= cy <= b[3] + 1 for b in boxes):
                kept.append(ln)
        if kept:
            if len(kept) != len(block.lines):
                block.lines = kept
                block.refit()
            kept_blocks.append(block)
    page.blocks = kept_blocks


# --- reading order -------------------------------------------------------------------------


def _weight(it: Item) -> int:
    return len(it.lines) if isinstance(it, TextBlock) else it.table.n_rows


def _gutters(items: Sequence[Item]) -> list[tuple[float, float]]:
    """Candidate column gutters: x-ranges (at least 6 pt wide) that almost no text covers.

    A sweep over the x-extents of all but page-wide items, each weighted by its line count:
    a gutter is where coverage drops to a fifth of the peak, so one title line bridging two
    columns of many lines does not hide the gutter (the title then counts as spanning).
    """
    x0 = min(it.x0 for it in items)
    x1 = max(it.x1 for it in items)
    width = x1 - x0
    events: list[tuple[float, int]] = []
    for it in items:
        if it.x1 - it.x0 < 0.7 * width:
            w = _weight(it)
            events.append((it.x0, w))
            events.append((it.x1, -w))
    if len(events) < 4:
        return []
    events.sort()
    coverage = peak = 0
    steps: list[tuple[float, int]] = []  # coverage from this x on
    for x, delta in events:
        coverage += delta
        peak = max(peak, coverage)
        if steps and steps[-1][0] == x:
            steps[-1] = (x, coverage)
        else:
            steps.append((x, coverage))
    limit = peak / 5
    gutters: list[tuple[float, float]] = []
    seen_text = False
    start: float | None = None
    for x, cov in steps:
        if cov > limit:
            if start is not None and seen_text and x - start >= 6.0:
                gutters.append((start, x))
            start = None
            seen_text = True
        elif start is None:
            start = x
    return gutters


def _by_rows(items: Iterable[Item]) -> list[Item]:
    return sorted(items, key=lambda it: (round(it.y0), it.x0))


def _order_run(run: list[Item], gutters: list[tuple[float, float]]) -> list[Item]:
    """Order items between two spanning items: column by column if columns sit side by side."""
    if len(run) < 2:
        return run
    mids = [(lo + hi) / 2 for lo, hi in gutters]
    columns: dict[int, list[Item]] = {}
    for it in run:
        cx = (it.x0 + it.x1) / 2
        columns.setdefault(sum(1 for m in mids if cx > m), []).append(it)
    col_list = [columns[k] for k in sorted(columns)]
    side_by_side = any(
        min(a.y1, b.y1) - max(a.y0, b.y0) > 2
        for i, a_col in enumerate(col_list)
        for b_col in col_list[i + 1 :]
        for a in a_col
        for b in b_col
    )
    if not side_by_side:
        return _by_rows(run)
    return [it for col in col_list for it in sorted(col, key=lambda it: (it.y0, it.x0))]


def reading_order(items: Sequence[Item]) -> list[Item]:
    """Items in reading order.

    Gutters are found from narrow items; items crossing a gutter (titles, wide tables,
    full-width paragraphs) split the page into runs; within a run, side-by-side columns
    are read left to right, each top to bottom.
    """
    if not items:
        return []
    gutters = _gutters(items)
    if not gutters:
        return _by_rows(items)
    out: list[Item] = []
    run: list[Item] = []
    for it in sorted(items, key=lambda it: (it.y0, it.x0)):
        if any(it.x0 < lo - 1 and it.x1 > hi + 1 for lo, hi in gutters):
            out.extend(_order_run(run, gutters))
            run = []
            out.append(it)
        else:
            run.append(it)
    out.extend(_order_run(run, gutters))
    return out


# --- lines -> blocks ---------------------------------------------------------------------------


def list_marker(text: str) -> tuple[str, bool, str] | None:
    """(marker, ordered, rest) when the line starts with a bullet or an enumerator."""
    stripped = text.lstrip()
    if not stripped:
        return None
    first = stripped[0]
    if first in BULLETS:
        rest = stripped[1:]
        if first in AMBIGUOUS_BULLETS and first != "·" and not rest.startswith((" ", "\t")):
            return None
        rest = rest.strip()
        return (first, False, rest) if rest else None
    m = _NUMBERED.match(stripped)
    if m:
        return m.group(1), True, stripped[m.end() :].strip()
    return None


# Marks a hyphen at a line end before a lower-case word: "extra-|ordinary" (hyphenation) or
# "dual-|encoder" (a compound). Which one is decided once the whole document's words are
# known (`resolve_hyphens`); a Unicode noncharacter (not whitespace), never in real text.
LINE_HYPHEN = "\ufdd0"
_JOINT = re.compile(r"(\w+)\ufdd0(\w+)")
_WORDS = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


def _words(text: str) -> list[str]:
    return text.split()


# Halves that only ever form closed words ("how-ever", "some-thing", "with-out"): joined
# even when both halves are words of the document.
_CLOSED_LEFT = frozenset(
    _words(
        "a an the be by in on at to up of for how what when where who why with out over under "
        "some any every no not can may there here him her it its my your our their other after "
        "before down through never all which this that these those thus there where be re un non "
        "pre dis"
    )
)
_CLOSED_RIGHT = frozenset(
    _words("ever thing things out self selves one body where ward wards wise less ness ment")
)


def join_line(text: str, nxt: str) -> str:
    """Append a line to running text, undoing end-of-line hyphenation."""
    nxt = nxt.strip()
    if not text:
        return nxt
    if text.endswith("\xad"):
        return text[:-1] + nxt
    if text.endswith("-") and len(text) > 1 and text[-2].isalnum():
        # "extra-" + "ordinary": a word split by hyphenation, or "dual-" + "encoder": a
        # compound (marked, decided later); "COVID-" + "19" or "state-of-the-" + "Art": a
        # real hyphen at the line end, kept, without a space.
        return text[:-1] + LINE_HYPHEN + nxt if nxt[:1].islower() else text + nxt
    return f"{text} {nxt}"


def _keeps_hyphen(left: str, right: str, words: frozenset[str] | set[str]) -> bool:
    """Whether "left-" at a line end + "right" is a hyphenated compound, from the document's
    own words: the hyphenated form or the closed form written elsewhere decides; else a
    compound when both halves are words there."""
    lo, ro = left.lower(), right.lower()
    if f"{lo}-{ro}" in words:
        return True
    if lo + ro in words:
        return False
    if lo in _CLOSED_LEFT or ro in _CLOSED_RIGHT or len(lo) < 2 or len(ro) < 3:
        return False
    return lo in words and ro in words


def resolve_hyphens(blocks: list[Block]) -> list[Block]:
    """Settle every line-end hyphen `join_line` marked: kept in compounds ("dual-encoder"),
    removed in words split by hyphenation ("extraordinary")."""
    marked = [i for i, b in enumerate(blocks) if LINE_HYPHEN in b.text]
    if not marked:
        return blocks
    corpus = "\n".join(b.text for b in blocks if b.text)
    # The marked joints themselves are not evidence: their halves are left out.
    words = set(_WORDS.findall(_JOINT.sub(" ", corpus).lower()))
    for w in [w for w in words if "-" in w]:
        words.update(w.split("-"))

    def settle(m: re.Match[str]) -> str:
        left, right = m.group(1), m.group(2)
        return f"{left}-{right}" if _keeps_hyphen(left, right, words) else left + right

    out = list(blocks)
    for i in marked:
        b = out[i]
        text = _JOINT.sub(settle, b.text).replace(LINE_HYPHEN, "")
        out[i] = replace(b, text=text)
    return out


@dataclass(slots=True)
class ListState:
    """Carries list nesting across blocks and pages: the x of the current list's top level."""

    base_x: float | None = None

    def level(self, x0: float) -> int:
        if self.base_x is None or x0 < self.base_x - 2:
            self.base_x = x0
            return 0
        return min(int((x0 - self.base_x + 4) / INDENT_STEP), 6)


@dataclass(slots=True)
class _Unit:
    kind: BlockKind
    text: str
    level: int
    x0: float
    last: Line
    n_lines: int = 1
    ordered: bool = False
    marker: str | None = None
    size: float = 0.0
    bold: bool = False


def _squash(text: str) -> str:
    """Collapse whitespace runs; most text has none, so check before the regex."""
    if "  " in text or not text.isprintable():  # any whitespace but " " is non-printable
        return _SPACES.sub(" ", text).strip()
    return text.strip()


def _finish(unit: _Unit, stats: DocStats, page_no: int) -> Block:
    text = _squash(unit.text)
    if unit.kind is BlockKind.HEADING:
        level = stats.heading_level(unit.size, unit.bold, text, unit.n_lines)
        if level:
            return Block(BlockKind.HEADING, text=text, level=level, page=page_no)
        return Block(BlockKind.PARAGRAPH, text=text, page=page_no)
    if unit.kind is BlockKind.LIST_ITEM:
        return Block(
            BlockKind.LIST_ITEM,
            text=text,
            level=unit.level,
            ordered=unit.ordered,
            marker=unit.marker,
            page=page_no,
        )
    return Block(BlockKind.PARAGRAPH, text=text, page=page_no)


def _starts_item(unit: _Unit | None, marker: tuple[str, bool, str], same_para: bool) -> bool:
    """Whether a marker line starts a list item rather than continuing a running sentence."""
    mark, ordered, _ = marker
    if unit is None or unit.kind is not BlockKind.PARAGRAPH or not same_para:
        return True
    if not ordered and mark not in AMBIGUOUS_BULLETS:
        return True
    return unit.text.rstrip().endswith(_SENTENCE_END)


# A dot leader: four or more dots (". . . ." too) between an entry and its page number.
_LEADER = re.compile(r"(?:\.\s?){4,}|(?:\u2026\s?){2,}")


def leader_entry(text: str) -> str | None:
    """ "Introduction ........ 3" -> "Introduction ... 3" (a table-of-contents entry), else None."""
    if "...." not in text and ". . . ." not in text and "\u2026\u2026" not in text:
        return None
    m = _LEADER.search(text)
    if m is None:
        return None
    title, target = text[: m.start()].strip(), text[m.end() :].strip()
    if not target or len(target) > 12 or " " in target or not any(c.isalpha() for c in title):
        return None
    return f"{title} ... {target}"


def text_blocks(block: TextBlock, stats: DocStats, lists: ListState, page_no: int) -> list[Block]:
    """One text block's lines as headings, list items and paragraphs; table-of-contents
    entries (dot leaders) are list items of their own."""
    out: list[Block] = []
    unit: _Unit | None = None
    for line in block.lines:
        text = line.text.strip()
        entry = leader_entry(text)
        if entry is not None:
            if unit is not None:
                out.append(_finish(unit, stats, page_no))
                unit = None
            lists.base_x = None
            out.append(Block(BlockKind.LIST_ITEM, text=entry, page=page_no))
            continue
        level = stats.heading_level(line.size, line.bold, text, 1)
        marker = None if level else list_marker(text)
        if unit is not None:
            same_para = line.y0 - unit.last.y1 < 0.7 * max(line.size, 1.0)
            if marker is not None and not _starts_item(unit, marker, same_para):
                marker = None
            if same_para and _continues_unit(unit, line, level, marker, stats):
                unit.text = join_line(unit.text, text)
                unit.n_lines += 1
                unit.last = line
                continue
            out.append(_finish(unit, stats, page_no))
        unit = _new_unit(line, text, level, marker, lists)
    if unit is not None:
        out.append(_finish(unit, stats, page_no))
    return out


def _continues_unit(
    unit: _Unit, line: Line, level: int, marker: tuple[str, bool, str] | None, stats: DocStats
) -> bool:
    """Whether a line close under `unit` is more of it (not a new heading, item or paragraph)."""
    if unit.kind is BlockKind.HEADING:
        # Lines of one heading: same size; weight only matters at body size.
        return bool(
            level
            and abs(line.size - unit.size) < 0.3
            and (line.bold == unit.bold or line.size > stats.body_size + 0.4)
        )
    if level or marker is not None:
        return False
    indented = (
        unit.kind is BlockKind.PARAGRAPH
        and line.x0 > unit.last.x0 + line.size
        and unit.text.rstrip().endswith(_SENTENCE_END)
    )
    return not indented and (unit.kind is BlockKind.PARAGRAPH or line.x0 >= unit.x0 - 2)


def _new_unit(
    line: Line, text: str, level: int, marker: tuple[str, bool, str] | None, lists: ListState
) -> _Unit:
    if level:
        lists.base_x = None
        return _Unit(BlockKind.HEADING, text, level, line.x0, line, size=line.size, bold=line.bold)
    if marker is not None:
        mark, ordered, rest = marker
        return _Unit(
            BlockKind.LIST_ITEM, rest, lists.level(line.x0), line.x0, line, ordered=ordered, marker=mark
        )
    lists.base_x = None
    return _Unit(BlockKind.PARAGRAPH, text, 0, line.x0, line)


def _continues(prev: TextBlock, cur: TextBlock) -> bool:
    """Whether `cur` directly continues `prev` in one column (MuPDF split one paragraph)."""
    last = prev.lines[-1]
    gap = cur.y0 - prev.y1
    return (
        -2.0 <= gap < 0.7 * max(last.size, 1.0)
        and min(prev.x1, cur.x1) - max(prev.x0, cur.x0) > 0
        and abs(cur.x0 - prev.x0) < 3 * max(last.size, 1.0)
    )


def _code_continues(prev: TextBlock, cur: TextBlock) -> bool:
    """Whether `cur` continues a listing in `prev`: monospaced lines right below, indented
    freely (MuPDF makes a new block at each change of indentation)."""
    last, first = prev.lines[-1], cur.lines[0]
    gap = cur.y0 - prev.y1
    return (
        last.mono
        and first.mono
        and -2.0 <= gap < 1.2 * max(last.size, 1.0)
        and min(prev.x1, cur.x1) > max(prev.x0, cur.x0) - 40 * last.size
    )


def _columns(rows: Sequence[Line]) -> list[tuple[float, float]]:
    """Column x-intervals: the union of overlapping cell extents over all rows."""
    spans = sorted((c[0], c[1]) for row in rows for c in row.cells)
    columns: list[tuple[float, float]] = []
    for lo, hi in spans:
        if columns and lo <= columns[-1][1] + 2.0:
            columns[-1] = (columns[-1][0], max(columns[-1][1], hi))
        else:
            columns.append((lo, hi))
    return columns


def text_table(rows: Sequence[Line], page_no: int) -> TableItem | None:
    """An unruled table from consecutive rows of gap-separated cells, if they align (a table
    of contents, with dot leaders, is not a table)."""
    if len(rows) < MIN_TEXT_TABLE_ROWS or any(leader_entry(r.text.strip()) for r in rows):
        return None
    columns = _columns(rows)
    if not 2 <= len(columns) <= 30:
        return None
    grid: list[tuple[str, ...]] = []
    for row in rows:
        cells = [""] * len(columns)
        for x0, x1, text in row.cells:
            mid = (x0 + x1) / 2
            col = next((i for i, (lo, hi) in enumerate(columns) if lo - 2 <= mid <= hi + 2), None)
            if col is None:
                return None
            cells[col] = f"{cells[col]} {text}".strip() if cells[col] else text
        grid.append(tuple(cells))
    if sum(1 for r in grid if sum(1 for c in r if c) >= 2) < MIN_TEXT_TABLE_ROWS:
        return None
    table = Table(rows=tuple(grid), header_rows=1, page=page_no)
    return TableItem(
        table,
        min(r.x0 for r in rows),
        min(r.y0 for r in rows),
        max(r.x1 for r in rows),
        max(r.y1 for r in rows),
    )


def split_text_tables(items: Sequence[Item], page_no: int) -> list[Item]:
    """Cut runs of consecutive gap-separated rows out of the text as tables.

    Runs may cross text blocks (MuPDF often makes each table row its own block); lines
    outside a run keep their blocks, and a run that does not align stays text.
    """
    out: list[Item] = []
    run: list[Line] = []

    def flush_run() -> None:
        if run:
            table = text_table(run, page_no)
            if table is not None:
                out.append(table)
            else:
                block = TextBlock(list(run))
                block.refit()
                out.append(block)
            run.clear()

    for item in items:
        if isinstance(item, TableItem):
            flush_run()
            out.append(item)
            continue
        if not any(ln.cells for ln in item.lines):
            flush_run()
            out.append(item)
            continue
        pending: list[Line] = []
        for line in item.lines:
            if line.cells:
                adjacent = bool(run) and line.y0 > run[-1].y0 and line.y0 - run[-1].y1 < 1.5 * line.size
                if not adjacent:
                    flush_run()
                if pending:
                    block = TextBlock(pending)
                    block.refit()
                    out.append(block)
                    pending = []
                run.append(line)
            else:
                flush_run()
                pending.append(line)
        if pending:
            block = TextBlock(pending)
            block.refit()
            out.append(block)
    flush_run()
    return out


def code_text(lines: Sequence[Line]) -> str:
    """Monospaced lines as code: indentation from each line's x (one column = one character
    width) plus its own leading spaces; blank lines where the gap between lines says so."""
    widths = sorted((ln.x1 - ln.x0) / len(ln.text) for ln in lines if len(ln.text) >= 4)
    char_w = widths[len(widths) // 2] if widths else 0.6 * lines[0].size
    char_w = max(char_w, 0.3 * lines[0].size)
    base = min(ln.x0 for ln in lines)
    cols = [round((ln.x0 - base) / char_w) + len(ln.text) - len(ln.text.lstrip(" ")) for ln in lines]
    shift = min(cols)
    pitch = min((b.y0 - a.y0 for a, b in pairwise(lines) if b.y0 > a.y0), default=0.0)
    out: list[str] = []
    for i, (ln, col) in enumerate(zip(lines, cols, strict=True)):
        if i and pitch > 0:
            out.extend([""] * min(max(round((ln.y0 - lines[i - 1].y0) / pitch) - 1, 0), 2))
        out.append(" " * (col - shift) + ln.text.strip(" ").rstrip())
    return "\n".join(out)


_CODE_SYMBOLS = frozenset("{}[]()<>=;:#/\\_$@|&*+%^~`'\"")


def looks_like_code(lines: Sequence[Line]) -> bool:
    """Monospaced lines with the structure of code, not typewritten prose: symbols that prose
    rarely uses, or short lines at several indentations."""
    if len(lines) < MIN_CODE_LINES:
        return False
    chars = "".join(ln.text for ln in lines)
    visible = sum(1 for c in chars if not c.isspace())
    symbols = sum(1 for c in chars if c in _CODE_SYMBOLS)
    if visible and symbols >= 0.04 * visible:
        return True
    starts = {(round(ln.x0), len(ln.text) - len(ln.text.lstrip(" "))) for ln in lines}
    return len(starts) >= 2 and visible / len(lines) < 40


def _split_code(block: TextBlock) -> list[TextBlock | list[Line]]:
    """A text block cut into runs of code (lists of monospaced lines) and other text."""
    if not any(ln.mono for ln in block.lines):
        return [block]
    out: list[TextBlock | list[Line]] = []
    text: list[Line] = []
    code: list[Line] = []

    def flush_code() -> None:
        if looks_like_code(code):
            if text:
                part = TextBlock(list(text))
                part.refit()
                out.append(part)
                text.clear()
            out.append(list(code))
        else:
            text.extend(code)
        code.clear()

    for line in block.lines:
        if line.mono:
            code.append(line)
        else:
            flush_code()
            text.append(line)
    flush_code()
    if text:
        part = TextBlock(text)
        part.refit()
        out.append(part)
    return out


def _margin_split(
    page: PageText, stats: DocStats
) -> tuple[list[TextBlock], list[TextBlock], list[TextBlock]]:
    """(top band, body, bottom band): blocks in a band whose text is all smaller than body text."""
    if stats.body_size <= 0:
        return [], page.blocks, []
    small = stats.body_size - 0.25
    top: list[TextBlock] = []
    body: list[TextBlock] = []
    bottom: list[TextBlock] = []
    for block in page.blocks:
        if block.y0 >= page.height * (1 - HEADER_BAND) and all(ln.size < small for ln in block.lines):
            bottom.append(block)
        elif block.y1 <= page.height * HEADER_BAND and all(ln.size < small for ln in block.lines):
            top.append(block)
        else:
            body.append(block)
    return top, body, bottom


def _join_heading_runs(blocks: list[Block]) -> list[Block]:
    """A heading MuPDF cut into two blocks ("Sustainability" / "goals and targets"): the
    part that starts in lower case continues the heading before it."""
    out: list[Block] = []
    for b in blocks:
        last = out[-1] if out else None
        if (
            b.kind is BlockKind.HEADING
            and last is not None
            and last.kind is BlockKind.HEADING
            and last.level == b.level
            and b.text[:1].islower()
        ):
            out[-1] = replace(last, text=f"{last.text} {b.text}")
        else:
            out.append(b)
    return out


def build_blocks(
    page: PageText, tables: Sequence[TableItem], stats: DocStats, lists: ListState, page_no: int
) -> list[Block]:
    """Everything on one page in reading order (the caller adds the PAGE_BREAK). Small print
    in the top and bottom bands (running heads, footers, footnotes) stays out of the body's
    flow: before and after it, never a table."""
    top, body, bottom = _margin_split(page, stats)
    items: list[Item] = [*body, *tables]
    merged: list[Item] = list(_by_rows(top))
    for item in [*split_text_tables(reading_order(items), page_no), *_by_rows(bottom)]:
        prev = merged[-1] if merged else None
        if (
            isinstance(item, TextBlock)
            and isinstance(prev, TextBlock)
            and (_continues(prev, item) or _code_continues(prev, item))
        ):
            prev.lines.extend(item.lines)
            prev.refit()
        else:
            merged.append(item)
    out: list[Block] = []
    for item in merged:
        if isinstance(item, TableItem):
            lists.base_x = None
            out.append(Block(BlockKind.TABLE, table=item.table, page=page_no))
            continue
        for part in _split_code(item):
            if isinstance(part, TextBlock):
                out.extend(text_blocks(part, stats, lists, page_no))
                continue
            lists.base_x = None
            code = code_text(part)
            last = out[-1] if out else None
            if last is not None and last.kind is BlockKind.CODE:  # one listing split by a blank line
                out[-1] = replace(last, text=f"{last.text}\n\n{code}")
            else:
                out.append(Block(BlockKind.CODE, text=code, page=page_no))
    out = _join_heading_runs(out)
    if page.rotated:
        text = " ".join(ln.text.strip() for ln in page.rotated)
        out.append(Block(BlockKind.PARAGRAPH, text=_SPACES.sub(" ", text).strip(), page=page_no))
    return out
