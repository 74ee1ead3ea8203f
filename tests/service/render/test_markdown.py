"""structured.md from hand-built documents, compared with the exact expected text."""

from __future__ import annotations

from percolate_reading.parse.document import Block, BlockKind, DocumentType, ParsedDocument, Table
from percolate_reading.parse.render.markdown import format_timestamp, to_markdown

K = BlockKind


def _doc(doc_type: DocumentType, *blocks: Block) -> ParsedDocument:
    return ParsedDocument(source_name="x", doc_type=doc_type, blocks=list(blocks))


def test_pdf_document_with_pages_headings_lists_and_table() -> None:
    doc = _doc(
        DocumentType.PDF,
        Block(K.PAGE_BREAK, page=1),
        Block(K.HEADING, text="Annual  report", level=1, page=1),
        Block(K.PARAGRAPH, text="Intro text.", page=1),
        Block(K.LIST_ITEM, text="first", page=1),
        Block(K.LIST_ITEM, text="nested one", level=1, ordered=True, page=1),
        Block(K.LIST_ITEM, text="nested two", level=1, ordered=True, page=1),
        Block(K.LIST_ITEM, text="second", page=1),
        Block(K.PAGE_BREAK, page=2),
        Block(K.HEADING, text="Results", level=2, page=2),
        Block(K.TABLE, table=Table(rows=(("Name", "Value"), ("a|b", "1\n2"), ("c",)), page=2), page=2),
        Block(K.PARAGRAPH, text="After the table.", page=2),
    )
    assert to_markdown(doc) == (
        "<!-- page 1 -->\n\n"
        "# Annual report\n\n"
        "Intro text.\n\n"
        "- first\n"
        "  1. nested one\n"
        "  2. nested two\n"
        "- second\n\n"
        "<!-- page 2 -->\n\n"
        "## Results\n\n"
        "| Name | Value |\n"
        "|---|---|\n"
        "| a\\|b | 1<br>2 |\n"
        "| c |  |\n\n"
        "After the table.\n"
    )


def test_page_markers_come_from_block_pages_without_page_breaks() -> None:
    doc = _doc(
        DocumentType.IMAGE,
        Block(K.PARAGRAPH, text="one", page=1),
        Block(K.PARAGRAPH, text="two", page=1),
        Block(K.PARAGRAPH, text="three", page=3),
    )
    assert to_markdown(doc) == "<!-- page 1 -->\n\none\n\ntwo\n\n<!-- page 3 -->\n\nthree\n"


def test_ordered_markers_levels_and_continuation_lines() -> None:
    doc = _doc(
        DocumentType.PDF,
        Block(K.LIST_ITEM, text="step three", ordered=True, marker="3."),
        Block(K.LIST_ITEM, text="step four\nwraps here", ordered=True, marker="4)"),
        Block(K.LIST_ITEM, text="deep", level=1, marker="•"),
        Block(K.LIST_ITEM, text="deeper", level=2, ordered=True, marker="a."),
        Block(K.LIST_ITEM, text="skips a level", level=5),
        Block(K.PARAGRAPH, text="Between lists."),
        Block(K.LIST_ITEM, text="new list", ordered=True),
    )
    assert to_markdown(doc) == (
        "3. step three\n"
        "4) step four\n"
        "   wraps here\n"
        "   - deep\n"
        "     1. deeper\n"
        "        - skips a level\n\n"
        "Between lists.\n\n"
        "1. new list\n"
    )


def test_table_without_header_title_and_ragged_rows() -> None:
    table = Table(rows=(("a", "b", "c"), ("d",)), header_rows=0, title="Totals\nby year")
    doc = _doc(DocumentType.PDF, Block(K.TABLE, table=table), Block(K.TABLE, table=Table(rows=())))
    assert to_markdown(doc) == (
        "**Totals by year**\n\n|  |  |  |\n|---|---|---|\n| a | b | c |\n| d |  |  |\n"
    )


