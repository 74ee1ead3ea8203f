"""What a provider is: a pure function from a file on disk (plus options) to a ParsedDocument.

Providers do no network I/O and keep no global state; the sandbox runs them in a child
process, so they may use as much of the child's memory as its limit allows and must raise
the typed errors from `percolate_reading.errors` for bad input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from percolate_reading.config import Device, Settings
from percolate_reading.parse.document import DocumentType, ParsedDocument


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """Per-parse knobs, small and picklable (it crosses into the sandbox child)."""

    password: str | None = None
    ocr_enabled: bool = True
    max_pages: int = 5000
    device: Device = Device.CPU
    whisper_model: str = "base"
    whisper_compute_type: str = "int8"
    # Force a transcription/OCR language; None = detect; "multi" = per segment (mixed audio).
    language: str | None = None
    # Per-request knobs (parse/request.py validates them). Providers may use `page_range` to
    # skip work; parse_file keeps only the blocks in range either way.
    page_range: tuple[int, int | None] | None = None  # 1-based, inclusive; None end = to the last
    ocr_mode: str = "auto"  # off | auto | force
    ocr_languages: tuple[str, ...] = ()
    table_mode: str = "accurate"  # fast | accurate
    include_images: bool = False  # keep embedded pictures as artifacts (providers/figures.py)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> ParseOptions:
        base = cls(
            ocr_enabled=settings.ocr_enabled,
            max_pages=settings.max_pages,
            device=settings.device,
            whisper_model=settings.whisper_model,
            whisper_compute_type=settings.whisper_compute_type,
        )
        return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


class Provider(Protocol):
    doc_type: DocumentType

    def parse(self, path: Path, source_name: str, options: ParseOptions) -> ParsedDocument: ...
