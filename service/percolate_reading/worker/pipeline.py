"""One job, start to finish: check the message, download, parse, store artifacts, update
status and the tenant context, send the webhook.

Everything here is idempotent per job id: artifacts and context objects are keyed by the job
id (a redelivered job overwrites them), and status changes go through the store's monotonic
transitions (a job already finished or cancelled is skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from percolate_reading import tracing
from percolate_reading.config import Settings
from percolate_reading.contract.jobs import (
    JobErrorInfo,
    JobMessage,
    JobOptions,
    JobRecord,
    JobStatus,
    StorageStrategy,
)
from percolate_reading.contract.keys import (
    artifact_media_type,
    context_chunks_key,
    is_job_id,
    is_job_object,
    object_key,
    parse_s3_uri,
    s3_uri,
)
from percolate_reading.contract.secrets import staged_password_key
from percolate_reading.contract.subjects import TENANT_ID_RE, tenant_of_subject
from percolate_reading.contract.tenancy import TenantRecord
from percolate_reading.contract.webhook_delivery import WebhookDelivery, webhook_id
from percolate_reading.errors import InvalidTransitionError, ObjectNotFoundError, ParseError, PercolateError
from percolate_reading.infra.context import ContextWriter, build_entry
from percolate_reading.infra.jobs.store import JobStore
from percolate_reading.infra.storage.base import ObjectStore
from percolate_reading.infra.webhook_queue import WebhookOutbox
from percolate_reading.infra.webhooks import job_event
from percolate_reading.metrics import Metrics
from percolate_reading.parse.providers.base import ParseOptions
from percolate_reading.parse.request import OptionError, RequestOptions

log = logging.getLogger(__name__)
T = TypeVar("T")

_ARTIFACT_WRITES = 8  # parallel puts per job


class JobRejectedError(PercolateError):
    """The message itself is not acceptable (tenant/subject/prefix mismatch, bad ids)."""

    code = "rejected"
    permanent = True


class TenantUnknownError(PercolateError):
    """The tenant's record (buckets, webhook secret) is not loaded yet: try again later."""

    code = "tenant_unknown"
    permanent = False


class ParseSlots:
    """At most `n` parses at once (settings.worker_concurrency); the rest of a job (download,
    artifact writes, context, status, webhook) runs outside a slot, so a worker can hold a
    few more jobs than slots and keep the slots busy while those jobs wait on I/O.

    `close()` (drain) cancels every job still waiting for a slot, and any that asks later:
    such a job has not started to parse, so it is handed back at once, not finished."""

    def __init__(self, n: int) -> None:
        self._sem = asyncio.Semaphore(n)
        self._waiting: set[asyncio.Task[Any]] = set()
        self._closed = False

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        assert task is not None
        if self._closed:
            task.cancel()
            await asyncio.sleep(0)  # raises CancelledError here
        self._waiting.add(task)
        try:
            await self._sem.acquire()
        finally:
            self._waiting.discard(task)
        try:
            yield
        finally:
            self._sem.release()

    def close(self) -> None:
        self._closed = True
        for task in list(self._waiting):
            task.cancel()


@dataclass
class Services:
    settings: Settings
    store: ObjectStore
    jobs: JobStore
    metrics: Metrics
    # Where a finished job's webhook is queued (the WEBHOOKS stream); a sender delivers it.
    webhooks: WebhookOutbox
    # Where the worker finds a tenant's buckets and webhook secret (None: unknown tenant).
    tenants: Callable[[str], TenantRecord | None]
    # Shares tenant-manifest rebuilds between the jobs in flight (made from `store` if None).
    context: ContextWriter | None = None
    # The worker's parse slots (made from settings.worker_concurrency if None).
    parse_slots: ParseSlots | None = None
    # Publishes a job message on a subject (a split job's parts); None: jobs are never split.
    publish_job: Callable[[JobMessage, str], Awaitable[None]] | None = None

    def __post_init__(self) -> None:
        if self.context is None:
            self.context = ContextWriter(self.store, self.settings.context_rebuild_interval_s)
        if self.parse_slots is None:
            self.parse_slots = ParseSlots(self.settings.worker_concurrency)


@dataclass(frozen=True)
class Buckets:
    files: str
    artifacts: str
    context: str


# --- checks (pure) ------------------------------------------------------------------------------


