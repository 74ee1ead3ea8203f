"""One parse, end to end: detect the type, run its provider (sandboxed), record the facts.

`parse_file` is what the CLI and the worker call. With `limits=None` the provider runs in
this process: tests and benchmarks use that to measure the parser without the sandbox.
"""

from __future__ import annotations

import hashlib
import resource
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from percolate_reading import tracing
from percolate_reading.config import Settings
from percolate_reading.errors import PercolateError
from percolate_reading.parse.detect import detect_type
from percolate_reading.parse.document import Block, DocumentType, ParsedDocument
from percolate_reading.parse.providers import get_provider, missing_dependency_error
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.render.chunks import ChunkOptions
from percolate_reading.parse.sandbox import SandboxLimits, run_in_sandbox

_HASH_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class RenderRequest:
    """What to render in the child: chunking, the artifacts asked for, the job id for chunks."""

    chunk_options: ChunkOptions
    outputs: tuple[str, ...] | None = None
    job_id: str | None = None


def parse_file(
    path: Path,
    options: ParseOptions,
    limits: SandboxLimits | None,
    source_name: str | None = None,
    settings: Settings | None = None,
    cancel: threading.Event | None = None,
) -> ParsedDocument:
    """Parse the file at `path` into a ParsedDocument, raising typed errors for bad input.

    Setting `cancel` kills a sandboxed parse in flight (WorkerCrashedError).
    `settings` configures providers that take more than ParseOptions (size caps, model cache)."""
    # Absolute: the sandboxed child runs in its own temp dir as working directory.
    path = Path(path).absolute()
    name = source_name or path.name
    t0 = time.perf_counter()
    with tracing.span("detect"):
        doc_type = detect_type(path, name)
    t1 = time.perf_counter()
    try:
        with tracing.span(
            "provider", {"percolate.doc_type": doc_type.value, "percolate.sandboxed": limits is not None}
        ):
            if limits is None:
                doc = run_provider(doc_type, path, name, options, settings)
            else:
                doc = run_in_sandbox(
                    run_provider, doc_type, path, name, options, settings, limits=limits, cancel=cancel
                )
    except PercolateError as exc:
        raise with_upload_name(exc, path, name) from exc.__cause__
    if options.page_range is not None:
        _keep_page_range(doc, options.page_range)
    t2 = time.perf_counter()
    with tracing.span("hash"):
        size, digest = file_digest(path)
    t3 = time.perf_counter()
    doc.timings.update({"detect_s": t1 - t0, "parse_s": t2 - t1, "hash_s": t3 - t2, "total_s": t3 - t0})
    doc.metadata.update({"doc_type": doc_type.value, "file_size": size, "sha256": digest})
    return doc


