"""PDF quality classes seen on real documents (issue 14), each on a generated PDF with a known
answer: ligatures, invisible text, compounds across line ends, code blocks, design-heavy pages."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import pymupdf
import pytest

from percolate_reading.parse.document import Block, BlockKind, DocumentType, ParsedDocument
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.pdf import PdfProvider
from percolate_reading.parse.providers.pdf_layout import join_line, resolve_hyphens, text_layer_garbage
from percolate_reading.parse.render.chunks import ChunkOptions, build_chunks
from percolate_reading.parse.render.markdown import to_markdown
from tests.service.providers import pdf_fixtures as fx

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def parse(tmp_path: Path, data: bytes, **options: object) -> ParsedDocument:
    path = tmp_path / "doc.pdf"
    path.write_bytes(data)
    return PdfProvider().parse(path, "doc.pdf", ParseOptions(**options))  # type: ignore[arg-type]


def content(doc: ParsedDocument) -> list[Block]:
    return [b for b in doc.blocks if b.kind is not BlockKind.PAGE_BREAK]


def _font_with_ligatures() -> pymupdf.Font:
    """A font with glyphs for U+FB00-FB04: DejaVu when installed, else MuPDF's built-in Noto."""
    if DEJAVU.exists():
        return pymupdf.Font(fontfile=str(DEJAVU))
    return pymupdf.Font("notos")


def test_ligatures_are_expanded(tmp_path: Path) -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=fx.PAGE_W, height=fx.PAGE_H)
    writer = pymupdf.TextWriter(page.rect)
    font = _font_with_ligatures()
    text = "An e\ufb03cient and di\ufb00erent trade-o\ufb00 between \ufb01sh and \ufb02owers."
    writer.append((fx.MARGIN, 100), text, font=font, fontsize=11)
    writer.write_text(page)
    parsed = parse(tmp_path, doc.tobytes())
    assert parsed.text() == "An efficient and different trade-off between fish and flowers."


def _with_raw_content(page: pymupdf.Page, extra: bytes) -> None:
    xref = page.get_contents()[0]
    doc = page.parent
    doc.update_stream(xref, doc.xref_stream(xref) + b"\n" + extra)


def _picture(text: str) -> bytes:
    src = pymupdf.open()
    art = src.new_page(width=300, height=60)
    art.insert_text((10, 40), text, fontsize=24)
    png: bytes = art.get_pixmap(dpi=72).tobytes("png")
    src.close()
    return png


def invisible_text_pdf() -> bytes:
    doc = pymupdf.open()
    page = doc.new_page(width=fx.PAGE_W, height=fx.PAGE_H)
    x = fx.MARGIN
    page.insert_text((x, 100), "Visible opening words.", fontsize=11)
    page.insert_text((x, 130), "White spacer on white paper.", fontsize=11, color=(1, 1, 1))
    page.insert_text((x, 160), "Invisible render mode three.", fontsize=11, render_mode=3)
    page.draw_rect(pymupdf.Rect(x - 4, 180, 400, 210), color=None, fill=(0.1, 0.1, 0.4))
    page.insert_text((x, 200), "White title on a dark band.", fontsize=11, color=(1, 1, 1))
    page.draw_rect(pymupdf.Rect(x - 4, 220, 400, 250), color=None, fill=(0.95, 0.95, 0.95))
    page.insert_text((x, 240), "Light grey on a light grey box.", fontsize=11, color=(0.93, 0.93, 0.93))
    # A picture with an invisible OCR layer on top: that text stays (it is the scan's text).
    page.insert_image(pymupdf.Rect(x, 300, x + 300, 360), stream=_picture("Scanned caption"))
    page.insert_text((x + 10, 340), "Scanned caption", fontsize=24, render_mode=3)
    page.insert_text((x, 420), "Visible closing words.", fontsize=11)
    # Text drawn inside a clip path far from it: clipped away entirely.
    _with_raw_content(page, b"q 0 0 5 5 re W n BT /helv 11 Tf 60 300 Td (Clipped away words.) Tj ET Q")
    data: bytes = doc.tobytes()
    doc.close()
    return data


