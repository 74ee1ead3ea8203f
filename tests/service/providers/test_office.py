"""DOCX and PPTX providers, on documents built with python-docx / python-pptx."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import docx
import pptx
import pytest
from docx.enum.text import WD_BREAK
from pptx.util import Inches

from percolate_reading.errors import CorruptDocumentError, DocumentTooLargeError, EncryptedDocumentError
from percolate_reading.parse.document import BlockKind, DocumentType
from percolate_reading.parse.parsing import parse_file
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.render.markdown import to_markdown
from percolate_reading.parse.sandbox import SandboxLimits

OPTS = ParseOptions(ocr_enabled=False)


def _docx(tmp_path: Path, name: str = "report.docx") -> Path:
    d = docx.Document()
    d.core_properties.title = "Quarterly report"
    d.add_heading("Quarterly report", level=0)
    d.add_heading("Summary", level=1)
    d.add_paragraph("Revenue grew by twelve percent.")
    d.add_paragraph("First point", style="List Bullet")
    d.add_paragraph("Nested point", style="List Bullet 2")
    d.add_paragraph("Step one", style="List Number")
    d.add_heading("Figures", level=2)
    table = d.add_table(rows=3, cols=3)
    for r, row in enumerate([["Region", "Q1", "Q2"], ["North", "10", "12"], ["South", "7", "9"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    merged = d.add_table(rows=2, cols=3)
    a = merged.cell(0, 0).merge(merged.cell(0, 1))
    a.text = "Wide header"
    merged.cell(0, 2).text = "Right"
    merged.cell(1, 0).text = "x"
    merged.cell(1, 1).text = "y"
    merged.cell(1, 2).text = "z"
    p = d.add_paragraph("Before the break")
    p.add_run().add_break(WD_BREAK.LINE)
    p.add_run("after the break")
    d.sections[0].header.paragraphs[0].text = "ACME confidential"
    d.sections[0].footer.paragraphs[0].text = "Page footer text"
    path = tmp_path / name
    d.save(str(path))
    return path


def test_docx_structure(tmp_path: Path) -> None:
    doc = parse_file(_docx(tmp_path), OPTS, None)
    assert doc.doc_type is DocumentType.DOCX
    kinds = [(b.kind, b.text) for b in doc.blocks if b.kind is not BlockKind.TABLE]
    assert (BlockKind.TITLE, "Quarterly report") in kinds
    headings = [(b.text, b.level) for b in doc.blocks if b.kind is BlockKind.HEADING]
    assert headings == [("Summary", 1), ("Figures", 2)]
    items = [(b.text, b.level, b.ordered) for b in doc.blocks if b.kind is BlockKind.LIST_ITEM]
    assert items == [("First point", 0, False), ("Nested point", 1, False), ("Step one", 0, True)]
    assert doc.tables[0].rows == (("Region", "Q1", "Q2"), ("North", "10", "12"), ("South", "7", "9"))
    assert doc.tables[0].header_rows == 1
    # A horizontal merge: the value fills both cells and the span is recorded.
    assert doc.tables[1].rows[0] == ("Wide header", "Wide header", "Right")
    assert (0, 0, 1, 2) in doc.tables[1].spans
    assert any(b.text == "Before the break\nafter the break" for b in doc.blocks)
    assert [b.text for b in doc.blocks if b.kind is BlockKind.PAGE_HEADER] == ["ACME confidential"]
    assert [b.text for b in doc.blocks if b.kind is BlockKind.PAGE_FOOTER] == ["Page footer text"]
    md = to_markdown(doc)
    assert "# Quarterly report" in md
    assert "| Region | Q1 | Q2 |" in md
    assert "ACME confidential" not in md  # running heads are not body text


def test_docx_vertical_merge(tmp_path: Path) -> None:
    d = docx.Document()
    t = d.add_table(rows=3, cols=2)
    top = t.cell(0, 0).merge(t.cell(2, 0))
    top.text = "Tall"
    for r, v in enumerate(["a", "b", "c"]):
        t.cell(r, 1).text = v
    path = tmp_path / "v.docx"
    d.save(str(path))
    table = parse_file(path, OPTS, None).tables[0]
    assert [row[0] for row in table.rows] == ["Tall", "Tall", "Tall"]
    assert (0, 0, 3, 1) in table.spans


def _rezip(src: Path, dst: Path, replace: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, replace.get(info.filename, zin.read(info.filename)))
        for name, data in replace.items():
            if name not in zin.namelist():
                zout.writestr(name, data)
    return dst


def test_docx_entity_expansion_refused(tmp_path: Path) -> None:
    src = _docx(tmp_path)
    body = zipfile.ZipFile(src).read("word/document.xml")
    lol = (
        b'<?xml version="1.0"?><!DOCTYPE w:document [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    )
    hostile = _rezip(src, tmp_path / "lol.docx", {"word/document.xml": lol + body.split(b"?>", 1)[1]})
    with pytest.raises(CorruptDocumentError, match="entit"):
        parse_file(hostile, OPTS, None)


def test_docx_zip_bomb_refused_in_sandbox(tmp_path: Path) -> None:
    src = _docx(tmp_path)
    bomb = tmp_path / "bomb.docx"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
        zout.writestr("word/media/filler.bin", b"\0" * (32 * 1024 * 1024))
    limits = SandboxLimits(memory_mb=512, timeout_s=60, cpu_s=60)
    with pytest.raises(DocumentTooLargeError, match="zip bomb"):
        parse_file(bomb, OPTS, limits)


def test_docx_truncated_is_corrupt(tmp_path: Path) -> None:
    data = _docx(tmp_path).read_bytes()
    cut = tmp_path / "cut.docx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptDocumentError):
        parse_file(cut, OPTS, None)


def test_encrypted_ooxml_is_encrypted(tmp_path: Path) -> None:
    from tests.service.test_detect import _ole_bytes

    path = tmp_path / "secret.docx"
    path.write_bytes(_ole_bytes(["EncryptionInfo", "EncryptedPackage"]))
    with pytest.raises(EncryptedDocumentError):
        parse_file(path, OPTS, None)


def _pptx(tmp_path: Path) -> Path:
    prs = pptx.Presentation()
    s1 = prs.slides.add_slide(prs.slide_layouts[0])
    s1.shapes.title.text = "Launch plan"
    s1.placeholders[1].text = "Spring release"
    s2 = prs.slides.add_slide(prs.slide_layouts[1])
    s2.shapes.title.text = "Agenda"
    body = s2.placeholders[1].text_frame
    body.text = "Goals"
    sub = body.add_paragraph()
    sub.text = "Hire two engineers"
    sub.level = 1
    # A box placed above the body placeholder but added last: reading order is by position.
    box = s2.shapes.add_textbox(Inches(1), Inches(0.1), Inches(4), Inches(0.5))
    box.text_frame.text = "Draft - internal"
    s2.notes_slide.notes_text_frame.text = "Mention the budget"
    s3 = prs.slides.add_slide(prs.slide_layouts[5])
    s3.shapes.title.text = "Numbers"
    table = s3.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, row in enumerate([["Metric", "Value"], ["Users", "1200"], ["Churn", "3%"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    path = tmp_path / "deck.pptx"
    prs.save(str(path))
    return path


def test_pptx_slides_in_order(tmp_path: Path) -> None:
    doc = parse_file(_pptx(tmp_path), OPTS, None)
    assert doc.doc_type is DocumentType.PPTX
    assert doc.metadata["slide_count"] == 3
    titles = [(b.kind, b.text, b.page) for b in doc.blocks if b.kind in (BlockKind.TITLE, BlockKind.HEADING)]
    assert titles == [
        (BlockKind.TITLE, "Launch plan", 1),
        (BlockKind.HEADING, "Agenda", 2),
        (BlockKind.HEADING, "Numbers", 3),
    ]
    slide2 = [b for b in doc.blocks if b.page == 2 and b.kind is not BlockKind.PAGE_BREAK]
    texts = [b.text for b in slide2]
    assert texts.index("Draft - internal") < texts.index("Goals") < texts.index("Hire two engineers")
    nested = next(b for b in slide2 if b.text == "Hire two engineers")
    assert nested.kind is BlockKind.LIST_ITEM
    assert nested.level == 1
    assert next(b for b in slide2 if b.text == "Mention the budget").label == "notes"
    assert all(b.bbox is not None for b in slide2 if b.label != "notes")
    assert doc.tables[0].rows == (("Metric", "Value"), ("Users", "1200"), ("Churn", "3%"))
    assert doc.tables[0].page == 3


def test_pptx_runs_in_sandbox(tmp_path: Path) -> None:
    limits = SandboxLimits(memory_mb=1024, timeout_s=60, cpu_s=60)
    doc = parse_file(_pptx(tmp_path), OPTS, limits)
    assert "Spring release" in doc.text()


def test_docx_is_not_taken_for_xlsx(tmp_path: Path) -> None:
    from percolate_reading.parse.detect import sniff_head

    data = _docx(tmp_path).read_bytes()
    assert sniff_head(data[:65536]) is DocumentType.DOCX
    assert sniff_head(io.BytesIO(_pptx(tmp_path).read_bytes()).read(65536)) is DocumentType.PPTX
