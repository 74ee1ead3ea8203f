"""Outlook MSG files built here: a small compound file writer ([MS-CFB] version 3) and a
builder of the MAPI property streams of a message ([MS-OXMSG]).

No maintained library writes MSG files, so tests make their own variants: properties as
UTF-16 or 8-bit strings, transport headers or none, plain/HTML/RTF bodies, recipients,
attached files, attached Outlook messages nested to any depth, and hostile shapes.
"""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Union

SECTOR = 512
MINI_SECTOR = 64
MINI_CUTOFF = 4096
ENDOFCHAIN = 0xFFFFFFFE
FREESECT = 0xFFFFFFFF
FATSECT = 0xFFFFFFFD
NOSTREAM = 0xFFFFFFFF

Tree = Mapping[str, Union[bytes, "Tree"]]


@dataclass
class _Entry:
    name: str
    kind: int  # 1 storage, 2 stream, 5 root
    data: bytes = b""
    children: list[int] = field(default_factory=list)
    start: int = ENDOFCHAIN
    left: int = NOSTREAM
    right: int = NOSTREAM
    child: int = NOSTREAM


def _cfb_key(name: str) -> tuple[int, str]:
    # [MS-CFB] 2.6.4: siblings compare by name length first, then upper-cased names.
    return len(name), name.upper()


def _link(entries: list[_Entry], kids: list[int], balanced: bool) -> int:
    """Root of a binary search tree over `kids` (sorted); its left/right links set."""
    if not kids:
        return NOSTREAM
    if not balanced:  # a right-leaning chain: valid, but as deep as it is long
        for a, b in itertools.pairwise(kids):
            entries[a].right = b
        return kids[0]
    pending = [(kids, -1, "")]
    top = NOSTREAM
    while pending:
        part, parent, side = pending.pop()
        if not part:
            continue
        mid = len(part) // 2
        node = part[mid]
        if parent < 0:
            top = node
        elif side == "left":
            entries[parent].left = node
        else:
            entries[parent].right = node
        pending.append((part[:mid], node, "left"))
        pending.append((part[mid + 1 :], node, "right"))
    return top


def _flatten(tree: Tree, balanced: bool) -> list[_Entry]:
    entries = [_Entry("Root Entry", 5)]
    pending: list[tuple[int, Tree]] = [(0, tree)]
    while pending:
        parent, node = pending.pop()
        for name in sorted(node, key=_cfb_key):
            value = node[name]
            index = len(entries)
            if isinstance(value, bytes):
                entries.append(_Entry(name, 2, value))
            else:
                entries.append(_Entry(name, 1))
                pending.append((index, value))
            entries[parent].children.append(index)
    for entry in entries:
        entry.child = _link(entries, entry.children, balanced)
    return entries


def _chain(fat: list[int], first: int, count: int) -> None:
    for i in range(count):
        fat[first + i] = first + i + 1 if i < count - 1 else ENDOFCHAIN