def test_invisible_text_is_dropped(tmp_path: Path) -> None:
    parsed = parse(tmp_path, invisible_text_pdf(), ocr_enabled=False)
    text = parsed.text()
    for shown in (
        "Visible opening words.",
        "White title on a dark band.",
        "Scanned caption",
        "Visible closing words.",
    ):
        assert shown in text
    for hidden in ("White spacer", "render mode three", "Light grey", "Clipped away"):
        assert hidden not in text
    assert any("invisible text" in w and "page(s) 1" in w for w in parsed.warnings)


def _para(*lines: str) -> Block:
    return Block(BlockKind.PARAGRAPH, text=functools.reduce(join_line, lines, ""), page=1)


def test_line_end_hyphens_keep_compounds_and_join_split_words() -> None:
    blocks = [
        _para("A dual-", "encoder model maps a high-", "dimensional space"),
        _para("It is extra-", "ordinary how the docu-", "ment reads."),
        _para("We train a multi-", "task model; a multitask loss and how-", "ever more words."),
        _para("Each encoder is dual by design; high-dimensional vectors again."),
    ]
    texts = [b.text for b in resolve_hyphens(blocks)]
    assert texts[0] == "A dual-encoder model maps a high-dimensional space"  # halves / form seen elsewhere
    assert texts[1] == "It is extraordinary how the document reads."  # no evidence: hyphenation
    assert texts[2] == "We train a multitask model; a multitask loss and however more words."


def test_line_end_compound_in_a_parsed_pdf(tmp_path: Path) -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=fx.PAGE_W, height=fx.PAGE_H)
    lines = (
        "Retrieval uses a dual-",
        "encoder with high-",
        "dimensional vectors and an extra-",
        "ordinary index. The encoder is dual by design.",
        "Vectors are high-dimensional.",
    )
    fx.put_lines(page, fx.MARGIN, 100, lines)
    text = parse(tmp_path, doc.tobytes()).text()
    assert "dual-encoder with high-dimensional vectors and an extraordinary index." in text


CODE_LINES = (
    "def total(orders):",
    "    amount = 0",
    "    for order in orders:",
    "        amount += order.price",
    "    return amount",
)


def code_block_pdf() -> bytes:
    """A paragraph, a listing in Courier (indented by x position, as TeX's listings place
    lines, except one line with literal leading spaces), a paragraph."""
    doc = pymupdf.open()
    page = doc.new_page(width=fx.PAGE_W, height=fx.PAGE_H)
    width = fx.PAGE_W - 2 * fx.MARGIN
    y = fx.paragraph(page, fx.MARGIN, 100, "The function below adds up the orders.", width)
    char_w = pymupdf.get_text_length("x", fontname="cour", fontsize=10)
    for i, line in enumerate(CODE_LINES):
        indent = len(line) - len(line.lstrip())
        if i == 3:  # this one carries its indentation as spaces
            page.insert_text((fx.MARGIN + 20, y), line, fontname="cour", fontsize=10)
        else:
            page.insert_text(
                (fx.MARGIN + 20 + indent * char_w, y), line.strip(), fontname="cour", fontsize=10
            )
        y += 12
    fx.paragraph(page, fx.MARGIN, y + 14, "It returns the sum.", width)
    data: bytes = doc.tobytes()
    doc.close()
    return data


def test_monospaced_lines_become_a_code_block(tmp_path: Path) -> None:
    blocks = content(parse(tmp_path, code_block_pdf()))
    assert [b.kind for b in blocks] == [BlockKind.PARAGRAPH, BlockKind.CODE, BlockKind.PARAGRAPH]
    assert blocks[1].text == "\n".join(CODE_LINES)
    markdown = to_markdown(ParsedDocument("doc.pdf", DocumentType.PDF, blocks=blocks))
    assert "```\n" + "\n".join(CODE_LINES) + "\n```" in markdown


def test_a_typewritten_document_is_not_code(tmp_path: Path) -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=fx.PAGE_W, height=fx.PAGE_H)
    fx.put_lines(page, fx.MARGIN, 100, fx.wrap(fx.INTRO + " " + fx.METHODS, 400, font="cour"), font="cour")
    blocks = content(parse(tmp_path, doc.tobytes()))
    assert [b.kind for b in blocks] == [BlockKind.PARAGRAPH]


