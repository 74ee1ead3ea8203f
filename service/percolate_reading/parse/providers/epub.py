"""EPUB provider: the package document's spine, each XHTML chapter read by the HTML reader.

META-INF/container.xml names the package (OPF); its manifest maps ids to files and its
spine gives the reading order (linear="no" items, e.g. covers and pop-ups, come last, as
readers show them). Metadata: title, creator, language. DRM-protected books (an
encryption.xml that covers content documents) are refused as encrypted.

With `include_images`, the pictures a chapter's <img> elements show (parts of the book,
resolved against the chapter; or data: URIs) become artifacts linked from their figures.
A URL outside the book is never fetched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from percolate_reading.config import Settings
from percolate_reading.errors import CorruptDocumentError, EncryptedDocumentError
from percolate_reading.parse.document import Block, BlockKind, DocumentType, ParsedDocument
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.providers.container import SafeZip, ZipLimits, local, resolve_target
from percolate_reading.parse.providers.figures import ImageStore, data_uri_image, zip_image
from percolate_reading.parse.providers.html import decode_html, html_blocks

_XHTML_TYPES = frozenset({"application/xhtml+xml", "text/html", "application/x-dtbook+xml"})


@dataclass(frozen=True)
class EpubProvider:
    limits: ZipLimits = field(default_factory=ZipLimits)
    doc_type = DocumentType.EPUB

    @classmethod
    def from_settings(cls, settings: Settings) -> EpubProvider:
        return cls(limits=ZipLimits.from_settings(settings))

    def parse(self, path: Path, source_name: str, options: ParseOptions) -> ParsedDocument:
        t0 = time.perf_counter()
        doc = ParsedDocument(source_name=source_name, doc_type=DocumentType.EPUB)
        with SafeZip(path, source_name, self.limits) as zf:
            rootfile = _package_path(zf, source_name)
            manifest, spine, meta = _package(zf, rootfile)
            _check_not_encrypted(zf, manifest, source_name)
            ordered = [i for i, linear in spine if linear] + [i for i, linear in spine if not linear]
            if ordered and len(ordered) > options.max_pages:
                ordered = ordered[: options.max_pages]
                doc.warnings.append(f"only the first {options.max_pages} spine items were read")
            if meta.get("title"):
                doc.blocks.append(Block(kind=BlockKind.TITLE, text=meta["title"]))
            store = ImageStore(options.include_images)
            chapters = sum(_read_chapter(zf, manifest.get(idref), doc, store) for idref in ordered)
        doc.images = store.images
        doc.warnings.extend(store.warnings())
        doc.metadata.update(
            reader="lxml (EPUB spine)", chapters=chapters, **{f"book_{k}": v for k, v in meta.items()}
        )
        doc.timings["read"] = time.perf_counter() - t0
        if not chapters:
            doc.warnings.append("the book has no readable chapters")
        return doc


Manifest = dict[str, tuple[str, str]]  # item id -> (part path, media type)
_META_TAGS = ("title", "creator", "language", "publisher", "date")


def _package_path(zf: SafeZip, source_name: str) -> str:
    """The package document (OPF) that META-INF/container.xml names."""
    if not zf.has("META-INF/container.xml"):
        raise CorruptDocumentError(f"{source_name}: no META-INF/container.xml; not an EPUB")
    container = zf.xml("META-INF/container.xml")
    rootfile = next((el.get("full-path") for el in container.iter() if local(el.tag) == "rootfile"), None)
    if not rootfile or not zf.has(rootfile):
        raise CorruptDocumentError(f"{source_name}: the EPUB names no readable package document")
    return str(rootfile)


def _package(zf: SafeZip, rootfile: str) -> tuple[Manifest, list[tuple[str, bool]], dict[str, str]]:
    """(manifest, spine as (item id, linear), Dublin Core metadata) of the package document."""
    manifest: Manifest = {}
    meta: dict[str, str] = {}
    spine: list[tuple[str, bool]] = []
    for el in zf.xml(rootfile).iter():
        tag = local(el.tag)
        if tag == "item" and el.get("id") and el.get("href"):
            href = resolve_target(rootfile, unquote(el.get("href") or ""))
            manifest[el.get("id") or ""] = (href, el.get("media-type") or "")
        elif tag == "itemref" and el.get("idref"):
            spine.append((el.get("idref") or "", el.get("linear") != "no"))
        elif tag in _META_TAGS and el.text and tag not in meta:
            meta[tag] = el.text.strip()
    return manifest, spine, meta


def _check_not_encrypted(zf: SafeZip, manifest: Manifest, source_name: str) -> None:
    """DRM: chapters listed in META-INF/encryption.xml cannot be read."""
    if not zf.has("META-INF/encryption.xml"):
        return
    enc = zf.xml("META-INF/encryption.xml")
    refs = {
        resolve_target("", unquote(r.get("URI") or ""))
        for r in enc.iter()
        if local(r.tag) == "CipherReference"
    }
    if any(href in refs for href, mt in manifest.values() if mt in _XHTML_TYPES):
        raise EncryptedDocumentError(f"{source_name}: the book's chapters are encrypted (DRM)")


def _chapter_picture(zf: SafeZip, store: ImageStore, chapter: str, src: str) -> str | None:
    """The picture an <img src> of `chapter` shows: a part of the book, or a data: URI."""
    if src.startswith("data:"):
        return data_uri_image(store, src)
    url = urlsplit(src)
    if url.scheme or url.netloc or not url.path:
        return None  # outside the book: never fetched
    return zip_image(store, zf, resolve_target(chapter, unquote(url.path)))


def _read_chapter(zf: SafeZip, item: tuple[str, str] | None, doc: ParsedDocument, store: ImageStore) -> int:
    """Append one spine item's blocks; 1 when it was a readable chapter, else 0."""
    if item is None or item[1] not in _XHTML_TYPES or not zf.has(item[0]):
        return 0
    chapter = item[0]
    text, _encoding = decode_html(zf.read(chapter))
    picture = (lambda src: _chapter_picture(zf, store, chapter, src)) if store.enabled else None
    try:
        blocks, _facts = html_blocks(text, picture)
    except CorruptDocumentError:
        doc.warnings.append(f"chapter {item[0]} could not be parsed; skipped")
        return 0
    doc.blocks.extend(b for b in blocks if b.kind is not BlockKind.TITLE)
    return 1
