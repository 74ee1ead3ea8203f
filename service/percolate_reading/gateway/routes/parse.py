"""POST /v1/parse: stream the upload to the object store, record the job, publish it, answer 202.

Order matters for "nothing accepted and then lost, nothing half-made": the 202 is sent only
after JetStream acknowledged the message; a failure at any step before that undoes the
earlier steps (staged object deleted, record marked failed) and answers 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from percolate_reading.contract.subjects import Tier
from percolate_reading.contract.tenancy import TenantRecord
from percolate_reading.errors import QueueError
from percolate_reading.gateway.api_errors import ApiError, error_responses, unavailable
from percolate_reading.gateway.auth import Tenant
from percolate_reading.gateway.deps import GatewayDeps
from percolate_reading.gateway.routing import TierNotAllowedError, route_job
from percolate_reading.gateway.schemas import Accepted
from percolate_reading.gateway.upload import (
    MultipartUpload,
    UploadError,
    sanitize_file_name,
    sniff_type,
)
from percolate_reading.infra.jobs.models import JobErrorInfo, JobMessage, JobRecord
from percolate_reading.parse.detect import CONTAINER_SNIFF_BYTES, needs_container_sniff
from percolate_reading.parse.document import MEDIA_TYPES
from percolate_reading.parse.render.elements import elements_schema
from percolate_reading.parse.request import REQUEST_FIELDS, OptionError, RequestOptions

log = logging.getLogger(__name__)
router = APIRouter(tags=["jobs"])

# Multipart framing and the small form fields on top of the file itself.
BODY_OVERHEAD_BYTES = 64 * 1024
MAX_CALLBACK_URL_CHARS = 2048
CALLBACK_CHECK_S = 5.0
OPTION_FIELDS = frozenset({"password", "language", "ocr_enabled", *REQUEST_FIELDS})
KNOWN_FIELDS = frozenset({"callback_url", "priority", "tier"}) | OPTION_FIELDS

CONTENT_TYPES = {t.value: media for t, media in MEDIA_TYPES.items()}

PARSE_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "callback_url": {"type": "string", "maxLength": MAX_CALLBACK_URL_CHARS},
                        "priority": {"type": "integer", "minimum": 0, "maximum": 9},
                        "tier": {"type": "string", "enum": [t.value for t in Tier]},
                        "password": {"type": "string"},
                        "language": {"type": "string"},
                        # Form fields are text: exactly the spellings parse_fields accepts.
                        "ocr_enabled": {
                            "type": "string",
                            "pattern": "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|1|0)$",
                        },
                    },
                }
            }
        },
    },
    "responses": {
        "202": {"description": "Accepted: the job is queued."},
        **error_responses(400, 401, 408, 413, 415, 422, 429, 503),
    },
}


def _request_field_schemas() -> dict[str, Any]:
    from percolate_reading.parse.render.artifacts import OUTPUTS
    from percolate_reading.parse.render.chunks import CHUNK_STRATEGIES
    from percolate_reading.parse.request import FIELD_HELP, LANGUAGES_PATTERN, OCR_MODES, TABLE_MODES

    alternatives = "|".join(OUTPUTS)
    return {
        "outputs": {
            "type": "string",
            "description": FIELD_HELP["outputs"],
            "pattern": f"^ *({alternatives}) *(, *({alternatives}) *)*$",
        },
        "pages": {
            "type": "string",
            "description": FIELD_HELP["pages"],
            "pattern": r"^ *[0-9]{1,6} *(- *[0-9]{0,6})? *$",
        },
        "ocr": {"type": "string", "enum": list(OCR_MODES), "description": FIELD_HELP["ocr"]},
        "ocr_languages": {
            "type": "string",
            "description": FIELD_HELP["ocr_languages"],
            "pattern": LANGUAGES_PATTERN,
        },
        "table_mode": {"type": "string", "enum": list(TABLE_MODES), "description": FIELD_HELP["table_mode"]},
        "chunk_strategy": {
            "type": "string",
            "enum": list(CHUNK_STRATEGIES),
            "description": FIELD_HELP["chunk_strategy"],
        },
        "chunk_size": {"type": "string", "pattern": r"^[0-9]{1,6}$", "description": FIELD_HELP["chunk_size"]},
        "chunk_overlap": {
            "type": "string",
            "pattern": r"^[0-9]{1,6}$",
            "description": FIELD_HELP["chunk_overlap"],
        },
    }


# The per-request option fields, described once in parse/request.py.
PARSE_OPENAPI["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"].update(
    _request_field_schemas()
)


@router.get("/schemas/elements.json", tags=["schemas"], summary="JSON Schema of elements.jsonl lines")
async def get_elements_schema() -> JSONResponse:
    """The versioned JSON Schema each line of a job's `elements.jsonl` artifact validates against.

    Public, like /openapi.json: it describes the API, not a tenant's data."""
    return JSONResponse(elements_schema())


