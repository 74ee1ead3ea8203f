"""OCR engine shared by the image provider and the PDF provider's scanned pages.

RapidOCR (PaddleOCR's PP-OCRv4 detection + recognition models run by onnxruntime) ships its
models inside the `rapidocr-onnxruntime` wheel, so nothing is downloaded at run time. Those
models read Latin script and Chinese: they serve no `language`, Latin-script languages and
Chinese. Other languages (Cyrillic, Greek, Arabic, ...) go to Tesseract with Debian's language
packs (`tesseract-ocr-<code>`), through pytesseract; `script_warning` says when the recognised
text is not in the requested language's script.

The engine is created once per process (lazily, cached): it is a read-only model, and building
it costs ~0.3 s.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from percolate_reading.parse.cpus import thread_budget
from percolate_reading.parse.providers.ocr_spacing import respace

if TYPE_CHECKING:
    from PIL import Image

ENGINE_NAME = "rapidocr-onnxruntime (PP-OCRv4)"
TESSERACT_ENGINE_NAME = "tesseract"

# ISO 639-1 (or Tesseract's own code) -> Tesseract traineddata, for scripts RapidOCR cannot read.
TESSERACT_LANGUAGES = {
    "ru": "rus",
    "uk": "ukr",
    "be": "bel",
    "bg": "bul",
    "sr": "srp",
    "mk": "mkd",
    "kk": "kaz",
    "el": "ell",
    "ar": "ara",
    "fa": "fas",
    "he": "heb",
    "hi": "hin",
    "th": "tha",
    "ja": "jpn",
    "ko": "kor",
    "ka": "kat",
    "hy": "hye",
}
# The script each language is written in (Unicode character-name prefixes); Latin otherwise.
_SCRIPTS = {
    **dict.fromkeys(("ru", "uk", "be", "bg", "sr", "mk", "kk"), "CYRILLIC"),
    "el": "GREEK",
    "ar": "ARABIC",
    "fa": "ARABIC",
    "he": "HEBREW",
    "hi": "DEVANAGARI",
    "th": "THAI",
    "ja": "CJK",
    "ko": "HANGUL",
    "ka": "GEORGIAN",
    "hy": "ARMENIAN",
    "zh": "CJK",
    "ch": "CJK",
}
_TESS_TO_ISO = {v: k for k, v in TESSERACT_LANGUAGES.items()}
# Latin-script languages, for a Tesseract run that reads them next to another script
# ("en,ru": eng+rus). Alone, they stay with RapidOCR.
_TESSERACT_LATIN = {
    "en": "eng",
    "de": "deu",
    "fr": "fra",
    "es": "spa",
    "it": "ita",
    "pt": "por",
    "nl": "nld",
    "pl": "pol",
    "cs": "ces",
    "sv": "swe",
    "da": "dan",
    "fi": "fin",
    "tr": "tur",
}


def _iso(language: str | None) -> str | None:
    if not language:
        return None
    code = language.strip().lower().replace("_", "-").split("-")[0]
    return _TESS_TO_ISO.get(code, code)


def _requested(language: str | None, languages: Sequence[str]) -> tuple[str, ...]:
    """The request's OCR languages (`ocr_languages`), else the one `language`, else none."""
    if languages:
        return tuple(languages)
    return (language,) if language else ()


def tesseract_codes(language: str | None, languages: Sequence[str] = ()) -> str | None:
    """Tesseract's language argument ("rus", "eng+rus") when a requested language is in a
    script RapidOCR cannot read; None when RapidOCR serves them all."""
    isos = [_iso(lang) or "" for lang in _requested(language, languages)]
    if not any(iso in TESSERACT_LANGUAGES for iso in isos):
        return None
    codes = [TESSERACT_LANGUAGES.get(iso) or _TESSERACT_LATIN.get(iso) or iso for iso in isos]
    return "+".join(dict.fromkeys(codes))


def engine_for(language: str | None, languages: Sequence[str] = ()) -> str:
    """Which engine reads `language` (or all of `languages`)."""
    return TESSERACT_ENGINE_NAME if tesseract_codes(language, languages) else ENGINE_NAME


def _script(ch: str) -> str:
    import unicodedata

    name = unicodedata.name(ch, "")
    if name.startswith(("CJK", "HIRAGANA", "KATAKANA")):
        return "CJK"
    return name.split(" ", 1)[0]