def test_sheets_get_a_heading_unless_the_provider_wrote_one() -> None:
    doc = _doc(
        DocumentType.XLSX,
        Block(K.TABLE, table=Table(rows=(("h",), ("1",)), sheet="Sales")),
        Block(K.HEADING, text="Costs 2024", level=2, sheet="Costs"),
        Block(K.TABLE, table=Table(rows=(("h",), ("2",)), sheet="Costs"), sheet="Costs"),
    )
    assert to_markdown(doc) == (
        "## Sheet: Sales\n\n| h |\n|---|\n| 1 |\n\n## Costs 2024\n\n| h |\n|---|\n| 2 |\n"
    )


def test_transcript_lines_with_timestamps_and_speaker() -> None:
    doc = _doc(
        DocumentType.AUDIO,
        Block(K.TRANSCRIPT_SEGMENT, text=" Hello there. ", start=62.5, end=65.0),
        Block(K.TRANSCRIPT_SEGMENT, text="Hi.", start=3725.25, end=3726.0, speaker="B"),
    )
    assert to_markdown(doc) == (
        "[00:01:02.500 - 00:01:05.000] Hello there.\n\n[01:02:05.250 - 01:02:06.000] B: Hi.\n"
    )


def test_heading_levels_are_clamped_and_empty_blocks_dropped() -> None:
    doc = _doc(
        DocumentType.PDF,
        Block(K.HEADING, text="Deep", level=9),
        Block(K.HEADING, text="Zero", level=0),
        Block(K.HEADING, text="  "),
        Block(K.PARAGRAPH, text="   "),
    )
    assert to_markdown(doc) == "###### Deep\n\n# Zero\n"


def test_empty_document_renders_empty() -> None:
    assert to_markdown(_doc(DocumentType.PDF)) == ""


def test_timestamp_format() -> None:
    assert format_timestamp(0) == "00:00:00.000"
    assert format_timestamp(59.9996) == "00:01:00.000"
    assert format_timestamp(360000.001) == "100:00:00.001"


def test_bullets_then_numbers_are_two_lists() -> None:
    doc = _doc(
        DocumentType.PDF,
        Block(K.LIST_ITEM, text="a"),
        Block(K.LIST_ITEM, text="b"),
        Block(K.LIST_ITEM, text="one", ordered=True),
        Block(K.LIST_ITEM, text="two", ordered=True),
    )
    assert to_markdown(doc) == "- a\n- b\n\n1. one\n2. two\n"


def test_paragraph_text_cannot_forge_structure() -> None:
    doc = _doc(
        DocumentType.PDF,
        Block(K.PAGE_BREAK, page=1),
        Block(K.PARAGRAPH, text="<!-- page 9 -->", page=1),
        Block(K.PARAGRAPH, text="# not a heading\n- not a bullet\n2026. A good year", page=1),
        Block(K.PARAGRAPH, text="---", page=1),
        Block(K.PARAGRAPH, text="1.5 million -5 degrees, x - y, *emphasis*", page=1),
        Block(K.HEADING, text="Title <!-- page 4 -->", level=2, page=1),
        Block(K.LIST_ITEM, text="item <!-- page 5 -->", page=1),
        Block(K.TABLE, table=Table(rows=(("<!-- page 6 -->",),)), page=1),
    )
    assert to_markdown(doc) == (
        "<!-- page 1 -->\n\n"
        "\\<\\!-- page 9 -->\n\n"
        "\\# not a heading\n\\- not a bullet\n2026\\. A good year\n\n"
        "\\---\n\n"
        "1.5 million -5 degrees, x - y, *emphasis*\n\n"
        "## Title <\\!-- page 4 -->\n\n"
        "- item <\\!-- page 5 -->\n\n"
        "| <\\!-- page 6 --> |\n|---|\n"
    )
    assert to_markdown(doc).count("<!--") == 1