def test_code_chunks_stay_fenced() -> None:
    code = "\n".join(f"line_{i} = {i}" for i in range(40))
    doc = ParsedDocument("doc.pdf", DocumentType.PDF, blocks=[Block(BlockKind.CODE, text=code, page=1)])
    chunks = build_chunks(doc, ChunkOptions(max_chars=200, overlap_chars=0))
    assert len(chunks) > 1
    lines: list[str] = []
    for chunk in chunks:
        assert chunk["text"].startswith("```\n")
        assert chunk["text"].endswith("\n```")
        assert len(chunk["text"]) <= 200
        lines += chunk["text"].split("\n")[1:-1]
    assert lines == code.split("\n")


TOC = (("Introduction", "3"), ("Methods and materials", "7"), ("Results", "12"))
FOOTER = (
    ("Journal of Widgets", "Vol. 12"),
    ("doi:10.1000/jw.2024", "pp. 1-14"),
    ("Published online", "2024"),
)


def design_pdf() -> bytes:
    """Page 1: a table of contents with dot leaders. Page 2: two columns, a heading MuPDF
    gets as two blocks, and a three-line journal footer laid out in two columns."""
    doc = pymupdf.open()
    page = doc.new_page(width=fx.PAGE_W, height=fx.PAGE_H)
    y = fx.heading(page, fx.MARGIN, 80, "Contents", 18)
    for title, target in TOC:
        page.insert_text((fx.MARGIN, y), title, fontsize=11)
        w = fx.text_width(title)
        page.insert_text((fx.MARGIN + w + 6, y), "." * int((400 - w) / fx.text_width(".")), fontsize=11)
        page.insert_text((fx.MARGIN + 420, y), target, fontsize=11)
        y += 18
    page = doc.new_page(width=fx.PAGE_W, height=fx.PAGE_H)
    y = fx.heading(page, fx.MARGIN, 80, "Annual Report", 24)
    left = y
    for k in range(3):
        left = fx.paragraph(page, fx.MARGIN, left, fx.column_paragraph(1, k + 1), 230)
    page.insert_text((fx.MARGIN, left + 20), "Sustainability", fontsize=16, fontname=fx.BOLD)
    page.insert_text((fx.MARGIN, left + 40), "goals and targets", fontsize=16, fontname=fx.BOLD)
    fx.paragraph(page, fx.MARGIN, left + 60, fx.CLOSING, 230)
    right = y
    for k in range(4):
        right = fx.paragraph(page, fx.MARGIN + 260, right, fx.column_paragraph(2, k + 1), 230)
    for i, (a, b) in enumerate(FOOTER):
        page.insert_text((fx.MARGIN, fx.PAGE_H - 40 + 10 * i), a, fontsize=8)
        page.insert_text((fx.MARGIN + 200, fx.PAGE_H - 40 + 10 * i), b, fontsize=8)
    data: bytes = doc.tobytes()
    doc.close()
    return data


def test_design_heavy_pages(tmp_path: Path) -> None:
    parsed = parse(tmp_path, design_pdf())
    blocks = content(parsed)
    toc = [b for b in blocks if b.page == 1 and b.kind is BlockKind.LIST_ITEM]
    assert [b.text for b in toc] == [f"{t} ... {n}" for t, n in TOC]
    page2 = [b for b in blocks if b.page == 2]
    assert not parsed.tables  # neither the contents nor the footer
    headings = [b.text for b in page2 if b.kind is BlockKind.HEADING]
    assert headings == ["Annual Report", "Sustainability goals and targets"]
    # Both columns in order, the footer after the body, not between the columns.
    texts = [b.text for b in page2 if b.kind is BlockKind.PARAGRAPH]
    assert texts[-1].startswith("Journal of Widgets")
    assert texts.index(fx.CLOSING) < texts.index(fx.column_paragraph(2, 1))


def test_small_sections_share_a_chunk() -> None:
    blocks = [
        Block(BlockKind.HEADING, text="Report", level=1, page=1),
        Block(BlockKind.HEADING, text="42%", level=2, page=1),
        Block(BlockKind.PARAGRAPH, text="growth", page=1),
        Block(BlockKind.HEADING, text="Outlook", level=2, page=1),
        Block(BlockKind.PARAGRAPH, text="Short line.", page=1),
        Block(BlockKind.HEADING, text="Details", level=2, page=2),
        Block(BlockKind.PARAGRAPH, text="x" * 460, page=2),
    ]
    doc = ParsedDocument("doc.pdf", DocumentType.PDF, blocks=blocks)
    chunks = build_chunks(doc, ChunkOptions(max_chars=500, overlap_chars=0))
    assert [c["heading_path"] for c in chunks] == [["Report"], ["Report", "Details"]]
    assert chunks[0]["text"] == "# Report\n\n## 42%\n\ngrowth\n\n## Outlook\n\nShort line."
    assert chunks[1]["char_count"] > 460
    unmerged = build_chunks(doc, ChunkOptions(max_chars=500, overlap_chars=0, min_chars=0))
    assert len(unmerged) == 3


