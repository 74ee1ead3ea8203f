"""S3ObjectStore against a real SeaweedFS."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from percolate_reading.config import Settings, load_settings
from percolate_reading.errors import ObjectNotFoundError, StorageError
from percolate_reading.infra.storage import open_object_store
from percolate_reading.infra.storage.s3 import S3ObjectStore
from tests.servers import SeaweedS3, free_port

pytestmark = pytest.mark.integration

PART = 5 * 1024 * 1024
BUCKET = "percolate-files"


def s3_settings(seaweed: SeaweedS3, tmp_path: Path, **kw: object) -> Settings:
    return load_settings(
        s3_endpoint=seaweed.endpoint,
        s3_access_key=seaweed.access_key,
        s3_secret_key=seaweed.secret_key,
        s3_multipart_chunk_bytes=PART,
        data_dir=tmp_path,
        **kw,
    )


async def chunked(total: int, chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    i = 0
    while sent < total:
        n = min(chunk, total - sent)
        yield bytes([i % 251]) * n
        sent += n
        i += 1


def expected_bytes(total: int, chunk: int = 256 * 1024) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < total:
        out += bytes([i % 251]) * min(chunk, total - len(out))
        i += 1
    return bytes(out)


@pytest.fixture
async def store(seaweed_s3: SeaweedS3, tmp_path: Path) -> AsyncIterator[S3ObjectStore]:
    s = await open_object_store(s3_settings(seaweed_s3, tmp_path))
    assert isinstance(s, S3ObjectStore)
    yield s
    await s.close()


async def test_multipart_put_stream_roundtrip(store: S3ObjectStore) -> None:
    key = f"t1/{uuid.uuid4().hex}/big.bin"
    size = 2 * PART + 12345  # three parts, the last one short
    written = await store.put_stream("percolate-files", key, chunked(size), "application/octet-stream")
    assert written == size
    data = await store.get_bytes("percolate-files", key)
    assert hashlib.sha256(data).digest() == hashlib.sha256(expected_bytes(size)).digest()
    streamed = b"".join([c async for c in store.iter_object("percolate-files", key, 1 << 20)])
    assert streamed == data


async def test_small_put_stream_and_download(store: S3ObjectStore, tmp_path: Path) -> None:
    key = f"t1/{uuid.uuid4().hex}/small.txt"
    assert await store.put_stream("percolate-files", key, chunked(1000, 100)) == 1000
    dest = tmp_path / "out.bin"
    assert await store.download_to("percolate-files", key, dest) == 1000
    assert dest.read_bytes() == expected_bytes(1000, 100)


async def test_empty_stream_creates_empty_object(store: S3ObjectStore) -> None:
    key = f"t1/{uuid.uuid4().hex}/empty"
    assert await store.put_stream("percolate-files", key, chunked(0)) == 0
    assert await store.get_bytes("percolate-files", key) == b""


async def test_failed_stream_leaves_nothing(store: S3ObjectStore) -> None:
    key = f"t1/{uuid.uuid4().hex}/broken.bin"

    async def broken() -> AsyncIterator[bytes]:
        async for c in chunked(PART + 1024 * 1024):
            yield c
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.put_stream("percolate-files", key, broken())
    with pytest.raises(ObjectNotFoundError):
        await store.get_bytes("percolate-files", key)
    uploads = await store._client.list_multipart_uploads(Bucket="percolate-files", Prefix=key)
    assert not uploads.get("Uploads")


async def test_list_and_delete_prefix(store: S3ObjectStore) -> None:
    prefix = f"t2/{uuid.uuid4().hex}/"
    for name in ("a.md", "b.json", "sub/c.jsonl"):
        await store.put_bytes("percolate-artifacts", prefix + name, name.encode())
    await store.put_bytes("percolate-artifacts", prefix.rstrip("/") + "x/other", b"x")
    keys = await store.list_keys("percolate-artifacts", prefix)
    assert sorted(keys) == [prefix + "a.md", prefix + "b.json", prefix + "sub/c.jsonl"]
    assert await store.delete_prefix("percolate-artifacts", prefix) == 3
    assert await store.list_keys("percolate-artifacts", prefix) == []
    assert await store.get_bytes("percolate-artifacts", prefix.rstrip("/") + "x/other") == b"x"


async def test_missing_key(store: S3ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFoundError):
        await store.get_bytes("percolate-files", "nobody/none/nothing")
    with pytest.raises(ObjectNotFoundError):
        await store.download_to("percolate-files", "nobody/none/nothing", tmp_path / "x")
    await store.delete("percolate-files", "nobody/none/nothing")  # S3: deleting nothing is fine
    await store.ping()


async def test_unreachable_endpoint_is_storage_error(tmp_path: Path) -> None:
    settings = load_settings(
        s3_endpoint=f"http://127.0.0.1:{free_port()}",
        s3_access_key="x",
        s3_secret_key="y",
        data_dir=tmp_path,
    )
    store = await S3ObjectStore.open(settings)
    try:
        with pytest.raises(StorageError) as info:
            await store.ping()
        assert not isinstance(info.value, ObjectNotFoundError)
        with pytest.raises(StorageError):
            await store.put_bytes("percolate-files", "a/b", b"x")
    finally:
        await store.close()
    with pytest.raises(StorageError):
        await open_object_store(settings)


async def test_wrong_credentials_are_a_storage_error(seaweed_s3: SeaweedS3, tmp_path: Path) -> None:
    good = await open_object_store(s3_settings(seaweed_s3, tmp_path))
    await good.put_bytes("percolate-files", "t3/creds/a.txt", b"secret")
    await good.close()
    settings = load_settings(
        s3_endpoint=seaweed_s3.endpoint,
        s3_access_key=seaweed_s3.access_key,
        s3_secret_key="not-the-secret",
        data_dir=tmp_path,
    )
    store = await S3ObjectStore.open(settings)
    try:
        with pytest.raises(StorageError) as info:
            await store.get_bytes("percolate-files", "t3/creds/a.txt")
        assert not isinstance(info.value, ObjectNotFoundError)
        with pytest.raises(StorageError):
            await store.put_bytes("percolate-files", "t3/creds/b.txt", b"x")
        with pytest.raises(StorageError):
            _ = [c async for c in store.iter_object("percolate-files", "t3/creds/a.txt")]
    finally:
        await store.close()


async def test_content_type_is_stored(store: S3ObjectStore) -> None:
    key = f"t4/{uuid.uuid4().hex}/doc.md"
    await store.put_bytes("percolate-artifacts", key, b"# hi", "text/markdown; charset=utf-8")
    head = await store._client.head_object(Bucket="percolate-artifacts", Key=key)
    assert head["ContentType"] == "text/markdown; charset=utf-8"
    assert await store.get_bytes("percolate-artifacts", key) == b"# hi"


async def test_bucket_clients_are_bounded_and_reused(store: S3ObjectStore) -> None:
    from percolate_reading.infra.storage import s3

    first = store._objects("percolate-files")
    assert store._objects("percolate-files") is first  # reused
    for n in range(s3._MAX_BUCKET_CLIENTS + 5):
        store._objects(f"tenant-bucket-{n}")
    assert len(store._fast) == s3._MAX_BUCKET_CLIENTS
    assert "percolate-files" not in store._fast  # least recently used went first
    # Still works after its client was dropped: a new one is made.
    await store.put_bytes("percolate-files", "t5/lru/a.txt", b"again")
    assert await store.get_bytes("percolate-files", "t5/lru/a.txt") == b"again"


async def test_stale_multipart_uploads_are_aborted(store: S3ObjectStore) -> None:
    """Finding: a gateway killed mid-upload left its multipart upload (and parts) forever."""
    key = f"orphan-{uuid.uuid4().hex}/big.pdf"
    client = store._client
    created = await client.create_multipart_upload(Bucket=BUCKET, Key=key)
    await client.upload_part(
        Bucket=BUCKET, Key=key, UploadId=created["UploadId"], PartNumber=1, Body=b"x" * (5 * 1024 * 1024)
    )

    async def pending() -> set[str]:
        listed = await client.list_multipart_uploads(Bucket=BUCKET)
        return {u["UploadId"] for u in listed.get("Uploads", []) if u["Key"] == key}

    assert created["UploadId"] in await pending()
    assert await store.abort_stale_uploads(BUCKET, older_than_s=3600) == 0  # too young
    assert created["UploadId"] in await pending()
    await asyncio.sleep(1.5)
    assert await store.abort_stale_uploads(BUCKET, older_than_s=1) >= 1
    assert created["UploadId"] not in await pending()


async def test_buckets_get_an_abort_rule_where_the_store_has_lifecycles(store: S3ObjectStore) -> None:
    from botocore.exceptions import ClientError

    bucket = f"lifecycle-{uuid.uuid4().hex[:12]}"
    await store.ensure_buckets([bucket])
    await store.ensure_buckets([bucket])  # idempotent: one rule, not two
    try:
        current = await store._client.get_bucket_lifecycle_configuration(Bucket=bucket)
    except ClientError as exc:
        # SeaweedFS versions without lifecycle support: the sweeper's abort is the only guard.
        pytest.skip(f"this S3 store keeps no lifecycle rules: {exc}")
    rules = [r for r in current["Rules"] if "AbortIncompleteMultipartUpload" in r]
    assert len(rules) == 1
    assert rules[0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1
