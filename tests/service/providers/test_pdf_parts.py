"""Page ranges: the PDF provider reads only the requested pages, and parts parsed apart
(a split job's sub-jobs) merge into exactly the document one parse gives."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pymupdf
import pytest

from percolate_reading.parse.document import Block, BlockKind, ParsedDocument, Table
from percolate_reading.parse.parsing import (
    RenderRequest,
    ScanProbe,
    merge_and_render,
    parse_and_render,
    parse_part,
)
from percolate_reading.parse.parts import block_from, block_json, decode_part, encode_part, plan_ranges
from percolate_reading.parse.providers import pdf
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.render.chunks import ChunkOptions
from percolate_reading.worker.split import split_ranges
from tests.harness.documents import scanned_pages_pdf
from tests.service.providers.pdf_fixtures import header_footer_pdf, ruled_table_pdf, structured_pdf

NO_OCR = ParseOptions(ocr_enabled=False)


def mixed_pdf() -> bytes:
    """Running heads and feet, headings, lists, a ruled table and a scanned page (no OCR
    here: its warning must come out once, in page order)."""
    out = pymupdf.open()
    for part in (
        header_footer_pdf(4),
        structured_pdf(),
        ruled_table_pdf(),
        scanned_pages_pdf(1, 40, small=True),
    ):
        src = pymupdf.open(stream=part, filetype="pdf")
        out.insert_pdf(src)
        src.close()
    data: bytes = out.tobytes()
    out.close()
    return data


def test_page_range_reads_only_the_requested_pages(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(scanned_pages_pdf(5, 40, small=True))
    doc = pdf.PdfProvider().parse(path, "scan.pdf", replace(NO_OCR, page_range=(2, 3)))
    # Pages 1, 4 and 5 were never looked at: only 2 and 3 are reported without a text layer.
    assert doc.warnings == [
        "page 2 has no text layer; OCR disabled",
        "page 3 has no text layer; OCR disabled",
    ]
    assert [b.page for b in doc.blocks if b.kind is BlockKind.PAGE_BREAK] == [2, 3]
    assert doc.metadata["page_count"] == 5


def test_page_range_of_a_text_pdf_keeps_its_pages(tmp_path: Path) -> None:
    path = tmp_path / "mixed.pdf"
    path.write_bytes(mixed_pdf())
    whole = pdf.PdfProvider().parse(path, "mixed.pdf", NO_OCR)
    ranged = pdf.PdfProvider().parse(path, "mixed.pdf", replace(NO_OCR, page_range=(2, 3)))
    assert {b.page for b in ranged.blocks} == {2, 3}
    # The same blocks the whole parse gave those pages (the sample still covers every page).
    assert ranged.blocks == [b for b in whole.blocks if b.page in (2, 3)]
    # A range past the end is empty, not an error.
    beyond = pdf.PdfProvider().parse(path, "mixed.pdf", replace(NO_OCR, page_range=(50, None)))
    assert beyond.blocks == []


@pytest.mark.parametrize("cuts", [[(1, 3), (4, 7)], [(5, 7), (1, 1), (2, 4)], [(1, 7)]])
def test_parts_merge_into_the_whole_parse(tmp_path: Path, cuts: list[tuple[int, int]]) -> None:
    path = tmp_path / "mixed.pdf"
    path.write_bytes(mixed_pdf())
    assert pymupdf.open(path).page_count == 7
    whole = pdf.PdfProvider().parse(path, "mixed.pdf", NO_OCR)
    parts = [
        decode_part(encode_part(pdf.parse_part(path, "mixed.pdf", replace(NO_OCR, page_range=r))))
        for r in cuts
    ]
    merged = pdf.merge_parts(path, "mixed.pdf", NO_OCR, parts)
    assert any(b.kind is BlockKind.TABLE for b in whole.blocks)
    assert merged.blocks == whole.blocks
    assert merged.warnings == whole.warnings
    assert "page 7 has no text layer; OCR disabled" in merged.warnings
    assert merged.metadata == whole.metadata


def test_merged_artifacts_are_the_whole_parse_artifacts(tmp_path: Path) -> None:
    path = tmp_path / "mixed.pdf"
    path.write_bytes(mixed_pdf())
    chunking = ChunkOptions(max_chars=400, overlap_chars=0)
    outputs = ("markdown", "elements", "chunks", "tables", "text", "html")
    expected, _ = parse_and_render(path, NO_OCR, None, chunking, "mixed.pdf", outputs=outputs, job_id="j1")
    parts = [parse_part(path, replace(NO_OCR, page_range=r), None, "mixed.pdf") for r in [(1, 5), (6, 7)]]
    got, _ = merge_and_render(path, NO_OCR, None, parts, RenderRequest(chunking, outputs, "j1"), "mixed.pdf")
    assert sorted(got) == sorted(expected)
    for name in expected:
        if name != "metadata.json":
            assert got[name] == expected[name], name
    assert _stable(got["metadata.json"]) == _stable(expected["metadata.json"])


def _stable(raw: bytes) -> dict[str, object]:
    """metadata.json without what differs between any two runs (timings, peak memory)."""
    import json

    meta = json.loads(raw)
    meta.pop("timings")
    meta["document"].pop("peak_rss_mb")
    return dict(meta)


def test_block_json_round_trips_every_field() -> None:
    table = Table(rows=(("a", "b"), ("1", "2")), header_rows=1, page=3, title="T", spans=((0, 0, 1, 2),))
    blocks = [
        Block(BlockKind.TABLE, table=table, page=3, bbox=(1.5, 2.25, 300.0, 400.125)),
        Block(BlockKind.LIST_ITEM, text="x", level=2, ordered=True, marker="3.", page=1),
        Block(BlockKind.TRANSCRIPT_SEGMENT, text="hi", start=0.0, end=1.5, speaker="A", language="de"),
        Block(BlockKind.FIGURE, caption="", label="f", image="images/1.png"),
        Block(BlockKind.PAGE_BREAK, page=7),
    ]
    assert [block_from(block_json(b)) for b in blocks] == blocks
    doc = ParsedDocument("a.pdf", pdf.DocumentType.PDF, blocks=blocks)
    assert doc.text()


def test_plan_ranges_cover_the_pages_in_near_equal_parts() -> None:
    ranges = plan_ranges(1, 25, 10)
    assert ranges == [(1, 9), (10, 17), (18, 25)]
    assert plan_ranges(5, 5, 10) == [(5, 5)]
    covered = [p for a, b in plan_ranges(3, 200, 7) for p in range(a, b + 1)]
    assert covered == list(range(3, 201))


def test_split_is_planned_for_long_scans_only() -> None:
    scan = ScanProbe(page_count=100, checked=3, scanned=3)
    assert split_ranges(scan, None, 25, 40) == [(1, 25), (26, 50), (51, 75), (76, 100)]
    assert split_ranges(scan, (11, 60), 25, 40) == [(11, 35), (36, 60)]
    assert split_ranges(scan, (90, None), 25, 40) is None  # 11 pages requested
    assert split_ranges(ScanProbe(30, 3, 3), None, 10, 40) is None  # short
    assert split_ranges(ScanProbe(100, 3, 1), None, 10, 40) is None  # mostly a text layer
