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

from percolate_reading.config import Settings
from percolate_reading.errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    UnsupportedTypeError,
)
from percolate_reading.parse.document import Block, BlockKind, DocumentType, ParsedDocument
from percolate_reading.parse.providers import ocr
from percolate_reading.parse.providers.base import ParseOptions

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
        from PIL import Image, ImageOps, UnidentifiedImageError

        doc = ParsedDocument(source_name=source_name, doc_type=DocumentType.IMAGE)
        t0 = time.perf_counter()
        ocr_s = 0.0
        confidences: list[float] = []
        try:
            with warnings.catch_warnings():
                # Pillow warns (not raises) between 1x and 2x its pixel limit; make it an error.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as img:
                    if img.format not in SUPPORTED_FORMATS:
                        raise UnsupportedTypeError(
                            f"{source_name}: {img.format} images are not supported "
                            "(PNG, JPEG, TIFF, WebP, BMP, GIF)"
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
                        if not options.ocr_enabled:
                            continue
                        t = time.perf_counter()
                        lines = ocr.recognize_image(frame, options.language, options.ocr_languages)
                        ocr_s += time.perf_counter() - t
                        confidences.extend(ln.confidence for ln in lines)
                        mismatch = ocr.script_warning(lines, options.language, options.ocr_languages)
                        if mismatch and mismatch not in doc.warnings:
                            doc.warnings.append(mismatch)
                        for text, box in ocr.paragraph_boxes(lines):  # box: the frame's pixels
                            doc.blocks.append(Block(kind=BlockKind.PARAGRAPH, text=text, page=page, bbox=box))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DocumentTooLargeError(f"{source_name}: image too large ({exc})") from exc
        except UnidentifiedImageError as exc:
            raise CorruptDocumentError(f"{source_name}: not a decodable image") from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            # Pillow's way of saying truncated / broken chunk / bad header.
            raise CorruptDocumentError(f"{source_name}: image cannot be decoded ({exc})") from exc

        doc.timings["ocr"] = ocr_s
        doc.timings["decode"] = time.perf_counter() - t0 - ocr_s
        doc.metadata.update(
            ocr_engine=ocr.engine_for(options.language, options.ocr_languages)
            if options.ocr_enabled
            else None,
            ocr_lines=len(confidences),
            ocr_mean_confidence=(round(sum(confidences) / len(confidences), 4) if confidences else None),
        )
        if not options.ocr_enabled:
            doc.warnings.append(OCR_DISABLED_WARNING)
        elif not any(b.kind is BlockKind.PARAGRAPH for b in doc.blocks):
            doc.warnings.append(NO_TEXT_WARNING)
        return doc

    def _check_size(self, width: int, height: int, source_name: str) -> None:
        if width * height > self.max_pixels:
            raise DocumentTooLargeError(
                f"{source_name}: {width}x{height} pixels, over the {self.max_pixels} pixel cap"
            )
