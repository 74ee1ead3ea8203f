"""elements.jsonl: typed elements validated against the versioned JSON Schema; the chunk
export shapes; per-request outputs; child documents' artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from percolate_reading.parse.document import Block, BlockKind, DocumentType, ParsedDocument, Table
from percolate_reading.parse.render.artifacts import render_artifacts
from percolate_reading.parse.render.chunks import ChunkOptions, build_chunks
from percolate_reading.parse.render.elements import build_elements, elements_schema, table_html

K = BlockKind
SCHEMA_FILE = (
    Path(__file__).resolve().parents[3]
    / "service"
    / "percolate_reading"
    / "parse"
    / "render"
    / "elements.schema.json"
)


def _doc(doc_type: DocumentType = DocumentType.PDF) -> ParsedDocument:
    merged = Table(
        rows=(("Region", "Region", "Total"), ("N", "S", "9")), header_rows=1, spans=((0, 0, 1, 2),)
    )
    return ParsedDocument(
        source_name="report.pdf",
        doc_type=doc_type,
        metadata={"sha256": "cd" * 32, "language": "en"},
        blocks=[
            Block(K.PAGE_HEADER, text="ACME", page=1),
            Block(K.TITLE, text="Annual report", page=1, bbox=(72.0, 60.0, 400.0, 90.0)),
            Block(K.HEADING, text="Sales", level=1, page=1),
            Block(K.PARAGRAPH, text="Sales grew.", page=1, bbox=(72.0, 100.0, 500.0, 120.0)),
            Block(K.LIST_ITEM, text="North", level=0, page=1),
            Block(K.LIST_ITEM, text="Coast", level=1, ordered=True, page=1),
            Block(K.PAGE_BREAK, page=2),
            Block(K.HEADING, text="Detail", level=2, page=2),
            Block(K.TABLE, table=merged, page=2),
            Block(K.FIGURE, text="bar chart", caption="Figure 1: sales", label="img1.png", page=2),
            Block(K.CODE, text="print(1)", language="python", page=2),
            Block(K.FORMULA, text="E = mc^2", page=2),
            Block(K.TRANSCRIPT_SEGMENT, text="hello", start=1.0, end=2.5, page=2),
            Block(K.EMAIL_HEADER, label="From", text="a@example.com", page=2),
            Block(K.PAGE_FOOTER, text="page 2", page=2),
        ],
    )


def test_elements_validate_against_the_schema() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema == elements_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    elements = build_elements(_doc())
    for element in elements:
        validator.validate(element)
    assert [e["type"] for e in elements] == [
        "page_header", "title", "heading", "paragraph", "list_item", "list_item", "heading",
        "table", "figure", "code", "formula", "transcript_segment", "email_header", "page_footer",
    ]  # fmt: skip
    assert [e["index"] for e in elements] == list(range(len(elements)))
    # A wrong element fails the schema: the test can fail.
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**elements[2], "level": None})


def test_element_fields_and_sections() -> None:
    elements = build_elements(_doc())
    by_text = {e["text"]: e for e in elements}
    title, sales, detail = by_text["Annual report"], by_text["Sales"], by_text["Detail"]
    assert title["bbox"] == [72.0, 60.0, 400.0, 90.0]
    assert sales["parent_id"] == title["id"]
    assert by_text["Sales grew."]["parent_id"] == sales["id"]
    assert detail["parent_id"] == sales["id"]  # level 2 under level 1
    assert by_text["Coast"]["depth"] == 1
    assert by_text["Coast"]["ordered"] is True
    table = next(e for e in elements if e["type"] == "table")
    assert table["page"] == 2
    assert table["parent_id"] == detail["id"]
    assert table["table"]["cells"][0] == {
        "row": 0, "col": 0, "row_span": 1, "col_span": 2, "text": "Region", "header": True
    }  # fmt: skip
    assert len(table["table"]["cells"]) == 5  # the merged cell once
    assert '<th colspan="2">Region</th>' in table["table"]["html"]
    assert table["table"]["csv"] == "tables/1.csv"
    figure = by_text["bar chart"]
    assert (figure["caption"], figure["image"]) == ("Figure 1: sales", "img1.png")
    segment = by_text["hello"]
    assert (segment["start"], segment["end"], segment["language"]) == (1.0, 2.5, "en")
    assert by_text["a@example.com"]["name"] == "From"
    # Stable ids: the same document gives the same ids; another file gives others.
    assert [e["id"] for e in build_elements(_doc())] == [e["id"] for e in elements]
    other = _doc()
    other.metadata["sha256"] = "ef" * 32
    assert build_elements(other)[0]["id"] != elements[0]["id"]


def test_slides_are_numbered_as_slides() -> None:
    elements = build_elements(_doc(DocumentType.PPTX))
    assert all(e["page"] is None for e in elements)
    assert elements[-1]["slide"] == 2


def test_table_html_without_spans_or_header() -> None:
    html = table_html(Table(rows=(("a", "b"),), header_rows=0))
    assert html == "<table><tbody><tr><td>a</td><td>b</td></tr></tbody></table>"


def test_table_html_puts_header_rows_in_thead_and_the_rest_in_tbody() -> None:
    html = table_html(Table(rows=(("h1", "h2"), ("a", "b")), header_rows=1))
    assert html == (
        "<table><thead><tr><th>h1</th><th>h2</th></tr></thead>"
        "<tbody><tr><td>a</td><td>b</td></tr></tbody></table>"
    )
    only_header = table_html(Table(rows=(("h1", "h2"),), header_rows=1))
    assert only_header == "<table><thead><tr><th>h1</th><th>h2</th></tr></thead></table>"


def test_chunks_carry_document_facts_and_export_shape() -> None:
    arts = render_artifacts(_doc(), ChunkOptions(max_chars=200, overlap_chars=0), job_id="job-1")
    chunks = [json.loads(line) for line in arts["chunks.jsonl"].decode().splitlines()]
    first = chunks[0]
    assert first["source_name"] == "report.pdf"
    assert first["job_id"] == "job-1"
    assert first["doc_type"] == "pdf"
    assert first["content_sha256"] == "cd" * 32
    assert "title" in first["element_types"]
    detail = next(c for c in chunks if c["heading_path"][-1:] == ["Detail"])
    assert "table" in detail["element_types"]
    exported = [json.loads(line) for line in arts["chunks.langchain.jsonl"].decode().splitlines()]
    assert len(exported) == len(chunks)
    assert exported[0]["page_content"] == first["text"]
    meta = exported[0]["metadata"]
    assert meta["source"] == "report.pdf"
    assert meta["job_id"] == "job-1"
    assert all(isinstance(v, str | int | float | bool) for e in exported for v in e["metadata"].values())
    try:
        from langchain_core.documents import Document
    except ImportError:
        return
    assert Document(**exported[0]).page_content == first["text"]


def test_chunk_strategies() -> None:
    doc = ParsedDocument(
        source_name="x.pdf",
        doc_type=DocumentType.PDF,
        blocks=[
            Block(K.HEADING, text="A", level=1, page=1),
            Block(K.PARAGRAPH, text="one", page=1),
            Block(K.PARAGRAPH, text="two", page=2),
            Block(K.HEADING, text="B", level=1, page=2),
            Block(K.PARAGRAPH, text="three", page=2),
        ],
    )
    # min_chars=0: sections this small would otherwise share a chunk (the default merges them).
    by_heading = build_chunks(doc, ChunkOptions(strategy="heading", min_chars=0))
    assert [c["heading_path"] for c in by_heading] == [["A"], ["B"]]
    assert len(build_chunks(doc, ChunkOptions(strategy="heading"))) == 1
    by_page = build_chunks(doc, ChunkOptions(strategy="page"))
    assert [c["pages"] for c in by_page] == [[1, 1], [2, 2], [2, 2]]
    fixed = build_chunks(doc, ChunkOptions(strategy="fixed"))
    assert len(fixed) == 1
    assert "three" in fixed[0]["text"]
    with pytest.raises(ValueError, match="strategy"):
        ChunkOptions(strategy="sentence")


def test_outputs_select_artifacts_and_children_get_their_own() -> None:
    child = ParsedDocument(
        source_name="parts.csv",
        doc_type=DocumentType.CSV,
        blocks=[Block(K.TABLE, table=Table(rows=(("a", "b"), ("1", "2"))))],
    )
    parent = ParsedDocument(
        source_name="mail.eml",
        doc_type=DocumentType.EML,
        blocks=[Block(K.PARAGRAPH, text="see attached")],
        children=[child],
    )
    arts = render_artifacts(parent, ChunkOptions(), outputs=("text", "html", "tables"))
    assert sorted(arts) == [
        "attachments/1-parts.csv/metadata.json",
        "attachments/1-parts.csv/plain.txt",
        "attachments/1-parts.csv/structured.html",
        "attachments/1-parts.csv/tables/1.csv",
        "metadata.json",
        "plain.txt",
        "structured.html",
    ]
    assert arts["plain.txt"] == b"see attached\n"
    assert b"<td>1</td>" in arts["attachments/1-parts.csv/structured.html"]
    meta = json.loads(arts["metadata.json"])
    assert meta["children"] == [
        {"folder": "attachments/1-parts.csv", "source_name": "parts.csv", "doc_type": "csv"}
    ]
