"""Embedded images kept as artifacts (`include_images`): one store per parse, with limits.

A provider that finds a picture hands its bytes to `ImageStore.add` and puts the returned
artifact path (`images/<n>.<ext>`) on the FIGURE block; the renderers link it from Markdown
and elements.jsonl, and `render_artifacts` writes the bytes. The same picture repeated (a logo
on every page) is stored once. Limits keep a document of thousands of pictures from filling
the artifact bucket: what is over them is counted and reported in one warning.

Only pictures inside the document are kept: parts of the container (OOXML, OpenDocument,
EPUB) and `data:` URIs in HTML. A picture the document links to by URL is never fetched:
a parser that fetched URLs from uploaded documents would let any tenant make the platform
call hosts of their choosing (SSRF).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from percolate_reading.parse.providers.container import SafeZip, local

IMAGE_DIR = "images"
MAX_IMAGES = 200
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_TOTAL_BYTES = 50 * 1024 * 1024
MIN_SIDE_PX = 16  # spacers, bullets and rules drawn as pictures are not figures
_EXT = re.compile(r"^[a-z0-9]{1,5}$")
_R_EMBED = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}embed"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_ODF_BINARY = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}binary-data"
_DATA_URI = re.compile(r"^data:image/([a-z0-9.+-]{1,40})((?:;[^,;]*)*?)(;base64)?,", re.IGNORECASE)
# Media subtypes whose usual file extension is not the subtype itself.
_SUBTYPE_EXT = {"jpeg": "jpg", "pjpeg": "jpg", "svg+xml": "svg", "x-icon": "ico", "vnd.microsoft.icon": "ico"}
_IMAGE_EXTS = frozenset(
    {"png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp", "svg", "wmf", "emf", "svm", "jxr", "ico"}
)
_MAGIC_EXT = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpg"),
    (b"GIF8", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tif"),
    (b"MM\x00*", "tif"),
    (b"\xd7\xcd\xc6\x9a", "wmf"),
    (b"\x01\x00\x00\x00", "emf"),
)


class ImageStore:
    """The images of one parse, as {artifact path: bytes}."""

    def __init__(
        self,
        enabled: bool,
        max_images: int = MAX_IMAGES,
        max_image_bytes: int = MAX_IMAGE_BYTES,
        max_total_bytes: int = MAX_TOTAL_BYTES,
    ) -> None:
        self.enabled = enabled
        self.max_images = max_images
        self.max_image_bytes = max_image_bytes
        self.max_total_bytes = max_total_bytes
        self.images: dict[str, bytes] = {}
        self._by_digest: dict[str, str] = {}
        self._total = 0
        self.skipped_large = 0
        self.skipped_over_limit = 0

    def add(self, data: bytes, ext: str, width: int | None = None, height: int | None = None) -> str | None:
        """Store one image; its artifact path, or None when it is not kept."""
        if not self.enabled or not data:
            return None
        if width is not None and height is not None and (width < MIN_SIDE_PX or height < MIN_SIDE_PX):
            return None
        digest = hashlib.sha256(data).hexdigest()
        known = self._by_digest.get(digest)
        if known is not None:
            return known
        if len(data) > self.max_image_bytes:
            self.skipped_large += 1
            return None
        if len(self.images) >= self.max_images or self._total + len(data) > self.max_total_bytes:
            self.skipped_over_limit += 1
            return None
        ext = ext.lower().lstrip(".")
        ext = "jpg" if ext == "jpeg" else ext
        path = f"{IMAGE_DIR}/{len(self.images) + 1}.{ext if _EXT.match(ext) else 'bin'}"
        self.images[path] = data
        self._by_digest[digest] = path
        self._total += len(data)
        return path

    def warnings(self) -> list[str]:
        out: list[str] = []
        if self.skipped_large:
            out.append(
                f"{self.skipped_large} image(s) over {self.max_image_bytes // (1024 * 1024)} MB not extracted"
            )
        if self.skipped_over_limit:
            out.append(
                f"{self.skipped_over_limit} image(s) not extracted: the limit is {self.max_images} images "
                f"and {self.max_total_bytes // (1024 * 1024)} MB per document"
            )
        return out


def ooxml_image(
    store: ImageStore, zf: SafeZip, rels: dict[str, tuple[str, str, str]], shape: Any
) -> str | None:
    """The picture an OOXML drawing (`shape`: a w:drawing's inline/anchor, a p:pic) embeds,
    stored; linked (external) pictures are not fetched."""
    if not store.enabled:
        return None
    blip = next((el for el in shape.iter() if local(el.tag) == "blip" and el.get(_R_EMBED)), None)
    if blip is None:
        return None
    rel = rels.get(blip.get(_R_EMBED) or "")
    if rel is None or rel[0] != "image" or rel[2] == "External" or not zf.has(rel[1]):
        return None
    return zip_image(store, zf, rel[1], is_image=True)


def sniffed_ext(data: bytes, fallback: str = "bin") -> str:
    """A picture's usual file extension from its first bytes."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    head = data[:256].lstrip()
    if head.startswith((b"<svg", b"<?xml")) and b"<svg" in data[:4096]:
        return "svg"
    return next((ext for magic, ext in _MAGIC_EXT if data.startswith(magic)), fallback)


def zip_image(store: ImageStore, zf: SafeZip, member: str, is_image: bool = False) -> str | None:
    """A picture stored as a part of the container, checked against the per-image cap by its
    declared size before it is read. Unless the container says it is one (`is_image`), a part
    that is no picture by its name or bytes is not kept."""
    if not store.enabled or not zf.has(member):
        return None
    if zf.zf.getinfo(member).file_size > store.max_image_bytes:
        store.skipped_large += 1
        return None
    data = zf.read(member)
    name = member.rpartition("/")[2]
    ext = name.rpartition(".")[2].lower() if "." in name else ""
    if ext not in _IMAGE_EXTS:
        ext = sniffed_ext(data, "bin" if is_image else "")
    return store.add(data, ext) if ext else None


def odf_image(store: ImageStore, zf: SafeZip, image: Any) -> str | None:
    """The picture of an OpenDocument draw:image: a part of the package (Pictures/...) or
    inline office:binary-data. An external xlink:href (a URL) is not fetched."""
    if not store.enabled:
        return None
    href = (image.get(_XLINK_HREF) or "").removeprefix("./")
    if href and ":" not in href.partition("/")[0]:
        return zip_image(store, zf, href)
    binary = image.find(_ODF_BINARY)
    if binary is None or not binary.text:
        return None
    return _base64_image(store, binary.text, None)


def data_uri_image(store: ImageStore, uri: str) -> str | None:
    """The picture of a `data:image/...` URI (base64 or percent-encoded); other URIs, which
    would have to be fetched, are never followed."""
    if not store.enabled:
        return None
    m = _DATA_URI.match(uri.strip()[:200])
    if m is None:
        return None
    subtype = m.group(1).lower()
    ext = _SUBTYPE_EXT.get(subtype, subtype)
    payload = uri.strip()[m.end() :]
    if m.group(3):
        return _base64_image(store, payload, ext)
    if len(payload) > 3 * store.max_image_bytes:  # %XX triples at most
        store.skipped_large += 1
        return None
    return store.add(unquote_to_bytes(payload), ext)


def _base64_image(store: ImageStore, text: str, ext: str | None) -> str | None:
    # Base64 is 4 characters per 3 bytes, plus line breaks: a picture far over the cap is
    # refused before it is decoded; one near it is decoded and measured by `add`.
    if len(text) * 3 // 4 > store.max_image_bytes * 1.1:
        store.skipped_large += 1
        return None
    try:
        data = base64.b64decode("".join(text.split()), validate=False)
    except (binascii.Error, ValueError):
        return None
    return store.add(data, ext or sniffed_ext(data))
