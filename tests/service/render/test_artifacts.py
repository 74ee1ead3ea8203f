"""render_artifacts: every artifact, exact content, deterministic bytes."""

from __future__ import annotations

import json

from percolate_reading import __version__
from percolate_reading.parse.document import Block, BlockKind, DocumentType, ParsedDocument, Table
from percolate_reading.parse.render.artifacts import render_artifacts
from percolate_reading.parse.render.chunks import ChunkOptions

K = BlockKind


def _pdf() -> ParsedDocument:
    return ParsedDocument(
        source_name="report.pdf",
        doc_type=DocumentType.PDF,
        blocks=[
            Block(K.PAGE_BREAK, page=1),
            Block(K.HEADING, text="Report", level=1, page=1),
            Block(K.PARAGRAPH, text="Sales grew.", page=1),
            Block(K.PAGE_BREAK, page=2),
            Block(K.TABLE, table=Table(rows=(("Q", "Sales"), ("Q1", "10")), page=2), page=2),
        ],
        metadata={
            "page_count": 2,
            "sha256": "ab" * 32,
            "file_size": 1234,
            "parser": "pymupdf 1.28",
            "title": "R",
        },
        timings={"detect_s": 0.001, "parse_s": 0.25},
        warnings=["page 2 has no text layer; OCR disabled"],
    )


def test_artifact_set_and_contents() -> None:
    arts = render_artifacts(_pdf(), ChunkOptions(max_chars=1000, overlap_chars=100))
    assert sorted(arts) == [
        "chunks.jsonl",
        "chunks.langchain.jsonl",
        "elements.jsonl",
        "metadata.json",
        "structured.md",
        "tables/1.csv",
    ]
    assert arts["structured.md"].decode() == (
        "<!-- page 1 -->\n\n# Report\n\nSales grew.\n\n"
        "<!-- page 2 -->\n\n| Q | Sales |\n|---|---|\n| Q1 | 10 |\n"
    )
    assert arts["tables/1.csv"] == b"Q,Sales\r\nQ1,10\r\n"

    chunks = [json.loads(line) for line in arts["chunks.jsonl"].decode().splitlines()]
    assert len(chunks) == 1
    assert chunks[0]["text"] == "# Report\n\nSales grew.\n\n| Q | Sales |\n|---|---|\n| Q1 | 10 |"
    assert chunks[0]["pages"] == [1, 2]
    assert chunks[0]["heading_path"] == ["Report"]

    meta = json.loads(arts["metadata.json"])
    assert meta["source_name"] == "report.pdf"
    assert meta["doc_type"] == "pdf"
    assert meta["page_count"] == 2
    assert meta["file_size"] == 1234
    assert meta["sha256"] == "ab" * 32
    assert meta["timings"] == {"detect_s": 0.001, "parse_s": 0.25}
    assert meta["warnings"] == ["page 2 has no text layer; OCR disabled"]
    assert meta["tables"] == [
        {
            "file": "tables/1.csv",
            "page": 2,
            "sheet": None,
            "title": None,
            "rows": 2,
            "columns": 2,
            "header_rows": 1,
        }
    ]
    assert meta["parser"] == {"name": "percolate-reading", "version": __version__, "provider": "pymupdf 1.28"}
    assert meta["packages"]["percolate-reading"] == __version__
    assert "pymupdf" in meta["packages"]
    assert "openpyxl" in meta["packages"]
    assert meta["chunk_count"] == 1
    assert meta["chunk_options"] == {"max_chars": 1000, "overlap_chars": 100, "strategy": "heading"}
    assert meta["element_count"] == 3
    assert meta["outputs"] == ["chunks", "elements", "markdown", "tables"]
    assert meta["block_counts"] == {"heading": 1, "paragraph": 1, "table": 1, "page_break": 2}
    assert meta["document"] == {"title": "R"}


def test_rendering_is_deterministic() -> None:
    opts = ChunkOptions()
    assert render_artifacts(_pdf(), opts) == render_artifacts(_pdf(), opts)


def test_counts_derived_for_sheets_and_audio() -> None:
    xlsx = ParsedDocument(
        source_name="b.xlsx",
        doc_type=DocumentType.XLSX,
        blocks=[
            Block(K.TABLE, table=Table(rows=(("a",),), sheet="S1")),
            Block(K.TABLE, table=Table(rows=(("b",),), sheet="S2")),
        ],
    )
    meta = json.loads(render_artifacts(xlsx, ChunkOptions())["metadata.json"])
    assert (meta["sheet_count"], meta["sheet_names"]) == (2, ["S1", "S2"])
    assert [t["sheet"] for t in meta["tables"]] == ["S1", "S2"]

    audio = ParsedDocument(
        source_name="a.wav",
        doc_type=DocumentType.AUDIO,
        blocks=[Block(K.TRANSCRIPT_SEGMENT, text="hi", start=0.5, end=1.25)],
        metadata={"language": "en", "duration_s": 2.0},
    )
    arts = render_artifacts(audio, ChunkOptions())
    meta = json.loads(arts["metadata.json"])
    assert (meta["duration_s"], meta["language"]) == (2.0, "en")
    assert arts["structured.md"] == b"[00:00:00.500 - 00:00:01.250] hi\n"
    assert "tables/1.csv" not in arts


def test_image_page_count_from_frames() -> None:
    image = ParsedDocument(
        source_name="scan.png",
        doc_type=DocumentType.IMAGE,
        blocks=[Block(K.PARAGRAPH, text="Meeting notes")],
        metadata={"frames": 1},
    )
    meta = json.loads(render_artifacts(image, ChunkOptions())["metadata.json"])
    assert meta["page_count"] == 1
