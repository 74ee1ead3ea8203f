"""Tenant context: one place where an LLM service finds a tenant's whole parsed corpus.

Layout in the context bucket (keys prefixed by the tenant):

    <tenant>/documents/<job_id>.json   one entry per document (written by the job's worker)
    <tenant>/chunks/<job_id>.jsonl     that document's chunks
    <tenant>/manifest.json             every entry, newest first (rebuilt from the listing)

Each job writes only its own entry and chunk objects, so concurrent workers never overwrite
each other's data. The manifest is a derived index rebuilt from the listing; every writer
re-lists after writing it and rebuilds again if an entry is missing, so the last manifest
write includes every entry that existed before it, and `read_context` merges any entry the
manifest does not list yet. A redelivered job overwrites its own objects (same keys).

Rebuilding costs a listing and a manifest write that grow with the tenant's corpus, so a
worker does not rebuild once per job: its `ContextWriter` keeps one rebuild per tenant in
flight and folds every document finished meanwhile into the next one (group commit). A job
still returns only once a manifest that lists it is written, so the work per job stays
constant while the manifest is never behind a finished job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from percolate_reading.config import CONTEXT_BUCKET
from percolate_reading.contract.keys import (
    context_chunks_key,
    context_documents_prefix,
    context_entry_key,
    context_manifest_key,
)
from percolate_reading.contract.tenancy import TenantRecord
from percolate_reading.errors import ObjectNotFoundError
from percolate_reading.infra.storage.base import ObjectStore

MANIFEST_VERSION = 1
_REBUILD_ROUNDS = 5
_PARALLEL_READS = 16  # entry reads in flight while merging a listing
# Facts from metadata.json worth listing per document (small scalars only).
SUMMARY_KEYS = (
    "title",
    "author",
    "doc_type",
    "page_count",
    "sheet_count",
    "table_count",
    "duration_s",
    "language",
    "file_size",
    "sha256",
    "word_count",
    "chunk_count",
)


def metadata_summary(metadata: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in SUMMARY_KEYS:
        value = metadata.get(key)
        if isinstance(value, str | int | float | bool) and not (isinstance(value, str) and len(value) > 500):
            out[key] = value
    return out


def build_entry(
    *,
    tenant: str,
    job_id: str,
    file_name: str,
    file_type: str,
    artifact_uris: dict[str, str],
    metadata: dict[str, Any],
    chunk_count: int,
    chunks_uri: str,
    finished_at: datetime | None = None,
) -> dict[str, Any]:
    """One document's manifest entry (pure)."""
    when = finished_at or datetime.now(UTC)
    return {
        "job_id": job_id,
        "tenant_id": tenant,
        "file_name": file_name,
        "type": file_type,
        "artifacts": dict(sorted(artifact_uris.items())),
        "metadata": metadata_summary(metadata),
        "chunk_count": chunk_count,
        "chunks_uri": chunks_uri,
        "updated_at": when.isoformat(),
    }


