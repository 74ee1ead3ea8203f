"""E-mail, OpenDocument, EPUB, legacy spreadsheets and LibreOffice-converted files, each
built here with the library made for the format."""

from __future__ import annotations

import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest
from ebooklib import epub
from odf.draw import Frame, Page, TextBox
from odf.namespaces import PRESENTATIONNS
from odf.opendocument import OpenDocumentPresentation, OpenDocumentSpreadsheet, OpenDocumentText
from odf.style import MasterPage, PageLayout
from odf.table import Table, TableCell, TableColumn, TableRow
from odf.text import H, List, ListItem, P

from percolate_reading.errors import CorruptDocumentError, DocumentTooLargeError, UnsupportedTypeError
from percolate_reading.parse.document import BlockKind, DocumentType
from percolate_reading.parse.parsing import parse_file
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.legacy import libreoffice_available
from percolate_reading.parse.sandbox import SandboxLimits
from tests.harness.documents import make_docx

OPTS = ParseOptions(ocr_enabled=False)
LIMITS = SandboxLimits(memory_mb=1024, timeout_s=120, cpu_s=120)


def _message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Ada Lovelace <ada@example.com>"
    msg["To"] = "Charles Babbage <charles@example.com>"
    msg["Subject"] = "Engine notes"
    msg["Date"] = "Mon, 02 Dec 2024 10:00:00 +0000"
    msg.set_content("Plain body: see the attached notes.\n\nSecond paragraph.")
    msg.add_alternative("<html><body><p>HTML body: see the attached notes.</p></body></html>", subtype="html")
    msg.add_attachment(
        make_docx("Analytical engine design"),
        maintype="application",
        subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
        filename="design.docx",
    )
    msg.add_attachment(b"part,qty\nmill,1\nstore,2\n", maintype="text", subtype="csv", filename="parts.csv")
    inner = EmailMessage()
    inner["From"] = "charles@example.com"
    inner["Subject"] = "Earlier reply"
    inner.set_content("The store holds a thousand numbers.")
    msg.add_attachment(inner)
    return msg


def test_eml_headers_body_and_attachments(tmp_path: Path) -> None:
    path = tmp_path / "notes.eml"
    path.write_bytes(_message().as_bytes())
    doc = parse_file(path, OPTS, LIMITS)
    assert doc.doc_type is DocumentType.EML
    headers = {b.label: b.text for b in doc.blocks if b.kind is BlockKind.EMAIL_HEADER}
    assert headers["From"] == "Ada Lovelace <ada@example.com>"
    assert headers["Subject"] == "Engine notes"
    assert doc.blocks[0].kind is BlockKind.TITLE
    # No table in the HTML alternative: the plain text body is the one read.
    assert "Plain body: see the attached notes." in doc.text()
    assert "HTML body" not in doc.text()
    children = {c.source_name: c for c in doc.children}
    assert set(children) == {"design.docx", "parts.csv", "Earlier reply.eml"}
    assert children["design.docx"].doc_type is DocumentType.DOCX
    assert "Analytical engine design" in children["design.docx"].text()
    assert children["parts.csv"].tables[0].rows == (("part", "qty"), ("mill", "1"), ("store", "2"))
    assert "a thousand numbers" in children["Earlier reply.eml"].text()
    listed = doc.metadata["attachments"]
    assert [a["status"] for a in listed] == ["parsed", "parsed", "parsed"]


def test_eml_bad_attachment_is_listed_not_fatal(tmp_path: Path) -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.com"
    msg["To"] = "b@example.com"
    msg["Subject"] = "Broken"
    msg.set_content("Body stays.")
    msg.add_attachment(b"PK\x03\x04 broken zip", maintype="application", subtype="zip", filename="x.docx")
    path = tmp_path / "m.eml"
    path.write_bytes(msg.as_bytes())
    doc = parse_file(path, OPTS, None)
    assert "Body stays." in doc.text()
    assert doc.metadata["attachments"][0]["status"] == "failed"
    assert doc.children == []