def test_booktabs_tables_keep_captions_rows_and_headers(tmp_path: Path) -> None:
    parsed = parse(tmp_path, fx.booktabs_paper_pdf())
    blocks = content(parsed)
    assert len(parsed.tables) == 2
    for (caption, header, rows), table in zip(fx.BOOKTABS_TABLES, parsed.tables, strict=True):
        # The caption is one paragraph right before its table, never cut into cells.
        i = next(i for i, b in enumerate(blocks) if b.table is table)
        assert blocks[i - 1].kind is BlockKind.PARAGRAPH
        assert blocks[i - 1].text == caption
        assert not any(caption.split(":")[0] in cell for row in table.rows for cell in row)
        # Header lines merge into one header row; every body row stays its own row.
        merged_header = tuple(" ".join(h[c] for h in header if h[c]) for c in range(len(header[0])))
        assert table.header_rows == 1
        assert table.rows == (merged_header, *rows)


SCAN_LINES = (
    "QUARTERLY WIDGET REPORT",
    "Northern factory shipped twelve hundred units",
    "Southern factory shipped nine hundred units",
)
GARBAGE_LAYER = (
    "Q U A R T E R L Y W l D G E T R E P 0 R T",
    "N0rtb3rn f@ct0ry sh1pp3d tw3lv3 hnndr3d nn1ts",
    "S0nth3rn f@ct0ry sh1pp3d n1n3 hnndr3d nn1ts",
) * 3


def scan_with_layer(layer: Sequence[str]) -> bytes:
    """A page that is a picture of printed text with an invisible OCR layer on top."""
    src = pymupdf.open()
    art = src.new_page(width=fx.PAGE_W, height=fx.PAGE_H)
    fx.put_lines(art, 60, 120, SCAN_LINES, size=20, leading=2.0)
    picture = art.get_pixmap(dpi=100).tobytes("png")
    src.close()
    doc = pymupdf.open()
    page = doc.new_page(width=fx.PAGE_W, height=fx.PAGE_H)
    page.insert_image(page.rect, stream=picture)
    y = 120.0
    for line in layer:
        page.insert_text((60, y), line, fontsize=12, render_mode=3)
        y += 24
    data: bytes = doc.tobytes()
    doc.close()
    return data


def test_text_layer_quality_score() -> None:
    assert text_layer_garbage(" ".join(GARBAGE_LAYER)) is not None
    assert text_layer_garbage(" ".join([fx.INTRO, fx.METHODS, "COVID-19 in 10km, 3rd iPhone."] * 3)) is None


def test_a_good_ocr_layer_is_used(tmp_path: Path) -> None:
    parsed = parse(tmp_path, scan_with_layer(SCAN_LINES * 3))
    assert parsed.metadata["pages_ocr"] == 0
    assert SCAN_LINES[1] in parsed.text()


def test_a_garbage_ocr_layer_is_kept_with_a_warning_without_ocr(tmp_path: Path) -> None:
    parsed = parse(tmp_path, scan_with_layer(GARBAGE_LAYER), ocr_enabled=False)
    assert parsed.metadata["pages_ocr"] == 0
    assert any("looks like failed OCR and was kept" in w for w in parsed.warnings)


@pytest.mark.ocr
@pytest.mark.skipif(
    importlib.util.find_spec("rapidocr_onnxruntime") is None, reason="OCR engine not installed"
)
def test_a_garbage_ocr_layer_is_replaced_by_ocr(tmp_path: Path) -> None:
    parsed = parse(tmp_path, scan_with_layer(GARBAGE_LAYER))
    assert parsed.metadata["pages_ocr"] == 1
    text = parsed.text().lower()
    for word in ("quarterly", "northern", "factory", "shipped", "hundred"):
        assert word in text
    assert "f@ct0ry" not in text
    assert any("OCR'd again" in w for w in parsed.warnings)
