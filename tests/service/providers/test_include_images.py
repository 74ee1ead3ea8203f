"""include_images: embedded pictures of PDF, DOCX and PPTX documents become artifacts
(images/<n>.<ext>) linked from structured.md and elements.jsonl, within limits."""

from __future__ import annotations

import io
import json
from pathlib import Path

import docx
import jsonschema
import pptx
import pymupdf
import pytest
from PIL import Image

from percolate_reading.parse.document import BlockKind, DocumentType, ParsedDocument
from percolate_reading.parse.parsing import run_provider
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.figures import ImageStore
from percolate_reading.parse.render.artifacts import (
    ELEMENTS_JSONL,
    METADATA_JSON,
    STRUCTURED_MD,
    render_artifacts,
)
from percolate_reading.parse.render.chunks import ChunkOptions
from percolate_reading.parse.render.elements import elements_schema
from percolate_reading.parse.request import OptionError, RequestOptions


def png(colour: tuple[int, int, int], size: tuple[int, int] = (120, 80)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


RED, BLUE = png((200, 20, 20)), png((20, 20, 200))


def options(include: bool = True) -> ParseOptions:
    fields = {"include_images": "true" if include else "false"}
    return RequestOptions.from_fields(fields).parse_options(ParseOptions(ocr_enabled=False))


def parse(path: Path, doc_type: DocumentType, include: bool = True) -> ParsedDocument:
    return run_provider(doc_type, path, path.name, options(include))


def artifacts_of(doc: ParsedDocument) -> dict[str, bytes]:
    return render_artifacts(doc, ChunkOptions(), ("markdown", "elements"))


def figures(doc: ParsedDocument) -> list[str | None]:
    return [b.image for b in doc.blocks if b.kind is BlockKind.FIGURE]


def test_docx_pictures_are_stored_and_linked(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_paragraph("Before the chart.")
    document.add_picture(io.BytesIO(RED))
    document.add_paragraph("Between the charts.")
    document.add_picture(io.BytesIO(BLUE))
    document.add_picture(io.BytesIO(RED))  # the same picture again: stored once
    path = tmp_path / "report.docx"
    document.save(str(path))

    doc = parse(path, DocumentType.DOCX)
    assert figures(doc) == ["images/1.png", "images/2.png", "images/1.png"]
    artifacts = artifacts_of(doc)
    assert artifacts["images/1.png"] == RED
    assert artifacts["images/2.png"] == BLUE
    md = artifacts[STRUCTURED_MD].decode()
    assert md.index("Before the chart.") < md.index("(images/1.png)") < md.index("Between the charts.")
    assert md.index("Between the charts.") < md.index("(images/2.png)")
    elements = [json.loads(line) for line in artifacts[ELEMENTS_JSONL].splitlines()]
    for element in elements:
        jsonschema.validate(element, elements_schema())
    assert [e["artifact"] for e in elements if e["type"] == "figure"] == figures(doc)
    assert json.loads(artifacts[METADATA_JSON])["images"] == ["images/1.png", "images/2.png"]

    plain = parse(path, DocumentType.DOCX, include=False)
    assert figures(plain) == [None, None, None]
    assert not plain.images
    assert not any(name.startswith("images/") for name in artifacts_of(plain))


def test_pptx_pictures_carry_their_slide_and_box(tmp_path: Path) -> None:
    deck = pptx.Presentation()
    for colour in (RED, BLUE):
        slide = deck.slides.add_slide(deck.slide_layouts[5])
        slide.shapes.title.text = "Sales"
        slide.shapes.add_picture(io.BytesIO(colour), pptx.util.Pt(100), pptx.util.Pt(150))
    path = tmp_path / "deck.pptx"
    deck.save(str(path))

    doc = parse(path, DocumentType.PPTX)
    shown = [b for b in doc.blocks if b.kind is BlockKind.FIGURE]
    assert [(b.page, b.image) for b in shown] == [(1, "images/1.png"), (2, "images/2.png")]
    assert shown[0].bbox is not None
    assert shown[0].bbox[:2] == pytest.approx((100, 150), abs=1)
    assert doc.images == {"images/1.png": RED, "images/2.png": BLUE}


def test_pdf_pictures_are_extracted_in_reading_order(tmp_path: Path) -> None:
    pdf = pymupdf.open()
    page = pdf.new_page(width=595, height=842)
    page.insert_text((56, 80), "Text above the picture.", fontsize=11)
    page.insert_image(pymupdf.Rect(56, 120, 296, 280), stream=RED)
    page.insert_text((56, 320), "Text below the picture.", fontsize=11)
    page.insert_image(pymupdf.Rect(0, 0, 8, 8), stream=png((0, 0, 0), (8, 8)))  # a spacer: skipped
    path = tmp_path / "doc.pdf"
    pdf.save(str(path))
    pdf.close()

    doc = parse(path, DocumentType.PDF)
    kinds = [(b.kind, b.image) for b in doc.blocks if b.kind is not BlockKind.PAGE_BREAK]
    assert kinds == [
        (BlockKind.PARAGRAPH, None),
        (BlockKind.FIGURE, "images/1.png"),
        (BlockKind.PARAGRAPH, None),
    ]
    (figure,) = [b for b in doc.blocks if b.kind is BlockKind.FIGURE]
    assert figure.bbox == pytest.approx((56, 120, 296, 280), abs=1)
    (data,) = doc.images.values()
    with Image.open(io.BytesIO(data)) as img:
        assert img.size == (120, 80)
        assert img.getpixel((5, 5))[:3] == (200, 20, 20)
    assert doc.metadata["images_extracted"] == 1
    assert not parse(path, DocumentType.PDF, include=False).images


def test_the_store_keeps_to_its_limits() -> None:
    store = ImageStore(True, max_images=2, max_image_bytes=1000, max_total_bytes=1500)
    assert store.add(b"a" * 600, "PNG") == "images/1.png"
    assert store.add(b"a" * 600, "png") == "images/1.png"  # the same bytes again
    assert store.add(b"b" * 1001, "png") is None  # over the per-image cap
    assert store.add(b"c" * 950, "jpeg") is None  # over the total
    assert store.add(b"d" * 100, "jpeg") == "images/2.jpg"
    assert store.add(b"e" * 10, "gif") is None  # over the count
    assert len(store.images) == 2
    warnings = " ".join(store.warnings())
    assert "1 image(s) over" in warnings
    assert "2 image(s) not extracted" in warnings
    assert ImageStore(False).add(b"x" * 10, "png") is None


def test_an_unsafe_extension_is_not_used_in_the_artifact_path() -> None:
    store = ImageStore(True)
    assert store.add(b"x" * 10, "../../etc") == "images/1.bin"


def test_include_images_is_validated() -> None:
    assert RequestOptions.from_fields({"include_images": "true"}).include_images
    assert RequestOptions.from_fields({"include_images": "true"}).to_fields() == {"include_images": "true"}
    assert not RequestOptions.from_fields({}).include_images
    with pytest.raises(OptionError, match="include_images"):
        RequestOptions.from_fields({"include_images": "yes"})
