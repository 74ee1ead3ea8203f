"""Object storage: S3 in a cluster, a local directory in single-node mode."""

from __future__ import annotations

from percolate_reading.config import Settings
from percolate_reading.infra.storage.base import ObjectStore


def platform_buckets(settings: Settings) -> list[str]:
    return [settings.s3_bucket, settings.s3_artifacts_bucket, settings.s3_context_bucket]


async def open_object_store(settings: Settings) -> ObjectStore:
    """S3 when enabled and an endpoint is set, else a directory under `data_dir/objects`.

    The platform buckets are created if missing."""
    store: ObjectStore
    if settings.s3_enabled and settings.s3_endpoint:
        from percolate_reading.infra.storage.s3 import S3ObjectStore

        store = await S3ObjectStore.open(settings)
    else:
        from percolate_reading.infra.storage.local import LocalObjectStore

        store = LocalObjectStore(settings.data_dir / "objects")
    try:
        await store.ensure_buckets(platform_buckets(settings))
    except BaseException:
        await store.close()
        raise
    return store
