"""S3, only to create the buckets of Tenants with `storage.strategy: tenant`."""

from __future__ import annotations

import asyncio

from percolate_operator.settings import OperatorSettings
from percolate_reading.infra.storage.s3 import S3Endpoint, S3ObjectStore


class BucketAdmin:
    """Opened on first use; does nothing when the operator has no S3 credentials."""

    def __init__(self, settings: OperatorSettings) -> None:
        self._settings = settings
        self._s3: S3ObjectStore | None = None
        self._lock = asyncio.Lock()

    async def ensure_buckets(self, buckets: list[str]) -> bool:
        """Create the buckets if the operator has S3 credentials; False when it has none.
        Raises percolate_reading.errors.StorageError when S3 fails."""
        if not self._settings.s3_endpoint:
            return False
        async with self._lock:
            if self._s3 is None:
                secret = self._settings.s3_secret_key
                self._s3 = await S3ObjectStore.connect(
                    S3Endpoint(
                        endpoint=self._settings.s3_endpoint,
                        access_key=self._settings.s3_access_key,
                        secret_key=secret.get_secret_value() if secret is not None else None,
                        region=self._settings.s3_region,
                    )
                )
        await self._s3.ensure_buckets(buckets)
        return True

    async def close(self) -> None:
        if self._s3 is not None:
            await self._s3.close()
            self._s3 = None