def buckets_for(settings: Settings, msg: JobMessage, tenant: TenantRecord | None) -> Buckets:
    if tenant is not None:
        return Buckets(tenant.files_bucket, tenant.artifacts_bucket, tenant.context_bucket)
    if msg.storage_strategy is StorageStrategy.TENANT:
        # Own buckets are named in the tenant record only; guessing would write elsewhere.
        raise TenantUnknownError(f"tenant {msg.tenant_id!r} has its own buckets but no record is loaded")
    return Buckets(settings.s3_bucket, settings.s3_artifacts_bucket, settings.s3_context_bucket)


def check_message(msg: JobMessage, subject: str, buckets: Buckets) -> tuple[str, str]:
    """Refuse a message whose tenant disagrees with its subject or its source prefix;
    returns the source (bucket, key)."""
    if not TENANT_ID_RE.fullmatch(msg.tenant_id):
        raise JobRejectedError(f"invalid tenant id {msg.tenant_id!r}")
    if not is_job_id(msg.job_id):
        raise JobRejectedError(f"invalid job id {msg.job_id!r}")
    dedicated = tenant_of_subject(subject)
    if dedicated is not None and dedicated != msg.tenant_id:
        raise JobRejectedError(
            f"job of tenant {msg.tenant_id!r} arrived on {subject!r}, the subject of tenant {dedicated!r}"
        )
    try:
        bucket, key = parse_s3_uri(msg.s3_uri)
    except ValueError as exc:
        raise JobRejectedError(str(exc)) from None
    if bucket != buckets.files:
        raise JobRejectedError(f"source bucket {bucket!r} is not the tenant's files bucket")
    if not is_job_object(key, msg.tenant_id, msg.job_id):
        raise JobRejectedError(f"source key {key!r} is outside {msg.tenant_id}/{msg.job_id}/")
    return bucket, key


def job_request(options: JobOptions) -> RequestOptions:
    """The per-request options (outputs, pages, OCR mode, chunking...) the job carries."""
    try:
        return RequestOptions.from_fields(dict(options.request))
    except OptionError as exc:  # the gateway checks these; a message from elsewhere may not
        raise JobRejectedError(f"invalid parse option: {exc}") from None


def parse_options(settings: Settings, options: JobOptions) -> ParseOptions:
    """The worker's settings with what the job asked for (a job may turn OCR off, not on)."""
    overrides: dict[str, object] = {}
    if options.password:
        overrides["password"] = options.password
    if options.language:
        overrides["language"] = options.language
    if options.ocr_enabled is not None:
        overrides["ocr_enabled"] = settings.ocr_enabled and options.ocr_enabled
    return job_request(options).parse_options(ParseOptions.from_settings(settings, **overrides))


def nak_delay(settings: Settings, deliveries: int) -> float:
    steps = [float(x) for x in settings.nak_backoff_s.split(",") if x.strip()] or [5.0]
    return steps[min(max(deliveries, 1), len(steps)) - 1]


def error_info(exc: BaseException) -> JobErrorInfo:
    if isinstance(exc, PercolateError):
        return JobErrorInfo(code=exc.code, message=exc.message, permanent=exc.permanent)
    return JobErrorInfo(code="internal", message=f"{type(exc).__name__}: {exc}", permanent=False)


# --- blocking work off the event loop -----------------------------------------------------------


