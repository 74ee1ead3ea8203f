"""PDF provider: PDFs drawn with PyMuPDF at test time, assertions on exact content and order."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from percolate_reading.errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
    EncryptedDocumentError,
)
from percolate_reading.parse.document import Block, BlockKind, DocumentType, ParsedDocument
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.pdf import PdfProvider, page_ranges, sample_page_numbers
from percolate_reading.parse.providers.pdf_layout import Vector, join_line, list_marker
from percolate_reading.parse.providers.pdf_tables import (
    WHITE,
    grid_candidate,
    merge_header_lines,
    rule_bands,
    table_from_rows,
)
from tests.service.providers import pdf_fixtures as fx


def parse(tmp_path: Path, data: bytes, name: str = "doc.pdf", **options: object) -> ParsedDocument:
    path = tmp_path / name
    path.write_bytes(data)
    return PdfProvider().parse(path, name, ParseOptions(**options))  # type: ignore[arg-type]


def content(doc: ParsedDocument) -> list[Block]:
    return [b for b in doc.blocks if b.kind is not BlockKind.PAGE_BREAK]


def test_headings_paragraphs_and_lists(tmp_path: Path) -> None:
    doc = parse(tmp_path, fx.structured_pdf())
    assert doc.doc_type is DocumentType.PDF
    got = [(b.kind, b.text, b.level) for b in content(doc) if b.kind is not BlockKind.LIST_ITEM]
    assert got == [
        (BlockKind.HEADING, "Annual Widget Report", 1),
        (BlockKind.HEADING, "1. Introduction", 2),
        (BlockKind.PARAGRAPH, fx.INTRO, 0),
        # "extra-" / "ordinary" on two lines: the hyphenation is undone.
        (BlockKind.PARAGRAPH, "The results were extraordinary in every region we measured.", 0),
        (BlockKind.HEADING, "2. Methods", 2),
        (BlockKind.PARAGRAPH, fx.METHODS, 0),
        (BlockKind.HEADING, "Key findings", 3),
        (BlockKind.PARAGRAPH, fx.CLOSING, 0),
    ]
    items = [b for b in doc.blocks if b.kind is BlockKind.LIST_ITEM]
    assert [(b.text, b.ordered, b.marker, b.level) for b in items[:3]] == [
        (fx.NUMBERED[0], True, "1.", 0),
        (fx.NUMBERED[1], True, "2.", 0),
        (fx.NUMBERED[2], True, "3.", 0),
    ]
    assert [(b.text, b.ordered, b.level) for b in items[3:]] == [
        (fx.BULLETS[0], False, 0),
        (fx.BULLETS[1], False, 0),
        (fx.NESTED_BULLET, False, 1),
    ]
    # The lists sit between the "Key findings" heading and the closing paragraph.
    kinds = [b.kind for b in content(doc)]
    assert kinds.index(BlockKind.LIST_ITEM) == [b.text for b in content(doc)].index("Key findings") + 1
    assert doc.metadata["page_count"] == 1
    assert doc.metadata["title"] == "Widget Report"
    assert doc.metadata["author"] == "Ada Lovelace"
    assert doc.metadata["has_text_layer"] is True
    assert doc.metadata["body_font_size"] == fx.BODY
    assert doc.warnings == []


def test_two_columns_read_column_by_column(tmp_path: Path) -> None:
    doc = parse(tmp_path, fx.two_column_pdf())
    text = doc.text()
    positions = [text.index(s) for s in (*fx.LEFT_SENTENCES, *fx.RIGHT_SENTENCES)]
    assert positions == sorted(positions)
    assert max(positions[: len(fx.LEFT_SENTENCES)]) < min(positions[len(fx.LEFT_SENTENCES) :])
    blocks = content(doc)
    assert (blocks[0].kind, blocks[0].text) == (BlockKind.HEADING, "Regional Survey")
    assert blocks[-1].text == fx.CLOSING


def test_three_columns_with_a_wide_title_and_a_table(tmp_path: Path) -> None:
    doc = parse(tmp_path, fx.three_column_pdf())
    expected = ["Three Column Newsletter"]
    for col in (1, 2, 3):
        expected += [f"Section {col}"] + [fx.column_paragraph(col, k) for k in (1, 2, 3)]
    expected += ["point 1", "point 2", "point 3"]
    blocks = content(doc)
    assert [b.text for b in blocks if b.kind is not BlockKind.TABLE] == expected
    assert blocks[-1].kind is BlockKind.TABLE
    assert doc.tables[0].rows == fx.TABLE_ROWS
    assert [b.kind for b in blocks[-4:-1]] == [BlockKind.LIST_ITEM] * 3


def test_ruled_table_cells_in_rows_and_columns(tmp_path: Path) -> None:
    doc = parse(tmp_path, fx.ruled_table_pdf())
    assert len(doc.tables) == 1
    table = doc.tables[0]
    assert table.rows == fx.TABLE_ROWS
    assert table.header_rows == 1
    assert table.page == 1
    blocks = content(doc)
    assert [b.kind for b in blocks] == [BlockKind.PARAGRAPH, BlockKind.TABLE, BlockKind.PARAGRAPH]
    assert [blocks[0].text, blocks[2].text] == [fx.TABLE_BEFORE, fx.TABLE_AFTER]
    # Cell text is not emitted a second time as paragraphs.
    paragraphs = " ".join(b.text for b in blocks if b.kind is BlockKind.PARAGRAPH)
    assert "North" not in paragraphs
    assert "$4,800" not in paragraphs
    assert doc.metadata["tables"] == 1


def test_unruled_table_from_column_gaps(tmp_path: Path) -> None:
    doc = parse(tmp_path, fx.unruled_table_pdf())
    assert [t.rows for t in doc.tables] == [fx.TABLE_ROWS]
    assert doc.metadata["table_pages_checked"] == 0  # no rules: MuPDF's table finder never ran
    blocks = content(doc)
    assert [b.kind for b in blocks[:3]] == [BlockKind.PARAGRAPH, BlockKind.TABLE, BlockKind.PARAGRAPH]
    items = [(b.text, b.ordered) for b in blocks if b.kind is BlockKind.LIST_ITEM]
    assert items == [(text, False) for text in fx.WIDE_BULLETS]


def test_table_between_horizontal_rules_only(tmp_path: Path) -> None:
    doc = parse(tmp_path, fx.booktabs_table_pdf())
    rows = list(fx.TABLE_ROWS)
    # Lines above the rule under the header are one header row; in the body, the second line
    # of "North" stays a row of its own (no rule says where body rows end).
    rows[0] = (f"{rows[0][0]} {fx.BOOKTABS_HEADER_NOTE}", *rows[0][1:])
    rows.insert(2, (fx.BOOKTABS_NOTE, "", ""))
    assert [t.rows for t in doc.tables] == [tuple(rows)]
    paragraphs = [b.text for b in content(doc) if b.kind is BlockKind.PARAGRAPH]
    assert paragraphs == [fx.TABLE_BEFORE, fx.TABLE_AFTER]


def test_header_lines_above_the_header_rule_merge() -> None:
    grid: list[list[str | None]] = [
        ["Inhibitor", "Rate", None],
        ["concentration", "", "(g)"],
        ["0", "1", "2"],
    ]
    boxes = [(0.0, 10.0, 9.0, 20.0), (0.0, 21.0, 9.0, 31.0), (0.0, 40.0, 9.0, 50.0)]
    assert merge_header_lines(grid, boxes, 35.0) == [
        ["Inhibitor concentration", "Rate", "(g)"],
        ["0", "1", "2"],
    ]
    assert merge_header_lines(grid, boxes, None) == grid
    assert merge_header_lines(grid, boxes, 18.0) == grid  # one line above the rule: nothing to join


def test_rule_bands_pair_rules_of_one_width_close_together() -> None:
    def rule(x0: float, x1: float, y: float) -> Vector:
        return (x0, y, x1, y + 0.8, True, True, 0)

    page = (595.0, 842.0)
    # Header and footer rules of the text width, far apart: no band.
    assert rule_bands([rule(56, 539, 50), rule(56, 539, 792)], *page) == []
    # Top/mid/bottom rules of a table (each reported twice, stroke and fill): one band.
    table = [rule(56, 539, 200), rule(56, 539, 200.2), rule(56, 539, 220), rule(56, 539, 300)]
    bands = rule_bands(table, *page)
    assert [tuple(round(v, 1) for v in band) for band in bands] == [(56, 200.4, 539, 300.4)]
    # Two tables with a paragraph between them: the caller says the gap holds no table rows.
    two = [rule(56, 539, y) for y in (200, 220, 300, 340, 360, 440)]
    bands = rule_bands(two, *page, lambda gap: not (gap[1] > 299 and gap[3] < 341))
    assert [(round(b[1]), round(b[3])) for b in bands] == [(200, 300), (340, 440)]
    # Rules of different widths never pair; short rules (underlines) are ignored.
    assert rule_bands([rule(56, 539, 200), rule(56, 300, 260), rule(56, 90, 280)], *page) == []


def test_pages_without_rules_skip_the_table_finder(tmp_path: Path) -> None:
    doc = parse(tmp_path, fx.two_column_pdf())
    assert doc.metadata["table_pages_checked"] == 0
    assert doc.tables == []


def test_repeated_header_and_footer_are_dropped(tmp_path: Path) -> None:
    doc = parse(tmp_path, fx.header_footer_pdf(pages=5))
    text = doc.text()
    assert fx.HEADER_TEXT not in text
    assert "Page" not in text
    starts = [text.index(fx.body_sentence(n)) for n in range(1, 6)]
    assert starts == sorted(starts)
    assert any("header/footer" in w and fx.HEADER_TEXT in w for w in doc.warnings)


def test_headers_are_dropped_on_pages_outside_the_sample(tmp_path: Path) -> None:
    doc = parse(tmp_path, fx.header_footer_pdf(pages=130))  # more pages than the stats sample
    text = doc.text()
    assert fx.HEADER_TEXT not in text
    assert "Page" not in text
    assert all(fx.body_sentence(n) in text for n in range(1, 131))


def test_page_breaks_mark_every_page(tmp_path: Path) -> None:
    doc = parse(tmp_path, fx.header_footer_pdf(pages=4))
    breaks = [b.page for b in doc.blocks if b.kind is BlockKind.PAGE_BREAK]
    assert breaks == [1, 2, 3, 4]
    for block in content(doc):
        assert block.text.startswith(f"Body text of page {block.page} ")


def test_scanned_page_without_ocr_is_reported(tmp_path: Path) -> None:
    doc = parse(tmp_path, fx.scanned_pdf(), ocr_enabled=False)
    assert "page 2 has no text layer; OCR disabled" in doc.warnings
    assert doc.metadata["pages_ocr"] == 0
    assert fx.INTRO in doc.text()


@pytest.mark.ocr
@pytest.mark.skipif(
    importlib.util.find_spec("rapidocr_onnxruntime") is None, reason="OCR engine not installed"
)
def test_scanned_page_is_ocred(tmp_path: Path) -> None:
    doc = parse(tmp_path, fx.scanned_pdf())
    assert doc.metadata["pages_ocr"] == 1
    ocr_text = " ".join(b.text for b in doc.blocks if b.page == 2 and b.kind is BlockKind.PARAGRAPH)
    for word in ("INVOICE", "TOTAL"):
        assert word in ocr_text.upper()
    assert fx.INTRO in doc.text()


@pytest.mark.ocr
@pytest.mark.skipif(
    importlib.util.find_spec("rapidocr_onnxruntime") is None, reason="OCR engine not installed"
)
def test_scan_with_a_text_stamp_is_ocred(tmp_path: Path) -> None:
    doc = parse(tmp_path, fx.stamped_scan_pdf())
    assert doc.metadata["pages_ocr"] == 1
    text = doc.text().upper()
    for word in ("INVOICE", "TOTAL", "EXHIBIT"):
        assert word in text


def test_scan_with_a_text_stamp_keeps_the_stamp_without_ocr(tmp_path: Path) -> None:
    doc = parse(tmp_path, fx.stamped_scan_pdf(), ocr_enabled=False)
    assert doc.text() == fx.STAMP_TEXT
    assert "scanned page(s) 1 carry only a few words of text layer, kept as is; OCR disabled" in doc.warnings


def test_encrypted_pdf_needs_the_right_password(tmp_path: Path) -> None:
    data = fx.encrypted_pdf("s3cret")
    with pytest.raises(EncryptedDocumentError, match="encrypted; supply its password"):
        parse(tmp_path, data)
    with pytest.raises(EncryptedDocumentError, match="password is wrong"):
        parse(tmp_path, data, password="guess")
    doc = parse(tmp_path, data, password="s3cret")
    assert content(doc)[0].text == "Annual Widget Report"


def test_truncated_pdf_is_repaired_with_a_warning(tmp_path: Path) -> None:
    data = fx.header_footer_pdf(pages=4)
    doc = parse(tmp_path, data[: int(len(data) * 0.7)])
    assert any("repaired" in w for w in doc.warnings)
    assert doc.metadata["page_count"] == 4
    assert fx.body_sentence(1) in doc.text()


def test_pdf_truncated_beyond_repair_is_corrupt(tmp_path: Path) -> None:
    with pytest.raises(CorruptDocumentError, match=r"doc\.pdf is not a readable PDF"):
        parse(tmp_path, fx.header_footer_pdf(pages=4)[:300])


def test_garbage_is_corrupt(tmp_path: Path) -> None:
    with pytest.raises(CorruptDocumentError, match="not a readable PDF"):
        parse(tmp_path, b"%PDF-1.7\nthis is not really a pdf at all\n" * 3)


def test_zero_byte_file_is_empty(tmp_path: Path) -> None:
    with pytest.raises(EmptyDocumentError, match=r"empty \(0 bytes\)"):
        parse(tmp_path, b"")


def test_blank_pages_are_empty(tmp_path: Path) -> None:
    with pytest.raises(EmptyDocumentError, match="no text and no scanned images on any of its 2 pages"):
        parse(tmp_path, fx.blank_pdf(2))


def test_page_cap(tmp_path: Path) -> None:
    data = fx.many_pages_pdf(6)
    with pytest.raises(DocumentTooLargeError, match="6 pages; the limit is 5"):
        parse(tmp_path, data, max_pages=5)
    assert parse(tmp_path, data, max_pages=6).metadata["page_count"] == 6


def test_long_documents_are_sampled_but_every_page_parsed(tmp_path: Path) -> None:
    assert sample_page_numbers(10) == list(range(10))
    sampled = sample_page_numbers(500, limit=60)
    assert len(sampled) == 60
    assert sampled[0] == 0
    doc = parse(tmp_path, fx.many_pages_pdf(90))
    assert [b.text for b in content(doc)] == [fx.body_sentence(n) for n in range(1, 91)]


# --- pure helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("• Apples", ("•", False, "Apples")),
        ("- dash item", ("-", False, "dash item")),
        ("12) twelfth", ("12)", True, "twelfth")),
        ("b. second", ("b.", True, "second")),
        ("iv) fourth", ("iv)", True, "fourth")),
        ("(3) third", ("(3)", True, "third")),
        ("-5 degrees", None),
        ("2023 was a year", None),
        ("J. Smith wrote", None),
    ],
)
def test_list_markers(line: str, expected: tuple[str, bool, str] | None) -> None:
    assert list_marker(line) == expected


def test_page_ranges() -> None:
    assert page_ranges([1, 2, 3, 5, 7, 8]) == "1-3, 5, 7-8"
    assert page_ranges([4]) == "4"


def test_line_joins() -> None:
    assert join_line("extra-", "ordinary") == "extra\ufdd0ordinary"  # settled by resolve_hyphens
    assert join_line("state-of-the-", "Art") == "state-of-the-Art"
    assert join_line("COVID-", "19 cases") == "COVID-19 cases"
    assert join_line("a pause -", "then more") == "a pause - then more"
    assert join_line("soft\xad", "ware") == "software"
    assert join_line("one", " two") == "one two"


def test_grid_candidate_needs_rules_both_ways() -> None:
    def rules(n: int, horizontal: bool, color: int = 0) -> list[Vector]:
        if horizontal:
            return [(0.0, 10.0 * i, 100.0, 10.0 * i + 1, True, True, color) for i in range(n)]
        return [(10.0 * i, 0.0, 10.0 * i + 1, 100.0, True, True, color) for i in range(n)]

    assert grid_candidate(rules(3, True) + rules(3, False))
    assert not grid_candidate(rules(6, True))
    assert not grid_candidate([(0.0, 0.0, 100.0, 100.0, True, True, 0)])  # one frame
    # Word's hidden layout-table borders are drawn in white: not a ruled table.
    assert not grid_candidate(rules(3, True, WHITE) + rules(3, False, WHITE))
    # Curves are not rules, even when their bounding boxes are thin.
    assert not grid_candidate([(*v[:5], False, 0) for v in rules(3, True) + rules(3, False)])
    # A page-sized background rectangle plus one rule each way is not a grid either.
    background: list[Vector] = [
        (0.0, 0.0, 595.0, 842.0, False, True, WHITE),
        *rules(1, True),
        *rules(1, False),
    ]
    assert not grid_candidate(background, 595.0, 842.0)
    assert grid_candidate(background)  # without the page size it looks like a frame plus rules


def test_grid_candidate_needs_rules_that_cross() -> None:
    # A booktabs table (three full-width rules, each drawn as a stroke and a fill) above a chart:
    # two axes, a legend box, a line in the legend. Rules both ways, but no grid.
    booktabs: list[Vector] = [
        (40.0, y, 422.0, y + 0.5, stroked, True, 0)
        for y in (277.0, 303.0, 363.0)
        for stroked in (True, False)
    ]
    chart: list[Vector] = [
        (134.0, 593.0, 318.0, 593.9, True, True, 0),  # x axis
        (134.1, 491.0, 135.0, 593.7, True, True, 0),  # y axis
        (311.0, 482.0, 351.0, 489.6, True, True, 0),  # legend box
        (319.0, 486.5, 334.6, 486.9, True, True, 0),  # legend line
    ]
    assert not grid_candidate(booktabs + chart, 468.0, 680.0)

    # Word draws each cell's borders as separate short rules: the pieces still cross.
    cells: list[Vector] = []
    for row in range(3):
        for col in range(3):
            x0, y0 = 100.0 + 50 * col, 100.0 + 20 * row
            cells += [
                (x0, y0, x0 + 50, y0 + 0.5, True, True, 0),
                (x0, y0 + 20, x0 + 50, y0 + 20.5, True, True, 0),
                (x0, y0, x0 + 0.5, y0 + 20, True, True, 0),
                (x0 + 50, y0, x0 + 50.5, y0 + 20, True, True, 0),
            ]
    assert grid_candidate(cells, 595.0, 842.0)
    # Cell shading alone (filled rectangles, no strokes) forms a grid too.
    shading: list[Vector] = [
        (100.0 + 50 * c, 100.0 + 20 * r, 150.0 + 50 * c, 120.0 + 20 * r, False, True, 0xDDDDDD)
        for r in range(2)
        for c in range(2)
    ]
    assert grid_candidate(shading, 595.0, 842.0)


def test_table_rows_are_normalised() -> None:
    table = table_from_rows([["a\nb", None, "c"], ["", "", ""], ["1", "2", None]], None, 3)
    assert table is not None
    assert table.rows == (("a b", "", "c"), ("1", "2", ""))
    assert table.page == 3
    assert table_from_rows([["only one row", "x"]], None, 1) is None
