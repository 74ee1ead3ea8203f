"""Grouping OCR lines into paragraphs, on hand-placed line boxes (pure geometry, no model)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from percolate_reading.parse.providers.ocr import (
    OcrLine,
    lines_to_paragraphs,
    reading_order,
    recognize,
    to_8bit,
)
from tests.textmetrics import char_error_rate, missing_words


def _line(text: str, x: float, y: float, h: float = 30.0, w: float = 400.0) -> OcrLine:
    return OcrLine(text, (x, y, x + w, y + h), 0.99)


def test_vertical_gap_splits_paragraphs() -> None:
    lines = [_line("one", 50, 0), _line("two", 50, 38), _line("three", 50, 130)]
    assert lines_to_paragraphs(lines) == ["one two", "three"]


def test_first_line_indent_starts_a_paragraph_and_keeps_its_body() -> None:
    lines = [
        _line("Intro line", 50, 0),
        _line("continues.", 50, 38),
        _line("Indented start", 110, 76),
        _line("and its body", 50, 114),
        _line("ends here.", 50, 152),
    ]
    assert lines_to_paragraphs(lines) == ["Intro line continues.", "Indented start and its body ends here."]


def test_outdent_after_a_block_starts_a_paragraph() -> None:
    lines = [_line("quoted a", 120, 0), _line("quoted b", 120, 38), _line("body", 50, 76)]
    assert lines_to_paragraphs(lines) == ["quoted a quoted b", "body"]


def test_boxes_on_one_row_join_left_to_right() -> None:
    right = _line("world", 300, 2, w=100)
    left = _line("hello", 50, 0, w=100)
    ordered = reading_order([right, left])
    assert [ln.text for ln in ordered] == ["hello", "world"]
    assert lines_to_paragraphs(ordered) == ["hello world"]


def test_hyphenated_word_is_rejoined() -> None:
    lines = [_line("an exam-", 50, 0), _line("ple here", 50, 38)]
    assert lines_to_paragraphs(lines) == ["an example here"]


def test_empty() -> None:
    assert lines_to_paragraphs([]) == []


@pytest.mark.ocr
def test_recognize_png_bytes() -> None:
    img = Image.new("RGB", (600, 120), "white")
    ImageDraw.Draw(img).text(
        (30, 30), "Percolate reads 42 pages", font=ImageFont.load_default(size=36), fill="black"
    )
    buf = io.BytesIO()
    img.save(buf, "PNG")
    lines = recognize(buf.getvalue())
    # The detector may cut one row into several boxes; in reading order they read as drawn.
    text = " ".join(ln.text for ln in lines)
    assert char_error_rate("Percolate reads 42 pages", text) <= 0.1, text
    assert missing_words("Percolate 42 pages", text) == [], text
    for ln in lines:
        x0, y0, x1, y1 = ln.bbox
        assert 20 <= x0 < x1 <= 600
        assert 15 <= y0 < y1 <= 100
        assert 0.5 < ln.confidence <= 1.0


def _text_image() -> Image.Image:
    img = Image.new("L", (600, 120), 255)
    ImageDraw.Draw(img).text((30, 30), "Sixteen bit scan", font=ImageFont.load_default(size=36), fill=0)
    return img


def test_to_8bit_scales_16_bit_grey_instead_of_clipping() -> None:
    grey = np.array([[0, 32896, 65535]], dtype=np.uint16)
    assert to_8bit(Image.fromarray(grey)).mode == "L"
    assert np.asarray(to_8bit(Image.fromarray(grey))).tolist() == [[0, 128, 255]]


def test_to_8bit_puts_transparency_on_white() -> None:
    rgba = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (0, 0, 0, 255))
    assert np.asarray(to_8bit(rgba)).tolist() == [[[255, 255, 255], [0, 0, 0]]]


@pytest.mark.ocr
def test_recognize_16_bit_tiff() -> None:
    wide = Image.fromarray(np.asarray(_text_image()).astype(np.uint16) * 257)
    buf = io.BytesIO()
    wide.save(buf, "TIFF")
    text = " ".join(ln.text for ln in recognize(buf.getvalue()))
    assert char_error_rate("Sixteen bit scan", text) <= 0.15, text
    assert missing_words("Sixteen scan", text) == [], text


def test_two_columns_read_left_then_right_under_a_title() -> None:
    title = _line("Title across both columns", 50, 0, w=900)
    left = [_line(f"left {i}", 50, 80 + 38 * i, w=400) for i in range(3)]
    right = [_line(f"right {i}", 520, 80 + 38 * i, w=400) for i in range(3)]  # baselines aligned
    ordered = reading_order([*right, title, *left])
    assert [ln.text for ln in ordered] == [
        "Title across both columns",
        "left 0",
        "left 1",
        "left 2",
        "right 0",
        "right 1",
        "right 2",
    ]
    assert lines_to_paragraphs(ordered) == [
        "Title across both columns",
        "left 0 left 1 left 2",
        "right 0 right 1 right 2",
    ]


def test_table_cells_read_row_by_row() -> None:
    cells = [_line(f"r{r}c{c}", 50 + 200 * c, 38 * r, w=80) for r in range(3) for c in range(3)]
    assert [ln.text for ln in reading_order(cells[::-1])] == [ln.text for ln in cells]


@pytest.mark.ocr
def test_recognize_two_column_page() -> None:
    font = ImageFont.load_default(size=34)
    img = Image.new("L", (1400, 400), 255)
    draw = ImageDraw.Draw(img)
    left = ["Storage nodes keep", "three copies of each", "object in the cluster"]
    right = ["Workers pull parse", "jobs from the queue", "and ack when done"]
    for i, (a, b) in enumerate(zip(left, right, strict=True)):
        draw.text((40, 40 + 46 * i), a, font=font, fill=0)
        draw.text((760, 40 + 46 * i), b, font=font, fill=0)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    paragraphs = lines_to_paragraphs(recognize(buf.getvalue()))
    # Order and grouping are what is tested here: two paragraphs, the left column first, each
    # close to what was drawn (the recogniser sometimes drops the space between short words,
    # "andackwhendone", so spaces are not compared).
    assert len(paragraphs) == 2, paragraphs
    for got, column in zip(paragraphs, (left, right), strict=True):
        assert char_error_rate("".join(column).replace(" ", ""), got.replace(" ", "")) <= 0.1, got


class _DetectorStandIn:
    """A stand-in for RapidOCR's detector (a mock, no model): its "probability map" is the
    band's first normalised channel, so stitching errors show as wrong rows."""

    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)

    def __init__(self) -> None:
        self.band_pixels: list[int] = []

    def infer(self, band: np.ndarray) -> list[np.ndarray]:
        self.band_pixels.append(band.shape[2] * band.shape[3])
        return [band[:, :1].copy()]


