"""include_images: embedded pictures of PDF, DOCX, PPTX, ODT/ODP, EPUB and HTML documents
become artifacts (images/<n>.<ext>) linked from structured.md and elements.jsonl, within
limits; a picture only linked by URL is never fetched."""

from __future__ import annotations

import base64
import http.server
import io
import json
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import docx
import jsonschema
import pptx
import pymupdf
import pytest
from ebooklib import epub
from odf.draw import Frame, Page
from odf.draw import Image as DrawImage
from odf.opendocument import OpenDocumentPresentation, OpenDocumentText
from odf.style import MasterPage, PageLayout
from odf.text import P
from PIL import Image

from percolate_reading.parse.document import BlockKind, DocumentType, ParsedDocument
from percolate_reading.parse.parsing import run_provider
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.figures import MAX_IMAGES, ImageStore, data_uri_image
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


def _odt_with_pictures(path: Path) -> None:
    text = OpenDocumentText()
    for name, data in (("red", RED), ("blue", BLUE), ("red-again", RED)):
        href = text.addPicture(f"Pictures/{name}.png", "image/png", data)
        frame = Frame(width="4cm", height="3cm", anchortype="paragraph", name=name)
        frame.addElement(DrawImage(href=href))
        holder = P()
        holder.addElement(frame)
        text.text.addElement(P(text=f"Before {name}."))
        text.text.addElement(holder)
    # A picture linked by URL, not stored in the package: never fetched.
    linked = Frame(width="4cm", height="3cm", anchortype="paragraph", name="linked")
    linked.addElement(DrawImage(href="http://192.0.2.1/chart.png"))
    holder = P()
    holder.addElement(linked)
    text.text.addElement(holder)
    text.save(str(path))


def test_odt_pictures_are_stored_and_linked(tmp_path: Path) -> None:
    path = tmp_path / "report.odt"
    _odt_with_pictures(path)
    doc = parse(path, DocumentType.ODT)
    shown = [(b.label, b.image) for b in doc.blocks if b.kind is BlockKind.FIGURE]
    assert shown == [
        ("red", "images/1.png"),
        ("blue", "images/2.png"),
        ("red-again", "images/1.png"),
        ("linked", None),
    ]
    assert doc.images == {"images/1.png": RED, "images/2.png": BLUE}
    md = artifacts_of(doc)[STRUCTURED_MD].decode()
    assert md.index("Before red.") < md.index("(images/1.png)") < md.index("Before blue.")
    assert not parse(path, DocumentType.ODT, include=False).images


def test_odp_pictures_carry_their_slide_and_box(tmp_path: Path) -> None:
    pres = OpenDocumentPresentation()
    layout = PageLayout(name="PL")
    pres.automaticstyles.addElement(layout)
    master = MasterPage(name="Default", pagelayoutname=layout)
    pres.masterstyles.addElement(master)
    for number, (name, data) in enumerate((("red", RED), ("blue", BLUE)), start=1):
        page = Page(masterpagename=master, name=f"page{number}")
        frame = Frame(width="8cm", height="6cm", x="2cm", y="4cm", name=name)
        frame.addElement(DrawImage(href=pres.addPicture(f"Pictures/{name}.png", "image/png", data)))
        page.addElement(frame)
        pres.presentation.addElement(page)
    path = tmp_path / "deck.odp"
    pres.save(str(path))
    doc = parse(path, DocumentType.ODP)
    shown = [b for b in doc.blocks if b.kind is BlockKind.FIGURE]
    assert [(b.page, b.label, b.image) for b in shown] == [
        (1, "red", "images/1.png"),
        (2, "blue", "images/2.png"),
    ]
    assert shown[0].bbox == pytest.approx((56.69, 113.39, 283.46, 283.46), abs=0.05)
    assert doc.images == {"images/1.png": RED, "images/2.png": BLUE}


