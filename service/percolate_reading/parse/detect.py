"""Type detection by content (magic bytes), never by file name.

Only the first few KiB are read, plus the zip central directory or the OLE directory when
the header says the file is one of those containers. Everything not recognised is a
permanent `UnsupportedTypeError` that says what was seen, so a user knows why.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import BinaryIO

from percolate_reading.errors import (
    CorruptDocumentError,
    EmptyDocumentError,
    EncryptedDocumentError,
    UnsupportedTypeError,
)
from percolate_reading.parse.document import DocumentType

HEAD_BYTES = 4096

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")

# ISO-BMFF major brands whose files carry an audio track faster-whisper can decode.
_AUDIO_BRANDS = frozenset(
    {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"mp41", b"mp42", b"isom", b"iso2", b"iso4", b"iso5", b"dash"}
)

# Recognised but unsupported formats: (magic, offset, human name).
_NAMED_UNSUPPORTED: tuple[tuple[bytes, int, str], ...] = (
    (b"GIF87a", 0, "GIF image"),
    (b"GIF89a", 0, "GIF image"),
    (b"\x1f\x8b", 0, "gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", 0, "7-Zip archive"),
    (b"Rar!\x1a\x07", 0, "RAR archive"),
    (b"{\\rtf", 0, "RTF document"),
    (b"\x1aE\xdf\xa3", 0, "Matroska/WebM media"),
    (b"\x7fELF", 0, "ELF executable"),
    (b"MZ", 0, "Windows executable"),
    (b"<?xml", 0, "XML document"),
)


def detect_type(path: Path) -> DocumentType:
    """Return the document type of the file at `path`, judged by its bytes."""
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
        if not head:
            raise EmptyDocumentError("the file is empty (0 bytes)")
        return _detect(head, f)


def _detect(head: bytes, f: BinaryIO) -> DocumentType:
    # PDF readers accept junk before the header (mail gateways prepend some), within 1 KiB.
    if b"%PDF" in head[:1024]:
        return DocumentType.PDF
    if head.startswith(_ZIP_MAGICS):
        return _detect_zip(f)
    if head.startswith(_OLE_MAGIC):
        _raise_for_ole(f)
    if head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8\xff"):
        return DocumentType.IMAGE
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return DocumentType.IMAGE
    if _is_audio(head):
        return DocumentType.AUDIO
    raise UnsupportedTypeError(f"unsupported file type: {_describe(head)}")


def _is_audio(head: bytes) -> bool:
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return True
    if head.startswith((b"fLaC", b"ID3", b"OggS")):
        return True
    if head[4:8] == b"ftyp" and head[8:12] in _AUDIO_BRANDS:
        return True
    # MPEG audio frame sync (11 set bits): MP3 without ID3 tag, or ADTS AAC (layer bits 00).
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0


def _detect_zip(f: BinaryIO) -> DocumentType:
    f.seek(0)
    try:
        with zipfile.ZipFile(f) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CorruptDocumentError(
            f"the file starts like a ZIP archive (XLSX is one) but it is truncated or corrupt: {exc}"
        ) from None
    if "xl/workbook.xml" in names:
        return DocumentType.XLSX
    kind = _zip_kind(names)
    raise UnsupportedTypeError(f"unsupported file type: {kind}; supported are PDF, XLSX, audio and images")


def _zip_kind(names: set[str]) -> str:
    if "xl/workbook.bin" in names:
        return "Excel binary workbook (.xlsb); save it as .xlsx"
    if "word/document.xml" in names:
        return "Word document (.docx)"
    if "ppt/presentation.xml" in names:
        return "PowerPoint presentation (.pptx)"
    if "mimetype" in names and any(n == "content.xml" for n in names):
        return "OpenDocument file (.ods/.odt); save it as .xlsx or PDF"
    if "META-INF/container.xml" in names:
        return "EPUB book"
    return "a ZIP archive that is not an XLSX workbook (no xl/workbook.xml inside)"


# --- OLE compound files (legacy Office, and the envelope of password-protected OOXML) -----

_FREESECT = 0xFFFFFFFF
_ENDOFCHAIN = 0xFFFFFFFE
_MAX_SECTORS = 1 << 20  # guard against cyclic or absurd chains in hostile files


def _raise_for_ole(f: BinaryIO) -> None:
    names = _ole_entry_names(f)
    if "EncryptedPackage" in names:
        raise EncryptedDocumentError(
            "the file is a password-protected Office document (encrypted OOXML package); "
            "remove the password and upload it again"
        )
    if "Workbook" in names or "Book" in names:
        raise UnsupportedTypeError(
            "unsupported file type: legacy Excel 97-2003 workbook (.xls); save it as .xlsx"
        )
    if "WordDocument" in names:
        raise UnsupportedTypeError("unsupported file type: legacy Word document (.doc)")
    if "PowerPoint Document" in names:
        raise UnsupportedTypeError("unsupported file type: legacy PowerPoint presentation (.ppt)")
    raise UnsupportedTypeError("unsupported file type: OLE compound file (legacy Office format)")


def _ole_entry_names(f: BinaryIO) -> set[str]:
    """Names of all directory entries of an OLE/CFB file; best effort on broken files."""
    try:
        return _read_ole_directory(f)
    except (struct.error, OSError, ValueError):
        # A damaged directory chain: fall back to scanning the start for the UTF-16 names.
        f.seek(0)
        blob = f.read(1 << 20)
        return {n for n in ("EncryptedPackage", "Workbook", "WordDocument") if n.encode("utf-16-le") in blob}


def _read_ole_directory(f: BinaryIO) -> set[str]:
    f.seek(0)
    header = f.read(512)
    if len(header) < 512:
        raise ValueError("short OLE header")
    sector_shift = struct.unpack_from("<H", header, 30)[0]
    if sector_shift not in (9, 12):
        raise ValueError("bad sector size")
    sector_size = 1 << sector_shift
    n_fat, first_dir, _, _, _, first_difat, n_difat = struct.unpack_from("<7I", header, 44)
    fat_sectors = [s for s in struct.unpack_from("<109I", header, 76) if s != _FREESECT]
    per_sector = sector_size // 4

    def read_sector(sid: int) -> bytes:
        f.seek((sid + 1) * sector_size)
        data = f.read(sector_size)
        if len(data) < sector_size:
            raise ValueError("sector beyond end of file")
        return data

    sid = first_difat
    for _ in range(min(n_difat, _MAX_SECTORS)):
        if sid in (_ENDOFCHAIN, _FREESECT):
            break
        entries = struct.unpack(f"<{per_sector}I", read_sector(sid))
        fat_sectors.extend(s for s in entries[:-1] if s != _FREESECT)
        sid = entries[-1]
    fat_sectors = fat_sectors[: max(n_fat, 0)]

    def fat_next(sector: int) -> int:
        idx, off = divmod(sector, per_sector)
        if idx >= len(fat_sectors):
            raise ValueError("sector outside the FAT")
        return int(struct.unpack_from("<I", read_sector(fat_sectors[idx]), off * 4)[0])

    names: set[str] = set()
    sid = first_dir
    seen = 0
    while sid not in (_ENDOFCHAIN, _FREESECT) and seen < _MAX_SECTORS:
        data = read_sector(sid)
        for off in range(0, sector_size, 128):
            name_len = struct.unpack_from("<H", data, off + 64)[0]
            if 2 <= name_len <= 64:
                names.add(data[off : off + name_len - 2].decode("utf-16-le", errors="replace"))
        sid = fat_next(sid)
        seen += 1
    return names


def _describe(head: bytes) -> str:
    for magic, offset, name in _NAMED_UNSUPPORTED:
        if head[offset:].startswith(magic):
            return name
    if head[:2] == b"BM" and head[6:10] == b"\0\0\0\0":  # reserved header bytes, always zero
        return "BMP image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP image"
    if head[4:8] == b"ftyp":
        brand = head[8:12].decode("latin-1").strip()
        return f"ISO media file with brand {brand!r} (e.g. HEIC/AVIF/video)"
    lowered = head[:512].lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        return "HTML document"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut off by the read limit is still text.
        if exc.start < len(head) - 4:
            return f"unknown binary data starting with bytes {head[:8].hex(' ')}"
    return "plain text (no recognised document signature)"