def new_job_id() -> str:
    """32 hex chars: milliseconds first, so ids sort by creation time; then 80 random bits."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def _deps(request: Request) -> GatewayDeps:
    deps: GatewayDeps = request.app.state.deps
    return deps


def _observe(deps: GatewayDeps, name: str, seconds: float) -> None:
    if deps.metrics is not None:
        histogram = getattr(deps.metrics, name)
        histogram.observe(seconds)


def parse_fields(fields: dict[str, str]) -> tuple[str | None, int, Tier | None, dict[str, str]]:
    """(callback_url, priority, requested tier, parse options) from the form; 400 when invalid."""
    unknown = sorted(set(fields) - KNOWN_FIELDS)
    if unknown:
        raise ApiError(400, "bad_request", f"unknown form fields: {', '.join(unknown)}")
    callback = fields.get("callback_url") or None
    if callback is not None and (
        len(callback) > MAX_CALLBACK_URL_CHARS or not callback.startswith(("http://", "https://"))
    ):
        raise ApiError(400, "bad_request", "callback_url must be an http(s) URL")
    try:
        priority = int(fields.get("priority") or 0)
    except ValueError:
        raise ApiError(400, "bad_request", "priority must be an integer 0-9") from None
    if not 0 <= priority <= 9:
        raise ApiError(400, "bad_request", "priority must be an integer 0-9")
    tier: Tier | None = None
    if fields.get("tier"):
        try:
            tier = Tier(fields["tier"])
        except ValueError:
            raise ApiError(400, "bad_request", f"tier must be one of {[t.value for t in Tier]}") from None
    options = {k: v for k, v in fields.items() if k in OPTION_FIELDS and v != ""}
    try:
        # Checked here (400 with the reason), carried as text, parsed again by the worker.
        request = RequestOptions.from_fields(options)
    except OptionError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    options = {k: v for k, v in options.items() if k not in REQUEST_FIELDS} | request.to_fields()
    if "ocr_enabled" in options:
        if options["ocr_enabled"].lower() not in ("true", "false", "1", "0"):
            raise ApiError(400, "bad_request", "ocr_enabled must be true or false")
        options["ocr_enabled"] = str(options["ocr_enabled"].lower() in ("true", "1")).lower()
    return callback, priority, tier, options


def _object_key(tenant: TenantRecord, job_id: str, name: str) -> str:
    return f"{tenant.tenant_id}/{job_id}/{name}"


@router.post("/v1/parse", status_code=202, openapi_extra=PARSE_OPENAPI, responses={202: {"model": Accepted}})
async def submit_parse(request: Request, tenant: Tenant) -> JSONResponse:
    deps = _deps(request)
    max_bytes = tenant.quotas.max_file_bytes

    # Refuse what is already known to be too big before reading a byte of it.
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            declared_bytes = int(declared)
        except ValueError:
            raise ApiError(400, "bad_request", "invalid Content-Length") from None
        if declared_bytes > max_bytes + BODY_OVERHEAD_BYTES:
            raise ApiError(413, "too_large", f"the upload is larger than this tenant's {max_bytes} bytes")

    try:
        over = await deps.quotas.reserve(deps.jobs, tenant.tenant_id, tenant.quotas.max_active_jobs)
    except Exception as exc:
        log.warning("job store unavailable for the quota check: %s", exc)
        raise unavailable("the job store is unavailable") from exc
    if over is not None:
        raise ApiError(
            429,
            "too_many_jobs",
            f"{over} jobs are queued or running; this tenant may have {tenant.quotas.max_active_jobs}",
            {"Retry-After": "30"},
        )
    try:
        response = await _accept(request, deps, tenant)
    except BaseException:
        deps.quotas.release(tenant.tenant_id)
        raise
    deps.quotas.landed(tenant.tenant_id)
    return response


async def _accept(request: Request, deps: GatewayDeps, tenant: TenantRecord) -> JSONResponse:
    max_bytes = tenant.quotas.max_file_bytes
    try:
        upload = MultipartUpload(
            request.stream(), request.headers.get("content-type"), max_file_bytes=max_bytes
        )
        await upload.open_file()
        head = await upload.read_head()
        if needs_container_sniff(head):
            # Zip/OLE: the parts that say which Office/OpenDocument/EPUB/Outlook file it is.
            head = await upload.read_head(CONTAINER_SNIFF_BYTES)
    except UploadError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected", "the client closed the connection mid-upload") from None
    # Fields sent before the file (the usual order) are checked before any byte is stored.
    checked_callback = None
    if upload.fields:
        checked_callback = parse_fields(upload.fields)[0]
        if checked_callback is not None:
            await check_callback(deps, checked_callback)
    if not head:
        raise ApiError(400, "empty", "the file is empty")
    doc_type = sniff_type(head, upload.raw_file_name)
    if doc_type is None:
        raise ApiError(
            415,
            "unsupported_type",
            "the content is not a supported document: PDF, Office (DOCX/PPTX/XLSX/XLS, DOC/PPT), "
            "OpenDocument, EPUB, RTF, HTML, CSV/TSV, text, Markdown, e-mail (EML/MSG), image or audio",
        )

    job_id = new_job_id()
    name = sanitize_file_name(upload.raw_file_name)
    bucket = tenant.files_bucket
    key = _object_key(tenant, job_id, name)
    assert deps.sweeper is not None
    try:
        started = time.perf_counter()
        try:
            size = await deps.store.put_stream(
                bucket,
                key,
                upload.file_chunks(),
                CONTENT_TYPES.get(doc_type.value, "application/octet-stream"),
            )
        except BaseException:
            if upload.error is not None:
                raise ApiError(upload.error.status, upload.error.code, upload.error.message) from None
            raise
        _observe(deps, "s3_upload_duration_seconds", time.perf_counter() - started)
        try:
            await upload.finish()
        except UploadError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None
        callback, priority, requested_tier, options = parse_fields(upload.fields)
        if callback is not None and callback != checked_callback:
            await check_callback(deps, callback)
        try:
            route = route_job(deps.settings, tenant, doc_type.value, size, requested_tier)
        except TierNotAllowedError as exc:
            raise ApiError(400, "tier_not_allowed", str(exc)) from None

        record = JobRecord(
            job_id=job_id,
            tenant_id=tenant.tenant_id,
            file_name=name,
            file_type=doc_type.value,
            size_bytes=size,
            tier=route.tier,
            callback_url=callback,
        )
        message = JobMessage(
            job_id=job_id,
            tenant_id=tenant.tenant_id,
            file_name=name,
            file_type=doc_type.value,
            s3_uri=f"s3://{bucket}/{key}",
            size_bytes=size,
            storage_strategy=tenant.storage_strategy,
            callback_url=callback,
            priority=priority,
            tier=route.tier,
            options=options,
            created_at=record.created_at,
        )
        # Record and publish at once: both are idempotent creates keyed by the job id, and a
        # worker that gets the message before the record lands creates the same record from it.
        started = time.perf_counter()
        created, published = await asyncio.gather(
            deps.jobs.create(record), publish(deps, message, route.subject), return_exceptions=True
        )
        if isinstance(published, BaseException):
            log.warning("job %s not published: %s", job_id, published)
            if not isinstance(created, BaseException):
                await deps.sweeper.fail_job(
                    job_id,
                    JobErrorInfo(
                        code=QueueError.code, message="the queue did not accept the job", permanent=False
                    ),
                )
            raise unavailable("the job queue is unavailable", QueueError.code) from published
        _observe(deps, "nats_publish_duration_seconds", time.perf_counter() - started)
        if isinstance(created, BaseException):
            # The message is durably queued (PubAck): the job will run, and its worker writes
            # the record from the message. Accepting is right; refusing would invite a duplicate.
            log.warning("job %s queued but its record not written yet: %s", job_id, created)
    except ApiError:
        # Also after a refused upload: a store may have kept part of it.
        await deps.sweeper.discard_object(bucket, key)
        raise
    except ClientDisconnect:
        await deps.sweeper.discard_object(bucket, key)
        log.info("client went away during the upload of job %s", job_id)
        raise ApiError(400, "client_disconnected", "the client closed the connection mid-upload") from None
    except Exception as exc:
        # Storage failed mid-upload (put_stream aborts its multipart upload) or later.
        await deps.sweeper.discard_object(bucket, key)
        log.warning("upload of job %s failed: %s", job_id, exc)
        raise unavailable("object storage is unavailable", "storage_unavailable") from exc

    status_url = str(request.url_for("get_job", job_id=job_id))
    return JSONResponse(
        {"job_id": job_id, "status": record.status.value, "status_url": status_url},
        status_code=202,
        headers={"Location": status_url},
    )


async def check_callback(deps: GatewayDeps, url: str) -> None:
    """Refuse callbacks the webhook sender would refuse (loopback, private, metadata...) now,
    with a 400, instead of accepting the job and failing the webhook later. The sender checks
    again at delivery time (DNS may change)."""
    from percolate_reading.infra.webhooks import AllowList, WebhookRefusedError, check_url

    try:
        await asyncio.wait_for(
            check_url(url, AllowList.parse(deps.settings.webhook_allow_list)), CALLBACK_CHECK_S
        )
    except WebhookRefusedError as exc:
        raise ApiError(400, "callback_refused", exc.message) from None
    except TimeoutError:
        log.info("callback host of %s did not resolve in time; the sender will check it", url)


async def publish(deps: GatewayDeps, message: JobMessage, subject: str) -> None:
    if deps.js is None:
        raise QueueError("the gateway has no JetStream connection")
    from percolate_reading.infra.queue.jetstream import publish_job

    await publish_job(deps.js, message, subject)
