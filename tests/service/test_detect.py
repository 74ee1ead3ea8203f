"""Type detection by content: the name never matters."""

from __future__ import annotations

import io
import struct
import wave
import zipfile
from pathlib import Path

import openpyxl
import pymupdf
import pytest

from percolate_reading.errors import (
    CorruptDocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
    UnsupportedTypeError,
)
from percolate_reading.parse.detect import _ole_names_in, detect_type
from percolate_reading.parse.document import DocumentType


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _pdf_bytes() -> bytes:
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "hello")
    data: bytes = doc.tobytes()
    doc.close()
    return data


def _xlsx_bytes() -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws["A1"] = "x"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _zip_bytes(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n in names:
            zf.writestr(n, "<x/>")
    return buf.getvalue()


def _wav_bytes() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 1600)
    return buf.getvalue()


def _ole_bytes(stream_names: list[str], sector_shift: int = 9) -> bytes:
    """A minimal but well-formed compound file: header, one FAT sector, directory sectors."""
    size = 1 << sector_shift
    entries = ["Root Entry", *stream_names]
    per_sector = size // 128
    n_dir = -(-len(entries) // per_sector)
    # Sector 0 = FAT, sectors 1..n_dir = directory chain.
    fat = [0xFFFFFFFD] + [i + 1 for i in range(1, n_dir)] + [0xFFFFFFFE]
    fat += [0xFFFFFFFF] * (size // 4 - len(fat))
    header = bytearray(512)
    header[0:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHH", header, 24, 0x3E, 3 if sector_shift == 9 else 4, 0xFFFE)
    struct.pack_into("<H", header, 30, sector_shift)
    # FAT sectors, first directory sector, transaction, cutoff, mini FAT start and count,
    # DIFAT start and count.
    struct.pack_into("<8I", header, 44, 1, 1, 0, 4096, 0xFFFFFFFE, 0, 0xFFFFFFFE, 0)
    difat = [0] + [0xFFFFFFFF] * 108
    struct.pack_into("<109I", header, 76, *difat)
    directory = bytearray(n_dir * size)
    for i, name in enumerate(entries):
        raw = name.encode("utf-16-le") + b"\x00\x00"
        directory[i * 128 : i * 128 + len(raw)] = raw
        struct.pack_into("<H", directory, i * 128 + 64, len(raw))
        directory[i * 128 + 66] = 5 if i == 0 else 2
    head = bytes(header) + b"\x00" * (size - 512)
    return head + struct.pack(f"<{size // 4}I", *fat) + bytes(directory)


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("report.pdf", None, DocumentType.PDF),
        ("book.xlsx", None, DocumentType.XLSX),
        ("clip.wav", None, DocumentType.AUDIO),
        ("a.flac", b"fLaC\x00\x00\x00\x22" + b"\x00" * 40, DocumentType.AUDIO),
        ("a.mp3", b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 40, DocumentType.AUDIO),
        ("b.mp3", b"\xff\xfb\x90\x64" + b"\x00" * 40, DocumentType.AUDIO),
        ("a.ogg", b"OggS\x00\x02" + b"\x00" * 40, DocumentType.AUDIO),
        ("a.m4a", b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00" + b"\x00" * 40, DocumentType.AUDIO),
        ("a.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, DocumentType.IMAGE),
        ("a.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x00" * 40, DocumentType.IMAGE),
        ("a.tif", b"II*\x00\x08\x00\x00\x00" + b"\x00" * 40, DocumentType.IMAGE),
        ("b.tif", b"MM\x00*\x00\x00\x00\x08" + b"\x00" * 40, DocumentType.IMAGE),
    ],
)
def test_supported_types(tmp_path: Path, name: str, data: bytes | None, expected: DocumentType) -> None:
    if data is None:
        data = {"report.pdf": _pdf_bytes, "book.xlsx": _xlsx_bytes, "clip.wav": _wav_bytes}[name]()
    assert detect_type(_write(tmp_path, name, data)) is expected


def test_name_is_ignored(tmp_path: Path) -> None:
    assert detect_type(_write(tmp_path, "invoice.xlsx", _pdf_bytes())) is DocumentType.PDF
    assert detect_type(_write(tmp_path, "notes.txt", _xlsx_bytes())) is DocumentType.XLSX
    assert detect_type(_write(tmp_path, "noext", _wav_bytes())) is DocumentType.AUDIO


def test_pdf_header_after_junk_within_1kib(tmp_path: Path) -> None:
    assert detect_type(_write(tmp_path, "a", b"X" * 900 + _pdf_bytes())) is DocumentType.PDF
    # Past 1 KiB the header no longer counts (this small PDF is all ASCII: it reads as text).
    assert detect_type(_write(tmp_path, "b", b"X" * 1100 + _pdf_bytes())) is not DocumentType.PDF


def test_zero_bytes(tmp_path: Path) -> None:
    with pytest.raises(EmptyDocumentError, match=r"empty \(0 bytes\)"):
        detect_type(_write(tmp_path, "empty.pdf", b""))


def test_zip_that_is_no_document(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedTypeError, match="no Office, OpenDocument or EPUB document"):
        detect_type(_write(tmp_path, "a.xlsx", _zip_bytes(["readme.txt"])))
    with pytest.raises(UnsupportedTypeError, match=r"\.xlsb"):
        detect_type(_write(tmp_path, "c.xlsx", _zip_bytes(["xl/workbook.bin"])))


def _ooxml(main_part: str, content_type: str) -> bytes:
    types = (
        '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        f'<Override PartName="/{main_part}" ContentType="application/vnd.openxmlformats-officedocument.'
        f'{content_type}"/></Types>'
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", types)
        zf.writestr(main_part, "<x/>")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_ooxml("word/document.xml", "wordprocessingml.document.main+xml"), DocumentType.DOCX),
        (_ooxml("ppt/presentation.xml", "presentationml.presentation.main+xml"), DocumentType.PPTX),
        (_ooxml("xl/workbook.xml", "spreadsheetml.sheet.main+xml"), DocumentType.XLSX),
        # The content-types part decides, not the part names a generator happened to use.
        (_ooxml("custom/main.xml", "wordprocessingml.document.main+xml"), DocumentType.DOCX),
    ],
)
def test_ooxml_subtype_by_content_types(tmp_path: Path, data: bytes, expected: DocumentType) -> None:
    from percolate_reading.parse.detect import sniff_head

    assert detect_type(_write(tmp_path, "file.xlsx", data)) is expected
    # The gateway decides from the first bytes only, and agrees.
    assert sniff_head(data[:4096]) is expected


def _odf(mimetype: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mimetype", mimetype, compress_type=zipfile.ZIP_STORED)
        zf.writestr("content.xml", "<x/>", compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("mimetype", "expected"),
    [
        ("application/vnd.oasis.opendocument.text", DocumentType.ODT),
        ("application/vnd.oasis.opendocument.spreadsheet", DocumentType.ODS),
        ("application/vnd.oasis.opendocument.presentation", DocumentType.ODP),
        ("application/epub+zip", DocumentType.EPUB),
    ],
)
def test_zip_mimetype_member(tmp_path: Path, mimetype: str, expected: DocumentType) -> None:
    from percolate_reading.parse.detect import sniff_head

    data = _odf(mimetype)
    assert detect_type(_write(tmp_path, "f.zip", data)) is expected
    assert sniff_head(data) is expected


def test_truncated_xlsx_is_corrupt(tmp_path: Path) -> None:
    data = _xlsx_bytes()
    with pytest.raises(CorruptDocumentError, match="truncated or corrupt"):
        detect_type(_write(tmp_path, "cut.xlsx", data[: len(data) // 2]))


@pytest.mark.parametrize("sector_shift", [9, 12])
def test_password_protected_ooxml(tmp_path: Path, sector_shift: int) -> None:
    data = _ole_bytes(
        ["\x06DataSpaces", "Version", "DataSpaceMap", "Primary", "EncryptionInfo", "EncryptedPackage"],
        sector_shift,
    )
    with pytest.raises(EncryptedDocumentError, match="password-protected Office document"):
        detect_type(_write(tmp_path, "secret.xlsx", data))


@pytest.mark.parametrize(
    ("streams", "expected"),
    [
        (["Workbook", "\x05SummaryInformation"], DocumentType.XLS),
        (["WordDocument", "1Table"], DocumentType.DOC),
        (["PowerPoint Document", "Current User"], DocumentType.PPT),
        (["__substg1.0_0037001F", "__properties_version1.0"], DocumentType.MSG),
    ],
)
def test_ole_kinds(tmp_path: Path, streams: list[str], expected: DocumentType) -> None:
    assert detect_type(_write(tmp_path, "old.bin", _ole_bytes(streams))) is expected


def test_unknown_ole_file(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedTypeError, match="no Word, Excel, PowerPoint or Outlook"):
        detect_type(_write(tmp_path, "x.bin", _ole_bytes(["Something"])))


def test_ole_directory_read_without_a_difat_walk(tmp_path: Path) -> None:
    """A file with a mini FAT and no DIFAT sectors: the header's DIFAT fields are read where
    they are (offsets 68/72), so no sector is mistaken for a DIFAT chain to follow."""
    from tests.service.providers.msg_fixtures import Attached, Message, msg_bytes

    data = msg_bytes(Message(subject="s", attachments=[Attached(f"{i}.txt", b"x") for i in range(300)]))
    assert struct.unpack_from("<I", data, 64)[0] > 0  # mini FAT sectors
    reads = 0

    class Counting(io.BytesIO):
        def read(self, size: int | None = -1, /) -> bytes:
            nonlocal reads
            reads += 1
            return super().read(size)

    names = _ole_names_in(Counting(data))
    assert {"__attach_version1.0_#0000012B", "__properties_version1.0"} <= names
    # Each directory sector and its FAT entry: at most two reads per sector of the file.
    assert reads <= 2 * len(data) // 512 + 10


def test_broken_ole_directory_falls_back_to_a_scan(tmp_path: Path) -> None:
    data = bytearray(_ole_bytes(["EncryptionInfo", "EncryptedPackage"]))
    struct.pack_into("<I", data, 48, 999)  # first directory sector beyond the end
    with pytest.raises(EncryptedDocumentError):
        detect_type(_write(tmp_path, "x.xlsx", bytes(data)))


@pytest.mark.parametrize(
    ("data", "seen"),
    [
        (b"\x00\x00\x00\x18ftypheic\x00\x00", "brand 'heic'"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 20, "gzip archive"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "XML document"),
        (b"\x00\x01\x02\x03\xfe\xfd\xfc\xfb" * 8, "00 01 02 03 fe fd fc fb"),
    ],
)
def test_unknown_types_name_what_was_seen(tmp_path: Path, data: bytes, seen: str) -> None:
    with pytest.raises(UnsupportedTypeError, match="unsupported file type") as info:
        detect_type(_write(tmp_path, "file.pdf", data))
    assert seen in info.value.message
    assert info.value.permanent


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (b"GIF89a" + b"\x00" * 20, "x", DocumentType.IMAGE),
        (b"BM\x36\x00\x0c\x00\x00\x00\x00\x00\x36\x00\x00\x00" + b"\x00" * 20, "x", DocumentType.IMAGE),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "x", DocumentType.IMAGE),
        (b"BMW sales figures rose again this year.", "x", DocumentType.TEXT),
        (b"hello, plain words\n", "x", DocumentType.TEXT),
        (b"<!DOCTYPE html><html><body>x</body></html>", "x.txt", DocumentType.HTML),
        (b"\xef\xbb\xbf<html><p>x</p></html>", "x", DocumentType.HTML),
        ("<html><p>x</p></html>".encode("utf-16"), "x", DocumentType.HTML),
        ("<html><p>x</p></html>".encode("utf-16-le"), "x", DocumentType.HTML),
        (b"{\\rtf1\\ansi hello}", "x.txt", DocumentType.RTF),
        (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nbody", "m", DocumentType.EML),
        (b"name,qty,price\nfig,3,1.5\npear,4,2.0\n", "data", DocumentType.CSV),
        (b"name\tqty\nfig\t3\npear\t4\n", "data", DocumentType.CSV),
        (b"# Title\n\n- one\n- two\n\nSee [the docs](https://x.example).\n", "notes", DocumentType.MARKDOWN),
        # The extension only breaks ties among text, Markdown and CSV.
        (b"a,b\nc,d\n", "notes.txt", DocumentType.TEXT),
        (b"plain words", "readme.md", DocumentType.MARKDOWN),
        (b"caf\xe9 cr\xe8me, na\xefve\n", "x", DocumentType.TEXT),  # windows-1252
    ],
)
def test_text_kinds_from_content(tmp_path: Path, data: bytes, name: str, expected: DocumentType) -> None:
    assert detect_type(_write(tmp_path, "f", data), name) is expected