def parse_and_render(
    path: Path,
    options: ParseOptions,
    limits: SandboxLimits | None,
    chunk_options: ChunkOptions,
    source_name: str | None = None,
    settings: Settings | None = None,
    cancel: threading.Event | None = None,
    outputs: Collection[str] | None = None,
    job_id: str | None = None,
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Parse and render the artifacts in one sandboxed child: the parent receives only the
    rendered bytes and a metadata summary, never the document (a workbook of millions of
    cells would otherwise be rebuilt and rendered in the worker, outside every limit).
    `outputs`: the artifacts asked for (None: the default set); `job_id` goes into the chunks.
    Returns ({artifact path: bytes}, metadata with "timings")."""
    path = Path(path).absolute()
    name = source_name or path.name
    t0 = time.perf_counter()
    with tracing.span("detect"):
        doc_type = detect_type(path, name)
    render = RenderRequest(chunk_options, tuple(outputs) if outputs is not None else None, job_id)
    detect_s = time.perf_counter() - t0
    attributes = {"percolate.doc_type": doc_type.value, "percolate.sandboxed": limits is not None}
    try:
        with tracing.span("provider", attributes):  # parse, hash and render, in the child
            if limits is None:
                artifacts, metadata = _provider_and_render(doc_type, path, name, options, settings, render)
            else:
                artifacts, metadata = run_in_sandbox(
                    _provider_and_render,
                    doc_type,
                    path,
                    name,
                    options,
                    settings,
                    render,
                    limits=limits,
                    cancel=cancel,
                )
    except PercolateError as exc:
        raise with_upload_name(exc, path, name) from exc.__cause__
    metadata["timings"]["detect_s"] = detect_s
    metadata["timings"]["total_s"] = time.perf_counter() - t0
    return artifacts, metadata


def _provider_and_render(
    doc_type: DocumentType,
    path: Path,
    source_name: str,
    options: ParseOptions,
    settings: Settings | None,
    render: RenderRequest,
) -> tuple[dict[str, bytes], dict[str, Any]]:
    t0 = time.perf_counter()
    doc = run_provider(doc_type, path, source_name, options, settings)
    return _finish_and_render(doc, doc_type, path, options, render, t0)


def _finish_and_render(
    doc: ParsedDocument,
    doc_type: DocumentType,
    path: Path,
    options: ParseOptions,
    render: RenderRequest,
    t0: float,
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The parsed document's last steps and its artifacts: a whole parse and a merge of
    page-range parts share them, so both render the same bytes."""
    from percolate_reading.parse.render.artifacts import DEFAULT_OUTPUTS, render_artifacts

    if options.page_range is not None:
        _keep_page_range(doc, options.page_range)
    t1 = time.perf_counter()
    size, digest = file_digest(path)
    t2 = time.perf_counter()
    doc.metadata.update({"doc_type": doc_type.value, "file_size": size, "sha256": digest})
    doc.timings.update({"parse_s": t1 - t0, "hash_s": t2 - t1})
    outputs = render.outputs if render.outputs is not None else DEFAULT_OUTPUTS
    artifacts = render_artifacts(doc, render.chunk_options, outputs, job_id=render.job_id)
    doc.timings["render_s"] = time.perf_counter() - t2
    return artifacts, dict(doc.metadata) | {"timings": dict(doc.timings)}


# --- page-range parts (a large scan split across workers) ------------------------------------


@dataclass(frozen=True, slots=True)
class ScanProbe:
    """What a split is decided on: the PDF's page count and how many of the first pages
    checked have no usable text layer (they need OCR)."""

    page_count: int
    checked: int
    scanned: int


def probe_scan(
    path: Path, options: ParseOptions, limits: SandboxLimits | None, source_name: str
) -> ScanProbe:
    """Open the PDF (sandboxed) and look at its first pages' text layers: cheap next to OCR."""
    path = Path(path).absolute()
    try:
        if limits is None:
            return _probe_scan(path, source_name, options)
        return run_in_sandbox(_probe_scan, path, source_name, options, limits=limits)
    except PercolateError as exc:
        raise with_upload_name(exc, path, source_name) from exc.__cause__


def _probe_scan(path: Path, source_name: str, options: ParseOptions) -> ScanProbe:
    from percolate_reading.parse.providers.pdf import probe_scan as probe

    page_count, checked, scanned = probe(path, source_name, options)
    return ScanProbe(page_count, checked, scanned)


def parse_part(
    path: Path,
    options: ParseOptions,
    limits: SandboxLimits | None,
    source_name: str,
    cancel: threading.Event | None = None,
) -> bytes:
    """Parse the PDF pages of `options.page_range` as a part (parse/parts.py), sandboxed;
    returns the part's JSON."""
    path = Path(path).absolute()
    try:
        with tracing.span("provider.part", {"percolate.sandboxed": limits is not None}):
            if limits is None:
                return _parse_part(path, source_name, options)
            return run_in_sandbox(_parse_part, path, source_name, options, limits=limits, cancel=cancel)
    except PercolateError as exc:
        raise with_upload_name(exc, path, source_name) from exc.__cause__


def _parse_part(path: Path, source_name: str, options: ParseOptions) -> bytes:
    from percolate_reading.parse.parts import encode_part
    from percolate_reading.parse.providers.pdf import parse_part as pdf_part

    return encode_part(pdf_part(path, source_name, options))


def merge_and_render(
    path: Path,
    options: ParseOptions,
    limits: SandboxLimits | None,
    parts: list[bytes],
    render: RenderRequest,
    source_name: str,
    cancel: threading.Event | None = None,
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Merge the parts that cover the PDF's (requested) pages and render the artifacts, in
    one sandboxed child: the same bytes `parse_and_render` gives for the whole document."""
    path = Path(path).absolute()
    t0 = time.perf_counter()
    try:
        with tracing.span("provider.merge", {"percolate.sandboxed": limits is not None}):
            if limits is None:
                artifacts, metadata = _merge_and_render(path, source_name, options, parts, render)
            else:
                artifacts, metadata = run_in_sandbox(
                    _merge_and_render, path, source_name, options, parts, render, limits=limits, cancel=cancel
                )
    except PercolateError as exc:
        raise with_upload_name(exc, path, source_name) from exc.__cause__
    metadata["timings"]["total_s"] = time.perf_counter() - t0
    return artifacts, metadata


def _merge_and_render(
    path: Path, source_name: str, options: ParseOptions, parts: list[bytes], render: RenderRequest
) -> tuple[dict[str, bytes], dict[str, Any]]:
    from percolate_reading.parse.parts import decode_part
    from percolate_reading.parse.providers.pdf import merge_parts

    t0 = time.perf_counter()
    doc = merge_parts(path, source_name, options, [decode_part(raw) for raw in parts])
    doc.metadata["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return _finish_and_render(doc, DocumentType.PDF, path, options, render, t0)


def with_upload_name(exc: PercolateError, path: Path, name: str) -> PercolateError:
    """The error with the scratch file's path or name (a worker's temp file, which means
    nothing to the tenant) replaced by the upload's name, wherever a library put it."""
    message = exc.message
    for scratch in (str(path), path.name):
        if scratch and scratch != name:
            message = message.replace(scratch, name)
    if message == exc.message:
        return exc
    renamed = type(exc).__new__(type(exc))
    PercolateError.__init__(renamed, message)
    return renamed


def run_provider(
    doc_type: DocumentType,
    path: Path,
    source_name: str,
    options: ParseOptions,
    settings: Settings | None = None,
    depth: int = 0,
) -> ParsedDocument:
    """Load the provider for `doc_type` and parse. Module-level so the sandbox can pickle it.

    `depth` > 0 parses a document found inside another (an e-mail attachment): providers of
    containers get it (`parse_nested`) to bound the nesting."""
    provider = get_provider(doc_type, settings)
    nested = getattr(provider, "parse_nested", None)
    try:
        if depth and nested is not None:
            doc: ParsedDocument = nested(path, source_name, options, depth)
        else:
            doc = provider.parse(path, source_name, options)
    except ImportError as exc:
        # Providers may import heavy optional packages lazily, inside parse().
        raise missing_dependency_error(doc_type, exc) from exc
    # In the sandbox this is the child's own peak; in-process, the whole process's.
    doc.metadata["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return doc


def _keep_page_range(doc: ParsedDocument, page_range: tuple[int, int | None]) -> None:
    """Drop blocks outside the requested pages (slides, frames); say so when there are none."""
    first, last = page_range
    if not any(b.page is not None or (b.table is not None and b.table.page is not None) for b in doc.blocks):
        doc.warnings.append("the page range was ignored: this document has no pages")
        return

    def inside(block: Block) -> bool:
        page = (
            block.page if block.page is not None else (block.table.page if block.table is not None else None)
        )
        return page is None or (page >= first and (last is None or page <= last))

    doc.blocks = [b for b in doc.blocks if inside(b)]
    doc.metadata["page_range"] = [first, last]


def file_digest(path: Path) -> tuple[int, str]:
    """(size in bytes, sha256 hex) of a file, read in blocks."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(_HASH_BLOCK):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()
