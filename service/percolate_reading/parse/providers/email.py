"""E-mail providers: EML (RFC 5322 / MIME, the stdlib `email` package) and Outlook MSG
(extract-msg).

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
import tempfile
import time
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

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
    from percolate_reading.parse.detect import detect_type
    from percolate_reading.parse.parsing import run_provider

    listed: list[dict[str, Any]] = []
    for index, att in enumerate(attachments, start=1):
        name = _safe_name(att.name, index)
        entry: dict[str, Any] = {
            "index": index,
            "name": name,
            "content_type": att.content_type,
            "size": len(att.data),
        }
        listed.append(entry)
        if depth >= MAX_ATTACHMENT_DEPTH:
            entry["status"] = "skipped"
            entry["error"] = f"attachments nested deeper than {MAX_ATTACHMENT_DEPTH} messages are not parsed"
            continue
        with tempfile.TemporaryDirectory(prefix="attachment-") as folder:
            path = Path(folder) / name
            path.write_bytes(att.data)
            try:
                doc_type = detect_type(path, name)
                child = run_provider(doc_type, path, name, options, settings, depth=depth + 1)
            except PercolateError as exc:
                entry.update(status="failed", error=exc.message, code=exc.code)
                parent.warnings.append(f"attachment {name!r} not parsed: {exc.message}")
                continue
        child.metadata.update(doc_type=doc_type.value, file_size=len(att.data), attachment_index=index)
        entry.update(status="parsed", doc_type=doc_type.value)
        parent.children.append(child)
    parent.metadata["attachments"] = listed


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


def _msg_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _msg_headers(msg: Any) -> dict[str, str]:
    """The shown headers of an Outlook message, whitespace collapsed, empty ones left out."""
    headers = {
        name: _msg_text(getattr(msg, attribute, None)) or ""
        for name, attribute in (
            ("From", "sender"),
            ("To", "to"),
            ("Cc", "cc"),
            ("Bcc", "bcc"),
            ("Date", "date"),
            ("Subject", "subject"),
            ("Message-ID", "messageId"),
        )
    }
    return {k: " ".join(v.split()) for k, v in headers.items() if v and v.strip()}


def _msg_attachments(msg: Any, source_name: str) -> list[_Attachment]:
    """Attached files as bytes; embedded Outlook messages exported as .msg files of their own."""
    attachments: list[_Attachment] = []
    raw_attachments = list(getattr(msg, "attachments", []) or [])
    if len(raw_attachments) > MAX_PARTS:
        raise DocumentTooLargeError(f"{source_name}: more than {MAX_PARTS} attachments")
    for att in raw_attachments:
        data = getattr(att, "data", None)
        name = _msg_text(getattr(att, "longFilename", None) or getattr(att, "shortFilename", None))
        if isinstance(data, bytes):
            mimetype = str(getattr(att, "mimetype", "") or "")
            attachments.append(_Attachment(name or "attachment", data, mimetype))
        elif data is not None and hasattr(data, "exportBytes"):
            attachments.append(
                _Attachment((name or "message") + ".msg", data.exportBytes(), "application/vnd.ms-outlook")
            )
    return attachments


@dataclass(frozen=True)
class MsgProvider:
    settings: Settings | None = None
    doc_type = DocumentType.MSG

    @classmethod
    def from_settings(cls, settings: Settings) -> MsgProvider:
        return cls(settings=settings)

    def parse(self, path: Path, source_name: str, options: ParseOptions) -> ParsedDocument:
        return self.parse_nested(path, source_name, options, 0)

    def parse_nested(self, path: Path, source_name: str, options: ParseOptions, depth: int) -> ParsedDocument:
        """Parse a message found `depth` messages deep (attachments of attachments)."""
        import extract_msg

        t0 = time.perf_counter()
        try:
            msg = extract_msg.openMsg(str(path), delayAttachments=False)
        except Exception as exc:  # extract-msg raises a zoo of its own and olefile's errors
            raise CorruptDocumentError(f"{source_name}: not a readable Outlook message ({exc})") from exc
        try:
            headers = _msg_headers(msg)
            plain = _msg_text(getattr(msg, "body", None))
            try:
                html = _msg_text(getattr(msg, "htmlBody", None))
            except Exception:  # an RTF-only body that cannot be de-encapsulated
                html = None
            attachments = _msg_attachments(msg, source_name)
        finally:
            msg.close()
        doc = ParsedDocument(source_name=source_name, doc_type=DocumentType.MSG)
        body, body_type = _body_blocks(plain, html)
        doc.blocks = _header_blocks(headers) + body
        doc.metadata.update(reader="extract-msg", headers=headers, body_type=body_type)
        _parse_attachments(doc, attachments, options, self.settings, depth)
        doc.timings["read"] = time.perf_counter() - t0
        return doc
