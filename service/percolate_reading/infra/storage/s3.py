"""ObjectStore on S3 (SeaweedFS, MinIO, AWS): obstore for object reads and writes,
aiobotocore for the rest.

Object GETs and single PUTs, the requests every job makes several of, go through obstore
(Rust, ~0.15 ms of CPU per request here); botocore costs ~0.75 ms per request in Python
(endpoint rules, event hooks, signing) and was the gateway's and the worker's largest CPU
cost. Multipart uploads, listings, deletes and bucket set-up, which are rare or need
request types obstore does not offer, stay on aiobotocore.

Opened by `await S3ObjectStore.open(settings)` (or `connect(S3Endpoint(...))` where no
service `Settings` exists, as in the operator) and closed by `close()`. Both clients' errors
become `StorageError` (transient), a missing key `ObjectNotFoundError`, so callers never see
either library's types. `put_stream` sends small bodies in one PUT and larger ones as a
multipart upload that is aborted on any failure, so a broken upload leaves no half-made
object or orphan parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import obstore
import obstore.exceptions
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from percolate_reading.config import Settings
from percolate_reading.errors import ObjectNotFoundError, StorageError

if TYPE_CHECKING:
    from obstore.store import S3Store
    from types_aiobotocore_s3 import S3Client

log = logging.getLogger(__name__)

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_BUCKET_EXISTS_CODES = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})
_DELETE_BATCH = 1000
_MAX_BUCKET_CLIENTS = 64


@contextlib.contextmanager
def _mapped(what: str) -> Iterator[None]:
    """Translate botocore/aiohttp failures into the project's storage errors."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _NOT_FOUND_CODES:
            raise ObjectNotFoundError(f"{what}: not found") from exc
        raise StorageError(f"{what}: S3 error {code or 'unknown'}: {exc}") from exc
    except (obstore.exceptions.NotFoundError, FileNotFoundError) as exc:
        # obstore raises the builtin FileNotFoundError for a missing key.
        raise ObjectNotFoundError(f"{what}: not found") from exc
    except obstore.exceptions.BaseError as exc:
        raise StorageError(f"{what}: {_obstore_reason(exc)}") from exc
    except (BotoCoreError, aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
        raise StorageError(f"{what}: S3 unreachable: {exc}") from exc
    except OSError as exc:  # obstore's other builtin errors (PermissionError for a refused key...)
        raise StorageError(f"{what}: S3 error: {exc}") from exc


def _obstore_reason(exc: BaseException) -> str:
    """obstore's message in one line (its text goes on with a multi-line debug dump)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    unreachable = any(hint in text for hint in ("ConnectionRefused", "error sending request", "timed out"))
    return f"S3 {'unreachable' if unreachable else 'error'}: {first[:300]}"


def _no_expect_continue(params: dict[str, Any], **_: Any) -> None:
    params.get("headers", {}).pop("Expect", None)


@dataclass(frozen=True)
class S3Endpoint:
    """Where and as whom to reach S3."""

    endpoint: str
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    region: str = "us-east-1"
    part_size: int = 8 * 1024 * 1024  # multipart upload part size
    abort_uploads_after_s: float = 24 * 3600.0  # the buckets' AbortIncompleteMultipartUpload age

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Endpoint:
        if not settings.s3_endpoint:
            raise StorageError("S3 is enabled but PERCOLATE_READING_S3_ENDPOINT is not set")
        return cls(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
            region=settings.s3_region,
            part_size=settings.s3_multipart_chunk_bytes,
            abort_uploads_after_s=settings.s3_abort_incomplete_uploads_after_s,
        )


class S3ObjectStore:
    """The ObjectStore protocol on one S3 endpoint."""

    def __init__(self, client: S3Client, stack: AsyncExitStack, endpoint: S3Endpoint) -> None:
        self._client = client
        self._stack = stack
        self.part_size = endpoint.part_size
        self._endpoint = endpoint
        # obstore's stores are per bucket, each with its own connection pool: the most
        # recently used are kept (tenants with their own buckets could be many).
        self._fast: OrderedDict[str, S3Store] = OrderedDict()

    def _objects(self, bucket: str) -> S3Store:
        """The obstore client of `bucket`, made on first use."""
        store = self._fast.get(bucket)
        if store is None:
            store = _obstore_for(self._endpoint, bucket)
            self._fast[bucket] = store
            if len(self._fast) > _MAX_BUCKET_CLIENTS:
                self._fast.popitem(last=False)  # requests in flight keep theirs alive
        else:
            self._fast.move_to_end(bucket)
        return store

    @classmethod
    async def open(cls, settings: Settings) -> S3ObjectStore:
        return await cls.connect(S3Endpoint.from_settings(settings))

    @classmethod
    async def connect(cls, endpoint: S3Endpoint) -> S3ObjectStore:
        config = AioConfig(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            max_pool_connections=32,
            s3={"addressing_style": "path"},
            # CRC32 of every body and response only where the API requires one: SigV4 already
            # covers integrity, and the extra checksum cost CPU on both ends of each PUT.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = get_session()
        # Nothing here reads object timestamps; botocore would parse every one of them (with
        # dateutil), which made listings the worker's largest CPU cost. Keep them as strings.
        session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
        stack = AsyncExitStack()
        client: S3Client = await stack.enter_async_context(
            session.create_client(
                "s3",
                endpoint_url=endpoint.endpoint,
                region_name=endpoint.region,
                aws_access_key_id=endpoint.access_key,
                aws_secret_access_key=endpoint.secret_key,
                config=config,
            )
        )
        # botocore asks for "Expect: 100-continue" on every PUT with a body, and aiohttp then
        # holds the body back until the server's interim answer: a round trip more per PUT.
        client.meta.events.register_last("before-call.s3", _no_expect_continue)
        return cls(client, stack, endpoint)

    async def close(self) -> None:
        await self._stack.aclose()

    async def ensure_buckets(self, buckets: list[str]) -> None:
        for bucket in buckets:
            try:
                with _mapped(f"head bucket {bucket}"):
                    await self._client.head_bucket(Bucket=bucket)
                continue
            except ObjectNotFoundError:
                pass
            try:
                with _mapped(f"create bucket {bucket}"):
                    await self._client.create_bucket(Bucket=bucket)
            except StorageError as exc:
                cause = exc.__cause__
                if isinstance(cause, ClientError) and (
                    cause.response.get("Error", {}).get("Code") in _BUCKET_EXISTS_CODES
                ):
                    continue
                raise
        for bucket in buckets:
            await self._ensure_abort_rule(bucket)

    async def _ensure_abort_rule(self, bucket: str) -> None:
        """An AbortIncompleteMultipartUpload lifecycle rule, where the store supports one (the
        sweeper's `abort_stale_uploads` covers stores that do not). Existing rules of other
        kinds are kept; a bucket that already has such a rule is left alone."""
        days = max(1, round(self._endpoint.abort_uploads_after_s / 86400))
        try:
            with _mapped(f"lifecycle of {bucket}"):
                try:
                    current = await self._client.get_bucket_lifecycle_configuration(Bucket=bucket)
                    rules = list(current.get("Rules", []))
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
                        raise
                    rules = []
                if any("AbortIncompleteMultipartUpload" in r for r in rules):
                    return
                rules.append(
                    {
                        "ID": "percolate-abort-incomplete-uploads",
                        "Status": "Enabled",
                        "Filter": {"Prefix": ""},
                        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days},
                    }
                )
                await self._client.put_bucket_lifecycle_configuration(
                    Bucket=bucket,
                    LifecycleConfiguration={"Rules": rules},
                )
        except StorageError as exc:
            log.info(
                "bucket %s has no abort rule for incomplete uploads (%s); the sweeper aborts them",
                bucket,
                exc,
            )

    async def abort_stale_uploads(self, bucket: str, older_than_s: float) -> int:
        """Abort multipart uploads begun more than `older_than_s` ago (a gateway killed
        mid-upload leaves its parts stored and invisible to listings); returns how many."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        stale: list[tuple[str, str]] = []
        with _mapped(f"list incomplete uploads of {bucket}"):
            paginator = self._client.get_paginator("list_multipart_uploads")
            async for page in paginator.paginate(Bucket=bucket):
                for upload in page.get("Uploads", []):
                    initiated = _as_datetime(upload.get("Initiated"))
                    if initiated is not None and initiated < cutoff:
                        stale.append((upload["Key"], upload["UploadId"]))
        for key, upload_id in stale:
            log.info("aborting the incomplete upload of %s/%s begun before %s", bucket, key, cutoff)
            with _mapped(f"abort upload {bucket}/{key}"):
                await self._client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        return len(stale)

    async def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> None:
        attributes: dict[str, str] = {"Content-Type": content_type} if content_type else {}
        with _mapped(f"put {bucket}/{key}"):
            await obstore.put_async(
                self._objects(bucket),
                key,
                data,
                attributes=attributes,
                use_multipart=False,
            )

    async def put_stream(
        self, bucket: str, key: str, chunks: AsyncIterable[bytes], content_type: str | None = None
    ) -> int:
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        buf = bytearray()
        iterator = aiter(chunks)
        # Fill the first part; a body that fits in one part goes up as a single PUT.
        async for chunk in iterator:
            buf += chunk
            if len(buf) >= self.part_size:
                break
        else:
            await self.put_bytes(bucket, key, bytes(buf), content_type)
            return len(buf)

        with _mapped(f"start multipart upload {bucket}/{key}"):
            created = await self._client.create_multipart_upload(Bucket=bucket, Key=key, **extra)
        upload_id = created["UploadId"]
        parts: list[dict[str, Any]] = []
        total = 0
        try:
            while True:
                # Send full parts; keep the remainder for the next one (all but the last part
                # must be at least 5 MiB).
                while len(buf) >= self.part_size:
                    part = bytes(buf[: self.part_size])
                    del buf[: self.part_size]
                    parts.append(await self._upload_part(bucket, key, upload_id, len(parts) + 1, part))
                    total += len(part)
                try:
                    buf += await anext(iterator)
                except StopAsyncIteration:
                    break
            if buf or not parts:
                parts.append(await self._upload_part(bucket, key, upload_id, len(parts) + 1, bytes(buf)))
                total += len(buf)
            with _mapped(f"complete multipart upload {bucket}/{key}"):
                await self._client.complete_multipart_upload(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                )
        except BaseException:
            await self._abort(bucket, key, upload_id)
            raise
        return total

    async def _upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, data: bytes
    ) -> dict[str, Any]:
        with _mapped(f"upload part {number} of {bucket}/{key}"):
            resp = await self._client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
            )
        return {"ETag": resp["ETag"], "PartNumber": number}

    async def _abort(self, bucket: str, key: str, upload_id: str) -> None:
        try:
            await self._client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception:  # the original failure matters more; the bucket lifecycle sweeps leftovers
            log.warning("could not abort multipart upload %s of %s/%s", upload_id, bucket, key)

    async def get_bytes(self, bucket: str, key: str) -> bytes:
        with _mapped(f"get {bucket}/{key}"):
            result = await obstore.get_async(self._objects(bucket), key)
            return bytes(await result.bytes_async())

    async def download_to(self, bucket: str, key: str, dest: Path) -> int:
        total = 0
        fh = await asyncio.to_thread(Path(dest).open, "wb")
        try:
            async for chunk in self.iter_object(bucket, key, 1 << 20):
                await asyncio.to_thread(fh.write, chunk)
                total += len(chunk)
        finally:
            fh.close()
        return total

    async def iter_object(self, bucket: str, key: str, chunk_size: int = 1 << 16) -> AsyncIterator[bytes]:
        with _mapped(f"get {bucket}/{key}"):
            result = await obstore.get_async(self._objects(bucket), key)
        stream = result.stream(min_chunk_size=chunk_size)
        while True:
            with _mapped(f"read {bucket}/{key}"):
                try:
                    buf = await anext(stream)
                except StopAsyncIteration:
                    return
            yield bytes(buf)

    async def list_keys(self, bucket: str, prefix: str) -> list[str]:
        if prefix.endswith("/"):
            # obstore lists by path (whole segments), which is a string prefix only for one
            # that ends in "/" (every caller's); its XML parsing costs a fraction of botocore's.
            with _mapped(f"list {bucket}/{prefix}"):
                return [
                    meta["path"]
                    async for batch in obstore.list(self._objects(bucket), prefix=prefix, chunk_size=1000)
                    for meta in batch
                ]
        keys: list[str] = []
        with _mapped(f"list {bucket}/{prefix}"):
            paginator = self._client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents", []) if "Key" in obj)
        return keys

    async def delete(self, bucket: str, key: str) -> None:
        with _mapped(f"delete {bucket}/{key}"):
            await self._client.delete_object(Bucket=bucket, Key=key)

    async def delete_prefix(self, bucket: str, prefix: str) -> int:
        keys = await self.list_keys(bucket, prefix)
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            with _mapped(f"delete {len(batch)} objects under {bucket}/{prefix}"):
                resp = await self._client.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                )
            if resp.get("Errors"):
                raise StorageError(f"delete under {bucket}/{prefix} failed: {resp['Errors'][:3]}")
        return len(keys)

    async def ping(self) -> None:
        with _mapped("ping"):
            await self._client.list_buckets()


# Retries as botocore's "standard" mode with 3 attempts: a store that is down must turn into
# a StorageError (503 at the gateway, nak at the worker) in seconds, not after obstore's
# default of 10 retries over up to 3 minutes.
_RETRIES = 2
_RETRY_TIMEOUT = timedelta(seconds=20)


def _as_datetime(value: object) -> datetime | None:
    """An S3 timestamp: botocore parses most; some stores' spelling reaches us as text."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _obstore_for(endpoint: S3Endpoint, bucket: str) -> S3Store:
    from obstore.store import S3Store

    return S3Store(
        bucket,
        endpoint=endpoint.endpoint,
        region=endpoint.region,
        access_key_id=endpoint.access_key,
        secret_access_key=endpoint.secret_key,
        virtual_hosted_style_request=False,  # path style, as the botocore client
        client_options={
            "allow_http": endpoint.endpoint.startswith("http://"),
            "connect_timeout": timedelta(seconds=5),
            "timeout": timedelta(seconds=60),
        },
        retry_config={
            "max_retries": _RETRIES,
            "retry_timeout": _RETRY_TIMEOUT,
            "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=2)},
        },
    )
