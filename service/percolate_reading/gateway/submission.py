"""Submitting a job: stage the upload, record the job, publish it, undo on failure.

Order matters for "nothing accepted and then lost, nothing half-made": a job is accepted only
after JetStream acknowledged its message; a failure at any step before that undoes the
earlier ones (staged object deleted, record marked failed). `submit` returns a typed result
(`Accepted`, `Refused`, `Unavailable`); the route maps it to HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import ClientDisconnect

from percolate_reading import tracing
from percolate_reading.contract.jobs import JobErrorInfo, JobMessage, JobOptions, JobRecord
from percolate_reading.contract.keys import new_job_id, object_key, s3_uri
from percolate_reading.contract.languages import normalize_language
from percolate_reading.contract.secrets import staged_password_key
from percolate_reading.contract.subjects import Tier, pool_of_subject, tenant_of_subject
from percolate_reading.contract.tenancy import TenantRecord
from percolate_reading.errors import QueueError
from percolate_reading.gateway.deps import GatewayDeps
from percolate_reading.gateway.routing import Route, TierNotAllowedError, route_job
from percolate_reading.gateway.upload import MultipartUpload, UploadError, sanitize_file_name
from percolate_reading.infra.queue.jetstream import publish_job
from percolate_reading.logs import job_context
from percolate_reading.parse.document import MEDIA_TYPES
from percolate_reading.parse.request import REQUEST_FIELDS, OptionError, RequestOptions

log = logging.getLogger(__name__)

MAX_CALLBACK_URL_CHARS = 2048
CALLBACK_CHECK_S = 5.0
# Options a form may set: password_staged is the gateway's own marker, never the client's.
# `request` is the gateway's too: its fields arrive one by one (REQUEST_FIELDS).
OPTION_FIELDS = frozenset(JobOptions.model_fields) - {"password_staged", "request"} | frozenset(
    REQUEST_FIELDS
)
KNOWN_FIELDS = frozenset({"callback_url", "tier"}) | OPTION_FIELDS
# Form fields are text: the spellings of a boolean the form accepts.
BOOLEAN_SPELLINGS = {"true": True, "1": True, "false": False, "0": False}

# Audio and image uploads have no one media type of their own: stored as octet-stream.
CONTENT_TYPES = {t.value: media for t, media in MEDIA_TYPES.items()}
DEFAULT_CONTENT_TYPE = "application/octet-stream"


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """Queued: JetStream holds the message (the record may land later, written by the worker)."""

    job_id: str
    record: JobRecord


@dataclass
class Refused(Exception):
    """The request itself is wrong; `status` is the HTTP answer (4xx)."""

    status: int
    code: str
    message: str


@dataclass
class Unavailable(Exception):
    """A dependency (object storage, the queue) failed; nothing of the job is left behind."""

    code: str
    message: str


# Refused and Unavailable are exceptions too (not frozen: Python sets attributes on raised
# exceptions), so the steps can stop the flow by raising them; `submit` returns them.
Result = Accepted | Refused | Unavailable


# --- the form --------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRequest:
    """What the form fields ask for."""

    callback_url: str | None
    tier: Tier | None
    options: JobOptions


def read_form(fields: Mapping[str, str]) -> JobRequest:
    """The request the form fields make; `Refused` (400) when one is unknown or invalid."""
    unknown = sorted(set(fields) - KNOWN_FIELDS)
    if unknown:
        raise Refused(400, "bad_request", f"unknown form fields: {', '.join(unknown)}")
    callback = fields.get("callback_url") or None
    if callback is not None and (
        len(callback) > MAX_CALLBACK_URL_CHARS or not callback.startswith(("http://", "https://"))
    ):
        raise Refused(400, "bad_request", "callback_url must be an http(s) URL")
    tier: Tier | None = None
    if fields.get("tier"):
        try:
            tier = Tier(fields["tier"])
        except ValueError:
            raise Refused(400, "bad_request", f"tier must be one of {[t.value for t in Tier]}") from None
    ocr: bool | None = None
    if fields.get("ocr_enabled"):
        ocr = BOOLEAN_SPELLINGS.get(fields["ocr_enabled"].lower())
        if ocr is None:
            raise Refused(400, "bad_request", "ocr_enabled must be true or false")
    language: str | None = None
    if fields.get("language"):
        language = normalize_language(fields["language"])
        if language is None:
            raise Refused(
                400,
                "invalid_language",
                "language must be an ISO 639-1 code the speech model knows (en, de, ...), "
                "several for a mixed recording (en,de), or multi",
            )
    try:
        # Checked here (400 with the reason), carried as canonical text, parsed by the worker.
        request = RequestOptions.from_fields(dict(fields)).to_fields()
    except OptionError as exc:
        raise Refused(400, "bad_request", str(exc)) from None
    options = JobOptions(
        password=fields.get("password") or None, language=language, ocr_enabled=ocr, request=request
    )
    return JobRequest(callback, tier, options)


async def check_callback(deps: GatewayDeps, url: str) -> None:
    """Refuse callbacks the webhook sender would refuse (loopback, private, metadata...) now,
    instead of accepting the job and failing the webhook later. The sender checks again at
    delivery time (DNS may change)."""
    from percolate_reading.infra.webhooks import AllowList, WebhookRefusedError, check_url

    try:
        await asyncio.wait_for(
            check_url(url, AllowList.parse(deps.settings.webhook_allow_list)), CALLBACK_CHECK_S
        )
    except WebhookRefusedError as exc:
        raise Refused(400, "callback_refused", exc.message) from None
    except TimeoutError:
        log.info("callback host of %s did not resolve in time; the sender will check it", url)


# --- the steps -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Staged:
    bucket: str
    key: str
    name: str
    size: int


def _observe(deps: GatewayDeps, name: str, seconds: float) -> None:
    if deps.metrics is not None:
        getattr(deps.metrics, name).observe(seconds)


async def stage(
    deps: GatewayDeps, tenant: TenantRecord, upload: MultipartUpload, job_id: str, doc_type: str
) -> Staged:
    """Stream the file into the tenant's files bucket under the job's prefix."""
    name = sanitize_file_name(upload.raw_file_name)
    bucket, key = tenant.files_bucket, object_key(tenant.tenant_id, job_id, name)
    started = time.perf_counter()
    try:
        with tracing.span("s3.put", {"s3.bucket": bucket, "s3.key": key}):
            size = await deps.store.put_stream(
                bucket, key, upload.file_chunks(), CONTENT_TYPES.get(doc_type, DEFAULT_CONTENT_TYPE)
            )
    except BaseException:
        # The upload's own client error is what went wrong, whatever the store made of it.
        if upload.error is not None:
            raise Refused(upload.error.status, upload.error.code, upload.error.message) from None
        raise
    _observe(deps, "s3_upload_duration_seconds", time.perf_counter() - started)
    return Staged(bucket, key, name, size)


async def record_and_publish(deps: GatewayDeps, message: JobMessage, subject: str) -> JobRecord:
    """Record and publish at once: both are idempotent creates keyed by the job id, and a
    worker that gets the message before the record lands creates the same record from it."""
    record = JobRecord.from_message(message)
    started = time.perf_counter()
    created, published = await asyncio.gather(
        deps.jobs.create(record), _publish(deps, message, subject), return_exceptions=True
    )
    if isinstance(published, BaseException):
        log.warning("job %s not published: %s", message.job_id, published)
        if not isinstance(created, BaseException):
            assert deps.sweeper is not None
            info = JobErrorInfo(
                code=QueueError.code, message="the queue did not accept the job", permanent=False
            )
            await deps.sweeper.fail_job(message.job_id, info)
        raise Unavailable(QueueError.code, "the job queue is unavailable") from published
    _observe(deps, "nats_publish_duration_seconds", time.perf_counter() - started)
    if isinstance(created, BaseException):
        # The message is durably queued (PubAck): the job will run, and its worker writes the
        # record from the message. Accepting is right; refusing would invite a duplicate.
        log.warning("job %s queued but its record not written yet: %s", message.job_id, created)
    return record


async def _publish(deps: GatewayDeps, message: JobMessage, subject: str) -> None:
    if deps.js is None:
        raise QueueError("the gateway has no JetStream connection")
    attributes = {"messaging.system": "nats", "messaging.destination.name": subject}
    with job_context(pool=pool_of_subject(subject)), tracing.span("publish", attributes, kind="producer"):
        await publish_job(deps.js, message, subject, ack_timeout_s=deps.settings.nats_publish_timeout_s)


def _route(deps: GatewayDeps, tenant: TenantRecord, doc_type: str, size: int, tier: Tier | None) -> Route:
    try:
        return route_job(deps.settings, tenant, doc_type, size, tier)
    except TierNotAllowedError as exc:
        raise Refused(400, "tier_not_allowed", str(exc)) from None


async def choose_route(
    deps: GatewayDeps, tenant: TenantRecord, doc_type: str, size: int, requested: Tier | None
) -> Route:
    """The tier's route, refused (409) when no pool consumes its subject; an automatic choice
    falls back to another tier of the tenant that has a pool."""
    route = _route(deps, tenant, doc_type, size, requested)
    pools = deps.pools
    # A dedicated subject is in the registry only while the operator runs its pool.
    if pools is None or tenant_of_subject(route.subject) is not None or await pools.serves(route.subject):
        return route
    if requested is None:
        for tier in (Tier.SMALL, Tier.LARGE, Tier.GPU):
            if tier == route.tier or tier not in tenant.allowed_tiers:
                continue
            fallback = _route(deps, tenant, doc_type, size, tier)
            if await pools.serves(fallback.subject):
                log.info("no pool for tier %s; job routed to %s", route.tier.value, tier.value)
                return fallback
    raise Refused(
        409,
        "no_pool_for_tier",
        f"no worker pool serves tier {route.tier.value!r}; ask the operator for a ParsePool of this tier",
    )


async def stage_password(
    deps: GatewayDeps, staged: Staged, tenant: TenantRecord, job_id: str, options: JobOptions
) -> JobOptions:
    """Stage the password beside the upload, never in the message (JOBS keeps messages 7 days,
    JOBS_DLQ its copies 30): the message carries only `password_staged`."""
    if options.password is None:
        return options
    key = staged_password_key(tenant.tenant_id, job_id)
    await deps.store.put_bytes(
        staged.bucket, key, options.password.encode("utf-8"), "application/octet-stream"
    )
    return options.model_copy(update={"password": None, "password_staged": True})


async def submit(
    deps: GatewayDeps,
    tenant: TenantRecord,
    upload: MultipartUpload,
    doc_type: str,
    *,
    checked_callback: str | None = None,
    job_id: str | None = None,
) -> Result:
    """Stage the rest of the upload, then record and publish the job. `checked_callback` is a
    callback URL already checked (from fields sent before the file); `job_id` one the caller
    already holds a quota lease for."""
    job_id = job_id or new_job_id()
    attributes = {"percolate.job_id": job_id, "percolate.file_type": doc_type}
    with job_context(tenant_id=tenant.tenant_id, job_id=job_id), tracing.span("upload", attributes):
        return await _submit(deps, tenant, upload, doc_type, job_id, checked_callback)


async def _submit(
    deps: GatewayDeps,
    tenant: TenantRecord,
    upload: MultipartUpload,
    doc_type: str,
    job_id: str,
    checked_callback: str | None,
) -> Result:
    staged: Staged | None = None
    try:
        staged = await stage(deps, tenant, upload, job_id, doc_type)
        try:
            await upload.finish()
        except UploadError as exc:
            raise Refused(exc.status, exc.code, exc.message) from None
        request = read_form(upload.fields)
        if request.callback_url is not None and request.callback_url != checked_callback:
            await check_callback(deps, request.callback_url)
        route = await choose_route(deps, tenant, doc_type, staged.size, request.tier)
        options = await stage_password(deps, staged, tenant, job_id, request.options)
        message = JobMessage(
            job_id=job_id,
            tenant_id=tenant.tenant_id,
            file_name=staged.name,
            file_type=doc_type,
            s3_uri=s3_uri(staged.bucket, staged.key),
            size_bytes=staged.size,
            storage_strategy=tenant.storage_strategy,
            callback_url=request.callback_url,
            tier=route.tier,
            options=options,
        )
        record = await record_and_publish(deps, message, route.subject)
    except Exception as exc:
        await _undo(deps, tenant, job_id, staged, upload)
        return _failure(exc, job_id)
    except BaseException:
        # Cancelled (the server is stopping): still leave nothing staged behind.
        await asyncio.shield(_undo(deps, tenant, job_id, staged, upload))
        raise
    return Accepted(job_id, record)


async def _undo(
    deps: GatewayDeps, tenant: TenantRecord, job_id: str, staged: Staged | None, upload: MultipartUpload
) -> None:
    """Delete what was staged (also after a refused or broken upload: a store may have kept
    part of it)."""
    assert deps.sweeper is not None
    if staged is not None:
        await deps.sweeper.discard_object(staged.bucket, staged.key)
        if upload.fields.get("password"):
            await deps.sweeper.discard_object(staged.bucket, staged_password_key(tenant.tenant_id, job_id))
    else:
        name = sanitize_file_name(upload.raw_file_name)
        await deps.sweeper.discard_object(tenant.files_bucket, object_key(tenant.tenant_id, job_id, name))


def _failure(exc: BaseException, job_id: str) -> Refused | Unavailable:
    if isinstance(exc, Refused | Unavailable):
        return exc
    if isinstance(exc, ClientDisconnect):
        log.info("client went away during the upload of job %s", job_id)
        return Refused(400, "client_disconnected", "the client closed the connection mid-upload")
    # Storage failed mid-upload (put_stream aborts its multipart upload) or later.
    log.warning("upload of job %s failed: %s", job_id, exc)
    return Unavailable("storage_unavailable", "object storage is unavailable")
