"""E-mail providers: EML (RFC 5322 / MIME, the stdlib `email` package) and Outlook MSG
(its compound file read with olefile, providers/outlook.py).

A message becomes: the subject as TITLE, one EMAIL_HEADER block per address/date header,
the body (the HTML alternative when it carries a table, else the plain text one, else the
HTML), and each attachment parsed as a child document of its own (its type detected from
its bytes, like any upload), in the order the message lists them. An attachment that cannot
be parsed is listed with its error; the message itself still parses.

MIME bombs are contained: at most MAX_PARTS parts and MAX_DEPTH levels of nesting (nested
messages count), and attachments are parsed only down to MAX_ATTACHMENT_DEPTH messages.
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.policy
import re
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any, TypeVar

from percolate_reading.config import Settings
from percolate_reading.errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
    PercolateError,
)
from percolate_reading.parse.document import Block, BlockKind, DocumentType, ParsedDocument
from percolate_reading.parse.providers.base import ParseOptions

MAX_PARTS = 1000
MAX_DEPTH = 20
MAX_ATTACHMENT_DEPTH = 3
DEFAULT_MAX_EMAIL_BYTES = 256 * 1024 * 1024
HEADER_FIELDS = ("From", "To", "Cc", "Bcc", "Reply-To", "Date", "Subject", "Message-ID")
_UNSAFE_NAME = re.compile(r"[^\w.\- ]+")
_T = TypeVar("_T")


def _header_blocks(headers: dict[str, str]) -> list[Block]:
    blocks: list[Block] = []
    subject = headers.get("Subject", "").strip()
    if subject:
        blocks.append(Block(kind=BlockKind.TITLE, text=subject))
    for name in HEADER_FIELDS:
        value = headers.get(name, "").strip()
        if value:
            blocks.append(Block(kind=BlockKind.EMAIL_HEADER, label=name, text=value))
    return blocks


def _body_blocks(plain: str | None, html: str | None) -> tuple[list[Block], str]:
    from percolate_reading.parse.providers.html import html_blocks
    from percolate_reading.parse.providers.text import TextProvider

    use_html = html is not None and (plain is None or not plain.strip() or "<table" in html.lower())
    if use_html and html is not None:
        blocks, _facts = html_blocks(html)
        return [b for b in blocks if b.kind is not BlockKind.TITLE], "text/html"
    if plain:
        return TextProvider.paragraphs(plain), "text/plain"
    return [], "none"


@dataclass(slots=True)
class _Attachment:
    name: str
    data: bytes
    content_type: str
    size: int | None = None  # of `data` unless given
    error: str | None = None  # why it cannot be parsed, known before parsing
    # An Outlook message stored inside this one: parsed in place, (source name, depth) -> doc.
    embedded: Callable[[str, int], ParsedDocument] | None = None


def _safe_name(name: str, index: int) -> str:
    cleaned = _UNSAFE_NAME.sub("_", name.replace("\\", "/").rpartition("/")[2]).strip(" .")[:120]
    return cleaned or f"attachment-{index}"


def _parse_attachments(
    parent: ParsedDocument,
    attachments: list[_Attachment],
    options: ParseOptions,
    settings: Settings | None,
    depth: int,
) -> None:
    """Each attachment -> a child document (parsed in this sandboxed process)."""
    listed: list[dict[str, Any]] = []
    for index, att in enumerate(attachments, start=1):
        name = _safe_name(att.name, index)
        size = len(att.data) if att.size is None else att.size
        entry: dict[str, Any] = {"index": index, "name": name, "content_type": att.content_type, "size": size}
        listed.append(entry)
        if depth >= MAX_ATTACHMENT_DEPTH:
            entry["status"] = "skipped"
            entry["error"] = f"attachments nested deeper than {MAX_ATTACHMENT_DEPTH} messages are not parsed"
            continue
        if att.error is not None:
            entry.update(status="failed", error=att.error)
            parent.warnings.append(f"attachment {name!r} not parsed: {att.error}")
            continue
        try:
            if att.embedded is not None:
                doc_type, child = DocumentType.MSG, att.embedded(name, depth + 1)
            else:
                doc_type, child = _parse_attachment_bytes(name, att.data, options, settings, depth + 1)
        except PercolateError as exc:
            entry.update(status="failed", error=exc.message, code=exc.code)
            parent.warnings.append(f"attachment {name!r} not parsed: {exc.message}")
            continue
        except MemoryError:
            raise  # the sandbox's limit, for the whole parse
        except Exception as exc:  # a reader's untranslated error: this attachment fails, not the message
            message = f"the attachment cannot be read ({type(exc).__name__}: {exc})"
            entry.update(status="failed", error=message, code="corrupt")
            parent.warnings.append(f"attachment {name!r} not parsed: {message}")
            continue
        child.metadata.update(doc_type=doc_type.value, file_size=size, attachment_index=index)
        entry.update(status="parsed", doc_type=doc_type.value)
        parent.children.append(child)
    parent.metadata["attachments"] = listed


def _parse_attachment_bytes(
    name: str, data: bytes, options: ParseOptions, settings: Settings | None, depth: int
) -> tuple[DocumentType, ParsedDocument]:
    """An attached file, its type detected from its bytes like any upload's."""
    from percolate_reading.parse.detect import detect_type
    from percolate_reading.parse.parsing import run_provider

    # A temporary file, not a folder: removing a folder costs milliseconds on a busy disk,
    # more than parsing a small attachment.
    with tempfile.NamedTemporaryFile(prefix="attachment-", suffix=Path(name).suffix) as f:
        f.write(data)
        f.flush()
        path = Path(f.name)
        doc_type = detect_type(path, name)
        return doc_type, run_provider(doc_type, path, name, options, settings, depth=depth)


