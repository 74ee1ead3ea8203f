"""Image provider: PNG/JPEG/TIFF/WebP/BMP/GIF -> OCR -> paragraphs.

A multi-page TIFF gets a PAGE_BREAK before each frame, and its paragraphs carry the frame's
1-based page number, so renderers cite pages as they do for PDFs. Animated GIF/WebP frames
are moments of one picture, not pages: only the first is read.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from percolate_reading.config import Settings
from percolate_reading.errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    UnsupportedTypeError,
)
from percolate_reading.parse.document import Block, BlockKind, DocumentType, ParsedDocument
from percolate_reading.parse.providers import ocr, ocr_tables
from percolate_reading.parse.providers.base import ParseOptions

if TYPE_CHECKING:
    from PIL import Image

# MPO: multi-picture JPEG; DIB: a BMP without its file header (inside ICO/clipboard data).
SUPPORTED_FORMATS = frozenset({"PNG", "JPEG", "TIFF", "MPO", "WEBP", "BMP", "DIB", "GIF"})
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold
NO_TEXT_WARNING = "no text found in the image"
OCR_DISABLED_WARNING = "OCR is disabled; no text extracted from the image"


@dataclass(frozen=True)
class ImageProvider:
    max_pixels: int = DEFAULT_MAX_PIXELS
    doc_type = DocumentType.IMAGE  # a class attribute, not a field

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageProvider:
        return cls(max_pixels=settings.image_max_pixels)

    def parse(self, path: Path, source_name: str, options: ParseOptions) -> ParsedDocument:
        from PIL import Image, UnidentifiedImageError

        doc = ParsedDocument(source_name=source_name, doc_type=DocumentType.IMAGE)
        t0 = time.perf_counter()
        run = _OcrRun(options)
        try:
            with warnings.catch_warnings():
                # Pillow warns (not raises) between 1x and 2x its pixel limit; make it an error.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as img:
                    self._read_frames(img, source_name, options, doc, run)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DocumentTooLargeError(f"{source_name}: image too large ({exc})") from exc
        except UnidentifiedImageError as exc:
            raise CorruptDocumentError(f"{source_name}: not a decodable image") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            # Pillow's way of saying truncated / broken chunk / bad header.
            raise CorruptDocumentError(f"{source_name}: image cannot be decoded ({exc})") from exc

        doc.timings["ocr"] = run.seconds
        doc.timings["decode"] = time.perf_counter() - t0 - run.seconds
        doc.metadata.update(run.metadata())
        if not options.ocr_enabled:
            doc.warnings.append(OCR_DISABLED_WARNING)
        elif not any(b.kind in (BlockKind.PARAGRAPH, BlockKind.TABLE) for b in doc.blocks):
            doc.warnings.append(NO_TEXT_WARNING)
        return doc

    def _read_frames(
        self, img: Image.Image, source_name: str, options: ParseOptions, doc: ParsedDocument, run: _OcrRun
    ) -> None:
        from PIL import ImageOps

        if img.format not in SUPPORTED_FORMATS:
            raise UnsupportedTypeError(
                f"{source_name}: {img.format} images are not supported (PNG, JPEG, TIFF, WebP, BMP, GIF)"
            )
        frames = int(getattr(img, "n_frames", 1))
        if frames > options.max_pages:
            raise DocumentTooLargeError(
                f"{source_name}: {frames} frames, over the {options.max_pages} page cap"
            )
        multi = frames > 1 and img.format == "TIFF"
        if not multi:
            frames = 1  # an MPO's second picture is a preview/depth map, not a page
        doc.metadata.update(format=img.format, width=img.width, height=img.height, frames=frames)
        for index in range(frames):
            img.seek(index)
            self._check_size(img.width, img.height, source_name)
            frame = ImageOps.exif_transpose(img)
            frame.load()
            page = index + 1 if multi else None
            if multi:
                doc.blocks.append(Block(kind=BlockKind.PAGE_BREAK, page=page))
            if options.ocr_enabled:
                doc.blocks.extend(run.frame_blocks(frame, page, doc.warnings))

    def _check_size(self, width: int, height: int, source_name: str) -> None:
        if width * height > self.max_pixels:
            raise DocumentTooLargeError(
                f"{source_name}: {width}x{height} pixels, over the {self.max_pixels} pixel cap"
            )


class _OcrRun:
    """OCR of an image's frames: blocks per frame (paragraphs and tables), timing, confidences."""

    def __init__(self, options: ParseOptions) -> None:
        self.options = options
        self.seconds = 0.0
        self.confidences: list[float] = []

    def frame_blocks(self, frame: Image.Image, page: int | None, warnings: list[str]) -> list[Block]:
        t = time.perf_counter()
        lines = ocr.recognize_image(frame, self.options.language, self.options.ocr_languages)
        self.seconds += time.perf_counter() - t
        self.confidences.extend(ln.confidence for ln in lines)
        mismatch = ocr.script_warning(lines, self.options.language, self.options.ocr_languages)
        if mismatch and mismatch not in warnings:
            warnings.append(mismatch)
        return ocr_tables.page_blocks(lines, frame, page)  # decoded to gray only for a table

    def metadata(self) -> dict[str, object]:
        c = self.confidences
        return {
            "ocr_engine": ocr.engine_for(self.options.language, self.options.ocr_languages)
            if self.options.ocr_enabled
            else None,
            "ocr_lines": len(c),
            "ocr_mean_confidence": round(sum(c) / len(c), 4) if c else None,
        }
