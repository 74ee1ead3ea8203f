"""Hostile variants of the office, web and e-mail formats, each run in the sandbox: refused
with a typed error (or parsed) within the limits, never crashing the caller."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pptx
import pytest
from odf.opendocument import OpenDocumentText
from odf.text import P

from percolate_reading.errors import CorruptDocumentError, DocumentTooLargeError
from percolate_reading.parse.parsing import parse_file
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.sandbox import SandboxLimits

OPTS = ParseOptions(ocr_enabled=False)
LIMITS = SandboxLimits(memory_mb=768, timeout_s=60, cpu_s=60)


def _with_member(src: Path, dst: Path, name: str, data: bytes) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, data if info.filename == name else zin.read(info.filename))
        if name not in zin.namelist():
            zout.writestr(name, data)
    return dst


def _pptx(tmp_path: Path) -> Path:
    prs = pptx.Presentation()
    prs.slides.add_slide(prs.slide_layouts[5]).shapes.title.text = "Hello"
    path = tmp_path / "deck.pptx"
    prs.save(str(path))
    return path


def _odt(tmp_path: Path) -> Path:
    doc = OpenDocumentText()
    doc.text.addElement(P(text="Hello"))
    path = tmp_path / "doc.odt"
    doc.save(str(path))
    return path


@pytest.mark.parametrize("make", [_pptx, _odt])
def test_zip_bombs_refused(tmp_path: Path, make: object) -> None:
    src = make(tmp_path)  # type: ignore[operator]
    bomb = _with_member(src, tmp_path / f"bomb{src.suffix}", "media/zeros.bin", b"\0" * (48 * 1024 * 1024))
    with pytest.raises(DocumentTooLargeError, match="zip bomb"):
        parse_file(bomb, OPTS, LIMITS)


def test_pptx_billion_laughs_refused(tmp_path: Path) -> None:
    src = _pptx(tmp_path)
    slide = zipfile.ZipFile(src).read("ppt/slides/slide1.xml")
    lol = (
        b'<?xml version="1.0"?><!DOCTYPE p:sld ['
        + b"".join(
            f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10 if i else "lol"}">'.encode() for i in range(10)
        )
        + b"]>"
    )
    hostile = _with_member(
        src, tmp_path / "lol.pptx", "ppt/slides/slide1.xml", lol + slide.split(b"?>", 1)[1]
    )
    with pytest.raises(CorruptDocumentError, match="entit"):
        parse_file(hostile, OPTS, LIMITS)


def test_html_of_100_mb_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.html"
    with path.open("wb") as f:
        f.write(b"<html><body>")
        block = b"<p>" + b"x" * 1021 + b"</p>"
        for _ in range(100 * 1024):
            f.write(block)
    with pytest.raises(DocumentTooLargeError, match="byte limit"):
        parse_file(path, OPTS, LIMITS)


def test_html_just_under_the_limit_parses_within_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.html"
    row = b"<tr><td>cell</td><td>42</td></tr>"
    with path.open("wb") as f:
        f.write(b"<html><body><table>")
        for _ in range(200_000):
            f.write(row)
        f.write(b"</table></body></html>")
    doc = parse_file(path, OPTS, SandboxLimits(memory_mb=2048, timeout_s=120, cpu_s=120))
    assert doc.tables[0].n_rows == 200_000


def test_eml_with_deeply_nested_messages(tmp_path: Path) -> None:
    # Messages attached inside messages: parsed to a bounded depth, then listed as skipped.
    inner = b"From: a@example.com\nSubject: level 0\n\ninnermost\n"
    for level in range(1, 8):
        inner = (
            (
                f"From: a@example.com\nSubject: level {level}\nMIME-Version: 1.0\n"
                f'Content-Type: multipart/mixed; boundary="b{level}"\n\n--b{level}\n'
                "Content-Type: text/plain\n\nbody\n"
                f"--b{level}\nContent-Type: message/rfc822\n\n"
            ).encode()
            + inner
            + f"\n--b{level}--\n".encode()
        )
    path = tmp_path / "nested.eml"
    path.write_bytes(inner)
    doc = parse_file(path, OPTS, LIMITS)
    depth = 0
    node = doc
    while node.children:
        node = node.children[0]
        depth += 1
    assert depth == 3
    assert node.metadata["attachments"][0]["status"] == "skipped"
