"""Streaming multipart upload: the request body goes straight to the object store.

Starlette's `UploadFile` spools the whole file to a temp file before the handler runs; here
python-multipart's push parser is fed from `request.stream()` and the file part's bytes are
handed on as they arrive, so the gateway holds at most a few chunks of any upload and can
refuse one (413) as soon as it is over the tenant's cap, long before the body has been read.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections import deque
from collections.abc import AsyncIterator

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from percolate_reading.parse.detect import sniff_head
from percolate_reading.parse.document import DocumentType

FILE_FIELD = "file"
MAX_FILE_NAME_CHARS = 200
SNIFF_BYTES = 4096  # enough for every magic number we check, and for a zip's first entry name
# A client that sends nothing for this long loses its upload (and its slot), so a trickle of
# bytes cannot hold a connection and a staged multipart upload open for ever.
IDLE_TIMEOUT_S = 60.0


class UploadError(Exception):
    """A client error in the upload; `status` is the HTTP answer."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UploadTooLargeError(UploadError):
    status = 413
    code = "too_large"


class UploadStalledError(UploadError):
    status = 408
    code = "upload_stalled"


class UnsupportedMediaError(UploadError):
    status = 415
    code = "unsupported_type"


# --- pure helpers --------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def sanitize_file_name(raw: str | None) -> str:
    """A file name safe as the last segment of an object key and a download path.

    Keeps only the last path segment (either separator), drops control and format characters,
    leading dots (no hidden files, no `..`) and surrounding blanks, and caps the length while
    keeping the extension.
    """
    name = unicodedata.normalize("NFC", raw or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))
    name = _CONTROL.sub("", name).strip().lstrip(".").strip()
    if not name:
        return "upload"
    if len(name) > MAX_FILE_NAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[: MAX_FILE_NAME_CHARS - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_FILE_NAME_CHARS]
    return name


def sniff_type(head: bytes, name_hint: str | None = None) -> DocumentType | None:
    """The document type the first bytes of a file announce, or None if we do not parse it.

    Magic numbers decide (`percolate_reading.parse.detect.sniff_head`); the name only picks
    among plain text, Markdown and CSV, and the client's Content-Type is never trusted. Zip and
    OLE containers need CONTAINER_SNIFF_BYTES of head. The worker re-checks the whole file.
    """
    return sniff_head(head, name_hint)


def multipart_boundary(content_type: str | None) -> bytes:
    ctype, params = parse_options_header(content_type)
    if ctype != b"multipart/form-data":
        raise UploadError("the body must be multipart/form-data with a 'file' part")
    boundary = params.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise UploadError("the multipart body has no usable boundary")
    return boundary


# --- the streaming reader ------------------------------------------------------------------------