def script_warning(lines: list[OcrLine], language: str | None, languages: Sequence[str] = ()) -> str | None:
    """A warning when under half of the recognised letters are in the requested languages'
    scripts (Cyrillic text read as Latin look-alikes, for example)."""
    requested = _requested(language, languages)
    if not requested:
        return None
    wants = {_SCRIPTS.get(_iso(lang) or "", "LATIN") for lang in requested}
    letters = [c for ln in lines for c in ln.text if c.isalpha()]
    if len(letters) < 10:
        return None
    share = sum(1 for c in letters if _script(c) in wants) / len(letters)
    if share >= 0.5:
        return None
    names = " or ".join(sorted(w.title() for w in wants))
    shown = ",".join(requested)
    return (
        f"OCR language {shown!r} expects {names} script but only {share:.0%} of the "
        "recognised letters are; the text may be misread"
    )


@dataclass(frozen=True)
class OcrLine:
    """One recognised text line: `bbox` is (x0, y0, x1, y1) in the image's pixels."""

    text: str
    bbox: tuple[float, float, float, float]
    confidence: float

    @property
    def height(self) -> float:
        return self.bbox[3] - self.bbox[1]

    @property
    def center_y(self) -> float:
        return (self.bbox[1] + self.bbox[3]) / 2


# Memory (issue 14, bench/ocr_memory.py): the detector's activations grow with the image's
# pixels (a 200 dpi A4 page, 1408x1984 after RapidOCR's 2000-pixel cap, peaked ~540 MB over
# the process's base), and the recogniser's with the batch's padded width (six full-width
# lines side by side). Detection therefore runs on horizontal bands of at most DET_BAND_PIXELS,
# each with DET_BAND_MARGIN rows of context above and below that are cut off again, and the
# probability maps are stitched before RapidOCR's own post-processing; recognition batches
# lines up to REC_BATCH_WIDTH padded pixels.
DET_BAND_PIXELS = 400_000
DET_BAND_MARGIN = 64  # two strides of the detector's deepest features
REC_BATCH_WIDTH = 2_000  # one full-width line of a 200 dpi page


