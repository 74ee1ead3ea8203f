"""Type detection by content (magic bytes), never by file name alone.

Only the first few KiB are read, plus the zip central directory or the OLE directory when
the header says the file is one of those containers. Zip containers are told apart by their
content-types part (OOXML: the main part's content type, so a DOCX is never taken for an
XLSX) or their `mimetype` member (OpenDocument, EPUB). Text is told apart by its content
(RTF, HTML, e-mail headers, delimited rows); the name's extension only breaks the tie among
plain text, Markdown and CSV/TSV, where the bytes alone cannot (and a wrong guess is harmless).
Everything not recognised is a permanent `UnsupportedTypeError` that says what was seen.

`sniff_head` is the gateway's version: the same rules on the first bytes of an upload only.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import struct
import zipfile
import zlib
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
# How much of a zip/OLE upload the gateway reads to see which kind of container it is.
CONTAINER_SNIFF_BYTES = 64 * 1024
# Content-types part and `mimetype` member: small by definition; a larger one is refused unread.
_MAX_TYPES_PART = 1 << 20

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")

# ISO-BMFF major brands whose files carry an audio track faster-whisper can decode.
_AUDIO_BRANDS = frozenset(
    {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"mp41", b"mp42", b"isom", b"iso2", b"iso4", b"iso5", b"dash"}
)

# Recognised but unsupported formats: (magic, offset, human name).
_NAMED_UNSUPPORTED: tuple[tuple[bytes, int, str], ...] = (
    (b"\x1f\x8b", 0, "gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", 0, "7-Zip archive"),
    (b"Rar!\x1a\x07", 0, "RAR archive"),
    (b"\x1aE\xdf\xa3", 0, "Matroska/WebM media"),
    (b"\x7fELF", 0, "ELF executable"),
    (b"MZ", 0, "Windows executable"),
)

# OOXML main-part content types (the `Override` for the main document part).
_OOXML_MAIN: tuple[tuple[str, DocumentType | str], ...] = (
    ("spreadsheetml.sheet.main+xml", DocumentType.XLSX),
    ("spreadsheetml.template.main+xml", DocumentType.XLSX),
    ("ms-excel.sheet.macroEnabled.main+xml", DocumentType.XLSX),
    ("ms-excel.template.macroEnabled.main+xml", DocumentType.XLSX),
    ("ms-excel.sheet.binary.macroEnabled.main", "Excel binary workbook (.xlsb); save it as .xlsx"),
    ("wordprocessingml.document.main+xml", DocumentType.DOCX),
    ("wordprocessingml.template.main+xml", DocumentType.DOCX),
    ("ms-word.document.macroEnabled.main+xml", DocumentType.DOCX),
    ("ms-word.template.macroEnabledTemplate.main+xml", DocumentType.DOCX),
    ("presentationml.presentation.main+xml", DocumentType.PPTX),
    ("presentationml.slideshow.main+xml", DocumentType.PPTX),
    ("presentationml.template.main+xml", DocumentType.PPTX),
    ("ms-powerpoint.presentation.macroEnabled.main+xml", DocumentType.PPTX),
    ("ms-powerpoint.slideshow.macroEnabled.main+xml", DocumentType.PPTX),
)
# Main part names, for a package whose content-types part is missing or not yet seen.
_OOXML_PARTS: tuple[tuple[str, DocumentType | str], ...] = (
    ("xl/workbook.xml", DocumentType.XLSX),
    ("xl/workbook.bin", "Excel binary workbook (.xlsb); save it as .xlsx"),
    ("word/document.xml", DocumentType.DOCX),
    ("ppt/presentation.xml", DocumentType.PPTX),
)
_ZIP_MIMETYPES: dict[str, DocumentType] = {
    "application/vnd.oasis.opendocument.text": DocumentType.ODT,
    "application/vnd.oasis.opendocument.text-template": DocumentType.ODT,
    "application/vnd.oasis.opendocument.spreadsheet": DocumentType.ODS,
    "application/vnd.oasis.opendocument.spreadsheet-template": DocumentType.ODS,
    "application/vnd.oasis.opendocument.presentation": DocumentType.ODP,
    "application/vnd.oasis.opendocument.presentation-template": DocumentType.ODP,
    "application/epub+zip": DocumentType.EPUB,
}
_CONTENT_TYPE_RE = re.compile(rb'ContentType\s*=\s*"([^"]{1,300})"')
_SUPPORTED = (
    "PDF, Word (DOCX), PowerPoint (PPTX), Excel (XLSX/XLS), OpenDocument, EPUB, RTF, HTML, "
    "CSV/TSV, text, Markdown, e-mail (EML/MSG), images and audio"
)


def detect_type(path: Path, name_hint: str | None = None) -> DocumentType:
    """Return the document type of the file at `path`, judged by its bytes.

    `name_hint` (the uploaded file name) only picks among plain text, Markdown and CSV/TSV."""
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
        if not head:
            raise EmptyDocumentError("the file is empty (0 bytes)")
        return _detect(head, f, name_hint)


def sniff_head(head: bytes, name_hint: str | None = None) -> DocumentType | None:
    """The type the first bytes of an upload announce, or None if we do not parse it.

    For zip and OLE containers pass at least CONTAINER_SNIFF_BYTES (or the whole file): the
    parts that name their kind are read from the local headers / directory found there."""
    if not head:
        return None
    try:
        if head.startswith(_ZIP_MAGICS):
            return _zip_type_from_head(head)
        if head.startswith(_OLE_MAGIC):
            return _ole_type(_ole_names_in(io.BytesIO(head)))
        return _detect_simple(head, name_hint)
    except (UnsupportedTypeError, CorruptDocumentError):
        return None
    except EncryptedDocumentError:
        return DocumentType.XLSX  # refused by the worker with its reason; which OOXML is unknowable


def needs_container_sniff(head: bytes) -> bool:
    """Whether `sniff_head` decides better with CONTAINER_SNIFF_BYTES than with `head`."""
    return head.startswith((*_ZIP_MAGICS, _OLE_MAGIC))


def _detect(head: bytes, f: BinaryIO, name_hint: str | None) -> DocumentType:
    if head.startswith(_ZIP_MAGICS) and b"%PDF" not in head[:1024]:
        return _detect_zip(f)
    if head.startswith(_OLE_MAGIC):
        return _ole_type(_ole_entry_names(f))
    found = _detect_simple(head, name_hint)
    if found is None:
        raise UnsupportedTypeError(f"unsupported file type: {_describe(head)}; supported are {_SUPPORTED}")
    return found


def _detect_simple(head: bytes, name_hint: str | None) -> DocumentType | None:
    """Types decided by the first bytes alone (everything but zip and OLE containers)."""
    # PDF readers accept junk before the header (mail gateways prepend some), within 1 KiB.
    if b"%PDF" in head[:1024]:
        return DocumentType.PDF
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        # A UTF-16 byte-order mark, which MPEG audio's frame sync also matches.
        as_text = sniff_text(head, name_hint)
        if as_text is not None:
            return as_text
    if _is_image(head):
        return DocumentType.IMAGE
    if _is_audio(head):
        return DocumentType.AUDIO
    if head.startswith(_ZIP_MAGICS) or head.startswith(_OLE_MAGIC):
        return None
    return sniff_text(head, name_hint)


def _is_image(head: bytes) -> bool:
    if head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"GIF87a", b"GIF89a")):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    # BMP: "BM", then the file size, then four reserved bytes that are always zero.
    return head[:2] == b"BM" and head[6:10] == b"\0\0\0\0" and len(head) >= 26


def _is_audio(head: bytes) -> bool:
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return True
    if head.startswith((b"fLaC", b"ID3", b"OggS")):
        return True
    if head[4:8] == b"ftyp" and head[8:12] in _AUDIO_BRANDS:
        return True
    # MPEG audio frame sync (11 set bits): MP3 without ID3 tag, or ADTS AAC (layer bits 00).
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0


# --- text --------------------------------------------------------------------------------

_TEXT_EXTENSIONS = {
    "txt": DocumentType.TEXT,
    "text": DocumentType.TEXT,
    "log": DocumentType.TEXT,
    "md": DocumentType.MARKDOWN,
    "markdown": DocumentType.MARKDOWN,
    "csv": DocumentType.CSV,
    "tsv": DocumentType.CSV,
    "tab": DocumentType.CSV,
}
_HTML_START = re.compile(
    r"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*"
    r"(?:<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]|<meta[\s>]|<title[\s>]|<table[\s>]|<div[\s>]|<p[\s>])",
    re.IGNORECASE | re.DOTALL,
)
_MAIL_HEADER = re.compile(r"^([A-Za-z][A-Za-z0-9-]{0,75}):[ \t]?(.*)$")
_MAIL_KNOWN = frozenset(
    {
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "received",
        "return-path",
        "content-type",
        "reply-to",
        "delivered-to",
        "x-mailer",
        "sender",
        "in-reply-to",
        "references",
    }
)
_MD_SIGNS = re.compile(
    r"^(?:#{1,6}\s+\S|```|~~~|\s*[-*+]\s+\S|\s*\d{1,3}[.)]\s+\S|>\s|\|.*\|\s*$|[-=]{3,}\s*$)|\[[^\]]+\]\([^)]+\)|\*\*\S",
    re.MULTILINE,
)


def utf16_without_bom(data: bytes) -> str | None:
    """ "utf-16-le"/"utf-16-be" when `data` reads as BOM-less UTF-16 text, else None.

    Text in the Latin, Greek or Cyrillic ranges has a zero in (nearly) every high byte and
    almost none in the low bytes; zero-padded binary data has zeros in both."""
    sample = data[:1024]
    if len(sample) < 16:
        return None
    half = len(sample) // 2
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd >= 0.7 * half and even <= 0.05 * half:
        return "utf-16-le"
    if even >= 0.7 * half and odd <= 0.05 * half:
        return "utf-16-be"
    return None


def decode_text_head(head: bytes) -> str | None:
    """The head decoded as text, or None when it is binary. BOMs and BOM-less UTF-16 count."""
    if head.startswith(b"\xef\xbb\xbf"):
        return head[3:].decode("utf-8", errors="replace")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="replace")
    codec = utf16_without_bom(head)
    if codec is not None:
        return head[: len(head) // 2 * 2].decode(codec, errors="replace")
    if b"\x00" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4 and exc.reason == "unexpected end of data":
            return head[: exc.start].decode("utf-8")
    text = head.decode("cp1252", errors="replace")
    # Control bytes other than whitespace mean binary data, not a legacy 8-bit text.
    controls = sum(1 for ch in text[:2048] if ord(ch) < 32 and ch not in "\t\r\n\f")
    return None if controls > 2 else text


def sniff_text(head: bytes, name_hint: str | None = None) -> DocumentType | None:
    """RTF, HTML, e-mail, CSV/TSV, Markdown or plain text; None for binary data."""
    text = decode_text_head(head)
    if text is None:
        return None
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("{\\rtf"):
        return DocumentType.RTF
    if _HTML_START.match(stripped[:2048]):
        return DocumentType.HTML
    if _looks_like_mail(stripped):
        return DocumentType.EML
    if stripped.startswith("<?xml"):
        return None  # other XML (no HTML root): not a document type we parse
    ext = (name_hint or "").rpartition(".")[2].lower() if name_hint and "." in name_hint else ""
    if ext in _TEXT_EXTENSIONS:
        return _TEXT_EXTENSIONS[ext]
    if _looks_delimited(stripped):
        return DocumentType.CSV
    if len(_MD_SIGNS.findall(stripped[:HEAD_BYTES])) >= 2:
        return DocumentType.MARKDOWN
    return DocumentType.TEXT


def _looks_like_mail(text: str) -> bool:
    """RFC 5322 headers from the first line: at least two well-known ones before the body."""
    known = 0
    lines = text.splitlines()
    if not lines or not _MAIL_HEADER.match(lines[0]):
        return False
    for line in lines[:200]:
        if not line.strip():
            break
        if line[:1] in (" ", "\t"):
            continue  # folded header continuation
        m = _MAIL_HEADER.match(line)
        if m is None:
            return False
        known += m.group(1).lower() in _MAIL_KNOWN
    return known >= 2


def _looks_delimited(text: str) -> bool:
    lines = [ln for ln in text.splitlines()[:20] if ln.strip()]
    if len(lines) < 2:
        return False
    if len(text) >= HEAD_BYTES - 8 and len(lines) > 2:
        lines = lines[:-1]  # the last line may be cut by the read limit
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|")
    except csv.Error:
        return False
    rows = list(csv.reader(lines, dialect))
    widths = {len(r) for r in rows}
    return len(widths) == 1 and widths.pop() >= 2


# --- zip containers ----------------------------------------------------------------------


def _detect_zip(f: BinaryIO) -> DocumentType:
    f.seek(0)
    try:
        with zipfile.ZipFile(f) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            types_part = _read_small(zf, infos.get("[Content_Types].xml"))
            mimetype = _read_small(zf, infos.get("mimetype"))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, zlib.error) as exc:
        raise CorruptDocumentError(
            f"the file starts like a ZIP archive (DOCX, XLSX, PPTX, ODT, EPUB are) but it is "
            f"truncated or corrupt: {exc}"
        ) from None
    found = _zip_type(types_part, mimetype, list(infos))
    if isinstance(found, DocumentType):
        return found
    raise UnsupportedTypeError(f"unsupported file type: {found}; supported are {_SUPPORTED}")


def _read_small(zf: zipfile.ZipFile, info: zipfile.ZipInfo | None) -> bytes | None:
    if info is None:
        return None
    if info.file_size > _MAX_TYPES_PART:
        raise CorruptDocumentError(f"{info.filename} is {info.file_size} bytes; refusing to read it")
    with zf.open(info) as member:
        return member.read(_MAX_TYPES_PART + 1)[:_MAX_TYPES_PART]


def _zip_type(types_part: bytes | None, mimetype: bytes | None, names: list[str]) -> DocumentType | str:
    """The type of a zip container from what it says about itself; a description if unsupported."""
    if types_part is not None:
        declared = [m.decode("latin-1") for m in _CONTENT_TYPE_RE.findall(types_part)]
        for suffix, kind in _OOXML_MAIN:
            if any(ct.endswith(suffix) for ct in declared):
                return kind
    if mimetype is not None:
        kind_by_mime = _ZIP_MIMETYPES.get(mimetype.decode("latin-1", errors="replace").strip())
        if kind_by_mime is not None:
            return kind_by_mime
    name_set = set(names)
    for part, kind in _OOXML_PARTS:
        if part in name_set:
            return kind
    if "META-INF/container.xml" in name_set:
        return DocumentType.EPUB
    if mimetype is not None:
        return f"a ZIP container of type {mimetype[:80].decode('latin-1', errors='replace')!r}"
    return "a ZIP archive that is no Office, OpenDocument or EPUB document"


def _zip_type_from_head(head: bytes) -> DocumentType | None:
    """Walk the local file headers present in `head` (the gateway sees only the start)."""
    pos = 0
    names: list[str] = []
    types_part: bytes | None = None
    mimetype: bytes | None = None
    while pos + 30 <= len(head) and head[pos : pos + 4] == b"PK\x03\x04":
        flags, method = struct.unpack_from("<HH", head, pos + 6)
        csize = struct.unpack_from("<I", head, pos + 18)[0]
        name_len, extra_len = struct.unpack_from("<HH", head, pos + 26)
        start = pos + 30 + name_len + extra_len
        name = head[pos + 30 : pos + 30 + name_len].decode("utf-8", errors="replace")
        names.append(name)
        data = head[start : start + csize] if csize else head[start:]
        if name in ("[Content_Types].xml", "mimetype"):
            body = _inflate_prefix(data, method)
            if name == "mimetype":
                mimetype = body
            else:
                types_part = body
        found = _zip_type(types_part, mimetype, names)
        if isinstance(found, DocumentType):
            return found
        if flags & 0x08 or not csize:
            break  # sizes follow the data (data descriptor): the next header cannot be found
        pos = start + csize
    return None


def _inflate_prefix(data: bytes, method: int) -> bytes:
    if method == 0:
        return data[:_MAX_TYPES_PART]
    if method != 8:
        return b""
    try:
        return zlib.decompressobj(-15).decompress(data, _MAX_TYPES_PART)
    except zlib.error:
        return b""


# --- OLE compound files (legacy Office, Outlook, and the envelope of encrypted OOXML) -----

_FREESECT = 0xFFFFFFFF
_ENDOFCHAIN = 0xFFFFFFFE
_MAX_SECTORS = 1 << 20  # guard against cyclic or absurd chains in hostile files
_SCAN_NAMES = ("EncryptedPackage", "Workbook", "Book", "WordDocument", "PowerPoint Document", "__substg1.0_")


def _ole_type(names: set[str]) -> DocumentType:
    if "EncryptedPackage" in names:
        raise EncryptedDocumentError(
            "the file is a password-protected Office document (encrypted OOXML package); "
            "remove the password and upload it again"
        )
    if "Workbook" in names or "Book" in names:
        return DocumentType.XLS
    if "WordDocument" in names:
        return DocumentType.DOC
    if "PowerPoint Document" in names:
        return DocumentType.PPT
    if any(n.startswith("__substg1.0_") for n in names) or "__properties_version1.0" in names:
        return DocumentType.MSG
    raise UnsupportedTypeError(
        "unsupported file type: OLE compound file that is no Word, Excel, PowerPoint or Outlook file"
    )


def _ole_entry_names(f: BinaryIO) -> set[str]:
    """Names of all directory entries of an OLE/CFB file; best effort on broken files."""
    return _ole_names_in(f)


def _ole_names_in(f: BinaryIO) -> set[str]:
    try:
        return _read_ole_directory(f)
    except (struct.error, OSError, ValueError):
        # A damaged (or, for the gateway, not yet received) directory: scan for the names.
        f.seek(0)
        blob = f.read(1 << 20)
        found = {n for n in _SCAN_NAMES if n.encode("utf-16-le") in blob}
        return found


def _read_ole_directory(f: BinaryIO) -> set[str]:
    f.seek(0)
    header = f.read(512)
    if len(header) < 512:
        raise ValueError("short OLE header")
    sector_shift = struct.unpack_from("<H", header, 30)[0]
    if sector_shift not in (9, 12):
        raise ValueError("bad sector size")
    sector_size = 1 << sector_shift
    # Header from offset 44: FAT sectors, first directory sector, transaction signature,
    # mini stream cutoff, first mini FAT sector, mini FAT sectors, first DIFAT sector, DIFAT sectors.
    n_fat, first_dir, _, _, _, _, first_difat, n_difat = struct.unpack_from("<8I", header, 44)
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
    if head[4:8] == b"ftyp":
        brand = head[8:12].decode("latin-1").strip()
        return f"ISO media file with brand {brand!r} (e.g. HEIC/AVIF/video)"
    if head.lstrip().startswith(b"<?xml"):
        return "XML document (not HTML)"
    return f"unknown binary data starting with bytes {head[:8].hex(' ')}"


def decode_unicode(data: bytes) -> tuple[str, str] | None:
    """(text, encoding) when the bytes say which Unicode encoding they are in: a byte-order
    mark, or UTF-16 by its zero bytes; None otherwise (the caller picks its own fallback)."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, errors="replace"), codec
    utf16 = utf16_without_bom(data)
    if utf16 is not None:
        return data[: len(data) // 2 * 2].decode(utf16, errors="replace"), utf16
    return None
