"""Tenant context: per-document entries, a manifest that loses nothing under concurrency."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from percolate_reading.config import load_settings
from percolate_reading.contract.keys import context_manifest_key
from percolate_reading.contract.tenancy import TenantRecord
from percolate_reading.infra.context import (
    ContextWriter,
    build_entry,
    read_context,
    remove_from_context,
    update_context,
)
from percolate_reading.infra.storage import open_object_store
from percolate_reading.infra.storage.base import ObjectStore
from percolate_reading.infra.storage.local import LocalObjectStore
from tests.servers import SeaweedS3

BUCKET = "percolate-context"


def entry(tenant: str, i: int) -> dict[str, object]:
    return build_entry(
        tenant=tenant,
        job_id=f"job{i}",
        file_name=f"doc{i}.pdf",
        file_type="pdf",
        artifact_uris={"structured.md": f"s3://percolate-artifacts/{tenant}/job{i}/structured.md"},
        metadata={"page_count": i, "title": f"Doc {i}", "nested": {"no": 1}},
        chunk_count=2,
        chunks_uri=f"s3://{BUCKET}/{tenant}/chunks/job{i}.jsonl",
    )


def chunks(i: int) -> bytes:
    return b"".join(
        json.dumps({"id": f"job{i}-{n}", "text": f"chunk {n} of {i}"}).encode() + b"\n" for n in range(2)
    )


async def exercise(store: ObjectStore, tenant: str) -> None:
    await store.ensure_buckets([BUCKET])
    await asyncio.gather(
        *(update_context(store, BUCKET, tenant, entry(tenant, i), chunks(i)) for i in range(12))
    )
    manifest = json.loads(await store.get_bytes(BUCKET, context_manifest_key(tenant)))
    assert sorted(d["job_id"] for d in manifest["documents"]) == sorted(f"job{i}" for i in range(12))
    assert manifest["chunk_count"] == 24
    assert manifest["documents"][0]["metadata"].get("nested") is None

    ctx = await read_context(store, tenant, BUCKET, include_chunks=True)
    assert ctx["document_count"] == 12
    doc5 = next(d for d in ctx["documents"] if d["job_id"] == "job5")
    assert doc5["metadata"] == {"page_count": 5, "title": "Doc 5"}
    assert [c["text"] for c in doc5["chunks"]] == ["chunk 0 of 5", "chunk 1 of 5"]

    # Redelivery overwrites the same document instead of adding a second one.
    await update_context(store, BUCKET, tenant, entry(tenant, 5), chunks(5))
    assert (await read_context(store, tenant, BUCKET))["document_count"] == 12
    await remove_from_context(store, BUCKET, tenant, "job5")
    ctx = await read_context(store, tenant, BUCKET)
    assert ctx["document_count"] == 11
    record = TenantRecord(tenant_id=tenant, context_bucket=BUCKET)
    assert (await read_context(store, record))["document_count"] == 11
    # Another tenant sees nothing of this one.
    assert (await read_context(store, "someone-else", BUCKET))["documents"] == []


async def test_context_local(tmp_path: Path) -> None:
    await exercise(LocalObjectStore(tmp_path), "acme")


async def exercise_writers(store: ObjectStore, tenant: str) -> None:
    """Two writers (two worker processes) and many documents at once: every returned manifest
    lists its own document, and the last one written lists all of them."""
    await store.ensure_buckets([BUCKET])
    writers = [ContextWriter(store), ContextWriter(store, min_interval_s=0.05)]
    manifests = await asyncio.gather(
        *(writers[i % 2].update(BUCKET, tenant, entry(tenant, i), chunks(i)) for i in range(40))
    )
    for i, manifest in enumerate(manifests):
        assert f"job{i}" in {d["job_id"] for d in manifest["documents"]}
    stored = json.loads(await store.get_bytes(BUCKET, context_manifest_key(tenant)))
    assert sorted(d["job_id"] for d in stored["documents"]) == sorted(f"job{i}" for i in range(40))
    assert stored["chunk_count"] == 80
    # A later document after a removal by someone else: the writer's cached entries do not
    # bring the removed one back.
    await remove_from_context(store, BUCKET, tenant, "job3")
    await writers[0].update(BUCKET, tenant, entry(tenant, 40), chunks(40))
    stored = json.loads(await store.get_bytes(BUCKET, context_manifest_key(tenant)))
    ids = {d["job_id"] for d in stored["documents"]}
    assert "job3" not in ids
    assert "job40" in ids
    assert stored["document_count"] == 40
    ctx = await read_context(store, tenant, BUCKET, include_chunks=True)
    assert ctx["document_count"] == 40
    for writer in writers:
        await writer.close()


async def test_context_writers_local(tmp_path: Path) -> None:
    await exercise_writers(LocalObjectStore(tmp_path), "acme")


@pytest.mark.integration
async def test_context_s3(seaweed_s3: SeaweedS3, tmp_path: Path) -> None:
    settings = load_settings(
        s3_endpoint=seaweed_s3.endpoint,
        s3_access_key=seaweed_s3.access_key,
        s3_secret_key=seaweed_s3.secret_key,
        data_dir=tmp_path,
    )
    store = await open_object_store(settings)
    try:
        tenant = f"ctx-{tmp_path.name[-8:].lower().replace('_', '-')}".strip("-")
        await exercise(store, tenant)
        await exercise_writers(store, f"{tenant}-w")
    finally:
        await store.close()