class MultipartUpload:
    """Pulls a multipart body on demand and exposes its one file part as a byte stream.

    Use: `await open_file()`, `await read_head()`, iterate `file_chunks()` (into put_stream),
    then `await finish()` for the fields that follow the file. Fields before the file are in
    `fields` once `open_file` returns; all of them after `finish`.
    """

    def __init__(
        self,
        body: AsyncIterator[bytes],
        content_type: str | None,
        *,
        max_file_bytes: int,
        max_parts: int = 32,
        max_field_bytes: int = 16 * 1024,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:
        self._body = body
        self.idle_timeout_s = idle_timeout_s
        self.max_file_bytes = max_file_bytes
        self.max_parts = max_parts
        self.max_field_bytes = max_field_bytes
        self.fields: dict[str, str] = {}
        self.raw_file_name: str | None = None
        self.file_bytes = 0  # counted as they arrive, before anything is stored
        self.body_bytes = 0
        self.error: UploadError | None = None  # the first client error, whatever wrapped it

        self._parts = 0
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._in_file = False
        self._field_name: str | None = None
        self._field_data = bytearray()
        self._file_seen = False
        self._file_open = False  # the file part's headers are parsed
        self._file_done = False
        self._ended = False
        self._exhausted = False
        self._pending: deque[bytes] = deque()

        self._parser = MultipartParser(
            multipart_boundary(content_type),
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
            max_header_count=16,
        )

    # parser callbacks (run synchronously inside `write`) -------------------------------------

    def _fail(self, error: UploadError) -> None:
        if self.error is None:
            self.error = error
        raise error

    def _on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > self.max_parts:
            self._fail(UploadError(f"too many multipart parts (at most {self.max_parts})"))
        self._headers = {}
        self._in_file = False
        self._field_name = None
        self._field_data = bytearray()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[self._header_field.decode("latin-1").strip().lower()] = bytes(self._header_value)
        self._header_field = bytearray()
        self._header_value = bytearray()

    def _on_headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get("content-disposition"))
        if disposition != b"form-data":
            self._fail(UploadError("every multipart part needs 'Content-Disposition: form-data'"))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        if name == FILE_FIELD:
            if self._file_seen:
                self._fail(UploadError("send exactly one 'file' part per request"))
            self._file_seen = True
            self._in_file = True
            self._file_open = True
            raw = params.get(b"filename")
            self.raw_file_name = raw.decode("utf-8", "replace") if raw is not None else None
        elif not name:
            self._fail(UploadError("a multipart part has no field name"))
        else:
            self._field_name = name

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        size = end - start
        if self._in_file:
            self.file_bytes += size
            if self.file_bytes > self.max_file_bytes:
                self._fail(
                    UploadTooLargeError(f"the file is larger than this tenant's {self.max_file_bytes} bytes")
                )
            self._pending.append(bytes(data[start:end]))
        else:
            self._field_data += data[start:end]
            if len(self._field_data) > self.max_field_bytes:
                self._fail(
                    UploadError(f"form field {self._field_name!r} is over {self.max_field_bytes} bytes")
                )

    def _on_part_end(self) -> None:
        if self._in_file:
            self._file_done = True
            self._in_file = False
        elif self._field_name is not None:
            try:
                self.fields[self._field_name] = self._field_data.decode("utf-8")
            except UnicodeDecodeError:
                self._fail(UploadError(f"form field {self._field_name!r} is not UTF-8"))

    def _on_end(self) -> None:
        self._ended = True

    # pulling ------------------------------------------------------------------------------------

    async def _feed(self) -> bool:
        """Read and parse one more chunk of the body; False once the body is exhausted."""
        if self._exhausted:
            return False
        try:
            # asyncio.timeout, not wait_for: no extra task per chunk.
            async with asyncio.timeout(self.idle_timeout_s):
                chunk = await anext(self._body)
        except TimeoutError:
            self._exhausted = True
            self._fail(UploadStalledError(f"no upload data for {self.idle_timeout_s:.0f}s"))
        except StopAsyncIteration:
            self._exhausted = True
            if not self._ended:
                self._fail(UploadError("the multipart body ended before its closing boundary"))
            return False
        self.body_bytes += len(chunk)
        if chunk:
            try:
                self._parser.write(chunk)
            except UploadError:
                raise
            except MultipartParseError as exc:
                self._fail(UploadError(f"malformed multipart body: {exc}"))
        return True

    async def open_file(self) -> None:
        while not self._file_open:
            if not await self._feed():
                self._fail(UploadError("the multipart body has no 'file' part"))

    async def read_head(self, size: int = SNIFF_BYTES) -> bytes:
        """Gather the file's first `size` bytes (fewer if it is shorter) without consuming them."""
        while sum(len(c) for c in self._pending) < size and not self._file_done:
            if not await self._feed():
                break
        head = b"".join(self._pending)
        self._pending.clear()
        if head:
            self._pending.append(head)
        return head[:size]

    async def file_chunks(self) -> AsyncIterator[bytes]:
        while True:
            while self._pending:
                yield self._pending.popleft()
            if self._file_done:
                return
            if not await self._feed():
                return

    async def finish(self) -> None:
        """Read the rest of the body (the fields after the file)."""
        while await self._feed():
            pass
