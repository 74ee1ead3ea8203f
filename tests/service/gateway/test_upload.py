"""The streaming multipart reader and the pure upload helpers (no servers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from percolate_reading.gateway.upload import (
    MultipartUpload,
    UploadError,
    UploadTooLargeError,
    sanitize_file_name,
    sniff_type,
)
from percolate_reading.parse.document import DocumentType

BOUNDARY = "xYzBoundary123"
CTYPE = f"multipart/form-data; boundary={BOUNDARY}"


def part(name: str, data: bytes, filename: str | None = None) -> bytes:
    disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    return f"--{BOUNDARY}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


class Source:
    """A request body delivered in fixed-size chunks, counting what was pulled."""

    def __init__(self, data: bytes, chunk: int = 1000) -> None:
        self.data = data
        self.chunk = chunk
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self.data), self.chunk):
            piece = self.data[i : i + self.chunk]
            self.pulled += len(piece)
            yield piece


async def read_all(upload: MultipartUpload) -> bytes:
    await upload.open_file()
    out = b"".join([c async for c in upload.file_chunks()])
    await upload.finish()
    return out


async def test_file_and_fields_before_and_after() -> None:
    payload = b"%PDF-1.7\n" + bytes(range(256)) * 40
    src = Source(
        body(part("priority", b"3"), part("file", payload, "a.pdf"), part("callback_url", b"http://x"))
    )
    upload = MultipartUpload(aiter(src), CTYPE, max_file_bytes=1 << 20)
    await upload.open_file()
    assert upload.fields == {"priority": "3"}
    head = await upload.read_head(16)
    assert head == payload[:16]
    data = b"".join([c async for c in upload.file_chunks()])
    await upload.finish()
    assert data == payload
    assert upload.raw_file_name == "a.pdf"
    assert upload.fields == {"priority": "3", "callback_url": "http://x"}
    assert upload.file_bytes == len(payload)


async def test_too_large_is_refused_before_the_body_is_read() -> None:
    payload = b"%PDF-" + b"a" * 200_000
    src = Source(body(part("file", payload, "big.pdf")), chunk=4096)
    upload = MultipartUpload(aiter(src), CTYPE, max_file_bytes=10_000)
    with pytest.raises(UploadTooLargeError):
        await read_all(upload)
    assert upload.error is not None
    assert upload.error.status == 413
    assert src.pulled < 20_000  # stopped right after the cap, not at the end of the body


async def test_too_many_parts() -> None:
    fields = [part(f"f{i}", b"x") for i in range(100)]
    upload = MultipartUpload(
        aiter(Source(body(*fields, part("file", b"%PDF-", "a.pdf")))), CTYPE, max_file_bytes=100
    )
    with pytest.raises(UploadError, match="too many multipart parts"):
        await read_all(upload)


async def test_two_files_refused() -> None:
    data = body(part("file", b"%PDF-1", "a.pdf"), part("file", b"%PDF-2", "b.pdf"))
    with pytest.raises(UploadError, match="exactly one"):
        await read_all(MultipartUpload(aiter(Source(data)), CTYPE, max_file_bytes=100))


async def test_no_file_part() -> None:
    with pytest.raises(UploadError, match="no 'file' part"):
        await read_all(MultipartUpload(aiter(Source(body(part("x", b"1")))), CTYPE, max_file_bytes=100))


async def test_truncated_body() -> None:
    data = body(part("file", b"%PDF-" + b"z" * 5000, "a.pdf"))[:3000]
    with pytest.raises(UploadError, match="ended before"):
        await read_all(MultipartUpload(aiter(Source(data)), CTYPE, max_file_bytes=1 << 20))


async def test_oversized_field() -> None:
    data = body(part("callback_url", b"h" * 20_000), part("file", b"%PDF-", "a.pdf"))
    with pytest.raises(UploadError, match="over"):
        await read_all(MultipartUpload(aiter(Source(data)), CTYPE, max_file_bytes=100))


async def test_stalled_upload_is_cut_off() -> None:
    async def trickle() -> AsyncIterator[bytes]:
        yield body(part("file", b"%PDF-1.7\n" + b"x" * 100, "a.pdf"))[:80]
        await asyncio.Event().wait()  # and then nothing, for ever
        yield b""

    upload = MultipartUpload(trickle(), CTYPE, max_file_bytes=1 << 20, idle_timeout_s=0.2)
    with pytest.raises(UploadError) as info:
        await read_all(upload)
    assert info.value.status == 408


def test_not_multipart() -> None:
    with pytest.raises(UploadError, match="multipart/form-data"):
        MultipartUpload(aiter(Source(b"")), "application/json", max_file_bytes=1)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\book.xlsx", "book.xlsx"),
        ("a\x00b\r\nc\x1b.pdf", "abc.pdf"),
        ("..", "upload"),
        ("", "upload"),
        (None, "upload"),
        (".hidden", "hidden"),
        ("e\u0301t\u00e9\u202e.pdf", "\u00e9t\u00e9.pdf"),
    ],
)
def test_sanitize_file_name(raw: str | None, expected: str) -> None:
    assert sanitize_file_name(raw) == expected


def test_sanitize_caps_length_and_keeps_extension() -> None:
    name = sanitize_file_name("x" * 1000 + ".pdf")
    assert len(name) == 200
    assert name.endswith(".pdf")


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"%PDF-1.7\n", DocumentType.PDF),
        (b"PK\x03\x04\x14\x00", None),  # a zip whose parts are not seen yet: undecided
        (b"\x89PNG\r\n\x1a\n\x00", DocumentType.IMAGE),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", DocumentType.IMAGE),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", DocumentType.AUDIO),
        (b"ID3\x04\x00", DocumentType.AUDIO),
        (b"hello world", DocumentType.TEXT),
        (b"\x00\x01\x02\x03\xfe\xfd\xfc\xfb" * 8, None),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", None),
        (b"GIF89a", DocumentType.IMAGE),
    ],
)
def test_sniff_type(head: bytes, expected: DocumentType | None) -> None:
    assert sniff_type(head) == expected
