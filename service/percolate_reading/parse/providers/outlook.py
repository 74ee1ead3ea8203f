"""Outlook MSG files ([MS-OXMSG]) read straight from their compound file with olefile.

A message is a storage of MAPI properties: variable-size ones are streams named
`__substg1.0_<id><type>` (UTF-16 or 8-bit strings, binary), fixed-size ones (numbers,
times) sit in the `__properties_version1.0` stream. Recipients and attachments are
sub-storages (`__recip_version1.0_#N`, `__attach_version1.0_#N`), and an attached Outlook
message is a full message storage inside its attachment (`__substg1.0_3701000D`).

Only the properties the parse shows are read: no object model of the whole file. An
embedded message is read when its attachment is parsed, so the caller bounds nesting.
"""

from __future__ import annotations

import codecs
import datetime as dt
import email.parser
import email.policy
import email.utils
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

PT_LONG = 0x0003
PT_STRING8 = 0x001E
PT_UNICODE = 0x001F
PT_SYSTIME = 0x0040
PT_OBJECT = 0x000D
PT_BINARY = 0x0102

PR_SUBJECT = 0x0037
PR_CLIENT_SUBMIT_TIME = 0x0039
PR_TRANSPORT_MESSAGE_HEADERS = 0x007D
PR_SENT_REPRESENTING_NAME = 0x0042
PR_SENT_REPRESENTING_EMAIL = 0x0065
PR_RECIPIENT_TYPE = 0x0C15
PR_SENDER_NAME = 0x0C1A
PR_SENDER_ADDRTYPE = 0x0C1E
PR_SENDER_EMAIL = 0x0C1F
PR_DISPLAY_BCC = 0x0E02
PR_DISPLAY_CC = 0x0E03
PR_DISPLAY_TO = 0x0E04
PR_MESSAGE_DELIVERY_TIME = 0x0E06
PR_BODY = 0x1000
PR_RTF_COMPRESSED = 0x1009
PR_HTML = 0x1013
PR_INTERNET_MESSAGE_ID = 0x1035
PR_DISPLAY_NAME = 0x3001
PR_ADDRTYPE = 0x3002
PR_EMAIL_ADDRESS = 0x3003
PR_ATTACH_DATA = 0x3701
PR_ATTACH_FILENAME = 0x3704
PR_ATTACH_METHOD = 0x3705
PR_ATTACH_LONG_FILENAME = 0x3707
PR_ATTACH_MIME_TAG = 0x370E
PR_SMTP_ADDRESS = 0x39FE
PR_INTERNET_CPID = 0x3FDE
PR_MESSAGE_CODEPAGE = 0x3FFD
PR_SENDER_SMTP_ADDRESS = 0x5D01

ATTACH_BY_VALUE = 1
ATTACH_EMBEDDED_MSG = 5
ATTACH_OLE = 6
_RECIPIENT_HEADERS = {1: "To", 2: "Cc", 3: "Bcc"}
_PROPERTIES = "__properties_version1.0"
_STGTY_STORAGE = 1
_STGTY_STREAM = 2
# Bytes before the first 16-byte entry of a properties stream ([MS-OXMSG] 2.4).
_TOP_HEADER = 32
_EMBEDDED_HEADER = 24
_CHILD_HEADER = 8
_FILETIME_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)
# Windows code pages that Python does not know as cpNNNN.
_CODEPAGES = {
    1200: "utf-16-le",
    20127: "ascii",
    20866: "koi8-r",
    21866: "koi8-u",
    28591: "latin-1",
    28592: "iso8859-2",
    28595: "iso8859-5",
    28597: "iso8859-7",
    28605: "iso8859-15",
    50220: "iso2022-jp",
    51932: "euc-jp",
    51949: "euc-kr",
    54936: "gb18030",
    65000: "utf-7",
    65001: "utf-8",
}


class MsgFormatError(ValueError):
    """The compound file does not hold a readable Outlook message."""