async def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn` in a daemon thread. Unlike asyncio.to_thread, a parse still running when the
    worker has drained and returned its job does not hold the process open at exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def target() -> None:
        try:
            result: Any = fn(*args)
            ok = True
        except BaseException as exc:
            result, ok = exc, False
        with contextlib.suppress(RuntimeError):  # the loop may be gone after a drain
            loop.call_soon_threadsafe(deliver, ok, result)

    # In a copy of this task's context: the parse's log lines and spans belong to its job.
    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(target,), name="percolate-parse", daemon=True).start()
    return await future


def _parse_and_render(
    path: Path, msg: JobMessage, settings: Settings
) -> tuple[dict[str, bytes], dict[str, Any]]:
    from percolate_reading.parse.parsing import parse_and_render
    from percolate_reading.parse.sandbox import SandboxLimits

    # Rendering runs in the sandboxed child too: only the artifacts' bytes come back.
    request = job_request(msg.options)
    return parse_and_render(
        path,
        parse_options(settings, msg.options),
        SandboxLimits.from_settings(settings),
        request.chunk_options(settings),
        msg.file_name,
        settings,
        outputs=request.outputs,
        job_id=msg.job_id,
    )


# --- the job -------------------------------------------------------------------------------------


async def ensure_record(jobs: JobStore, msg: JobMessage) -> JobRecord:
    """The job's record; created from the message if the gateway's write never landed."""
    record = await jobs.get(msg.job_id)
    if record is None:
        await jobs.create(JobRecord.from_message(msg))
        record = await jobs.get(msg.job_id)
        assert record is not None
    if record.tenant_id != msg.tenant_id:
        raise JobRejectedError(f"job {msg.job_id} belongs to another tenant than the message names")
    return record


@contextlib.contextmanager
def _input_file(file_name: str) -> Iterator[Path]:
    """A fresh private file for the job's input (a file, not a directory: one unlink)."""
    suffix = PurePosixPath(file_name).suffix.lower()[:10]
    fd, name = tempfile.mkstemp(prefix="percolate-job-", suffix=suffix if suffix.isascii() else "")
    os.close(fd)
    try:
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


async def process(svc: Services, msg: JobMessage, subject: str) -> str:
    """Run one delivery of a job; returns the outcome (succeeded, cancelled, duplicate).

    Raises a PercolateError (or anything else) for the runner to map to term/nak."""
    settings = svc.settings
    tenant = svc.tenants(msg.tenant_id)
    buckets = buckets_for(settings, msg, tenant)
    src_bucket, src_key = check_message(msg, subject, buckets)
    record = await ensure_record(svc.jobs, msg)
    if record.status is JobStatus.CANCELLED:
        return "cancelled"
    from percolate_reading.worker import split

    if record.status.terminal:
        if msg.part is not None and record.status is JobStatus.SUCCEEDED:
            await split.drop_parts(svc, msg, buckets.artifacts)  # a merge that died before it did
        return await _finished_elsewhere(svc, msg)

    if msg.part is not None:
        return await split.process_part(svc, msg, buckets, (src_bucket, src_key), record)
    if record.parts:
        # An earlier delivery split the job (its ack was lost): publish the same parts again,
        # de-duplicated by JetStream, instead of parsing the whole document here.
        return await split.publish_parts(svc, msg, subject, split.recorded_ranges(record))

    try:
        await svc.jobs.transition(msg.job_id, JobStatus.RUNNING, error=None)
    except InvalidTransitionError:
        return await _finished_elsewhere(svc, msg)

    timings: dict[str, float] = {}
    parse_msg = await with_staged_password(svc, msg, src_bucket)
    with _input_file(msg.file_name) as path:
        await download(svc, src_bucket, src_key, path, timings)
        ranges = await split.plan(svc, parse_msg, path)
        if ranges is not None:
            return await split.publish_parts(svc, msg, subject, ranges)
        artifacts, metadata = await parse_in_slot(
            svc, msg, timings, _parse_and_render, path, parse_msg, settings
        )
    return await finish_job(svc, msg, buckets, src_bucket, artifacts, metadata, timings)


async def download(svc: Services, bucket: str, key: str, path: Path, timings: dict[str, float]) -> None:
    t0 = time.perf_counter()
    with tracing.span("s3.download", {"s3.bucket": bucket, "s3.key": key}):
        await svc.store.download_to(bucket, key, path)
    timings["download_s"] = time.perf_counter() - t0


async def parse_in_slot(
    svc: Services, msg: JobMessage, timings: dict[str, float], fn: Callable[..., T], *args: Any
) -> T:
    """`fn(*args)` (a sandboxed parse) in one of the worker's parse slots, timed and counted."""
    assert svc.parse_slots is not None
    t0 = time.perf_counter()
    async with svc.parse_slots.slot():
        timings["slot_wait_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            with tracing.span("parse", {"percolate.file_type": msg.file_type}):
                result = await run_blocking(fn, *args)
        except PercolateError as exc:
            svc.metrics.parse_errors_total.labels(msg.file_type, exc.code).inc()
            if isinstance(exc, ParseError) and exc.sandbox_kill is not None:
                svc.metrics.sandbox_kills_total.labels(exc.sandbox_kill).inc()
            raise
        timings["parse_s"] = time.perf_counter() - t0
    svc.metrics.parse_duration_seconds.labels(msg.file_type).observe(timings["parse_s"])
    return result


async def finish_job(
    svc: Services,
    msg: JobMessage,
    buckets: Buckets,
    src_bucket: str,
    artifacts: dict[str, bytes],
    metadata: dict[str, Any],
    timings: dict[str, float],
) -> str:
    """Store the artifacts and the context entry, then record success and queue the webhook:
    the end of a whole parse and of a split job's merge."""
    t0 = time.perf_counter()
    with tracing.span(
        "artifacts.write", {"s3.bucket": buckets.artifacts, "percolate.artifacts": len(artifacts)}
    ):
        await write_artifacts(svc.store, buckets.artifacts, msg, artifacts)
    timings["write_s"] = time.perf_counter() - t0
    svc.metrics.s3_artifact_write_duration_seconds.observe(timings["write_s"])

    names = sorted(artifacts)
    chunks = artifacts.get("chunks.jsonl", b"")
    entry = build_entry(
        tenant=msg.tenant_id,
        job_id=msg.job_id,
        file_name=msg.file_name,
        file_type=msg.file_type,
        artifact_uris={n: s3_uri(buckets.artifacts, object_key(msg.tenant_id, msg.job_id, n)) for n in names},
        metadata=_metadata_summary_source(artifacts, metadata),
        chunk_count=sum(1 for line in chunks.splitlines() if line.strip()),
        chunks_uri=s3_uri(buckets.context, context_chunks_key(msg.tenant_id, msg.job_id)),
    )
    t0 = time.perf_counter()
    assert svc.context is not None
    with tracing.span("context.update", {"s3.bucket": buckets.context}):
        await svc.context.update(buckets.context, msg.tenant_id, entry, chunks)
    timings["context_s"] = time.perf_counter() - t0

    status = JobStatus.SUCCEEDED
    try:
        final = await svc.jobs.transition(
            msg.job_id,
            status,
            artifacts=names,
            timings={k: round(v, 4) for k, v in timings.items()},
            error=None,
            webhook_id=webhook_id(msg.job_id, status.value) if msg.callback_url else None,
        )
    except InvalidTransitionError:
        # Another delivery finished it first; the objects we wrote are identical to its own.
        return await _finished_elsewhere(svc, msg)
    svc.metrics.observe_job_end(final.tier.value, status.value, final.created_at, final.finished_at)
    await drop_staged_password(svc, msg, src_bucket)
    await notify(svc, final, msg.callback_url)
    return "succeeded"


async def with_staged_password(svc: Services, msg: JobMessage, bucket: str) -> JobMessage:
    """The message with the password the gateway staged beside the upload (in memory only)."""
    if not msg.options.password_staged:
        return msg
    key = staged_password_key(msg.tenant_id, msg.job_id)
    try:
        password = (await svc.store.get_bytes(bucket, key)).decode("utf-8")
    except ObjectNotFoundError:
        raise JobRejectedError(f"the password of job {msg.job_id} is gone; submit the file again") from None
    options = msg.options.model_copy(update={"password": password, "password_staged": False})
    return msg.model_copy(update={"options": options})


async def drop_staged_password(svc: Services, msg: JobMessage, bucket: str) -> None:
    """Delete the staged password once the job has its final status (best effort: the bucket's
    leftover sweep and lifecycle rules are the backstop)."""
    if not msg.options.password_staged:
        return
    try:
        await svc.store.delete(bucket, staged_password_key(msg.tenant_id, msg.job_id))
    except Exception as exc:
        log.warning("staged password of job %s not deleted: %s", msg.job_id, exc)


async def _finished_elsewhere(svc: Services, msg: JobMessage) -> str:
    """A delivery of a job that is already finished. The delivery that finished it may have
    died before its webhook went out (it was never acked, or we would not see this), so
    send it again: same webhook id, so receivers can drop the repeat."""
    record = await svc.jobs.get(msg.job_id)
    if record is not None and record.status is JobStatus.CANCELLED:
        return "cancelled"
    if record is not None and record.status.terminal:
        await notify(svc, record, msg.callback_url)
    return "duplicate"


def _metadata_summary_source(artifacts: dict[str, bytes], metadata: dict[str, Any]) -> dict[str, Any]:
    merged = dict(metadata)
    raw = artifacts.get("metadata.json")
    if raw:
        with contextlib.suppress(ValueError):
            parsed = json.loads(raw)
            if isinstance(parsed, dict):
                merged.update(parsed)
    return merged


async def write_artifacts(
    store: ObjectStore, bucket: str, msg: JobMessage, artifacts: dict[str, bytes]
) -> None:
    gate = asyncio.Semaphore(_ARTIFACT_WRITES)

    async def put(name: str, data: bytes) -> None:
        async with gate:
            content_type = artifact_media_type(name)
            await store.put_bytes(bucket, object_key(msg.tenant_id, msg.job_id, name), data, content_type)

    await asyncio.gather(*(put(n, d) for n, d in artifacts.items()))


async def record_failure(svc: Services, msg: JobMessage, info: JobErrorInfo) -> JobRecord | None:
    """Mark the job failed (unless it is already finished) and send its webhook.

    Only a record that belongs to the message's tenant is touched: a forged message must
    not be able to fail another tenant's job."""
    record = await svc.jobs.get(msg.job_id) if is_job_id(msg.job_id) else None
    if record is None:
        if not TENANT_ID_RE.fullmatch(msg.tenant_id) or not is_job_id(msg.job_id):
            return None
        record = await ensure_record(svc.jobs, msg)
    if record.tenant_id != msg.tenant_id:
        return None
    try:
        final = await svc.jobs.transition(
            msg.job_id,
            JobStatus.FAILED,
            error=info,
            webhook_id=webhook_id(msg.job_id, JobStatus.FAILED.value) if msg.callback_url else None,
        )
    except InvalidTransitionError:
        # Already finished. If it failed, an earlier call may have recorded it and then not
        # queued its webhook (NATS gone): queue it again (the same id is de-duplicated).
        current = await svc.jobs.get(msg.job_id)
        if current is not None and current.status is JobStatus.FAILED:
            await notify(svc, current, msg.callback_url)
        return None
    svc.metrics.observe_job_end(final.tier.value, final.status.value, final.created_at, final.finished_at)
    await notify(svc, final, msg.callback_url)
    return final


async def clean_up_failed(svc: Services, msg: JobMessage) -> None:
    """After a job's failure is recorded and its message settled: its staged password and
    any artifacts a delivery wrote before failing go (best effort, logged)."""
    with contextlib.suppress(PercolateError):
        buckets = buckets_for(svc.settings, msg, svc.tenants(msg.tenant_id))
        await drop_staged_password(svc, msg, buckets.files)
        await drop_partial_artifacts(svc, msg, buckets.artifacts)


async def drop_partial_artifacts(svc: Services, msg: JobMessage, bucket: str) -> None:
    """A failed job lists no artifacts, so none may stay behind from a delivery that wrote
    some before failing (the failed status is recorded first: a redelivery cannot write more)."""
    prefix = object_key(msg.tenant_id, msg.job_id, "")
    try:
        removed = await svc.store.delete_prefix(bucket, prefix)
    except Exception as exc:
        log.warning("partial artifacts of failed job %s not removed: %s", msg.job_id, exc)
        return
    if removed:
        log.info("removed %d partial artifacts of failed job %s", removed, msg.job_id)


async def requeue(svc: Services, msg: JobMessage, info: JobErrorInfo) -> None:
    """A transient failure: the job goes back to queued (with the last error) for its retry."""
    try:
        await svc.jobs.transition(msg.job_id, JobStatus.QUEUED, error=info)
    except (InvalidTransitionError, PercolateError, ValueError) as exc:
        log.info("job %s not re-queued in the store: %s", msg.job_id, exc)


async def notify(svc: Services, record: JobRecord, url: str | None) -> None:
    """Queue the job's webhook to `url` (the message's callback, else the record's) on the
    WEBHOOKS stream; the worker's sender delivers it, so no receiver holds up the job."""
    url = url or record.callback_url
    if not url:
        return
    msg_id = record.webhook_id or webhook_id(record.job_id, record.status.value)
    delivery = WebhookDelivery(
        webhook_id=msg_id,
        tenant_id=record.tenant_id,
        job_id=record.job_id,
        url=url,
        payload=job_event(public_view(record), record.status.value),
        enqueued_at=time.time(),
    )
    with tracing.span("webhook.enqueue", {"percolate.webhook_id": msg_id}):
        await svc.webhooks.enqueue(delivery)


def public_view(record: JobRecord) -> dict[str, Any]:
    data = record.model_dump(mode="json", exclude={"callback_url"})
    return data
