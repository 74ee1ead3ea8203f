"""ObjectStore on a local directory (single-node mode without S3).

Layout: `<root>/<bucket>/<key>`. Writes go to a temporary file beside the target and are
renamed into place, so a reader never sees half an object and a failed upload leaves nothing.
Keys are validated so that no key can name a path outside its bucket directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from percolate_reading.errors import ObjectNotFoundError, StorageError

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_TMP_SUFFIX = ".part"


def _check_bucket(bucket: str) -> str:
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise StorageError(f"invalid bucket name {bucket!r}")
    return bucket


def _check_key(key: str) -> str:
    """Reject keys that could escape the bucket directory or collide with temp files."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise StorageError(f"invalid object key {key!r}")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"invalid object key {key!r}")
    if key.endswith(_TMP_SUFFIX):
        raise StorageError(f"object key {key!r} uses a reserved suffix")
    return key


class LocalObjectStore:
    """The ObjectStore protocol on a directory tree."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def _bucket_dir(self, bucket: str) -> Path:
        return self.root / _check_bucket(bucket)

    def _path(self, bucket: str, key: str) -> Path:
        base = self._bucket_dir(bucket)
        path = (base / _check_key(key)).resolve()
        # Belt and braces: symlinks inside the tree must not lead out of it either.
        if not path.is_relative_to(base):
            raise StorageError(f"object key {key!r} escapes its bucket")
        return path

    async def ensure_buckets(self, buckets: list[str]) -> None:
        for bucket in buckets:
            self._bucket_dir(bucket).mkdir(parents=True, exist_ok=True)

    def _open_temp(self, path: Path) -> tuple[int, str]:
        if not path.parent.is_relative_to(self.root):
            raise StorageError(f"path {path} outside the store")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return tempfile.mkstemp(dir=path.parent, prefix=".", suffix=_TMP_SUFFIX)
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc}") from exc

    async def put_stream(
        self, bucket: str, key: str, chunks: AsyncIterable[bytes], content_type: str | None = None
    ) -> int:
        path = self._path(bucket, key)
        fd, tmp = self._open_temp(path)
        total = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                async for chunk in chunks:
                    await asyncio.to_thread(fh.write, chunk)
                    total += len(chunk)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return total

    async def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> None:
        path = self._path(bucket, key)
        await asyncio.to_thread(self._write_atomic, path, data)

    def _write_atomic(self, path: Path, data: bytes) -> None:
        fd, tmp = self._open_temp(path)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def get_bytes(self, bucket: str, key: str) -> bytes:
        path = self._path(bucket, key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFoundError(f"{bucket}/{key} not found") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {bucket}/{key}: {exc}") from exc

    async def download_to(self, bucket: str, key: str, dest: Path) -> int:
        path = self._path(bucket, key)
        try:
            await asyncio.to_thread(shutil.copyfile, path, dest)  # streamed, not held in memory
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFoundError(f"{bucket}/{key} not found") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {bucket}/{key}: {exc}") from exc
        return (await asyncio.to_thread(os.stat, dest)).st_size

    async def iter_object(self, bucket: str, key: str, chunk_size: int = 1 << 16) -> AsyncIterator[bytes]:
        path = self._path(bucket, key)
        try:
            fh = path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFoundError(f"{bucket}/{key} not found") from exc
        with fh:
            while chunk := await asyncio.to_thread(fh.read, chunk_size):
                yield chunk

    async def list_keys(self, bucket: str, prefix: str) -> list[str]:
        base = self._bucket_dir(bucket)
        if not base.is_dir():
            return []

        def walk() -> list[str]:
            keys: list[str] = []
            for dirpath, _dirs, files in os.walk(base):
                for name in files:
                    if name.endswith(_TMP_SUFFIX):
                        continue
                    rel = (Path(dirpath) / name).relative_to(base).as_posix()
                    if rel.startswith(prefix):
                        keys.append(rel)
            return sorted(keys)

        return await asyncio.to_thread(walk)

    async def delete(self, bucket: str, key: str) -> None:
        path = self._path(bucket, key)
        # S3 semantics: deleting a missing key is not an error.
        path.unlink(missing_ok=True)

    async def delete_prefix(self, bucket: str, prefix: str) -> int:
        keys = await self.list_keys(bucket, prefix)
        for key in keys:
            await self.delete(bucket, key)
        return len(keys)

    async def abort_stale_uploads(self, bucket: str, older_than_s: float) -> int:
        return 0  # files are written whole (temp file, rename): nothing is left half-made

    async def ping(self) -> None:
        if not os.access(self.root if self.root.exists() else self.root.parent, os.W_OK):
            raise StorageError(f"object store directory {self.root} is not writable")

    async def close(self) -> None:
        return None