def _epub_with_pictures(path: Path) -> None:
    book = epub.EpubBook()
    book.set_identifier("pictures-1")
    book.set_title("Pictures")
    book.set_language("en")
    for name, data in (("red", RED), ("blue", BLUE)):
        book.add_item(
            epub.EpubItem(uid=name, file_name=f"images/{name}.png", media_type="image/png", content=data)
        )
    one = epub.EpubHtml(title="One", file_name="text/one.xhtml", lang="en")
    one.content = (
        "<html><body><h1>One</h1><p>Red first.</p>"
        '<figure><img src="../images/red.png" alt="A red square"/><figcaption>Figure 1</figcaption></figure>'
        '<p>Then a picture from the web.</p><img src="https://192.0.2.1/remote.png" alt="remote"/>'
        "</body></html>"
    )
    two = epub.EpubHtml(title="Two", file_name="text/two.xhtml", lang="en")
    two.content = (
        '<html><body><h1>Two</h1><p>Blue next.</p><img src="../images/blue.png"/>'
        # A part of the book that is no picture: not kept.
        '<img src="../../META-INF/container.xml" alt="not a picture"/></body></html>'
    )
    book.add_item(one)
    book.add_item(two)
    book.add_item(epub.EpubNcx())
    book.spine = [one, two]
    epub.write_epub(str(path), book)


def test_epub_pictures_of_the_spine_are_stored(tmp_path: Path) -> None:
    path = tmp_path / "pictures.epub"
    _epub_with_pictures(path)
    doc = parse(path, DocumentType.EPUB)
    shown = [(b.text, b.caption, b.image) for b in doc.blocks if b.kind is BlockKind.FIGURE]
    assert shown == [
        ("A red square", "Figure 1", "images/1.png"),
        ("remote", "", None),
        ("", "", "images/2.png"),  # no alt text: shown because its picture is kept
        ("not a picture", "", None),
    ]
    assert doc.images == {"images/1.png": RED, "images/2.png": BLUE}
    elements = [json.loads(line) for line in artifacts_of(doc)[ELEMENTS_JSONL].splitlines()]
    artifacts = [e["artifact"] for e in elements if e["type"] == "figure"]
    assert artifacts == ["images/1.png", None, "images/2.png", None]
    plain = parse(path, DocumentType.EPUB, include=False)
    assert not plain.images
    alts = [b.text for b in plain.blocks if b.kind is BlockKind.FIGURE]
    assert alts == ["A red square", "remote", "not a picture"]


@pytest.fixture
def web_server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that records every request: a parse must make none."""
    requests: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(RED)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_html_keeps_data_uri_pictures_and_fetches_nothing(
    tmp_path: Path, web_server: tuple[str, list[str]]
) -> None:
    url, requests = web_server
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><rect width="40" height="40"/></svg>'
    )
    page = f"""<html><body><h1>Inline pictures</h1>
    <p>A chart follows.</p>
    <img src="data:image/png;base64,{base64.encodebytes(RED).decode()}">
    <figure><img src="data:image/svg+xml;utf8,{urllib.parse.quote(svg)}" alt="Square">
    <figcaption>The square</figcaption></figure>
    <img src="{url}/tracker.png" alt="Remote chart">
    <img src="chart.png" alt="Relative chart">
    <img src="data:text/html;base64,PGgxPng8L2gxPg==" alt="Not a picture">
    </body></html>"""
    path = tmp_path / "page.html"
    path.write_text(page)
    doc = parse(path, DocumentType.HTML)
    shown = [(b.text, b.caption, b.image) for b in doc.blocks if b.kind is BlockKind.FIGURE]
    assert shown == [
        ("", "", "images/1.png"),
        ("Square", "The square", "images/2.svg"),
        ("Remote chart", "", None),
        ("Relative chart", "", None),
        ("Not a picture", "", None),
    ]
    assert doc.images == {"images/1.png": RED, "images/2.svg": svg}
    assert requests == []
    labels = [b.label for b in doc.blocks if b.kind is BlockKind.FIGURE]
    assert labels[0] == "data:image/png;base64"  # the label names the URI, not its payload
    assert not parse(path, DocumentType.HTML, include=False).images


def test_inline_pictures_keep_to_the_limits(tmp_path: Path) -> None:
    store = ImageStore(True, max_image_bytes=1000)
    big = base64.b64encode(b"x" * 5000).decode()
    assert data_uri_image(store, f"data:image/png;base64,{big}") is None  # refused before decoding
    assert store.skipped_large == 1
    many = "".join(
        f'<img src="data:image/png;base64,{base64.b64encode(png((i, 0, 0), (20, 20))).decode()}">'
        for i in range(MAX_IMAGES + 5)
    )
    path = tmp_path / "many.html"
    path.write_text(f"<html><body><p>Many.</p>{many}</body></html>")
    doc = parse(path, DocumentType.HTML)
    assert len(doc.images) == MAX_IMAGES
    assert any(f"the limit is {MAX_IMAGES} images" in w for w in doc.warnings)