def _banded_pred(det: Any, image: Any) -> Any:
    """The detector's probability map of `image` (BGR), computed band by band at scale 1
    (sides rounded to multiples of 32, as RapidOCR's own preprocessing does)."""
    import cv2
    import numpy as np

    h, w = image.shape[:2]
    rh, rw = max(32, round(h / 32) * 32), max(32, round(w / 32) * 32)
    resized = cv2.resize(image, (rw, rh)) if (rh, rw) != (h, w) else image
    own = max(32, (DET_BAND_PIXELS // rw - 2 * DET_BAND_MARGIN) // 32 * 32)
    mean = np.asarray(det.mean, dtype=np.float32)
    std = np.asarray(det.std, dtype=np.float32)
    pred = np.empty((1, 1, rh, rw), dtype=np.float32)
    for top in range(0, rh, own):
        bottom = min(rh, top + own)
        lo, hi = max(0, top - DET_BAND_MARGIN), min(rh, bottom + DET_BAND_MARGIN)
        band = (resized[lo:hi].astype(np.float32) / 255.0 - mean) / std
        out = det.infer(np.ascontiguousarray(band.transpose(2, 0, 1)[None]))[0]
        pred[:, :, top:bottom] = out[:, :, top - lo : bottom - lo]
    return pred


def _banded_detection(engine: Any, image: Any) -> tuple[Any, float]:
    """RapidOCR's `auto_text_det`, in bands when the image is large and at scale 1 anyway
    (smaller or narrower images keep the library's own path, which may upscale them)."""
    import time

    h, w = image.shape[:2]
    det = engine.text_det
    if h * w <= DET_BAND_PIXELS or min(h, w) < det.limit_side_len:
        library: tuple[Any, float] = type(engine).auto_text_det(engine, image)  # not this override
        return library
    t0 = time.perf_counter()
    boxes, _scores = det.postprocess_op(_banded_pred(det, image), (h, w))
    boxes = det.filter_tag_det_res(boxes, (h, w))
    if boxes is None or len(boxes) < 1:
        return None, 0.0
    return engine.sorted_boxes(boxes), time.perf_counter() - t0


class _WidthBudgetRecognizer:
    """RapidOCR's recogniser fed groups of line crops whose padded width (the batch's widest
    aspect ratio times its size) stays within REC_BATCH_WIDTH; results in input order, with
    the word spaces the model dropped put back (ocr_spacing)."""

    def __init__(self, recognizer: Any) -> None:
        self.recognizer = recognizer
        _channels, img_h, img_w = recognizer.rec_image_shape[:3]
        self.height = img_h
        self.min_ratio = img_w / img_h

    def __call__(self, crops: Any, return_word_box: bool = False) -> tuple[list[Any], float]:
        if not isinstance(crops, list):
            crops = [crops]
        ratios = [max(self.min_ratio, c.shape[1] / max(1, c.shape[0])) for c in crops]
        order = sorted(range(len(crops)), key=ratios.__getitem__)
        results: list[Any] = [("", 0.0)] * len(crops)
        elapsed = 0.0
        group: list[int] = []

        def flush() -> None:
            nonlocal elapsed
            # Always with the characters' CTC steps: they place the spaces the model drops.
            out, seconds = self.recognizer([crops[i] for i in group], True)
            elapsed += seconds
            for i, res in zip(group, out, strict=True):
                text = respace(crops[i], res[0], res[2])
                results[i] = (text, res[1], res[2]) if return_word_box else (text, res[1])
            group.clear()

        batch = self.recognizer.rec_batch_num
        for i in order:
            widest = ratios[i] * self.height  # ascending: the newest is the widest
            if group and (len(group) == batch or (len(group) + 1) * widest > REC_BATCH_WIDTH):
                flush()
            group.append(i)
        if group:
            flush()
        return results, elapsed


@functools.lru_cache(maxsize=1)
def _engine() -> Any:
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as exc:
        raise ImportError(
            "OCR needs rapidocr-onnxruntime: install percolate-reading[ocr] (or disable OCR)",
            name=exc.name,
        ) from exc
    threads = thread_budget()
    if threads is None:
        engine = RapidOCR()
    else:
        # The parse's share of the CPUs (parse.cpus); one inter-op thread: these models are
        # a chain of operators, nothing runs beside another.
        engine = RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1)
        with contextlib.suppress(ImportError, AttributeError):
            import cv2  # RapidOCR's image steps: OpenCV's pool is sized to the cores too

            cv2.setNumThreads(threads)
    # The two memory-bounded stages replace the library's on this instance (see above).
    engine.auto_text_det = functools.partial(_banded_detection, engine)
    engine.text_rec = _WidthBudgetRecognizer(engine.text_rec)
    return engine


def to_8bit(image: Image.Image) -> Image.Image:
    """RGB or L, as the models were trained on. 16/32-bit greyscale is scaled, not clipped
    (Pillow's own convert() clips everything above 255 to white)."""
    if image.mode in ("RGB", "L"):
        return image
    if image.mode.startswith("I") or image.mode == "F":
        import numpy as np
        from PIL import Image as PILImage

        a = np.asarray(image, dtype=np.float64)
        top = float(a.max()) if a.size else 0.0
        scale = 255.0 / (65535.0 if top > 255 else 255.0) if top > 0 else 1.0
        return PILImage.fromarray(np.clip(a * scale, 0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Transparent pixels would turn black; text drawn on nothing is read on white.
        from PIL import Image as PILImage

        rgba = image.convert("RGBA")
        white = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PILImage.alpha_composite(white, rgba).convert("RGB")
    # Palette, CMYK, bilevel: flatten.
    return image.convert("RGB")


def _tesseract(image: Image.Image, code: str) -> list[OcrLine]:
    """Tesseract's words grouped into its own lines, confidence 0..1."""
    try:
        import pytesseract
    except ImportError as exc:
        raise ImportError(
            "OCR of this language needs pytesseract: install percolate-reading[ocr]", name=exc.name
        ) from exc
    try:
        data = pytesseract.image_to_data(to_8bit(image), lang=code, output_type=pytesseract.Output.DICT)
    except pytesseract.TesseractNotFoundError as exc:
        raise ImportError("OCR of this language needs Tesseract: apt-get install tesseract-ocr") from exc
    except pytesseract.TesseractError as exc:
        if "Failed loading language" in str(exc) or "traineddata" in str(exc):
            raise ImportError(
                f"OCR in {code!r} needs Tesseract's language data: apt-get install tesseract-ocr-{code}"
            ) from exc
        raise RuntimeError(f"tesseract failed: {exc}") from exc
    grouped: dict[tuple[int, int, int], list[int]] = {}
    for i, word in enumerate(data["text"]):
        if str(word).strip() and float(data["conf"][i]) >= 0:
            grouped.setdefault((data["block_num"][i], data["par_num"][i], data["line_num"][i]), []).append(i)
    lines: list[OcrLine] = []
    for idx in grouped.values():
        x0 = min(data["left"][i] for i in idx)
        y0 = min(data["top"][i] for i in idx)
        x1 = max(data["left"][i] + data["width"][i] for i in idx)
        y1 = max(data["top"][i] + data["height"][i] for i in idx)
        text = " ".join(str(data["text"][i]).strip() for i in idx)
        conf = sum(float(data["conf"][i]) for i in idx) / len(idx) / 100
        lines.append(OcrLine(text, (float(x0), float(y0), float(x1), float(y1)), round(conf, 4)))
    return reading_order(lines)


def recognize_image(
    image: Image.Image, language: str | None = None, languages: Sequence[str] = ()
) -> list[OcrLine]:
    """OCR a decoded Pillow image; lines come back in reading order. Languages in scripts
    the RapidOCR models cannot read go to Tesseract (see the module docstring); `languages`
    (the request's ocr_languages) overrides `language` and may name several."""
    code = tesseract_codes(language, languages)
    if code is not None:
        return _tesseract(image, code)
    import numpy as np

    return _rapid(np.asarray(to_8bit(image)))


def recognize_pixels(rgb: Any, language: str | None = None, languages: Sequence[str] = ()) -> list[OcrLine]:
    """OCR an RGB (h, w, 3) or greyscale (h, w) uint8 array, such as a PyMuPDF pixmap's
    samples seen through numpy, without an encoded copy; lines in reading order."""
    code = tesseract_codes(language, languages)
    if code is not None:
        from PIL import Image

        return _tesseract(Image.fromarray(rgb), code)
    return _rapid(rgb)


def _rapid(pixels: Any) -> list[OcrLine]:
    import cv2

    # RapidOCR reads arrays as BGR (OpenCV's order); greyscale it expands itself.
    image = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if pixels.ndim == 3 else pixels
    result, _elapsed = _engine()(image)
    lines: list[OcrLine] = []
    for box, text, score in result or ():
        xs = [float(p[0]) for p in box]
        ys = [float(p[1]) for p in box]
        text = str(text).strip()
        if text:
            lines.append(OcrLine(text, (min(xs), min(ys), max(xs), max(ys)), float(score)))
    return reading_order(lines)


def recognize(image_png: bytes, language: str | None = None, languages: Sequence[str] = ()) -> list[OcrLine]:
    """OCR an encoded image (PNG, or anything Pillow decodes); lines in reading order."""
    from PIL import Image

    with Image.open(io.BytesIO(image_png)) as img:
        img.load()
        return recognize_image(img, language, languages)


def _rows(lines: list[OcrLine]) -> list[OcrLine]:
    """Top to bottom, and left to right within a row of vertically overlapping boxes."""
    rows: list[list[OcrLine]] = []
    for line in sorted(lines, key=lambda ln: ln.center_y):
        if rows:
            row = rows[-1]
            ref = row[0]
            # Same row when the centres are closer than half the smaller box's height.
            if abs(line.center_y - ref.center_y) < 0.5 * min(line.height, ref.height):
                row.append(line)
                continue
        rows.append([line])
    return [ln for row in rows for ln in sorted(row, key=lambda ln: ln.bbox[0])]


def _gaps(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Empty stretches between the union of 1-D intervals, as (start, end)."""
    out: list[tuple[float, float]] = []
    ordered = sorted(intervals)
    reach = ordered[0][1]
    for lo, hi in ordered[1:]:
        if lo > reach:
            out.append((reach, lo))
        reach = max(reach, hi)
    return out


def _split_columns(lines: list[OcrLine], line_h: float) -> list[list[OcrLine]] | None:
    """Text columns: groups separated by a vertical gutter empty over the whole region.

    Only prose columns count (several lines, long boxes); short boxes separated by gutters are
    a table or a form, which reads row by row.
    """
    gutters = [g for g in _gaps([(ln.bbox[0], ln.bbox[2]) for ln in lines]) if g[1] - g[0] >= line_h]
    if not gutters:
        return None
    cuts = [(g[0] + g[1]) / 2 for g in gutters]
    columns: list[list[OcrLine]] = [[] for _ in range(len(cuts) + 1)]
    for ln in lines:
        columns[sum(ln.bbox[0] > c for c in cuts)].append(ln)
    for col in columns:
        mean_w = sum(ln.bbox[2] - ln.bbox[0] for ln in col) / len(col)
        if len(col) < 2 or mean_w < 6 * line_h:
            return None
    return columns


def _split_rows(lines: list[OcrLine]) -> list[list[OcrLine]] | None:
    """Split at the widest horizontal gap (the middle-most of equal ones, to keep recursion
    shallow)."""
    gaps = _gaps([(ln.bbox[1], ln.bbox[3]) for ln in lines])
    if not gaps:
        return None
    widest = max(hi - lo for lo, hi in gaps)
    candidates = [g for g in gaps if (g[1] - g[0]) >= 0.99 * widest]
    mid = (min(ln.bbox[1] for ln in lines) + max(ln.bbox[3] for ln in lines)) / 2
    lo, hi = min(candidates, key=lambda g: abs((g[0] + g[1]) / 2 - mid))
    cut = (lo + hi) / 2
    return [[ln for ln in lines if ln.center_y < cut], [ln for ln in lines if ln.center_y >= cut]]


def _xy_cut(lines: list[OcrLine], line_h: float) -> list[OcrLine]:
    if len(lines) <= 1:
        return lines
    parts = _split_columns(lines, line_h) or _split_rows(lines)
    if parts is None:
        return _rows(lines)
    return [ln for part in parts for ln in _xy_cut(part, line_h)]


_XY_CUT_MAX_LINES = 2000


def reading_order(lines: list[OcrLine]) -> list[OcrLine]:
    """Reading order by recursive XY-cut: a region is split into prose columns where a vertical
    gutter runs through all of it, else at its widest horizontal gap; what cannot be split is
    read row by row, left to right. A title over two columns therefore comes first, then the
    left column, then the right one, while a table keeps its rows."""
    if len(lines) > _XY_CUT_MAX_LINES:
        return _rows(lines)  # a pathological page: keep it linear-time
    if not lines:
        return []
    line_h = statistics.median(ln.height for ln in lines) or 1.0
    return _xy_cut(list(lines), line_h)


def _join(left: str, right: str) -> str:
    # Re-join a word hyphenated across lines ("exam-" + "ple"), otherwise a space.
    if re.search(r"[A-Za-z]-$", left) and right[:1].islower():
        return left[:-1] + right
    return f"{left} {right}"


Box = tuple[float, float, float, float]


def _visual_lines(lines: list[OcrLine]) -> list[tuple[str, float, float, float, float]]:
    """Consecutive boxes on the same row joined into one visual line: (text, x0, y0, x1, y1)."""
    visual: list[tuple[str, float, float, float, float]] = []
    for ln in lines:
        x0, y0, x1, y1 = ln.bbox
        if visual:
            t, px0, py0, px1, py1 = visual[-1]
            pc, ph = (py0 + py1) / 2, py1 - py0
            if abs(ln.center_y - pc) < 0.5 * min(ln.height, ph) and x0 >= px0:
                visual[-1] = (f"{t} {ln.text}", px0, min(py0, y0), max(px1, x1), max(py1, y1))
                continue
        visual.append((ln.text, x0, y0, x1, y1))
    return visual


def _union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def paragraph_boxes(lines: list[OcrLine]) -> list[tuple[str, Box]]:
    """Group OCR lines (in reading order) into paragraphs, each with the union of its lines'
    boxes (image pixels).

    Boxes on one row are first joined into a visual line. A new paragraph starts where the
    vertical gap to the previous line exceeds ~0.8 line heights, where a line is indented
    relative to the line above, or where a paragraph of several lines is followed by an
    outdented line (a first-line indent followed by flush body lines stays one paragraph).
    """
    if not lines:
        return []
    visual = _visual_lines(lines)
    median_h = statistics.median(v[4] - v[2] for v in visual) or 1.0
    gap_limit = 0.8 * median_h
    indent_tol = 1.0 * median_h

    paragraphs: list[tuple[str, Box]] = []
    current, box = visual[0][0], visual[0][1:]
    n_lines = 1
    prev = visual[0]
    for v in visual[1:]:
        gap = v[2] - prev[4]
        indented = v[1] > prev[1] + indent_tol
        outdented = v[1] < prev[1] - indent_tol and n_lines > 1
        moved_up = gap < -0.5 * median_h  # the next column starts back at the top
        if gap > gap_limit or indented or outdented or moved_up:
            paragraphs.append((current, box))
            current, box, n_lines = v[0], v[1:], 1
        else:
            current = _join(current, v[0])
            box = _union(box, v[1:])
            n_lines += 1
        prev = v
    paragraphs.append((current, box))
    return paragraphs


def lines_to_paragraphs(lines: list[OcrLine]) -> list[str]:
    """The paragraphs' text only (see `paragraph_boxes`)."""
    return [text for text, _box in paragraph_boxes(lines)]
