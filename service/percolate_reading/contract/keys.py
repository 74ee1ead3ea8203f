"""Job ids, object keys and `s3://` URIs: the storage layout every role reads and writes.

Files and artifacts bucket (shared buckets are prefixed by the tenant, own buckets too, so
one layout serves both storage strategies):

    <tenant>/<job_id>/<file name>      the staged upload (gateway), read by the worker
    <tenant>/<job_id>/<artifact>       what the worker wrote (structured.md, chunks.jsonl...)
    <tenant>/<job_id>/parts/<range>.json  a split job's parsed page range, until the merge

Context bucket:

    <tenant>/documents/<job_id>.json   one entry per document
    <tenant>/chunks/<job_id>.jsonl     that document's chunks
    <tenant>/manifest.json             every entry, newest first
"""

from __future__ import annotations

import os
import re
import time

from percolate_reading.contract.subjects import validate_tenant_id

# Job ids name KV keys, object prefixes and URL path segments: letters, digits, '_' and '-'.
JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
S3_SCHEME = "s3://"
MANIFEST = "manifest.json"


def new_job_id() -> str:
    """32 hex chars: milliseconds first, so ids sort by creation time; then 80 random bits."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def is_job_id(job_id: str) -> bool:
    return JOB_ID_RE.fullmatch(job_id) is not None


def check_job_id(job_id: str) -> str:
    if not is_job_id(job_id):
        raise ValueError(f"invalid job id {job_id!r}: use 1-128 letters, digits, '_' and '-'")
    return job_id


# --- files and artifacts ---------------------------------------------------------------------


def tenant_prefix(tenant_id: str) -> str:
    """`<tenant>/`: everything of one tenant in a files, artifacts or context bucket."""
    return f"{validate_tenant_id(tenant_id)}/"


def job_prefix(tenant_id: str, job_id: str) -> str:
    """`<tenant>/<job_id>/`: the job's staged upload and its artifacts."""
    return f"{tenant_prefix(tenant_id)}{check_job_id(job_id)}/"


def object_key(tenant_id: str, job_id: str, name: str) -> str:
    """`<tenant>/<job_id>/<name>`: a job's upload (files bucket) or artifact (artifacts bucket)."""
    return job_prefix(tenant_id, job_id) + name


def part_key(tenant_id: str, job_id: str, part_name: str) -> str:
    """`<tenant>/<job_id>/parts/<first>-<last>.json`: a split job's page range, parsed and not
    merged yet (artifacts bucket; deleted once the job's artifacts are written)."""
    return object_key(tenant_id, job_id, f"{PARTS_DIR}{part_name}.json")


PARTS_DIR = "parts/"


def is_job_object(key: str, tenant_id: str, job_id: str) -> bool:
    """Whether `key` names an object inside the job's prefix (no '.', '..' or empty parts)."""
    parts = key.split("/")
    return (
        len(parts) >= 3
        and parts[0] == tenant_id
        and parts[1] == job_id
        and all(p not in ("", ".", "..") for p in parts[2:])
    )


# --- URIs ---------------------------------------------------------------------------------------


def s3_uri(bucket: str, key: str) -> str:
    return f"{S3_SCHEME}{bucket}/{key}"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key); ValueError for anything else."""
    if not uri.startswith(S3_SCHEME):
        raise ValueError(f"unsupported source URI {uri!r}")
    bucket, _, key = uri[len(S3_SCHEME) :].partition("/")
    if not bucket or not key:
        raise ValueError(f"source URI {uri!r} names no object")
    return bucket, key


# --- context bucket -------------------------------------------------------------------------------


def context_entry_key(tenant_id: str, job_id: str) -> str:
    return f"{tenant_prefix(tenant_id)}documents/{job_id}.json"


def context_documents_prefix(tenant_id: str) -> str:
    return f"{tenant_prefix(tenant_id)}documents/"


def context_chunks_key(tenant_id: str, job_id: str) -> str:
    return f"{tenant_prefix(tenant_id)}chunks/{job_id}.jsonl"


def context_manifest_key(tenant_id: str) -> str:
    return f"{tenant_prefix(tenant_id)}{MANIFEST}"


# Media types of artifacts, by suffix: the worker stores objects with them and the gateway
# serves them (anything else is application/octet-stream). Raster images only: an SVG could
# carry script.
ARTIFACT_MEDIA_TYPES = {
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".csv": "text/csv; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}
DEFAULT_ARTIFACT_MEDIA_TYPE = "application/octet-stream"


def artifact_media_type(name: str) -> str:
    """The media type an artifact is stored and served with, from its name's suffix."""
    base = name.rsplit("/", 1)[-1]
    suffix = "." + base.rsplit(".", 1)[-1].lower() if "." in base else ""
    return ARTIFACT_MEDIA_TYPES.get(suffix, DEFAULT_ARTIFACT_MEDIA_TYPE)
