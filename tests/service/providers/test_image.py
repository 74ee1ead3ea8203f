"""ImageProvider: PNG/TIFF drawn with Pillow at test time, OCR'd with the bundled RapidOCR models."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from percolate_reading.errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    UnsupportedTypeError,
)
from percolate_reading.parse.document import BlockKind
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.image import NO_TEXT_WARNING, OCR_DISABLED_WARNING, ImageProvider
from tests.textmetrics import char_error_rate, missing_words, word_error_rate

pytestmark = pytest.mark.ocr

SAMPLE = Path(__file__).resolve().parents[3] / "service" / "percolate_reading" / "samples"
OPTIONS = ParseOptions()


def _page(paragraphs: list[list[str]], size: tuple[int, int] = (1000, 560)) -> Image.Image:
    # Pillow's built-in scalable font: present wherever Pillow is, no system fonts needed.
    font = ImageFont.load_default(size=34)
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    y = 40
    for para in paragraphs:
        for line in para:
            draw.text((50, y), line, font=font, fill="black")
            y += 46
        y += 50
    return img


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


PARA1 = ["Invoice number 4471 was paid", "on the third of June by wire"]
PARA2 = ["Contact the billing office", "for a copy of the receipt"]


def test_png_words_in_order_and_paragraphs(tmp_path: Path) -> None:
    path = tmp_path / "note.png"
    _page([PARA1, PARA2]).save(path)
    doc = ImageProvider().parse(path, "note.png", OPTIONS)
    paragraphs = [b.text for b in doc.blocks if b.kind is BlockKind.PARAGRAPH]
    assert [b.kind for b in doc.blocks] == [BlockKind.PARAGRAPH, BlockKind.PARAGRAPH]
    # Grouping exact (two paragraphs, in order), words close to what was drawn.
    assert word_error_rate(" ".join(PARA1), paragraphs[0]) <= 0.15, paragraphs
    assert word_error_rate(" ".join(PARA2), paragraphs[1]) <= 0.15, paragraphs
    assert missing_words("Invoice 4471 paid June", paragraphs[0]) == [], paragraphs
    assert doc.metadata["width"] == 1000
    assert doc.metadata["height"] == 560
    assert doc.metadata["frames"] == 1
    assert doc.metadata["ocr_engine"].startswith("rapidocr")
    assert doc.warnings == []


def test_bundled_scanned_note_sample() -> None:
    doc = ImageProvider().parse(SAMPLE / "scanned-note.png", "scanned-note.png", OPTIONS)
    texts = [b.text for b in doc.blocks]
    assert char_error_rate("Meeting notes, 14 March", texts[0]) <= 0.1, texts
    assert "second week of April" in texts[1]
    assert texts[2].startswith("Open questions")
    assert len(texts) == 3


def test_multipage_tiff_has_page_breaks(tmp_path: Path) -> None:
    path = tmp_path / "scan.tiff"
    first = _page([["Alpha page first"]], (700, 200))
    second = _page([["Bravo page second"]], (700, 200))
    first.save(path, save_all=True, append_images=[second], compression="tiff_deflate")
    doc = ImageProvider().parse(path, "scan.tiff", OPTIONS)
    kinds = [(b.kind, b.page) for b in doc.blocks]
    assert kinds == [
        (BlockKind.PAGE_BREAK, 1),
        (BlockKind.PARAGRAPH, 1),
        (BlockKind.PAGE_BREAK, 2),
        (BlockKind.PARAGRAPH, 2),
    ]
    assert word_error_rate("Alpha page first", doc.blocks[1].text) <= 1 / 3, doc.blocks
    assert word_error_rate("Bravo page second", doc.blocks[3].text) <= 1 / 3, doc.blocks
    assert "alpha" in _words(doc.blocks[1].text)
    assert "bravo" in _words(doc.blocks[3].text)
    assert doc.metadata["frames"] == 2


def test_jpeg_is_read(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    _page([["Quality control passed"]], (700, 200)).save(path, quality=90)
    doc = ImageProvider().parse(path, "photo.jpg", OPTIONS)
    assert word_error_rate("Quality control passed", doc.text()) <= 1 / 3, doc.text()
    assert missing_words("quality control", doc.text()) == [], doc.text()


def test_blank_image_warns(tmp_path: Path) -> None:
    path = tmp_path / "blank.png"
    Image.new("L", (400, 300), 255).save(path)
    doc = ImageProvider().parse(path, "blank.png", OPTIONS)
    assert doc.blocks == []
    assert doc.warnings == [NO_TEXT_WARNING]


def test_ocr_disabled_warns(tmp_path: Path) -> None:
    path = tmp_path / "note.png"
    _page([PARA1]).save(path)
    doc = ImageProvider().parse(path, "note.png", ParseOptions(ocr_enabled=False))
    assert doc.blocks == []
    assert doc.warnings == [OCR_DISABLED_WARNING]


def test_truncated_png_is_corrupt(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    _page([PARA1]).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CorruptDocumentError, match=r"bad\.png"):
        ImageProvider().parse(bad, "bad.png", OPTIONS)


def test_garbage_is_corrupt(tmp_path: Path) -> None:
    bad = tmp_path / "x.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50)
    with pytest.raises(CorruptDocumentError):
        ImageProvider().parse(bad, "x.png", OPTIONS)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [10_000, 20_000, 100_000])
def test_decompression_bomb_is_too_large(tmp_path: Path, side: int) -> None:
    # 100 M px (Pillow warns), 400 M px and 10 G px (Pillow refuses): all typed, none decoded.
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(side, side))
    with pytest.raises(DocumentTooLargeError, match=r"too large|pixel cap"):
        ImageProvider().parse(bomb, "bomb.png", OPTIONS)


def test_pixel_cap_setting(tmp_path: Path) -> None:
    path = tmp_path / "note.png"
    _page([PARA1]).save(path)
    with pytest.raises(DocumentTooLargeError, match="1000x560 pixels"):
        ImageProvider(max_pixels=100_000).parse(path, "note.png", OPTIONS)


def test_other_pillow_formats_are_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "old.pcx"
    Image.new("P", (20, 20)).save(path, format="PCX")
    with pytest.raises(UnsupportedTypeError, match="PCX"):
        ImageProvider().parse(path, "old.pcx", OPTIONS)


@pytest.mark.parametrize(("fmt", "mode"), [("WEBP", "RGB"), ("BMP", "RGB"), ("GIF", "P")])
def test_webp_bmp_gif_are_read(tmp_path: Path, fmt: str, mode: str) -> None:
    path = tmp_path / f"note.{fmt.lower()}"
    image = _page([PARA1])
    (image.convert(mode) if mode != "RGB" else image).save(
        path, format=fmt, **({"lossless": True} if fmt == "WEBP" else {})
    )
    doc = ImageProvider().parse(path, path.name, OPTIONS)
    assert doc.metadata["format"] == fmt
    words = _words(doc.text())
    assert sum(w in words for w in _words(" ".join(PARA1))) >= 5