# --- EML -----------------------------------------------------------------------------------


def _walk(msg: Message, depth: int, counter: list[int]) -> list[Message]:
    counter[0] += 1
    if counter[0] > MAX_PARTS:
        raise DocumentTooLargeError(f"the message has more than {MAX_PARTS} MIME parts; refusing a MIME bomb")
    if depth > MAX_DEPTH:
        raise DocumentTooLargeError(f"MIME parts nested deeper than {MAX_DEPTH} levels; refusing a MIME bomb")
    parts = [msg]
    if msg.is_multipart():
        payload = msg.get_payload()
        if isinstance(payload, list):
            for sub in payload:
                if isinstance(sub, Message):
                    parts.extend(_walk(sub, depth + 1, counter))
    return parts


def _decoded_text(part: Message) -> str:
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return raw.decode(charset, errors="replace")
    except LookupError:
        return raw.decode("cp1252", errors="replace")


def _header_text(value: object) -> str:
    """A header as text: encoded words (=?utf-8?q?...?=) decoded. Messages are read with the
    compat32 policy, whose headers are plain strings: the default policy parses every header
    it is asked for into objects, most of a small message's parse time."""
    text = str(value)
    if "=?" not in text:
        return text
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except (ValueError, LookupError, UnicodeError, email.errors.HeaderParseError):
        return text


def _filename(part: Message) -> str | None:
    name = part.get_filename()
    return _header_text(name) if name is not None else None


def _is_attachment(part: Message) -> bool:
    disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    if disposition == "attachment":
        return True
    if part.get_content_maintype() == "multipart":
        return False
    if part.get_content_type() == "message/rfc822":
        return True
    return part.get_filename() is not None and part.get_content_type() not in ("text/plain", "text/html")


def _eml_parts(msg: Message) -> tuple[str | None, str | None, list[_Attachment]]:
    counter = [0]
    plain: str | None = None
    html: str | None = None
    attachments: list[_Attachment] = []
    top_parts = _walk(msg, 0, counter)
    skip: set[int] = set()
    for part in top_parts:
        if id(part) in skip:
            continue
        if _is_attachment(part):
            if part.get_content_type() == "message/rfc822":
                inner = part.get_payload()
                sub = inner[0] if isinstance(inner, list) and inner else None
                data = sub.as_bytes() if isinstance(sub, Message) else b""
                for nested in _walk(sub, 0, counter) if isinstance(sub, Message) else ():
                    skip.add(id(nested))
                name = _filename(part) or (
                    _header_text(sub.get("Subject", "")) if isinstance(sub, Message) else ""
                )
                attachments.append(_Attachment((name or "message") + ".eml", data, "message/rfc822"))
            else:
                payload = part.get_payload(decode=True)
                attachments.append(
                    _Attachment(
                        _filename(part) or "attachment",
                        payload if isinstance(payload, bytes) else b"",
                        part.get_content_type(),
                    )
                )
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain" and plain is None:
            plain = _decoded_text(part)
        elif ctype == "text/html" and html is None:
            html = _decoded_text(part)
    return plain, html, attachments


def _eml_headers(msg: Message) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in HEADER_FIELDS:
        value = msg.get(name)
        if value is not None:
            out[name] = " ".join(_header_text(value).split())
    return out


@dataclass(frozen=True)
class EmlProvider:
    settings: Settings | None = None
    max_bytes: int = DEFAULT_MAX_EMAIL_BYTES
    doc_type = DocumentType.EML

    @classmethod
    def from_settings(cls, settings: Settings) -> EmlProvider:
        return cls(settings=settings)

    def parse(self, path: Path, source_name: str, options: ParseOptions) -> ParsedDocument:
        return self.parse_nested(path, source_name, options, 0)

    def parse_nested(self, path: Path, source_name: str, options: ParseOptions, depth: int) -> ParsedDocument:
        """Parse a message found `depth` messages deep (attachments of attachments)."""
        t0 = time.perf_counter()
        size = path.stat().st_size
        if size == 0:
            raise EmptyDocumentError(f"{source_name}: the file is empty")
        if size > self.max_bytes:
            raise DocumentTooLargeError(f"{source_name}: {size} bytes, over the {self.max_bytes} byte limit")
        try:
            with path.open("rb") as f:
                msg = email.message_from_binary_file(f, policy=email.policy.compat32)
            headers = _eml_headers(msg)
            plain, html, attachments = _eml_parts(msg)
        except RecursionError as exc:
            raise DocumentTooLargeError(f"{source_name}: MIME structure nested too deeply") from exc
        except (ValueError, IndexError, AttributeError, TypeError) as exc:
            raise CorruptDocumentError(f"{source_name}: the message cannot be read ({exc})") from exc
        doc = ParsedDocument(source_name=source_name, doc_type=DocumentType.EML)
        body, body_type = _body_blocks(plain, html)
        doc.blocks = _header_blocks(headers) + body
        doc.metadata.update(reader="email (stdlib)", headers=headers, body_type=body_type)
        if msg.defects:
            doc.warnings.append(f"message defects: {', '.join(type(d).__name__ for d in msg.defects[:5])}")
        _parse_attachments(doc, attachments, options, self.settings, depth)
        doc.timings["read"] = time.perf_counter() - t0
        return doc