def test_mime_bomb_is_contained(tmp_path: Path) -> None:
    # Thousands of nested multiparts: refused as too large, in the sandbox, quickly.
    depth = 5000
    lines = [b"From: a@example.com", b"To: b@example.com", b"Subject: bomb", b"MIME-Version: 1.0"]
    body = []
    for i in range(depth):
        body.append(f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n'.encode())
    body.append(b"Content-Type: text/plain\n\ninner\n")
    for i in reversed(range(depth)):
        body.append(f"--b{i}--\n".encode())
    path = tmp_path / "bomb.eml"
    path.write_bytes(b"\n".join(lines) + b"\n" + b"".join(body))
    with pytest.raises(DocumentTooLargeError, match="MIME"):
        parse_file(path, OPTS, LIMITS)


def test_many_flat_parts_are_contained(tmp_path: Path) -> None:
    parts = "".join(
        "--sep\nContent-Type: application/octet-stream\n"
        f'Content-Disposition: attachment; filename="{i}.bin"\n\nx\n'
        for i in range(1200)
    )
    raw = (
        "From: a@example.com\nTo: b@example.com\nSubject: Many\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="sep"\n\n' + parts + "--sep--\n"
    )
    path = tmp_path / "many.eml"
    path.write_text(raw)
    with pytest.raises(DocumentTooLargeError, match="MIME parts"):
        parse_file(path, OPTS, None)


def test_ods_sheets(tmp_path: Path) -> None:
    book = OpenDocumentSpreadsheet()
    sheet = Table(name="Budget")
    sheet.addElement(TableColumn(numbercolumnsrepeated=2))
    for row in [("Item", None), ("Rent", 1200.0), ("Food", 310.5)]:
        tr = TableRow()
        for value in row:
            if isinstance(value, float):
                cell = TableCell(valuetype="float", value=value)
                cell.addElement(P(text=str(value)))
            elif value is None:
                cell = TableCell(valuetype="string")
                cell.addElement(P(text="Amount"))
            else:
                cell = TableCell(valuetype="string")
                cell.addElement(P(text=value))
            tr.addElement(cell)
        sheet.addElement(tr)
    book.spreadsheet.addElement(sheet)
    path = tmp_path / "budget.ods"
    book.save(str(path))
    doc = parse_file(path, OPTS, LIMITS)
    assert doc.doc_type is DocumentType.ODS
    assert doc.tables[0].rows == (("Item", "Amount"), ("Rent", "1200"), ("Food", "310.5"))
    assert doc.tables[0].sheet == "Budget"
    assert doc.tables[0].header_rows == 1


def test_ods_cell_cap_counts_every_sheet(tmp_path: Path) -> None:
    """Sheets each under the cap but over it together: the cap is the workbook's."""
    from percolate_reading.parse.providers.spreadsheet import OdsProvider

    book = OpenDocumentSpreadsheet()
    for n in range(4):
        sheet = Table(name=f"S{n}")
        for r in range(10):
            tr = TableRow()
            for c in range(10):
                cell = TableCell(valuetype="float", value=float(r * c))
                cell.addElement(P(text=str(r * c)))
                tr.addElement(cell)
            sheet.addElement(tr)
        book.spreadsheet.addElement(sheet)
    path = tmp_path / "sheets.ods"
    book.save(str(path))
    assert len(OdsProvider(max_cells=400).parse(path, "sheets.ods", OPTS).tables) == 4
    with pytest.raises(DocumentTooLargeError, match="'S3' span 400 cells, over the 399 cell cap"):
        OdsProvider(max_cells=399).parse(path, "sheets.ods", OPTS)


def test_odt_structure(tmp_path: Path) -> None:
    text = OpenDocumentText()
    text.text.addElement(H(outlinelevel=1, text="Field report"))
    text.text.addElement(P(text="Observations from the site."))
    items = List()
    for word in ("Soil", "Water"):
        li = ListItem()
        li.addElement(P(text=word))
        items.addElement(li)
    text.text.addElement(items)
    table = Table(name="T1")
    table.addElement(TableColumn(numbercolumnsrepeated=2))
    for row in (("Sample", "pH"), ("A", "6.5")):
        tr = TableRow()
        for value in row:
            cell = TableCell()
            cell.addElement(P(text=value))
            tr.addElement(cell)
        table.addElement(tr)
    text.text.addElement(table)
    path = tmp_path / "report.odt"
    text.save(str(path))
    doc = parse_file(path, OPTS, None)
    assert doc.doc_type is DocumentType.ODT
    assert [(b.text, b.level) for b in doc.blocks if b.kind is BlockKind.HEADING] == [("Field report", 1)]
    assert [b.text for b in doc.blocks if b.kind is BlockKind.LIST_ITEM] == ["Soil", "Water"]
    assert doc.tables[0].rows == (("Sample", "pH"), ("A", "6.5"))


def test_odp_slides(tmp_path: Path) -> None:
    pres = OpenDocumentPresentation()
    layout = PageLayout(name="PL")
    pres.automaticstyles.addElement(layout)
    master = MasterPage(name="Default", pagelayoutname=layout)
    pres.masterstyles.addElement(master)
    for number, (title, body) in enumerate([("Opening", "Welcome all"), ("Plan", "Ship in May")], start=1):
        page = Page(masterpagename=master, name=f"page{number}")
        # Body first in the XML but lower on the slide: position decides the order.
        for cls, text, y in (("outline", body, "8cm"), ("title", title, "1cm")):
            frame = Frame(width="20cm", height="3cm", x="2cm", y=y)
            frame.setAttrNS(PRESENTATIONNS, "class", cls)
            box = TextBox()
            box.addElement(P(text=text))
            frame.addElement(box)
            page.addElement(frame)
        pres.presentation.addElement(page)
    path = tmp_path / "deck.odp"
    pres.save(str(path))
    doc = parse_file(path, OPTS, None)
    assert doc.doc_type is DocumentType.ODP
    content = [(b.kind, b.text, b.page) for b in doc.blocks if b.text]
    assert content == [
        (BlockKind.TITLE, "Opening", 1),
        (BlockKind.PARAGRAPH, "Welcome all", 1),
        (BlockKind.HEADING, "Plan", 2),
        (BlockKind.PARAGRAPH, "Ship in May", 2),
    ]
    assert doc.blocks[1].bbox == pytest.approx((56.69, 28.35, 623.62, 113.39), abs=0.05)


def test_epub_follows_the_spine(tmp_path: Path) -> None:
    book = epub.EpubBook()
    book.set_identifier("book-1")
    book.set_title("Tides")
    book.set_language("en")
    one = epub.EpubHtml(title="One", file_name="one.xhtml", lang="en")
    one.content = "<html><body><h1>Chapter one</h1><p>The sea rose.</p></body></html>"
    two = epub.EpubHtml(title="Two", file_name="two.xhtml", lang="en")
    two.content = "<html><body><h1>Chapter two</h1><p>The sea fell.</p></body></html>"
    book.add_item(one)
    book.add_item(two)
    book.add_item(epub.EpubNcx())
    book.spine = [two, one]  # the spine, not the file names, decides
    path = tmp_path / "tides.epub"
    epub.write_epub(str(path), book)
    doc = parse_file(path, OPTS, LIMITS)
    assert doc.doc_type is DocumentType.EPUB
    assert doc.blocks[0].kind is BlockKind.TITLE
    assert doc.blocks[0].text == "Tides"
    headings = [b.text for b in doc.blocks if b.kind is BlockKind.HEADING]
    assert headings == ["Chapter two", "Chapter one"]
    assert doc.metadata["book_language"] == "en"


def test_epub_zip_bomb_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.epub"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        zf.writestr("META-INF/container.xml", "<container/>")
        zf.writestr("OEBPS/ch1.xhtml", b" " * (64 * 1024 * 1024))
    with pytest.raises(DocumentTooLargeError, match="zip bomb"):
        parse_file(path, OPTS, LIMITS)


def test_odt_entity_expansion_refused(tmp_path: Path) -> None:
    path = tmp_path / "lol.odt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        zf.writestr(
            "content.xml",
            '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><d>&b;</d>',
        )
    with pytest.raises(CorruptDocumentError, match="entit"):
        parse_file(path, OPTS, None)


