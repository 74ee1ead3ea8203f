"""OCR `language`: Latin and Chinese stay with RapidOCR, other scripts go to Tesseract with its
language packs; a warning when the text read is not in the requested script.

Tesseract is a system package (tesseract-ocr, tesseract-ocr-rus, tesseract-ocr-ell): these
tests skip without it, except under CI=true, where .ci/run installs it and they must run.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.image import ImageProvider
from percolate_reading.parse.providers.ocr import OcrLine, engine_for, script_warning

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

RUSSIAN = ("Отчёт номер 117", "Итого пятьсот рублей", "Москва и Санкт-Петербург")
GREEK = ("Αριθμός αναφοράς 42", "Σύνολο πεντακόσια ευρώ", "Αθήνα και Θεσσαλονίκη")

needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None and os.environ.get("CI") != "true",
    reason="tesseract-ocr not installed (CI installs it)",
)


def char_error_rate(found: str, truth: str) -> float:
    """Levenshtein distance over characters / len(truth) (local helper until tests/textmetrics.py)."""
    prev = list(range(len(truth) + 1))
    for i, a in enumerate(found, start=1):
        cur = [i]
        for j, b in enumerate(truth, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a != b)))
        prev = cur
    return prev[-1] / max(len(truth), 1)


def text_image(lines: tuple[str, ...]) -> bytes:
    font = ImageFont.truetype(str(DEJAVU), 36) if DEJAVU.exists() else ImageFont.load_default(36)
    img = Image.new("L", (1000, 90 * len(lines) + 60), 255)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((40, 40 + 90 * i), line, fill=0, font=font)
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def test_engine_choice() -> None:
    assert engine_for(None).startswith("rapidocr")
    assert engine_for("de").startswith("rapidocr")
    assert engine_for("zh").startswith("rapidocr")
    assert engine_for("ru") == engine_for("rus") == engine_for("el") == "tesseract"


def test_latin_look_alikes_for_cyrillic_are_flagged() -> None:
    misread = [OcrLine("C4eT N 117: HT0r0 500 py6nen", (0, 0, 10, 10), 0.89)]
    warning = script_warning(misread, "ru")
    assert warning is not None
    assert "Cyrillic" in warning
    assert script_warning([OcrLine(RUSSIAN[1], (0, 0, 10, 10), 0.9)], "ru") is None
    assert script_warning(misread, None) is None


@pytest.mark.ocr
@needs_tesseract
@pytest.mark.parametrize(("language", "lines"), [("ru", RUSSIAN), ("el", GREEK)])
def test_cyrillic_and_greek_are_read_in_their_script(
    tmp_path: Path, language: str, lines: tuple[str, ...]
) -> None:
    path = tmp_path / "scan.png"
    path.write_bytes(text_image(lines))
    doc = ImageProvider().parse(path, "scan.png", ParseOptions(language=language))
    text = " ".join(doc.text().split())
    assert char_error_rate(text, " ".join(lines)) < 0.15
    assert doc.metadata["ocr_engine"] == "tesseract"
    assert not any("expects" in w for w in doc.warnings)
