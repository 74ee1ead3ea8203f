"""ParsedDocument -> every artifact a parse stores, as `{relative path: bytes}`.

Pure and deterministic: the same document and options give byte-identical artifacts, so
the CLI, the worker and the tests all store exactly the same thing. Documents found inside
the document (e-mail attachments) get the same set of artifacts of their own under
`attachments/<n>-<name>/`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any

from percolate_reading.parse.document import ParsedDocument
from percolate_reading.parse.render.chunks import ChunkOptions, build_chunks, langchain_documents
from percolate_reading.parse.render.elements import ELEMENTS_SCHEMA_VERSION, build_elements, elements_jsonl
from percolate_reading.parse.render.markdown import to_markdown
from percolate_reading.parse.render.metadata import build_metadata, metadata_json
from percolate_reading.parse.render.tables import tables_to_csv

STRUCTURED_MD = "structured.md"
METADATA_JSON = "metadata.json"
CHUNKS_JSONL = "chunks.jsonl"
ELEMENTS_JSONL = "elements.jsonl"
LANGCHAIN_JSONL = "chunks.langchain.jsonl"
PLAIN_TXT = "plain.txt"
STRUCTURED_HTML = "structured.html"

# Names of the outputs a request may ask for, and the artifacts each one is.
OUTPUTS = ("markdown", "elements", "chunks", "tables", "text", "html")
DEFAULT_OUTPUTS = ("markdown", "elements", "chunks", "tables")
_UNSAFE = re.compile(r"[^\w.\-]+")


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows).encode(
        "utf-8"
    )


def render_artifacts(
    doc: ParsedDocument,
    chunk_options: ChunkOptions,
    outputs: Collection[str] = DEFAULT_OUTPUTS,
    job_id: str | None = None,
) -> dict[str, bytes]:
    """Artifacts of `doc` for the requested `outputs`; metadata.json always."""
    from percolate_reading.parse.render.html import to_html

    wanted = set(outputs)
    artifacts: dict[str, bytes] = {}
    chunks = build_chunks(doc, chunk_options, job_id) if "chunks" in wanted else []
    if "markdown" in wanted:
        artifacts[STRUCTURED_MD] = to_markdown(doc).encode("utf-8")
    if "tables" in wanted:
        artifacts.update(tables_to_csv(doc))
    elements = build_elements(doc) if wanted & {"elements", "html"} else []
    if "elements" in wanted:
        artifacts[ELEMENTS_JSONL] = elements_jsonl(elements)
    if "html" in wanted:
        artifacts[STRUCTURED_HTML] = to_html(doc, elements).encode("utf-8")
    if "text" in wanted:
        artifacts[PLAIN_TXT] = (doc.text() + "\n").encode("utf-8") if doc.blocks else b""
    if "chunks" in wanted:
        artifacts[CHUNKS_JSONL] = _jsonl(chunks)
        artifacts[LANGCHAIN_JSONL] = _jsonl(langchain_documents(chunks))
    artifacts.update(doc.images)  # extracted pictures (include_images), linked from the above
    children: list[dict[str, Any]] = []
    for number, child in enumerate(doc.children, start=1):
        folder = f"attachments/{number}-{_UNSAFE.sub('_', child.source_name)[:80]}"
        for name, data in render_artifacts(child, chunk_options, outputs, job_id).items():
            artifacts[f"{folder}/{name}"] = data
        children.append(
            {"folder": folder, "source_name": child.source_name, "doc_type": child.doc_type.value}
        )
    extra: dict[str, Any] = {
        "outputs": sorted(wanted & set(OUTPUTS)),
        "elements_schema_version": ELEMENTS_SCHEMA_VERSION,
        "chunk_options": {
            "max_chars": chunk_options.max_chars,
            "overlap_chars": chunk_options.overlap_chars,
            "strategy": chunk_options.strategy,
        },
    }
    if "chunks" in wanted:
        extra["chunk_count"] = len(chunks)
    if "elements" in wanted:
        extra["element_count"] = len(elements)
    if doc.images:
        extra["images"] = sorted(doc.images)
    if children:
        extra["children"] = children
    artifacts[METADATA_JSON] = metadata_json(build_metadata(doc, extra=extra))
    return artifacts