def _soffice_convert(tmp_path: Path, src: Path, target: str) -> Path:
    import subprocess

    from percolate_reading.parse.providers.legacy import soffice_path

    binary = soffice_path()
    assert binary is not None
    out = tmp_path / "converted"
    subprocess.run(
        [
            binary,
            f"-env:UserInstallation=file://{tmp_path / 'profile'}",
            "--headless",
            "--convert-to",
            target,
            "--outdir",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out / f"{src.stem}.{target}"


@pytest.mark.slow
@pytest.mark.skipif(not libreoffice_available(), reason="LibreOffice is optional and not installed here")
def test_legacy_doc_and_ppt_through_libreoffice(tmp_path: Path) -> None:
    src = tmp_path / "old.docx"
    src.write_bytes(make_docx("Written in 1997"))
    doc_path = _soffice_convert(tmp_path, src, "doc")
    doc = parse_file(doc_path, OPTS, SandboxLimits(memory_mb=4096, timeout_s=300, cpu_s=300))
    assert doc.doc_type is DocumentType.DOC
    assert "Written in 1997" in doc.text()
    assert [b.text for b in doc.blocks if b.kind is BlockKind.HEADING] == ["Attached report"]
    import pptx

    prs = pptx.Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[1])
    slide.shapes.title.text = "Old deck"
    slide.placeholders[1].text = "Still readable"
    pptx_path = tmp_path / "deck.pptx"
    prs.save(str(pptx_path))
    ppt = parse_file(_soffice_convert(tmp_path, pptx_path, "ppt"), OPTS, SandboxLimits(4096, 300, 300))
    assert ppt.doc_type is DocumentType.PPT
    assert "Still readable" in ppt.text()


def test_legacy_without_libreoffice_is_unsupported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from percolate_reading.parse.providers import legacy
    from tests.service.test_detect import _ole_bytes

    monkeypatch.setenv("PERCOLATE_READING_SOFFICE", str(tmp_path / "missing-soffice"))
    legacy.soffice_path.cache_clear()
    try:
        path = tmp_path / "old.doc"
        path.write_bytes(_ole_bytes(["WordDocument", "1Table"]))
        with pytest.raises(UnsupportedTypeError, match="LibreOffice"):
            parse_file(path, OPTS, None)
    finally:
        legacy.soffice_path.cache_clear()


def test_eml_encoded_words_in_headers_and_filenames_are_decoded(tmp_path: Path) -> None:
    msg = EmailMessage()
    msg["From"] = "Jürgen Groß <jg@example.com>"
    msg["Subject"] = "Bericht über Größen \u2013 März"
    msg.set_content("Die Zahlen für März.")
    msg.add_attachment(b"col\n1\n", maintype="text", subtype="csv", filename="Übersicht März.csv")
    raw = msg.as_bytes()
    assert b"=?utf-8?" in raw  # the headers travel as RFC 2047 encoded words
    path = tmp_path / "mail.eml"
    path.write_bytes(raw)
    doc = parse_file(path, ParseOptions(), None)
    assert doc.metadata["headers"]["Subject"] == "Bericht über Größen \u2013 März"
    assert doc.metadata["headers"]["From"] == "Jürgen Groß <jg@example.com>"
    assert "Die Zahlen für März." in doc.text()
    assert [c.source_name for c in doc.children] == ["Übersicht März.csv"]
