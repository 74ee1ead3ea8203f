"""OCR engine shared by the image provider and the PDF provider's scanned pages.

RapidOCR (PaddleOCR's PP-OCRv4 detection + recognition models run by onnxruntime) ships its
models inside the `rapidocr-onnxruntime` wheel, so nothing is downloaded at run time. The models
read Latin script and Chinese; there are no per-language models, so `language` is accepted for
the contract's sake and not used to pick one.

The engine is created once per process (lazily, cached): it is a read-only model, and building
it costs ~0.3 s.
"""

from __future__ import annotations

import functools
import io
import re
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

ENGINE_NAME = "rapidocr-onnxruntime (PP-OCRv4)"


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


@functools.lru_cache(maxsize=1)
def _engine() -> Any:
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as exc:
        raise ImportError(
            "OCR needs rapidocr-onnxruntime: install percolate-reading[ocr] (or disable OCR)",
            name=exc.name,
        ) from exc
    return RapidOCR()


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


def recognize_image(image: Image.Image, language: str | None = None) -> list[OcrLine]:
    """OCR a decoded Pillow image; lines come back in reading order."""
    del language  # one multilingual model; see the module docstring
    result, _elapsed = _engine()(to_8bit(image))
    lines: list[OcrLine] = []
    for box, text, score in result or ():
        xs = [float(p[0]) for p in box]
        ys = [float(p[1]) for p in box]
        text = str(text).strip()
        if text:
            lines.append(OcrLine(text, (min(xs), min(ys), max(xs), max(ys)), float(score)))
    return reading_order(lines)


def recognize(image_png: bytes, language: str | None = None) -> list[OcrLine]:
    """OCR an encoded image (PNG, or anything Pillow decodes); lines in reading order."""
    from PIL import Image

    with Image.open(io.BytesIO(image_png)) as img:
        img.load()
        return recognize_image(img, language)


def reading_order(lines: list[OcrLine]) -> list[OcrLine]:
    """Sort top to bottom, and left to right within a row of vertically overlapping boxes."""
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


def _join(left: str, right: str) -> str:
    # Re-join a word hyphenated across lines ("exam-" + "ple"), otherwise a space.
    if re.search(r"[A-Za-z]-$", left) and right[:1].islower():
        return left[:-1] + right
    return f"{left} {right}"


def lines_to_paragraphs(lines: list[OcrLine]) -> list[str]:
    """Group OCR lines (in reading order) into paragraphs.

    Boxes on one row are first joined into a visual line. A new paragraph starts where the
    vertical gap to the previous line exceeds ~0.8 line heights, where a line is indented
    relative to the line above, or where a paragraph of several lines is followed by an
    outdented line (a first-line indent followed by flush body lines stays one paragraph).
    """
    if not lines:
        return []
    # 1. Visual lines: consecutive boxes on the same row.
    visual: list[tuple[str, float, float, float, float]] = []  # text, x0, y0, x1, y1
    for ln in lines:
        x0, y0, x1, y1 = ln.bbox
        if visual:
            t, px0, py0, px1, py1 = visual[-1]
            pc, ph = (py0 + py1) / 2, py1 - py0
            if abs(ln.center_y - pc) < 0.5 * min(ln.height, ph) and x0 >= px0:
                visual[-1] = (f"{t} {ln.text}", px0, min(py0, y0), max(px1, x1), max(py1, y1))
                continue
        visual.append((ln.text, x0, y0, x1, y1))

    median_h = statistics.median(v[4] - v[2] for v in visual) or 1.0
    gap_limit = 0.8 * median_h
    indent_tol = 1.0 * median_h

    paragraphs: list[str] = []
    current = visual[0][0]
    n_lines = 1
    prev = visual[0]
    for v in visual[1:]:
        gap = v[2] - prev[4]
        indented = v[1] > prev[1] + indent_tol
        outdented = v[1] < prev[1] - indent_tol and n_lines > 1
        if gap > gap_limit or indented or outdented:
            paragraphs.append(current)
            current, n_lines = v[0], 1
        else:
            current = _join(current, v[0])
            n_lines += 1
        prev = v
    paragraphs.append(current)
    return paragraphs
