"""Embedded images kept as artifacts (`include_images`): one store per parse, with limits.

A provider that finds a picture hands its bytes to `ImageStore.add` and puts the returned
artifact path (`images/<n>.<ext>`) on the FIGURE block; the renderers link it from Markdown
and elements.jsonl, and `render_artifacts` writes the bytes. The same picture repeated (a logo
on every page) is stored once. Limits keep a document of thousands of pictures from filling
the artifact bucket: what is over them is counted and reported in one warning.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from percolate_reading.parse.providers.container import SafeZip, local

IMAGE_DIR = "images"
MAX_IMAGES = 200
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_TOTAL_BYTES = 50 * 1024 * 1024
MIN_SIDE_PX = 16  # spacers, bullets and rules drawn as pictures are not figures
_EXT = re.compile(r"^[a-z0-9]{1,5}$")
_R_EMBED = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}embed"


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
    size = zf.zf.getinfo(rel[1]).file_size
    if size > store.max_image_bytes:
        store.skipped_large += 1
        return None
    return store.add(zf.read(rel[1]), rel[1].rpartition(".")[2])