# --- MSG -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MsgProvider:
    """Outlook MSG, read with olefile (providers/outlook.py): the streams shown, nothing else."""

    settings: Settings | None = None
    doc_type = DocumentType.MSG

    @classmethod
    def from_settings(cls, settings: Settings) -> MsgProvider:
        return cls(settings=settings)

    def parse(self, path: Path, source_name: str, options: ParseOptions) -> ParsedDocument:
        return self.parse_nested(path, source_name, options, 0)

    def parse_nested(self, path: Path, source_name: str, options: ParseOptions, depth: int) -> ParsedDocument:
        """Parse a message found `depth` messages deep (attachments of attachments)."""
        import olefile

        from percolate_reading.parse.providers import outlook

        t0 = time.perf_counter()
        try:
            ole = olefile.OleFileIO(str(path))
        except RecursionError as exc:
            raise DocumentTooLargeError(f"{source_name}: storages nested too deeply") from exc
        except Exception as exc:  # olefile raises OSError, struct.error, IndexError... on bad files
            raise CorruptDocumentError(f"{source_name}: not a readable Outlook message ({exc})") from exc
        with ole:
            msg = _msg_call(source_name, outlook.open_message, ole)
            doc = self._parse_message(msg, source_name, options, depth)
        doc.timings["read"] = time.perf_counter() - t0
        return doc

    def _parse_message(
        self, storage: Any, source_name: str, options: ParseOptions, depth: int
    ) -> ParsedDocument:
        """One message storage -> a document; its attachments (embedded messages too, read in
        place from the same file) -> child documents."""
        from percolate_reading.parse.providers import outlook

        message = _msg_call(source_name, outlook.read_message, storage, MAX_PARTS)
        headers = {name: _header_text(value) for name, value in message.headers.items()}
        doc = ParsedDocument(source_name=source_name, doc_type=DocumentType.MSG)
        body, body_type = _body_blocks(message.plain, message.html)
        if not body and message.rtf is not None:
            body, body_type = _rtf_body(message.rtf, doc)
        doc.blocks = _header_blocks(headers) + body
        doc.metadata.update(reader="olefile", headers=headers, body_type=body_type)
        doc.warnings.extend(message.warnings)
        attachments = [
            _Attachment(
                att.name or "attachment",
                att.data or b"",
                att.content_type,
                size=att.size,
                error=att.error,
            )
            if att.embedded is None
            else _Attachment(
                (att.name or "message") + ".msg",
                b"",
                att.content_type,
                size=att.size,
                embedded=_embedded_parser(self, att.embedded, options),
            )
            for att in message.attachments
        ]
        _parse_attachments(doc, attachments, options, self.settings, depth)
        return doc


def _embedded_parser(
    provider: MsgProvider, storage: Any, options: ParseOptions
) -> Callable[[str, int], ParsedDocument]:
    def parse(source_name: str, depth: int) -> ParsedDocument:
        return provider._parse_message(storage, source_name, options, depth)

    return parse


def _msg_call(source_name: str, fn: Callable[..., _T], *args: Any) -> _T:
    """Call the MSG reader, its failures translated into the error tree."""
    from percolate_reading.parse.providers.outlook import MsgFormatError, TooManyAttachmentsError

    try:
        return fn(*args)
    except TooManyAttachmentsError as exc:
        raise DocumentTooLargeError(f"{source_name}: {exc}; refusing an attachment bomb") from exc
    except RecursionError as exc:
        raise DocumentTooLargeError(f"{source_name}: storages nested too deeply") from exc
    except (MsgFormatError, OSError, ValueError, IndexError, KeyError, struct.error) as exc:
        raise CorruptDocumentError(f"{source_name}: not a readable Outlook message ({exc})") from exc


def _rtf_body(compressed: bytes, doc: ParsedDocument) -> tuple[list[Block], str]:
    """The body of a message that keeps only an RTF one (compressed RTF, [MS-OXRTFCP])."""
    import compressed_rtf

    from percolate_reading.parse.providers.rtf import rtf_blocks

    try:
        blocks, _codec = rtf_blocks(compressed_rtf.decompress(compressed))
    except Exception as exc:  # compressed_rtf raises bare Exception on a bad CRC or header
        doc.warnings.append(f"the RTF body cannot be read ({exc})")
        return [], "none"
    return blocks, "text/rtf"