def build_manifest(tenant: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    docs = sorted(
        entries, key=lambda e: (str(e.get("updated_at", "")), str(e.get("job_id", ""))), reverse=True
    )
    return {
        "version": MANIFEST_VERSION,
        "tenant_id": tenant,
        "document_count": len(docs),
        "chunk_count": sum(int(e.get("chunk_count", 0)) for e in docs),
        "documents": docs,
    }


def _job_id_of(key: str) -> str:
    return key.rsplit("/", 1)[1].removesuffix(".json")


async def _read_json(store: ObjectStore, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        data = json.loads(await store.get_bytes(bucket, key))
    except ObjectNotFoundError:
        return None
    except ValueError:
        return None  # a damaged object is rebuilt from the entries
    return data if isinstance(data, dict) else None


async def _current_entries(
    store: ObjectStore, bucket: str, tenant: str, known: dict[str, dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], bool]:
    """Entries of every listed document, reusing `known` ones; (entries, changed vs known)."""
    keys = await store.list_keys(bucket, context_documents_prefix(tenant))
    listed = {_job_id_of(k): k for k in keys if k.endswith(".json")}
    changed = set(listed) != set(known)
    entries = {job_id: known[job_id] for job_id in listed if job_id in known}
    missing = [(job_id, key) for job_id, key in listed.items() if job_id not in known]
    gate = asyncio.Semaphore(_PARALLEL_READS)

    async def read(key: str) -> dict[str, Any] | None:
        async with gate:
            return await _read_json(store, bucket, key)

    found = await asyncio.gather(*(read(key) for _, key in missing))
    for (job_id, _), entry in zip(missing, found, strict=True):
        if entry is not None:
            entries[job_id] = entry
    return entries, changed


async def _manifest_entries(store: ObjectStore, bucket: str, tenant: str) -> dict[str, dict[str, Any]]:
    manifest = await _read_json(store, bucket, context_manifest_key(tenant)) or {}
    docs = manifest.get("documents", [])
    return {str(d["job_id"]): d for d in docs if isinstance(d, dict) and "job_id" in d}


Entries = dict[str, dict[str, Any]]


async def _write_manifest(
    store: ObjectStore,
    bucket: str,
    tenant: str,
    known: Entries,
    fresh: Callable[[], Entries],
    more_coming: Callable[[Entries], bool] = lambda _: False,
) -> tuple[dict[str, Any], Entries]:
    """Write a manifest that covers the listing and `fresh()` (entries just written, newer
    than what `known` holds; asked again right before each build, so late arrivals join);
    returns (manifest, its entries by job id).

    Someone may add an entry after our listing and write an older manifest after ours, so
    we list again after writing and rebuild until what we wrote covers the listing; when
    `more_coming(written)` says another rebuild follows anyway, its listing is that check."""
    manifest: dict[str, Any] = {}
    entries: Entries = {}
    for _ in range(_REBUILD_ROUNDS):
        entries, _changed = await _current_entries(store, bucket, tenant, known | fresh())
        entries.update(fresh())  # just written: listed by now, but never dropped for a slow listing
        manifest = build_manifest(tenant, list(entries.values()))
        await store.put_bytes(
            bucket,
            context_manifest_key(tenant),
            json.dumps(manifest, ensure_ascii=False).encode(),
            "application/json",
        )
        if more_coming(entries):
            break
        check, changed = await _current_entries(store, bucket, tenant, entries)
        if not changed:
            break
        known = check
    return manifest, entries


async def _put_document(
    store: ObjectStore, bucket: str, tenant: str, entry: dict[str, Any], chunks_jsonl: bytes
) -> None:
    job_id = str(entry["job_id"])
    await asyncio.gather(
        store.put_bytes(bucket, context_chunks_key(tenant, job_id), chunks_jsonl, "application/x-ndjson"),
        store.put_bytes(
            bucket,
            context_entry_key(tenant, job_id),
            json.dumps(entry, ensure_ascii=False).encode(),
            "application/json",
        ),
    )


async def update_context(
    store: ObjectStore, bucket: str, tenant: str, entry: dict[str, Any], chunks_jsonl: bytes
) -> dict[str, Any]:
    """Record one finished document; returns the manifest as written. (One rebuild per call:
    a worker uses a `ContextWriter`, which shares rebuilds between concurrent documents.)"""
    await _put_document(store, bucket, tenant, entry, chunks_jsonl)
    known = await _manifest_entries(store, bucket, tenant)
    manifest, _ = await _write_manifest(store, bucket, tenant, known, lambda: {str(entry["job_id"]): entry})
    return manifest


@dataclass
class _Pending:
    entry: dict[str, Any]
    waiters: list[asyncio.Future[dict[str, Any]]] = field(default_factory=list)


@dataclass
class _TenantManifest:
    """One tenant's manifest as this process last wrote it, and the documents waiting for
    the next rebuild."""

    known: dict[str, dict[str, Any]] | None = None  # None: read the stored manifest first
    pending: dict[str, _Pending] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None


class ContextWriter:
    """Group commit of manifest rebuilds for one process (see the module docstring).

    `update(...)` writes the document's own objects, then waits for a rebuild that includes
    it. Per tenant at most one rebuild runs at a time; documents that finish while it runs
    wait for the next one, which covers all of them with one listing and one write."""

    def __init__(self, store: ObjectStore, min_interval_s: float = 0.0) -> None:
        self._store = store
        # Rebuilds of one tenant start at least this far apart: each lists and rewrites the
        # whole manifest, so under a steady stream of documents this bounds that work by time.
        self._min_interval_s = min_interval_s
        self._tenants: dict[tuple[str, str], _TenantManifest] = {}

    async def update(
        self, bucket: str, tenant: str, entry: dict[str, Any], chunks_jsonl: bytes
    ) -> dict[str, Any]:
        """Record one finished document; returns a manifest (as written) that lists it."""
        await _put_document(self._store, bucket, tenant, entry, chunks_jsonl)
        state = self._tenants.setdefault((bucket, tenant), _TenantManifest())
        job_id = str(entry["job_id"])
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        # Retrieved even when its caller was cancelled meanwhile (no "never retrieved" noise).
        waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
        pending = state.pending.setdefault(job_id, _Pending(entry))
        pending.entry = entry
        pending.waiters.append(waiter)
        if state.task is None or state.task.done():
            state.task = asyncio.create_task(self._rebuild_loop(bucket, tenant, state))
        # A cancelled caller stops waiting; the rebuild still runs for the others.
        return await asyncio.shield(waiter)

    async def _rebuild_loop(self, bucket: str, tenant: str, state: _TenantManifest) -> None:
        def fresh() -> Entries:
            return {job_id: p.entry for job_id, p in state.pending.items()}

        def more_coming(written: Entries) -> bool:
            return any(written.get(job_id) is not p.entry for job_id, p in state.pending.items())

        last_start: float | None = None
        while state.pending:
            if last_start is not None:
                wait = last_start + self._min_interval_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            last_start = time.monotonic()
            try:
                if state.known is None:
                    state.known = await _manifest_entries(self._store, bucket, tenant)
                manifest, state.known = await _write_manifest(
                    self._store, bucket, tenant, state.known, fresh, more_coming
                )
            except Exception as exc:
                state.known = None  # re-read the stored manifest next time
                failed, state.pending = state.pending, {}
                for p in failed.values():
                    for waiter in p.waiters:
                        if not waiter.done():
                            waiter.set_exception(exc)
                continue
            # Done: every document whose entry (this very one) the written manifest lists.
            for job_id, p in list(state.pending.items()):
                if state.known.get(job_id) is p.entry:
                    del state.pending[job_id]
                    for waiter in p.waiters:
                        if not waiter.done():
                            waiter.set_result(manifest)

    async def close(self) -> None:
        """Wait for rebuilds in flight (their callers are waiting for them anyway)."""
        tasks = [s.task for s in self._tenants.values() if s.task is not None and not s.task.done()]
        for task in tasks:
            with contextlib.suppress(Exception):
                await task


async def remove_from_context(store: ObjectStore, bucket: str, tenant: str, job_id: str) -> None:
    await store.delete(bucket, context_entry_key(tenant, job_id))
    await store.delete(bucket, context_chunks_key(tenant, job_id))
    known = await _manifest_entries(store, bucket, tenant)
    known.pop(job_id, None)
    entries, _ = await _current_entries(store, bucket, tenant, known)
    manifest = build_manifest(tenant, list(entries.values()))
    await store.put_bytes(
        bucket, context_manifest_key(tenant), json.dumps(manifest).encode(), "application/json"
    )


async def read_context(
    store: ObjectStore,
    tenant: str | TenantRecord,
    bucket: str | None = None,
    *,
    include_chunks: bool = False,
) -> dict[str, Any]:
    """The tenant's manifest (merged with any entry it does not list yet); with
    `include_chunks`, each document also carries its chunks. Given a TenantRecord, its own
    context bucket is used; given a tenant id, `bucket` (default: the shared context bucket)."""
    if isinstance(tenant, TenantRecord):
        bucket = bucket or tenant.context_bucket
        tenant = tenant.tenant_id
    bucket = bucket or CONTEXT_BUCKET
    known = await _manifest_entries(store, bucket, tenant)
    entries, _ = await _current_entries(store, bucket, tenant, known)
    manifest = build_manifest(tenant, list(entries.values()))
    if include_chunks:
        for doc in manifest["documents"]:
            try:
                raw = await store.get_bytes(bucket, context_chunks_key(tenant, str(doc["job_id"])))
            except ObjectNotFoundError:
                raw = b""
            doc["chunks"] = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
    return manifest
