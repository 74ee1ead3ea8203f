"""The object-store contract the gateway and workers use; S3 and a local directory implement it.

Keys are plain strings (`<tenant>/<job_id>/<name>`); buckets are the three platform buckets.
Every method raises `StorageError` (transient) when the store cannot be reached and
`ObjectNotFoundError` for a missing key.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Protocol


class ObjectStore(Protocol):
    async def ensure_buckets(self, buckets: list[str]) -> None: ...

    async def put_stream(
        self, bucket: str, key: str, chunks: AsyncIterable[bytes], content_type: str | None = None
    ) -> int:
        """Upload from an async byte stream without holding it all; returns bytes written."""
        ...

    async def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str | None = None
    ) -> None: ...

    async def get_bytes(self, bucket: str, key: str) -> bytes: ...

    async def download_to(self, bucket: str, key: str, dest: Path) -> int: ...

    def iter_object(self, bucket: str, key: str, chunk_size: int = 1 << 16) -> AsyncIterator[bytes]: ...

    async def list_keys(self, bucket: str, prefix: str) -> list[str]: ...

    async def delete(self, bucket: str, key: str) -> None: ...

    async def delete_prefix(self, bucket: str, prefix: str) -> int: ...

    async def abort_stale_uploads(self, bucket: str, older_than_s: float) -> int:
        """Abort incomplete multipart uploads begun more than `older_than_s` ago; how many."""
        ...

    async def ping(self) -> None:
        """Raise StorageError unless the store answers."""
        ...

    async def close(self) -> None: ...