def test_detection_bands_stitch_into_the_whole_map() -> None:
    import cv2

    from percolate_reading.parse.providers import ocr

    rng = np.random.default_rng(7)
    page = rng.integers(0, 256, size=(1990, 1414, 3), dtype=np.uint8)  # a 200 dpi A4 page, capped
    det = _DetectorStandIn()
    pred = ocr._banded_pred(det, page)
    assert pred.shape == (1, 1, 1984, 1408)
    expected = (cv2.resize(page, (1408, 1984))[:, :, 0].astype(np.float32) / 255 - 0.5) / 0.5
    np.testing.assert_allclose(pred[0, 0], expected, atol=1e-6)
    assert len(det.band_pixels) > 1
    assert max(det.band_pixels) <= ocr.DET_BAND_PIXELS


class _RecognizerStandIn:
    """A stand-in for RapidOCR's recogniser (a mock, no model): reads each crop's width as text."""

    rec_image_shape = (3, 48, 320)
    rec_batch_num = 6

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __call__(
        self, crops: list[np.ndarray], return_word_box: bool = False
    ) -> tuple[list[tuple[str, float, list[Any]]], float]:
        self.batches.append([c.shape[1] for c in crops])
        # With word boxes asked for, as RapidOCR answers them (no character steps here).
        return [(str(c.shape[1]), 1.0, [0.0, [], [], [], []]) for c in crops], 0.01


def test_recognition_batches_stay_within_the_width_budget_and_keep_order() -> None:
    from percolate_reading.parse.providers import ocr

    widths = [1900, 120, 640, 1500, 90, 300, 2400, 800, 60, 200, 1000, 150]
    crops = [np.zeros((48, w, 3), dtype=np.uint8) for w in widths]
    rec = _RecognizerStandIn()
    results, _elapsed = ocr._WidthBudgetRecognizer(rec)(crops)
    assert [text for text, _score in results] == [str(w) for w in widths]
    assert sorted(w for batch in rec.batches for w in batch) == sorted(widths)
    for batch in rec.batches:
        assert len(batch) <= rec.rec_batch_num
        padded = max(max(batch), 320) * len(batch)
        assert len(batch) == 1 or padded <= ocr.REC_BATCH_WIDTH, batch