class TooManyAttachmentsError(MsgFormatError):
    """A message lists more attachments than the reader's limit (a bomb, not a message)."""


def codec_for(codepage: int | None, default: str = "cp1252") -> str:
    """Python's codec for a Windows code page number, `default` when unknown."""
    if not codepage:
        return default
    name = _CODEPAGES.get(codepage, f"cp{codepage}")
    try:
        return codecs.lookup(name).name
    except LookupError:
        return default


def _filetime(raw: bytes) -> dt.datetime | None:
    ticks = int.from_bytes(raw[:8], "little")
    if not ticks:
        return None
    try:
        return _FILETIME_EPOCH + dt.timedelta(microseconds=ticks // 10)
    except OverflowError:
        return None


@dataclass(slots=True)
class MsgStorage:
    """One storage of the file (message, recipient or attachment) and its properties."""

    ole: Any
    path: tuple[str, ...]
    streams: dict[str, Any]
    storages: dict[str, Any]
    fixed: dict[int, bytes] = field(default_factory=dict)

    @classmethod
    def open(cls, ole: Any, path: tuple[str, ...], entry: Any, header: int) -> MsgStorage:
        streams: dict[str, Any] = {}
        storages: dict[str, Any] = {}
        for kid in entry.kids:
            if kid.entry_type == _STGTY_STREAM:
                streams[kid.name.upper()] = kid
            elif kid.entry_type == _STGTY_STORAGE:
                storages[kid.name.upper()] = kid
        storage = cls(ole, path, streams, storages)
        props = streams.get(_PROPERTIES.upper())
        if props is not None:
            storage.fixed = _fixed_properties(storage.read(props), header)
        return storage

    def read(self, entry: Any) -> bytes:
        data: bytes = self.ole.openstream([*self.path, entry.name]).read()
        return data

    def binary(self, prop: int) -> bytes | None:
        entry = self.streams.get(f"__SUBSTG1.0_{prop:04X}{PT_BINARY:04X}")
        return None if entry is None else self.read(entry)

    def string(self, prop: int, codec: str) -> str | None:
        """A string property: UTF-16 when stored so, else 8-bit in the message's code page."""
        entry = self.streams.get(f"__SUBSTG1.0_{prop:04X}{PT_UNICODE:04X}")
        if entry is not None:
            return self.read(entry).decode("utf-16-le", errors="replace").rstrip("\x00")
        entry = self.streams.get(f"__SUBSTG1.0_{prop:04X}{PT_STRING8:04X}")
        if entry is not None:
            return self.read(entry).decode(codec, errors="replace").rstrip("\x00")
        return None

    def long(self, prop: int) -> int | None:
        raw = self.fixed.get((prop << 16) | PT_LONG)
        return None if raw is None else int.from_bytes(raw[:4], "little", signed=True)

    def time(self, prop: int) -> dt.datetime | None:
        raw = self.fixed.get((prop << 16) | PT_SYSTIME)
        return None if raw is None else _filetime(raw)

    def children(self, prefix: str) -> list[tuple[str, Any]]:
        """Sub-storages named `prefix#N`, in the order of N."""
        wanted = prefix.upper()
        return sorted((name, e) for name, e in self.storages.items() if name.startswith(wanted))

    def size(self, limit: int) -> int:
        """Bytes of every stream under this storage (at most `limit` entries visited)."""
        total = 0
        pending = [*self.streams.values(), *self.storages.values()]
        visited = 0
        while pending and visited < limit:
            entry = pending.pop()
            visited += 1
            if entry.entry_type == _STGTY_STREAM:
                total += int(entry.size)
            else:
                pending.extend(entry.kids)
        return total


def _fixed_properties(data: bytes, header: int) -> dict[int, bytes]:
    """Property tag -> its 8-byte value, from a properties stream."""
    body = data[header:]
    body = body[: len(body) - len(body) % 16]
    return {tag: value for tag, _flags, value in struct.iter_unpack("<II8s", body)}


@dataclass(slots=True)
class MsgAttachment:
    name: str
    content_type: str
    method: int | None
    data: bytes | None = None
    # An Outlook message attached to this one: read when it is parsed.
    embedded: MsgStorage | None = None
    size: int = 0
    error: str | None = None


@dataclass(slots=True)
class MsgMessage:
    headers: dict[str, str]
    plain: str | None
    html: str | None
    rtf: bytes | None
    attachments: list[MsgAttachment]
    warnings: list[str]


def _address(name: str | None, address: str | None) -> str:
    name = (name or "").strip()
    address = (address or "").strip()
    if name and address and name != address:
        return f"{name} <{address}>"
    return name or address


def _sender(msg: MsgStorage, codec: str) -> str:
    smtp = msg.string(PR_SENDER_SMTP_ADDRESS, codec)
    address = msg.string(PR_SENDER_EMAIL, codec)
    if smtp or (msg.string(PR_SENDER_ADDRTYPE, codec) or "").upper() == "EX":
        address = smtp  # an Exchange (X.500) address means nothing outside the organisation
    name = msg.string(PR_SENDER_NAME, codec)
    if not (name or address):
        name = msg.string(PR_SENT_REPRESENTING_NAME, codec)
        address = msg.string(PR_SENT_REPRESENTING_EMAIL, codec)
    return _address(name, address)


def _recipients(msg: MsgStorage, codec: str, limit: int, warnings: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    storages = msg.children("__recip_version1.0_")
    if len(storages) > limit:
        warnings.append(f"only the first {limit} of {len(storages)} recipients are listed")
    for _name, entry in storages[:limit]:
        recip = MsgStorage.open(msg.ole, (*msg.path, entry.name), entry, _CHILD_HEADER)
        header = _RECIPIENT_HEADERS.get(recip.long(PR_RECIPIENT_TYPE) or 1)
        if header is None:
            continue
        address = recip.string(PR_SMTP_ADDRESS, codec)
        if not address and (recip.string(PR_ADDRTYPE, codec) or "").upper() != "EX":
            address = recip.string(PR_EMAIL_ADDRESS, codec)
        shown = _address(recip.string(PR_DISPLAY_NAME, codec), address)
        if shown:
            out.setdefault(header, []).append(shown)
    return out


def _transport_headers(msg: MsgStorage, codec: str) -> dict[str, str]:
    """The RFC 5322 headers of a received message, as the transport saw them."""
    text = msg.string(PR_TRANSPORT_MESSAGE_HEADERS, codec)
    if not text or ":" not in text:
        return {}
    parsed = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(text)
    return {name: str(value) for name, value in parsed.items()}


def _headers(msg: MsgStorage, codec: str, limit: int, warnings: list[str]) -> dict[str, str]:
    """From, To, Cc, Bcc, Date, Subject, Message-ID: the transport's headers where the message
    has them, else the MAPI properties (an unsent or locally saved message has no headers).
    Transport headers are returned as sent: RFC 2047 encoded words are the caller's to decode."""
    transport = {k.lower(): v for k, v in _transport_headers(msg, codec).items()}
    # Recipient storages cost a few stream reads each: read only for a message without headers.
    recipients = {} if transport else _recipients(msg, codec, limit, warnings)
    headers: dict[str, str] = {}
    headers["From"] = transport["from"] if "from" in transport else _sender(msg, codec)
    for name, prop in (("To", PR_DISPLAY_TO), ("Cc", PR_DISPLAY_CC), ("Bcc", PR_DISPLAY_BCC)):
        if name.lower() in transport:
            headers[name] = transport[name.lower()]
        elif name in recipients:
            headers[name] = "; ".join(recipients[name])
        else:
            headers[name] = msg.string(prop, codec) or ""
    if "date" in transport:
        headers["Date"] = transport["date"]
    else:
        when = msg.time(PR_CLIENT_SUBMIT_TIME) or msg.time(PR_MESSAGE_DELIVERY_TIME)
        headers["Date"] = email.utils.format_datetime(when) if when is not None else ""
    subject = msg.string(PR_SUBJECT, codec)
    headers["Subject"] = subject if subject is not None else transport.get("subject", "")
    headers["Message-ID"] = transport.get("message-id") or msg.string(PR_INTERNET_MESSAGE_ID, codec) or ""
    return {k: " ".join(v.split()) for k, v in headers.items() if v and v.strip()}


def _html(msg: MsgStorage, codec: str) -> str | None:
    raw = msg.binary(PR_HTML)
    if raw is None:
        return msg.string(PR_HTML, codec)
    cpid = msg.long(PR_INTERNET_CPID)
    return raw.decode(codec_for(cpid, "utf-8"), errors="replace")


def _attachment(msg: MsgStorage, entry: Any, codec: str, limit: int) -> MsgAttachment:
    att = MsgStorage.open(msg.ole, (*msg.path, entry.name), entry, _CHILD_HEADER)
    name = (
        att.string(PR_ATTACH_LONG_FILENAME, codec)
        or att.string(PR_ATTACH_FILENAME, codec)
        or att.string(PR_DISPLAY_NAME, codec)
        or ""
    )
    out = MsgAttachment(
        name=name,
        content_type=att.string(PR_ATTACH_MIME_TAG, codec) or "",
        method=att.long(PR_ATTACH_METHOD),
    )
    data_entry = att.streams.get(f"__SUBSTG1.0_{PR_ATTACH_DATA:04X}{PT_BINARY:04X}")
    object_entry = att.storages.get(f"__SUBSTG1.0_{PR_ATTACH_DATA:04X}{PT_OBJECT:04X}")
    if data_entry is not None:
        out.size = int(data_entry.size)
        try:
            out.data = att.read(data_entry)
        except (OSError, ValueError) as exc:
            out.error = f"the attachment's data cannot be read ({exc})"
    elif object_entry is not None and out.method in (ATTACH_EMBEDDED_MSG, None):
        path = (*att.path, object_entry.name)
        out.embedded = MsgStorage.open(msg.ole, path, object_entry, _EMBEDDED_HEADER)
        out.size = out.embedded.size(limit)
        out.content_type = out.content_type or "application/vnd.ms-outlook"
    elif object_entry is not None:
        out.error = "an embedded OLE object, not a file: not parsed"
    else:
        out.error = "the attachment has no data (attached by reference)"
    return out


def read_message(msg: MsgStorage, limit: int) -> MsgMessage:
    """The parts of one message storage a parse shows. `limit` bounds recipients (the rest
    are left out, with a warning) and attachments (TooManyAttachmentsError)."""
    codepage = msg.long(PR_MESSAGE_CODEPAGE) or msg.long(PR_INTERNET_CPID)
    codec = codec_for(codepage)
    warnings: list[str] = []
    headers = _headers(msg, codec, limit, warnings)
    plain = msg.string(PR_BODY, codec)
    html = _html(msg, codec)
    rtf = msg.binary(PR_RTF_COMPRESSED) if not (plain and plain.strip()) and html is None else None
    attachments = [_attachment(msg, entry, codec, limit) for _name, entry in _attachment_entries(msg, limit)]
    return MsgMessage(headers, plain, html, rtf, attachments, warnings)


def _attachment_entries(msg: MsgStorage, limit: int) -> Iterator[tuple[str, Any]]:
    entries = msg.children("__attach_version1.0_")
    if len(entries) > limit:
        raise TooManyAttachmentsError(f"more than {limit} attachments")
    yield from entries


def open_message(ole: Any) -> MsgStorage:
    """The top-level message of an open compound file."""
    root = ole.root
    if root is None:
        raise MsgFormatError("the compound file has no root storage")
    msg = MsgStorage.open(ole, (), root, _TOP_HEADER)
    if _PROPERTIES.upper() not in msg.streams:
        raise MsgFormatError("no Outlook message in the compound file (no properties stream)")
    return msg
