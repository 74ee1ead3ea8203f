"""What every zip-based format (DOCX, PPTX, ODT/ODP, EPUB) shares: the zip-bomb guard, a
hardened XML parser, and reading members with a size cap.

The limits are the XLSX provider's (one set of knobs for every zip container): the members'
count, their total uncompressed size, and each large member's compression ratio are checked
on the central directory before anything is decompressed; each member is then read with a
cap, so a directory that lies about sizes cannot blow past it either. XML is parsed by lxml
with entity resolution, network access and DTD loading off: a "billion laughs" document is
refused outright (a DTD with entity declarations has no business in these formats).
"""

from __future__ import annotations

import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from percolate_reading.config import Settings
from percolate_reading.errors import CorruptDocumentError, DocumentTooLargeError, EncryptedDocumentError
from percolate_reading.parse.providers.xlsx import (
    DEFAULT_MAX_COMPRESSION_RATIO,
    DEFAULT_MAX_UNCOMPRESSED_BYTES,
    MAX_ZIP_MEMBERS,
)

_RATIO_MIN_MEMBER_BYTES = 1024 * 1024
_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

XML_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
    recover=False,
)
# Broken-but-readable XML (mis-escaped ampersands from homemade generators) is parsed in recover mode.
_RECOVER_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=True
)


@dataclass(frozen=True, slots=True)
class ZipLimits:
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES
    max_compression_ratio: float = DEFAULT_MAX_COMPRESSION_RATIO
    max_members: int = MAX_ZIP_MEMBERS

    @classmethod
    def from_settings(cls, settings: Settings | None) -> ZipLimits:
        if settings is None:
            return cls()
        return cls(
            max_uncompressed_bytes=settings.xlsx_max_uncompressed_bytes,
            max_compression_ratio=settings.xlsx_max_compression_ratio,
        )


class SafeZip:
    """A zip container opened after the bomb checks; members are read with a byte budget."""

    def __init__(self, path: Path, source_name: str, limits: ZipLimits) -> None:
        self.source_name = source_name
        self.limits = limits
        with path.open("rb") as f:
            if f.read(8) == _OLE_MAGIC:
                raise EncryptedDocumentError(
                    f"{source_name}: the document is password-protected (encrypted); "
                    "remove the password and upload it again"
                )
        try:
            self.zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise CorruptDocumentError(f"{source_name}: not a readable zip container ({exc})") from exc
        try:
            self._check()
        except BaseException:
            self.zf.close()
            raise
        self.names = {i.filename for i in self.zf.infolist()}
        self._budget = limits.max_uncompressed_bytes

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.zf.close()

    def _check(self) -> None:
        infos = self.zf.infolist()
        name = self.source_name
        if len(infos) > self.limits.max_members:
            raise DocumentTooLargeError(f"{name}: {len(infos)} zip members, over {self.limits.max_members}")
        total = 0
        for info in infos:
            if info.flag_bits & 0x1:
                raise EncryptedDocumentError(f"{name}: zip member {info.filename} is encrypted")
            total += info.file_size
            if info.file_size >= _RATIO_MIN_MEMBER_BYTES:
                ratio = info.file_size / max(info.compress_size, 1)
                if ratio > self.limits.max_compression_ratio:
                    raise DocumentTooLargeError(
                        f"{name}: zip member {info.filename} expands {ratio:.0f}x "
                        f"(limit {self.limits.max_compression_ratio:.0f}x); refusing a likely zip bomb"
                    )
        if total > self.limits.max_uncompressed_bytes:
            limit = self.limits.max_uncompressed_bytes
            raise DocumentTooLargeError(f"{name}: {total} bytes uncompressed, over the {limit} byte limit")

    def has(self, member: str) -> bool:
        return member in self.names

    def read(self, member: str) -> bytes:
        """A member's bytes, counted against the container's total budget (a directory can lie)."""
        try:
            with self.zf.open(member) as f:
                data = f.read(self._budget + 1)
        except KeyError:
            raise CorruptDocumentError(f"{self.source_name}: the part {member} is missing") from None
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError, zlib.error) as exc:
            raise CorruptDocumentError(
                f"{self.source_name}: the part {member} cannot be read ({exc})"
            ) from exc
        self._budget -= len(data)
        if self._budget < 0:
            raise DocumentTooLargeError(
                f"{self.source_name}: the parts expand past {self.limits.max_uncompressed_bytes} bytes"
            )
        return data

    def xml(self, member: str) -> Any:
        """The root element of an XML member, parsed safely."""
        return parse_xml(self.read(member), f"{self.source_name}: {member}")


def parse_xml(data: bytes, what: str) -> Any:
    """Parse XML without entity expansion, DTD loading or network access."""
    if _ENTITY_DECL.search(data, 0, 64 * 1024):
        raise CorruptDocumentError(f"{what} declares XML entities; refused (entity expansion attack)")
    try:
        return etree.fromstring(data, XML_PARSER)
    except etree.XMLSyntaxError:
        try:
            root = etree.fromstring(data, _RECOVER_PARSER)
        except etree.XMLSyntaxError as exc:
            raise CorruptDocumentError(f"{what} is not well-formed XML ({exc})") from exc
        if root is None:
            raise CorruptDocumentError(f"{what} is not well-formed XML") from None
        return root


def local(tag: object) -> str:
    """An element's tag without its namespace."""
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def resolve_target(base_part: str, target: str) -> str:
    """A relationship target resolved against the folder of the part that declares it."""
    if target.startswith("/"):
        return target.lstrip("/")
    folder = base_part.rpartition("/")[0]
    parts = [p for p in (folder.split("/") if folder else [])]
    for seg in target.split("/"):
        if seg == "..":
            if parts:
                parts.pop()
        elif seg and seg != ".":
            parts.append(seg)
    return "/".join(parts)


def relationships(zf: SafeZip, part: str) -> dict[str, tuple[str, str, str]]:
    """rId -> (type suffix, resolved target, target mode) from the part's .rels file."""
    folder, _, name = part.rpartition("/")
    rels_name = f"{folder}/_rels/{name}.rels" if folder else f"_rels/{name}.rels"
    if not zf.has(rels_name):
        return {}
    out: dict[str, tuple[str, str, str]] = {}
    for rel in zf.xml(rels_name):
        rid = rel.get("Id")
        target = rel.get("Target") or ""
        mode = rel.get("TargetMode") or "Internal"
        kind = (rel.get("Type") or "").rpartition("/")[2]
        if rid:
            out[rid] = (kind, target if mode == "External" else resolve_target(part, target), mode)
    return out
