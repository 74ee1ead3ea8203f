"""Per-request parse options: one validator for the HTTP form, the CLI and the worker.

Requests carry options as text fields (multipart form fields, CLI flags, the job message's
`options` map); `RequestOptions.from_fields` checks them all and says exactly what is wrong
(the gateway answers 400 with that message), and turns them into what the parse and the
renderers take: ParseOptions (crosses into the sandbox), ChunkOptions and the output set.

Fields (all optional):
- `outputs`: comma-separated of markdown, elements, chunks, tables, text, html
  (default markdown,elements,chunks,tables; metadata.json is always written).
- `pages`: a 1-based page range, "3", "2-5" or "4-" (PDF pages, slides, image frames).
- `ocr`: off | auto | force. auto OCRs pages without a text layer and images; force OCRs
  every page even when it has text; off never runs OCR.
- `ocr_languages`: comma-separated language codes (e.g. "en,de") given to the OCR engine.
- `table_mode`: fast | accurate. fast skips the search for ruled tables in PDFs (MuPDF's
  table finder, the slow part); tables whose columns line up in the text are still found.
- `include_images`: true | false. true keeps embedded pictures (PDF, DOCX, PPTX, ODT, ODP,
  EPUB; HTML `data:` URIs) as artifacts `images/<n>.<ext>`, linked from structured.md and
  elements.jsonl. Pictures only linked by URL are never fetched (no requests to hosts an
  upload names: SSRF).
- `chunk_strategy`: heading | page | fixed; `chunk_size` (20-100000 characters) and
  `chunk_overlap` (0 to under chunk_size).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

from percolate_reading.config import Settings
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.render.artifacts import DEFAULT_OUTPUTS, OUTPUTS
from percolate_reading.parse.render.chunks import CHUNK_STRATEGIES, ChunkOptions

OCR_MODES = ("off", "auto", "force")
TABLE_MODES = ("fast", "accurate")
REQUEST_FIELDS = (
    "outputs",
    "pages",
    "ocr",
    "ocr_languages",
    "table_mode",
    "include_images",
    "chunk_strategy",
    "chunk_size",
    "chunk_overlap",
)
# One description per field, shared by the OpenAPI schema and the CLI's help.
FIELD_HELP = {
    "outputs": f"Comma-separated outputs: {', '.join(OUTPUTS)} (default {','.join(DEFAULT_OUTPUTS)}).",
    "pages": "1-based page range to parse: '3', '2-5' or '4-' (PDF pages, slides, image frames).",
    "ocr": "OCR mode: off (never), auto (pages without text, images; default), force (every page).",
    "ocr_languages": "Comma-separated OCR language codes, e.g. 'en,de'.",
    "table_mode": (
        "Table extraction: accurate (default) or fast (PDFs: no search for ruled tables; "
        "tables whose columns line up in the text are still found)."
    ),
    "include_images": (
        "true: keep embedded pictures (PDF, DOCX, PPTX, ODT, ODP, EPUB; HTML data: URIs) as artifacts "
        "images/<n>.<ext>, linked from structured.md and elements.jsonl (at most 200 images, 10 MB "
        "each, 50 MB in all). Pictures only linked by URL are never fetched. Default false."
    ),
    "chunk_strategy": "Chunk boundaries: heading (default), page or fixed size.",
    "chunk_size": "Largest chunk, in characters (20-100000).",
    "chunk_overlap": "Characters shared by consecutive chunks of one section (0 to under chunk_size).",
}
_PAGES = re.compile(r"^ *([0-9]{1,6}) *(?:(-) *([0-9]{1,6})?)? *$")
_BOOLEANS = {"true": True, "false": False}
BOOLEAN_VALUES = tuple(_BOOLEANS)
_DIGITS = re.compile(r"^[0-9]{1,6}$")
_LANG = r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?"
LANGUAGES_PATTERN = f"^{_LANG}(?: *, *{_LANG}){{0,7}}$"  # also the OpenAPI pattern
_LANGS = re.compile(LANGUAGES_PATTERN)


class OptionError(ValueError):
    """An option value the request may not have; the message names the field."""


@dataclass(frozen=True, slots=True)
class RequestOptions:
    outputs: tuple[str, ...] = DEFAULT_OUTPUTS
    page_range: tuple[int, int | None] | None = None
    ocr_mode: str = "auto"
    ocr_languages: tuple[str, ...] = ()
    table_mode: str = "accurate"
    include_images: bool = False
    chunk_strategy: str | None = None
    chunk_size: int | None = None
    chunk_overlap: int | None = None

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> RequestOptions:
        """Validate text fields (unknown names are the caller's business)."""
        # Exact spellings (no case folding, no trimming) except where the field's own syntax
        # allows blanks: the OpenAPI schema says the same, and a client learns one form.
        raw = {k: v for k, v in fields.items() if k in REQUEST_FIELDS and v is not None and v != ""}
        values: dict[str, object] = {}
        for name, value in raw.items():
            attribute, parsed = _FIELD_READERS[name](name, value)
            values[attribute] = parsed
        options = cls(**values)  # type: ignore[arg-type]
        size, overlap = options.chunk_size, options.chunk_overlap
        if size is not None and overlap is not None and overlap >= size:
            raise OptionError("chunk_overlap: must be smaller than chunk_size")
        return options

    def to_fields(self) -> dict[str, str]:
        """The options as text fields again (what the job message carries), defaults left out."""
        out: dict[str, str] = {}
        if self.outputs != DEFAULT_OUTPUTS:
            out["outputs"] = ",".join(self.outputs)
        if self.page_range is not None:
            first, last = self.page_range
            out["pages"] = f"{first}-{'' if last is None else last}"
        if self.ocr_mode != "auto":
            out["ocr"] = self.ocr_mode
        if self.ocr_languages:
            out["ocr_languages"] = ",".join(self.ocr_languages)
        if self.table_mode != "accurate":
            out["table_mode"] = self.table_mode
        if self.include_images:
            out["include_images"] = "true"
        for name in ("chunk_strategy", "chunk_size", "chunk_overlap"):
            value = getattr(self, name)
            if value is not None:
                out[name] = str(value)
        return out

    def parse_options(self, base: ParseOptions) -> ParseOptions:
        """`base` (from settings, password...) with this request's parse knobs applied."""
        changes: dict[str, object] = {
            "page_range": self.page_range,
            "ocr_mode": self.ocr_mode,
            "table_mode": self.table_mode,
            "include_images": self.include_images,
        }
        if self.ocr_mode == "off":
            changes["ocr_enabled"] = False
        if self.ocr_languages:
            changes["ocr_languages"] = self.ocr_languages
            changes["language"] = base.language or self.ocr_languages[0]
        return dataclasses.replace(base, **changes)  # type: ignore[arg-type]

    def chunk_options(self, settings: Settings) -> ChunkOptions:
        base = ChunkOptions.from_settings(settings)
        size = self.chunk_size or base.max_chars
        overlap = self.chunk_overlap if self.chunk_overlap is not None else min(base.overlap_chars, size // 2)
        if overlap >= size:
            raise OptionError("chunk_overlap: must be smaller than chunk_size")
        return ChunkOptions(
            max_chars=size, overlap_chars=overlap, strategy=self.chunk_strategy or base.strategy
        )


# --- one reader per field: (name, text) -> (RequestOptions attribute, value) ----------------


def _read_outputs(name: str, value: str) -> tuple[str, object]:
    outputs = tuple(dict.fromkeys(o.strip(" ") for o in value.split(",")))
    bad = [o for o in outputs if o not in OUTPUTS]
    if bad or not outputs:
        raise OptionError(
            f"outputs: unknown {', '.join(bad) or '(none given)'}; choose from {', '.join(OUTPUTS)}"
        )
    return "outputs", outputs


def _read_pages(name: str, value: str) -> tuple[str, object]:
    m = _PAGES.fullmatch(value)
    if m is None:
        raise OptionError("pages: use a 1-based page or range such as 3, 2-5 or 4-")
    first = int(m.group(1))
    last = int(m.group(3)) if m.group(3) else (None if m.group(2) else first)
    if first < 1 or (last is not None and last < first):
        raise OptionError("pages: the range must start at 1 or later and not end before it starts")
    return "page_range", (first, last)


def _read_languages(name: str, value: str) -> tuple[str, object]:
    if not _LANGS.fullmatch(value):
        raise OptionError("ocr_languages: up to 8 comma-separated language codes such as en,de,pt-BR")
    return "ocr_languages", tuple(x.strip(" ") for x in value.split(","))


def _choice(attribute: str, choices: tuple[str, ...]) -> Callable[[str, str], tuple[str, object]]:
    def read(name: str, value: str) -> tuple[str, object]:
        if value not in choices:
            raise OptionError(f"{name}: one of {', '.join(choices)}")
        return attribute, value

    return read


def _read_boolean(name: str, value: str) -> tuple[str, object]:
    if value not in _BOOLEANS:
        raise OptionError(f"{name}: true or false")
    return name, _BOOLEANS[value]


def _integer(low: int, high: int) -> Callable[[str, str], tuple[str, object]]:
    def read(name: str, value: str) -> tuple[str, object]:
        if not _DIGITS.fullmatch(value):
            raise OptionError(f"{name}: an integer")
        number = int(value)
        if not low <= number <= high:
            raise OptionError(f"{name}: between {low} and {high}")
        return name, number

    return read


_FIELD_READERS: dict[str, Callable[[str, str], tuple[str, object]]] = {
    "outputs": _read_outputs,
    "pages": _read_pages,
    "ocr": _choice("ocr_mode", OCR_MODES),
    "ocr_languages": _read_languages,
    "table_mode": _choice("table_mode", TABLE_MODES),
    "include_images": _read_boolean,
    "chunk_strategy": _choice("chunk_strategy", CHUNK_STRATEGIES),
    "chunk_size": _integer(20, 100_000),
    "chunk_overlap": _integer(0, 99_999),
}
