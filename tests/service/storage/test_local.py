"""LocalObjectStore: the same contract on a directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from percolate_reading.config import load_settings
from percolate_reading.errors import ObjectNotFoundError, StorageError
from percolate_reading.infra.storage import open_object_store
from percolate_reading.infra.storage.local import LocalObjectStore


async def chunks(n: int, size: int) -> AsyncIterator[bytes]:
    for i in range(n):
        yield bytes([i]) * size


async def test_open_without_s3_is_local(tmp_path: Path) -> None:
    store = await open_object_store(load_settings(s3_enabled=False, data_dir=tmp_path))
    assert isinstance(store, LocalObjectStore)
    assert (tmp_path / "objects" / "percolate-artifacts").is_dir()
    await store.close()


async def test_roundtrip_list_delete(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    await store.ensure_buckets(["percolate-files"])
    assert await store.put_stream("percolate-files", "t/j1/a.bin", chunks(10, 1000)) == 10_000
    await store.put_bytes("percolate-files", "t/j1/sub/b.txt", b"hello")
    await store.put_bytes("percolate-files", "t/j2/c.txt", b"other")
    assert (await store.get_bytes("percolate-files", "t/j1/a.bin"))[:1000] == b"\x00" * 1000
    assert b"".join([c async for c in store.iter_object("percolate-files", "t/j1/sub/b.txt", 2)]) == b"hello"
    dest = tmp_path / "dl"
    assert await store.download_to("percolate-files", "t/j2/c.txt", dest) == 5
    assert dest.read_bytes() == b"other"
    assert await store.list_keys("percolate-files", "t/j1/") == ["t/j1/a.bin", "t/j1/sub/b.txt"]
    assert await store.delete_prefix("percolate-files", "t/j1/") == 2
    assert await store.list_keys("percolate-files", "t/") == ["t/j2/c.txt"]
    with pytest.raises(ObjectNotFoundError):
        await store.get_bytes("percolate-files", "t/j1/a.bin")
    with pytest.raises(ObjectNotFoundError):
        [c async for c in store.iter_object("percolate-files", "t/j1/a.bin")]


async def test_failed_stream_leaves_nothing(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 100
        raise ConnectionResetError("gone")

    with pytest.raises(ConnectionResetError):
        await store.put_stream("percolate-files", "t/j/x", broken())
    assert await store.list_keys("percolate-files", "") == []
    assert [p.name for p in (tmp_path / "percolate-files" / "t" / "j").iterdir()] == []


@pytest.mark.parametrize(
    "key", ["../escape", "t/../../escape", "/abs", "t//x", "t/./x", "a\\b", "nul\x00", "", "x.part"]
)
async def test_keys_cannot_escape(tmp_path: Path, key: str) -> None:
    store = LocalObjectStore(tmp_path / "root")
    with pytest.raises(StorageError):
        await store.put_bytes("percolate-files", key, b"x")
    assert not (tmp_path / "escape").exists()


async def test_symlink_out_of_root_refused(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "root")
    await store.ensure_buckets(["percolate-files"])
    (tmp_path / "outside").mkdir()
    (tmp_path / "root" / "percolate-files" / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(StorageError):
        await store.put_bytes("percolate-files", "link/x", b"x")
    assert list((tmp_path / "outside").iterdir()) == []


async def test_bad_bucket_refused(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    with pytest.raises(StorageError):
        await store.put_bytes("../x", "k", b"x")