def compound_file(tree: Tree, balanced: bool = True) -> bytes:
    """A compound file holding `tree`: names -> bytes (streams) or nested mappings (storages).
    Siblings form a balanced search tree, or with `balanced=False` one long chain (hostile)."""
    entries = _flatten(tree, balanced)
    mini = bytearray()
    big: list[_Entry] = []
    for entry in entries:
        if entry.kind != 2:
            continue
        if len(entry.data) < MINI_CUTOFF:
            entry.start = len(mini) // MINI_SECTOR if entry.data else ENDOFCHAIN
            mini += entry.data + b"\0" * (-len(entry.data) % MINI_SECTOR)
        else:
            big.append(entry)
    minifat = [FREESECT] * max(1, math.ceil(len(mini) / MINI_SECTOR))
    for entry in entries:
        if entry.kind == 2 and 0 < len(entry.data) < MINI_CUTOFF:
            _chain(minifat, entry.start, math.ceil(len(entry.data) / MINI_SECTOR))
    dir_sectors = math.ceil(len(entries) * 128 / SECTOR)
    minifat_sectors = math.ceil(len(minifat) * 4 / SECTOR) if mini else 0
    mini_sectors = math.ceil(len(mini) / SECTOR)
    big_sectors = sum(math.ceil(len(e.data) / SECTOR) for e in big)
    others = dir_sectors + minifat_sectors + mini_sectors + big_sectors
    fat_sectors = 1
    while fat_sectors * (SECTOR // 4) < others + fat_sectors:
        fat_sectors += 1
    if fat_sectors > 109:
        raise ValueError("a file this large needs DIFAT sectors, which this writer does not make")
    fat = [FREESECT] * (fat_sectors * SECTOR // 4)
    for i in range(fat_sectors):
        fat[i] = FATSECT
    at = fat_sectors
    dir_start = at
    _chain(fat, at, dir_sectors)
    at += dir_sectors
    minifat_start = at if minifat_sectors else ENDOFCHAIN
    _chain(fat, at, minifat_sectors)
    at += minifat_sectors
    if mini:
        entries[0].start = at
        entries[0].data = bytes(mini)
        _chain(fat, at, mini_sectors)
        at += mini_sectors
    body = bytearray()
    for entry in big:
        entry.start = at
        count = math.ceil(len(entry.data) / SECTOR)
        _chain(fat, at, count)
        at += count
        body += entry.data + b"\0" * (-len(entry.data) % SECTOR)
    directory = bytearray()
    for entry in entries:
        name = entry.name.encode("utf-16-le")
        directory += struct.pack(
            "<64sHBBIII16sIQQIII",
            name + b"\0\0",
            len(name) + 2,
            entry.kind,
            1,
            entry.left,
            entry.right,
            entry.child,
            b"\0" * 16,
            0,
            0,
            0,
            entry.start if entry.kind != 1 else 0,
            len(entry.data) if entry.kind != 1 else 0,
            0,
        )
    directory += b"\0" * (-len(directory) % SECTOR)
    difat = [i for i in range(fat_sectors)] + [FREESECT] * (109 - fat_sectors)
    header = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII",
        bytes.fromhex("D0CF11E0A1B11AE1"),
        b"\0" * 16,
        0x3E,
        3,
        0xFFFE,
        9,
        6,
        b"\0" * 6,
        0,
        fat_sectors,
        dir_start,
        0,
        MINI_CUTOFF,
        minifat_start,
        minifat_sectors,
        ENDOFCHAIN,
        0,
    ) + struct.pack("<109I", *difat)
    minifat_bytes = struct.pack(f"<{len(minifat)}I", *minifat) if mini else b""
    minifat_bytes += b"\0" * (-len(minifat_bytes) % SECTOR)
    mini_bytes = bytes(mini) + b"\0" * (-len(mini) % SECTOR)
    fat_bytes = struct.pack(f"<{len(fat)}I", *fat)
    return header + fat_bytes + bytes(directory) + minifat_bytes + mini_bytes + bytes(body)


# --- MSG -----------------------------------------------------------------------------------

PT_LONG, PT_STRING8, PT_UNICODE, PT_SYSTIME, PT_BINARY = 0x0003, 0x001E, 0x001F, 0x0040, 0x0102


@dataclass
class Recipient:
    name: str
    address: str
    kind: int = 1  # 1 To, 2 Cc, 3 Bcc


@dataclass
class Attached:
    name: str
    data: bytes = b""
    mime: str = ""
    message: Message | None = None  # an attached Outlook message instead of a file


@dataclass
class Message:
    subject: str | None = None
    sender_name: str | None = None
    sender_address: str | None = None
    recipients: list[Recipient] = field(default_factory=list)
    body: str | None = None
    html: bytes | None = None
    rtf_compressed: bytes | None = None
    transport_headers: str | None = None
    message_id: str | None = None
    submit_time: int | None = None  # FILETIME ticks
    attachments: list[Attached] = field(default_factory=list)
    # 8-bit strings in this Windows code page instead of UTF-16 ones.
    codepage: int | None = None


def _string(props: dict[str, bytes | Tree], prop: int, value: str | None, codepage: int | None) -> None:
    if value is None:
        return
    if codepage is None:
        props[f"__substg1.0_{prop:04X}{PT_UNICODE:04X}"] = value.encode("utf-16-le")
    else:
        props[f"__substg1.0_{prop:04X}{PT_STRING8:04X}"] = value.encode(f"cp{codepage}")


def _fixed(values: dict[tuple[int, int], int], header: int) -> bytes:
    out = b"\0" * header
    for (prop, kind), value in values.items():
        out += struct.pack("<IIQ", (prop << 16) | kind, 6, value)
    return out


def message_tree(msg: Message, header: int = 32) -> dict[str, bytes | Tree]:
    """The storage of a message: header 32 at the top of a file, 24 inside an attachment."""
    tree: dict[str, bytes | Tree] = {}
    cp = msg.codepage
    _string(tree, 0x001A, "IPM.Note", cp)
    _string(tree, 0x0037, msg.subject, cp)
    _string(tree, 0x0C1A, msg.sender_name, cp)
    _string(tree, 0x0C1F, msg.sender_address, cp)
    _string(tree, 0x0C1E, "SMTP" if msg.sender_address else None, cp)
    _string(tree, 0x1000, msg.body, cp)
    _string(tree, 0x007D, msg.transport_headers, cp)
    _string(tree, 0x1035, msg.message_id, cp)
    if msg.html is not None:
        tree["__substg1.0_10130102"] = msg.html
    if msg.rtf_compressed is not None:
        tree["__substg1.0_10090102"] = msg.rtf_compressed
    fixed: dict[tuple[int, int], int] = {}
    if cp is not None:
        fixed[(0x3FFD, PT_LONG)] = cp
    if msg.submit_time is not None:
        fixed[(0x0039, PT_SYSTIME)] = msg.submit_time
    tree["__properties_version1.0"] = _fixed(fixed, header)
    for i, recip in enumerate(msg.recipients):
        r: dict[str, bytes | Tree] = {"__properties_version1.0": _fixed({(0x0C15, PT_LONG): recip.kind}, 8)}
        _string(r, 0x3001, recip.name, cp)
        _string(r, 0x3003, recip.address, cp)
        _string(r, 0x3002, "SMTP", cp)
        tree[f"__recip_version1.0_#{i:08X}"] = r
    for i, att in enumerate(msg.attachments):
        a: dict[str, bytes | Tree] = {}
        _string(a, 0x3707, att.name, cp)
        _string(a, 0x370E, att.mime or None, cp)
        if att.message is not None:
            a["__properties_version1.0"] = _fixed({(0x3705, PT_LONG): 5}, 8)
            a["__substg1.0_3701000D"] = message_tree(att.message, header=24)
        else:
            a["__properties_version1.0"] = _fixed({(0x3705, PT_LONG): 1}, 8)
            a["__substg1.0_37010102"] = att.data
        tree[f"__attach_version1.0_#{i:08X}"] = a
    return tree


def msg_bytes(msg: Message, balanced: bool = True) -> bytes:
    tree = message_tree(msg)
    # The (empty) named-property map every MSG file carries at its top level.
    tree["__nameid_version1.0"] = {f"__substg1.0_000{i}0102": b"" for i in (2, 3, 4)}
    return compound_file(tree, balanced)
