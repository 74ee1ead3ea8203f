"""ParsedDocument -> every artifact a parse stores, as `{relative path: bytes}`.

Pure and deterministic: the same document and options give byte-identical artifacts, so
the CLI, the worker and the tests all store exactly the same thing.
"""

from __future__ import annotations

import json

from percolate_reading.parse.document import ParsedDocument
from percolate_reading.parse.render.chunks import ChunkOptions, build_chunks
from percolate_reading.parse.render.markdown import to_markdown
from percolate_reading.parse.render.metadata import build_metadata, metadata_json
from percolate_reading.parse.render.tables import tables_to_csv

STRUCTURED_MD = "structured.md"
METADATA_JSON = "metadata.json"
CHUNKS_JSONL = "chunks.jsonl"


def render_artifacts(doc: ParsedDocument, chunk_options: ChunkOptions) -> dict[str, bytes]:
    chunks = build_chunks(doc, chunk_options)
    artifacts: dict[str, bytes] = {STRUCTURED_MD: to_markdown(doc).encode("utf-8")}
    artifacts.update(tables_to_csv(doc))
    meta = build_metadata(
        doc,
        extra={
            "chunk_count": len(chunks),
            "chunk_options": {
                "max_chars": chunk_options.max_chars,
                "overlap_chars": chunk_options.overlap_chars,
            },
        },
    )
    artifacts[METADATA_JSON] = metadata_json(meta)
    artifacts[CHUNKS_JSONL] = "".join(
        json.dumps(c, ensure_ascii=False, separators=(",", ":")) + "\n" for c in chunks
    ).encode("utf-8")
    return artifacts
