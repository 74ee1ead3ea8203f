"""ParsedDocument -> `metadata.json`: what was parsed, how, with which versions, how long.

Known facts come first in a fixed order; anything else a provider put in `doc.metadata`
follows under `document`, so consumers find the common keys in one place.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
from typing import Any

from percolate_reading import __version__
from percolate_reading.parse.document import BlockKind, DocumentType, ParsedDocument
from percolate_reading.parse.render.tables import table_path

# Distributions whose versions decide the output; reported when installed.
VERSIONED_PACKAGES = (
    "percolate-reading",
    "pymupdf",
    "openpyxl",
    "python-calamine",
    "faster-whisper",
    "ctranslate2",
    "rapidocr-onnxruntime",
    "onnxruntime",
)

# Keys lifted from doc.metadata to the top level (the rest stays under "document").
_TOP_LEVEL_KEYS = (
    "file_size",
    "sha256",
    "page_count",
    "sheet_count",
    "sheet_names",
    "duration_s",
    "language",
    "language_probability",
)


@functools.cache
def package_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def tables_index(doc: ParsedDocument) -> list[dict[str, Any]]:
    return [
        {
            "file": table_path(i),
            "page": t.page,
            "sheet": t.sheet,
            "title": t.title,
            "rows": t.n_rows,
            "columns": t.n_cols,
            "header_rows": t.header_rows,
        }
        for i, t in enumerate(doc.tables, start=1)
    ]


def _counts(doc: ParsedDocument) -> dict[str, Any]:
    """page/sheet counts and duration derived from the blocks when the provider gave none."""
    derived: dict[str, Any] = {}
    if doc.doc_type is DocumentType.PDF:
        pages = [b.page for b in doc.blocks if b.page is not None]
        derived["page_count"] = max(pages, default=0)
    elif doc.doc_type is DocumentType.XLSX:
        sheets = list(dict.fromkeys(s for b in doc.blocks if (s := b.sheet or (b.table and b.table.sheet))))
        derived["sheet_count"] = len(sheets)
        derived["sheet_names"] = sheets
    elif doc.doc_type is DocumentType.IMAGE:
        pages = [b.page for b in doc.blocks if b.page is not None]
        derived["page_count"] = int(doc.metadata.get("frames") or max(pages, default=1))
    elif doc.doc_type is DocumentType.AUDIO:
        ends = [b.end for b in doc.blocks if b.end is not None]
        derived["duration_s"] = max(ends, default=0.0)
        derived["language"] = None
    return derived


def build_metadata(doc: ParsedDocument, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "source_name": doc.source_name,
        "doc_type": doc.doc_type.value,
    }
    derived = _counts(doc)
    for key in _TOP_LEVEL_KEYS:
        if key in doc.metadata:
            meta[key] = doc.metadata[key]
        elif key in derived:
            meta[key] = derived[key]
    meta["block_counts"] = {
        kind.value: n for kind in BlockKind if (n := sum(1 for b in doc.blocks if b.kind is kind))
    }
    meta["timings"] = {k: round(v, 6) for k, v in doc.timings.items()}
    meta["parser"] = {
        "name": "percolate-reading",
        "version": __version__,
        "provider": doc.metadata.get("parser") or doc.metadata.get("provider") or doc.doc_type.value,
    }
    meta["packages"] = package_versions()
    meta["warnings"] = list(doc.warnings)
    meta["tables"] = tables_index(doc)
    if extra:
        meta.update(extra)
    rest = {
        k: v
        for k, v in doc.metadata.items()
        if k not in _TOP_LEVEL_KEYS and k not in ("doc_type", "provider", "parser")
    }
    meta["document"] = dict(sorted(rest.items()))
    return meta


def metadata_json(meta: dict[str, Any]) -> bytes:
    return (json.dumps(meta, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8")
