"""The PDF provider honours the request's ocr, ocr_languages and table_mode, and gives every
element a bounding box in PDF points: PDFs drawn at test time, with known positions."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
from pathlib import Path

import pymupdf
import pytest
from PIL import Image, ImageDraw, ImageFont

from percolate_reading.parse.document import Block, BlockKind, ParsedDocument
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.pdf import PdfProvider
from percolate_reading.parse.render.artifacts import ELEMENTS_JSONL, render_artifacts
from percolate_reading.parse.render.chunks import ChunkOptions
from percolate_reading.parse.request import RequestOptions
from tests.service.providers import pdf_fixtures as fx

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
needs_ocr = pytest.mark.skipif(
    importlib.util.find_spec("rapidocr_onnxruntime") is None, reason="OCR engine not installed"
)
needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None and os.environ.get("CI") != "true",
    reason="tesseract-ocr not installed (CI installs it)",
)


def parse(tmp_path: Path, data: bytes, **options: object) -> ParsedDocument:
    path = tmp_path / "doc.pdf"
    path.write_bytes(data)
    return PdfProvider().parse(path, "doc.pdf", ParseOptions(**options))  # type: ignore[arg-type]


def request(fields: dict[str, str]) -> ParseOptions:
    return RequestOptions.from_fields(fields).parse_options(ParseOptions())


def content(doc: ParsedDocument) -> list[Block]:
    return [b for b in doc.blocks if b.kind is not BlockKind.PAGE_BREAK]


def picture(lines: tuple[str, ...], size: int = 40) -> bytes:
    font = ImageFont.truetype(str(DEJAVU), size) if DEJAVU.exists() else ImageFont.load_default(size)
    img = Image.new("L", (1100, int(size * 2.2) * len(lines) + 40), 255)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((20, 20 + int(size * 2.2) * i), line, fill=0, font=font)
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


# --- bounding boxes ---------------------------------------------------------------------------

HEADING_AT = (72.0, 100.0)
PARAGRAPH_AT = (300.0, 400.0)
TABLE_AT = (80.0, 560.0)


def positioned_pdf() -> bytes:
    """A heading top left, a paragraph in the right half, a ruled table low on the page."""
    doc = pymupdf.open()
    page = doc.new_page(width=fx.PAGE_W, height=fx.PAGE_H)
    fx.heading(page, *HEADING_AT, "Quarterly Results", 22)
    fx.paragraph(page, *PARAGRAPH_AT, fx.INTRO, 240)
    fx.ruled_table(page, *TABLE_AT, fx.TABLE_ROWS, (140, 120, 120))
    data: bytes = doc.tobytes()
    doc.close()
    return data


def test_text_layer_elements_carry_their_boxes(tmp_path: Path) -> None:
    doc = parse(tmp_path, positioned_pdf())
    heading, para, table = content(doc)
    assert heading.kind is BlockKind.HEADING
    assert heading.bbox is not None
    x0, y0, x1, y1 = heading.bbox
    # insert_text's point is the baseline start: the glyphs sit just above it.
    assert abs(x0 - HEADING_AT[0]) < 2
    assert y0 < HEADING_AT[1] < y1 + 6
    assert 22 < y1 - y0 < 1.5 * 22
    assert x1 == pytest.approx(HEADING_AT[0] + fx.text_width("Quarterly Results", 22, fx.BOLD), abs=3)
    assert para.bbox is not None
    px0, py0, px1, py1 = para.bbox
    assert abs(px0 - PARAGRAPH_AT[0]) < 2
    assert px1 <= PARAGRAPH_AT[0] + 240 + 1
    n_lines = len(fx.wrap(fx.INTRO, 240))
    assert py0 < PARAGRAPH_AT[1]
    assert py1 == pytest.approx(PARAGRAPH_AT[1] + (n_lines - 1) * fx.BODY * 1.3, abs=fx.BODY)
    assert table.kind is BlockKind.TABLE
    assert table.bbox is not None
    tx0, ty0, tx1, ty1 = table.bbox
    assert abs(tx0 - TABLE_AT[0]) < 3
    assert abs(ty0 - TABLE_AT[1]) < 3
    assert abs(tx1 - (TABLE_AT[0] + 380)) < 3
    assert abs(ty1 - (TABLE_AT[1] + 20 * len(fx.TABLE_ROWS))) < 3

    artifacts = render_artifacts(doc, ChunkOptions(), ("elements",))
    elements = [json.loads(line) for line in artifacts[ELEMENTS_JSONL].splitlines()]
    assert [e["bbox"] for e in elements] == [list(b.bbox or ()) for b in (heading, para, table)]
    assert {e["page"] for e in elements} == {1}


def test_every_element_of_a_real_layout_has_a_box(tmp_path: Path) -> None:
    doc = parse(tmp_path, fx.structured_pdf())
    for block in content(doc):
        assert block.bbox is not None, block
        x0, y0, x1, y1 = block.bbox
        assert 0 <= x0 < x1 <= fx.PAGE_W
        assert 0 <= y0 < y1 <= fx.PAGE_H
    boxes = [b.bbox for b in content(doc) if b.bbox is not None]
    # Reading order is top to bottom in one column: boxes descend the page.
    assert [b[1] for b in boxes] == sorted(b[1] for b in boxes)


# OCR'd pages are kept small (a strip of A4): OCR time grows with the rendered area.
STRIP_H = 160.0
SCAN_AT = pymupdf.Rect(100, 40, 100 + 330, 40 + 330 * 128 / 1100)  # picture()'s aspect: 1100 x 128 px


def scan_strip_pdf(lines: tuple[str, ...], at: pymupdf.Rect | None = None) -> bytes:
    doc = pymupdf.open()
    page = doc.new_page(width=fx.PAGE_W, height=STRIP_H)
    page.insert_image(at or pymupdf.Rect(0, 0, fx.PAGE_W, STRIP_H), stream=picture(lines))
    data: bytes = doc.tobytes()
    doc.close()
    return data


@pytest.mark.ocr
@needs_ocr
def test_ocr_paragraphs_carry_boxes_in_points(tmp_path: Path) -> None:
    doc = parse(tmp_path, scan_strip_pdf(("SCANNED INVOICE TOTAL",), SCAN_AT))
    (para,) = content(doc)
    assert "INVOICE" in para.text
    assert para.bbox is not None
    # The picture's text starts 20 px in and 20 px down of 1100 x 128 px, shown 330 pt wide.
    scale = 330 / 1100
    x0, y0, x1, y1 = para.bbox
    assert abs(x0 - (SCAN_AT.x0 + 20 * scale)) < 4
    assert abs(y0 - (SCAN_AT.y0 + 20 * scale)) < 6
    assert SCAN_AT.x0 < x1 <= SCAN_AT.x1
    assert y1 < SCAN_AT.y1
    assert y1 - y0 > 40 * scale * 0.7


# --- ocr=force and ocr_languages --------------------------------------------------------------

SCREENSHOT = ("PICTURED QUARTERLY FIGURES",)


def text_and_screenshot_pdf() -> bytes:
    """A page with a text layer and a small picture of other words (a pasted screenshot)."""
    doc = pymupdf.open()
    page = doc.new_page(width=fx.PAGE_W, height=STRIP_H)
    fx.paragraph(page, fx.MARGIN, 30, fx.INTRO, fx.PAGE_W - 2 * fx.MARGIN)
    page.insert_image(pymupdf.Rect(fx.MARGIN, 80, fx.MARGIN + 420, 140), stream=picture(SCREENSHOT))
    data: bytes = doc.tobytes()
    doc.close()
    return data


@pytest.mark.ocr
@needs_ocr
def test_ocr_force_reads_pictures_on_pages_with_text(tmp_path: Path) -> None:
    data = text_and_screenshot_pdf()
    auto = parse(tmp_path, data)
    assert "QUARTERLY" not in auto.text()
    assert auto.metadata["pages_ocr"] == 0
    forced = parse(tmp_path, data, **vars_of(request({"ocr": "force"})))
    assert forced.metadata["ocr_engine"].startswith("rapidocr")
    text = forced.text().upper()
    assert "QUARTERLY" in text
    assert "FIGURES" in text
    assert "WIDGETS" in text  # the page's own text, read from the rendering
    assert forced.metadata["pages_ocr"] == 1
    assert forced.metadata["ocr_mode"] == "force"
    assert all(b.bbox is not None for b in content(forced))


def test_ocr_force_without_ocr_keeps_the_text_layer(tmp_path: Path) -> None:
    doc = parse(tmp_path, fx.structured_pdf(), ocr_mode="force", ocr_enabled=False)
    assert "Widgets are small devices" in doc.text()
    assert doc.metadata["pages_ocr"] == 0


def vars_of(options: ParseOptions) -> dict[str, object]:
    return {name: getattr(options, name) for name in options.__dataclass_fields__}


RUSSIAN = ("Отчёт номер 117", "Итого пятьсот рублей")


@pytest.mark.ocr
@needs_ocr
@needs_tesseract
def test_ocr_languages_choose_the_script(tmp_path: Path) -> None:
    data = scan_strip_pdf(RUSSIAN)
    russian = parse(tmp_path, data, **vars_of(request({"ocr_languages": "ru"})))
    text = " ".join(russian.text().split())
    assert "Итого" in text
    assert "рублей" in text
    assert "117" in text
    assert not any("expects" in w for w in russian.warnings)
    assert russian.metadata["ocr_engine"] == "tesseract"
    # Two languages: one Tesseract run reads both scripts.
    both = parse(tmp_path, data, **vars_of(request({"ocr_languages": "en,ru"})))
    assert "Итого" in both.text()


def test_tesseract_codes_join_the_requested_languages() -> None:
    from percolate_reading.parse.providers.ocr import engine_for, tesseract_codes

    assert tesseract_codes("en") is None
    assert tesseract_codes(None, ("de", "fr")) is None
    assert tesseract_codes("en", ("en", "ru")) == "eng+rus"
    assert tesseract_codes(None, ("el",)) == "ell"
    assert engine_for(None, ("en", "ru")) == "tesseract"


# --- table_mode ---------------------------------------------------------------------------------


def test_table_mode_fast_skips_the_ruled_table_search(tmp_path: Path) -> None:
    data = fx.ruled_table_pdf()
    accurate = parse(tmp_path, data, **vars_of(request({"table_mode": "accurate"})))
    assert accurate.tables
    assert [list(r) for r in accurate.tables[0].rows] == [list(r) for r in fx.TABLE_ROWS]
    assert accurate.metadata["table_pages_checked"] == 1
    fast = parse(tmp_path, data, **vars_of(request({"table_mode": "fast"})))
    assert fast.metadata["table_pages_checked"] == 0
    assert fast.metadata["table_mode"] == "fast"
    assert fast.timings["pdf_tables"] == 0
    # Nothing is lost: every cell's text is still in the output.
    assert all(cell in fast.text() for row in fx.TABLE_ROWS for cell in row)


@pytest.mark.ocr
@needs_ocr
def test_image_paragraphs_carry_pixel_boxes(tmp_path: Path) -> None:
    from percolate_reading.parse.providers.image import ImageProvider

    path = tmp_path / "scan.png"
    path.write_bytes(picture(("INVOICE NUMBER 4711", "", "TOTAL DUE 99 EURO")))
    doc = ImageProvider().parse(path, "scan.png", RequestOptions().parse_options(ParseOptions()))
    first, last = content(doc)
    assert "4711" in first.text
    assert "TOTAL" in last.text
    assert first.bbox is not None
    assert last.bbox is not None
    # picture() draws line i at (20, 20 + 88 i) px in a 40 px font.
    assert abs(first.bbox[0] - 20) < 8
    assert abs(first.bbox[1] - 20) < 12
    assert first.bbox[3] < 20 + 88
    assert abs(last.bbox[0] - 20) < 8
    assert abs(last.bbox[1] - (20 + 2 * 88)) < 12


def test_ocr_tables_and_paragraphs_carry_their_boxes() -> None:
    """OCR'd pages go through ocr_tables: a table's box spans its cells' lines, a paragraph's
    its own lines (pixels here; the PDF provider converts them to points)."""
    from percolate_reading.parse.providers.ocr import OcrLine
    from percolate_reading.parse.providers.ocr_tables import page_blocks

    def line(text: str, x0: float, y0: float, x1: float) -> OcrLine:
        return OcrLine(text, (x0, y0, x1, y0 + 30), 0.99)

    rows = [
        ["Region", "Units", "Price"],
        ["North", "12", "2.50"],
        ["South", "7", "1.00"],
        ["West", "9", "12.75"],
    ]
    cells = [
        line(cell, x + 10, 115 + 60 * i, x + 10 + 18 * len(cell))
        for i, row in enumerate(rows)
        for cell, x in zip(row, (60, 330, 530), strict=True)
    ]
    above = line("The shipments of the quarter are listed below.", 60, 20, 900)
    para, table = page_blocks([above, *cells])
    assert para.kind is BlockKind.PARAGRAPH
    assert para.bbox == (60, 20, 900, 50)
    assert table.kind is BlockKind.TABLE
    assert table.bbox == (70, 115, 540 + 18 * len("12.75"), 115 + 60 * 3 + 30)
