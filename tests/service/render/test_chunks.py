"""Heading-aware chunks: sections, sizes, overlap, tables cut between rows, locations, ids."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from percolate_reading.config import load_settings
from percolate_reading.parse.document import Block, BlockKind, DocumentType, ParsedDocument, Table
from percolate_reading.parse.render.chunks import ChunkOptions, build_chunks

K = BlockKind


def _doc(doc_type: DocumentType, *blocks: Block, sha: str | None = "f" * 64) -> ParsedDocument:
    meta = {"sha256": sha} if sha else {}
    return ParsedDocument(source_name="x", doc_type=doc_type, blocks=list(blocks), metadata=meta)


def test_sections_follow_headings_with_paths_and_pages() -> None:
    doc = _doc(
        DocumentType.PDF,
        Block(K.PAGE_BREAK, page=1),
        Block(K.HEADING, text="Guide", level=1, page=1),
        Block(K.HEADING, text="Install", level=2, page=1),
        Block(K.PARAGRAPH, text="Run the installer.", page=1),
        Block(K.PAGE_BREAK, page=2),
        Block(K.PARAGRAPH, text="Then reboot.", page=2),
        Block(K.HEADING, text="Use", level=2, page=2),
        Block(K.LIST_ITEM, text="open it", page=2),
        Block(K.LIST_ITEM, text="click", page=2),
        Block(K.HEADING, text="Appendix", level=1, page=3),
        Block(K.PARAGRAPH, text="Extra.", page=3),
    )
    chunks = build_chunks(doc, ChunkOptions(max_chars=500, overlap_chars=50, min_chars=0))
    assert [c["text"] for c in chunks] == [
        "# Guide\n\n## Install\n\nRun the installer.\n\nThen reboot.",
        "## Use\n\n- open it\n- click",
        "# Appendix\n\nExtra.",
    ]
    assert [c["heading_path"] for c in chunks] == [["Guide", "Install"], ["Guide", "Use"], ["Appendix"]]
    assert [c["pages"] for c in chunks] == [[1, 2], [2, 2], [3, 3]]
    assert [c["index"] for c in chunks] == [0, 1, 2]
    assert all(c["char_count"] == len(c["text"]) for c in chunks)
    assert all(c["sheet"] is None and c["time_span"] is None for c in chunks)


def test_long_section_splits_at_sentences_with_overlap() -> None:
    sentences = [f"Sentence number {i} says something." for i in range(12)]
    doc = _doc(
        DocumentType.PDF, Block(K.HEADING, text="Long", level=1), Block(K.PARAGRAPH, text=" ".join(sentences))
    )
    chunks = build_chunks(doc, ChunkOptions(max_chars=120, overlap_chars=40, min_chars=0))
    assert len(chunks) > 3
    assert all(c["char_count"] <= 120 for c in chunks)
    assert all(c["heading_path"] == ["Long"] for c in chunks)
    assert chunks[0]["text"].startswith("# Long\n\nSentence number 0 says something.")
    for prev, nxt in itertools.pairwise(chunks):
        # The next chunk starts with the tail of the previous one, cut at a word boundary.
        shared = [k for k in range(1, 41) if prev["text"].endswith(nxt["text"][:k])]
        assert shared
        assert nxt["text"][max(shared)] == " "
    # Every sentence is in some chunk, whole.
    for s in sentences:
        assert any(s in c["text"] for c in chunks)


def test_no_overlap_across_sections() -> None:
    doc = _doc(
        DocumentType.PDF,
        Block(K.HEADING, text="A", level=1),
        Block(K.PARAGRAPH, text="alpha " * 30),
        Block(K.HEADING, text="B", level=1),
        Block(K.PARAGRAPH, text="beta"),
    )
    chunks = build_chunks(doc, ChunkOptions(max_chars=100, overlap_chars=30, min_chars=0))
    assert chunks[-1]["text"] == "# B\n\nbeta"


def test_big_table_split_by_rows_with_header_repeated() -> None:
    rows = (("Year", "Revenue"), *((str(2000 + i), f"{i * 1000}") for i in range(40)))
    doc = _doc(DocumentType.PDF, Block(K.TABLE, table=Table(rows=rows, page=4), page=4))
    chunks = build_chunks(doc, ChunkOptions(max_chars=150, overlap_chars=30, min_chars=0))
    assert len(chunks) > 2
    seen: list[str] = []
    for c in chunks:
        lines = c["text"].split("\n")
        assert lines[:2] == ["| Year | Revenue |", "|---|---|"]
        assert all(re.fullmatch(r"\| \d{4} \| \d+ \|", line) for line in lines[2:])
        assert c["char_count"] <= 150
        assert c["pages"] == [4, 4]
        seen.extend(lines[2:])
    assert seen == [f"| {2000 + i} | {i * 1000} |" for i in range(40)]


def test_row_longer_than_a_chunk_is_cut_only_then() -> None:
    rows = (("k", "v"), ("a", "x" * 300), ("b", "y"))
    doc = _doc(DocumentType.PDF, Block(K.TABLE, table=Table(rows=rows)))
    chunks = build_chunks(doc, ChunkOptions(max_chars=100, overlap_chars=0, min_chars=0))
    assert all(c["char_count"] <= 100 for c in chunks)
    assert "".join(c["text"] for c in chunks[:-1]) == "| a | " + "x" * 300 + " |"
    assert chunks[-1]["text"] == "| k | v |\n|---|---|\n| b | y |"


def test_sheets_are_sections_and_transcripts_have_time_spans() -> None:
    xlsx = _doc(
        DocumentType.XLSX,
        Block(K.TABLE, table=Table(rows=(("a",), ("1",)), sheet="One")),
        Block(K.TABLE, table=Table(rows=(("b",), ("2",)), sheet="Two")),
    )
    chunks = build_chunks(xlsx, ChunkOptions())
    assert [(c["heading_path"], c["sheet"], c["text"]) for c in chunks] == [
        (["Sheet: One"], "One", "## Sheet: One\n\n| a |\n|---|\n| 1 |"),
        (["Sheet: Two"], "Two", "## Sheet: Two\n\n| b |\n|---|\n| 2 |"),
    ]
    audio = _doc(
        DocumentType.AUDIO,
        Block(K.TRANSCRIPT_SEGMENT, text="Hello.", start=1.0, end=2.5),
        Block(K.TRANSCRIPT_SEGMENT, text="Bye.", start=3.0, end=4.0),
    )
    (chunk,) = build_chunks(audio, ChunkOptions())
    assert chunk["text"] == "[00:00:01.000 - 00:00:02.500] Hello.\n[00:00:03.000 - 00:00:04.000] Bye."
    assert chunk["time_span"] == [1.0, 4.0]
    assert chunk["pages"] is None


def test_ids_are_stable_and_distinct() -> None:
    blocks = [Block(K.HEADING, text=f"H{i}", level=1) for i in range(3)]
    blocks = [b for h in blocks for b in (h, Block(K.PARAGRAPH, text="same text"))]
    opts = ChunkOptions(min_chars=0)
    first = build_chunks(_doc(DocumentType.PDF, *blocks), opts)
    again = build_chunks(_doc(DocumentType.PDF, *blocks), opts)
    other = build_chunks(_doc(DocumentType.PDF, *blocks, sha="0" * 64), opts)
    assert [c["id"] for c in first] == [c["id"] for c in again]
    assert len({c["id"] for c in first}) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", c["id"]) for c in first)
    assert {c["id"] for c in first}.isdisjoint(c["id"] for c in other)
    # Without a file hash the id is derived from the content.
    no_hash = _doc(DocumentType.PDF, *blocks, sha=None)
    assert build_chunks(no_hash, ChunkOptions()) == build_chunks(no_hash, ChunkOptions())


def test_options_from_settings_and_validation() -> None:
    assert ChunkOptions.from_settings(load_settings(chunk_max_chars=900, chunk_overlap_chars=90)) == (
        ChunkOptions(max_chars=900, overlap_chars=90)
    )
    with pytest.raises(ValueError, match="invalid chunk options"):
        ChunkOptions(max_chars=100, overlap_chars=100)


_words = st.text(alphabet="abcdefghij", min_size=1, max_size=30)
_paragraph = st.lists(_words, min_size=1, max_size=60).map(" ".join)
_block = st.one_of(
    _paragraph.map(lambda t: Block(K.PARAGRAPH, text=t)),
    st.tuples(_words, st.integers(1, 4)).map(lambda t: Block(K.HEADING, text=t[0], level=t[1])),
    _paragraph.map(lambda t: Block(K.LIST_ITEM, text=t)),
)


@settings(max_examples=80, deadline=None)
@given(blocks=st.lists(_block, max_size=25), max_chars=st.integers(40, 400), overlap=st.integers(0, 39))
def test_chunks_respect_the_limit_and_keep_every_word(
    blocks: list[Block], max_chars: int, overlap: int
) -> None:
    chunks = build_chunks(_doc(DocumentType.PDF, *blocks), ChunkOptions(max_chars, overlap))
    assert all(0 < c["char_count"] <= max_chars for c in chunks)
    joined = "\n".join(c["text"] for c in chunks)
    for b in blocks:
        for word in b.text.split():
            assert word in joined


def test_list_text_matches_markdown() -> None:
    doc = _doc(
        DocumentType.PDF,
        Block(K.LIST_ITEM, text="a"),
        Block(K.LIST_ITEM, text="nested", level=1, ordered=True),
        Block(K.LIST_ITEM, text="one", ordered=True),
        Block(K.LIST_ITEM, text="two", ordered=True),
    )
    (chunk,) = build_chunks(doc, ChunkOptions())
    assert chunk["text"] == "- a\n  1. nested\n\n1. one\n2. two"


def test_chunk_paragraphs_are_escaped_like_the_markdown() -> None:
    doc = _doc(DocumentType.PDF, Block(K.PARAGRAPH, text="<!-- page 9 --> forged"))
    (chunk,) = build_chunks(doc, ChunkOptions())
    assert chunk["text"] == "\\<\\!-- page 9 --> forged"
