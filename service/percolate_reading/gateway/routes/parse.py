"""POST /v1/parse: check the request, hand the upload to `gateway.submission`, answer 202.

The submission stages, records and publishes the job (or undoes what it did); this route
maps its result to HTTP: 202 once JetStream holds the job, 4xx for a bad request, 503 with
Retry-After when storage or the queue is down.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from percolate_reading.contract.keys import new_job_id
from percolate_reading.contract.languages import LANGUAGE_CODES
from percolate_reading.contract.subjects import Tier
from percolate_reading.contract.tenancy import TenantRecord
from percolate_reading.gateway import submission
from percolate_reading.gateway.api_errors import ApiError, error_responses, unavailable
from percolate_reading.gateway.auth import Tenant
from percolate_reading.gateway.deps import GatewayDeps
from percolate_reading.gateway.schemas import Accepted
from percolate_reading.gateway.upload import (
    MultipartUpload,
    UploadError,
    sniff_type,
)
from percolate_reading.gateway.urls import public_url
from percolate_reading.parse.detect import CONTAINER_SNIFF_BYTES, needs_container_sniff
from percolate_reading.parse.render.elements import elements_schema

log = logging.getLogger(__name__)
router = APIRouter(tags=["jobs"])

# Multipart framing and the small form fields on top of the file itself.
BODY_OVERHEAD_BYTES = 64 * 1024

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
                        "callback_url": {"type": "string", "maxLength": submission.MAX_CALLBACK_URL_CHARS},
                        "tier": {"type": "string", "enum": [t.value for t in Tier]},
                        "password": {"type": "string"},
                        "language": {"type": "string", "enum": sorted(LANGUAGE_CODES)},
                        # Form fields are text: exactly the spellings read_form accepts.
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
        **error_responses(400, 401, 408, 409, 413, 415, 422, 429, 503),
    },
}


def _request_field_schemas() -> dict[str, Any]:
    from percolate_reading.parse.render.artifacts import OUTPUTS
    from percolate_reading.parse.render.chunks import CHUNK_STRATEGIES
    from percolate_reading.parse.request import (
        BOOLEAN_VALUES,
        FIELD_HELP,
        LANGUAGES_PATTERN,
        OCR_MODES,
        TABLE_MODES,
    )

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
        "include_images": {
            "type": "string",
            "enum": list(BOOLEAN_VALUES),
            "description": FIELD_HELP["include_images"],
        },
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


def _deps(request: Request) -> GatewayDeps:
    deps: GatewayDeps = request.app.state.deps
    return deps


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

    job_id = new_job_id()
    try:
        over = await _reserve_slot(deps, tenant, job_id)
    except Exception as exc:
        log.warning("quota store unavailable for the quota check: %s", exc)
        raise unavailable("the job store is unavailable") from exc
    if over is not None:
        raise ApiError(
            429,
            "too_many_jobs",
            f"{over} jobs are queued or running; this tenant may have {tenant.quotas.max_active_jobs}",
            {"Retry-After": "30"},
        )
    try:
        response = await _accept(request, deps, tenant, job_id)
    except BaseException:
        await asyncio.shield(_settle_slot(deps, tenant, job_id, accepted=False))
        raise
    await _settle_slot(deps, tenant, job_id, accepted=True)
    return response


async def _reserve_slot(deps: GatewayDeps, tenant: TenantRecord, job_id: str) -> int | None:
    """A slot of the tenant's active-job quota: None when taken, else the active count. The
    shared ledger where the gateway has JetStream, else this replica's estimate."""
    limit = tenant.quotas.max_active_jobs
    ledger = await deps.quota_ledger()
    if ledger is None:
        return await deps.quotas.reserve(deps.jobs, tenant.tenant_id, limit)
    return await ledger.reserve(tenant.tenant_id, job_id, limit, deps.jobs.get)


async def _settle_slot(deps: GatewayDeps, tenant: TenantRecord, job_id: str, *, accepted: bool) -> None:
    """Keep the slot for an accepted job (the worker frees it), free it for a failed upload.
    A failure here is logged: the lease expires or is reconciled at the limit."""
    if deps.ledger is None:
        if accepted:
            deps.quotas.landed(tenant.tenant_id)
        else:
            deps.quotas.release(tenant.tenant_id)
        return
    try:
        if accepted:
            await deps.ledger.accepted(tenant.tenant_id, job_id)
        else:
            await deps.ledger.release(tenant.tenant_id, job_id)
    except Exception as exc:
        log.warning("quota lease of job %s not updated: %s", job_id, exc)


async def _accept(request: Request, deps: GatewayDeps, tenant: TenantRecord, job_id: str) -> JSONResponse:
    try:
        upload = MultipartUpload(
            request.stream(), request.headers.get("content-type"), max_file_bytes=tenant.quotas.max_file_bytes
        )
        await upload.open_file()
        head = await upload.read_head()
        if needs_container_sniff(head):
            # Zip/OLE: the parts that say which Office/OpenDocument/EPUB/Outlook file it is.
            head = await upload.read_head(CONTAINER_SNIFF_BYTES)
        # Fields sent before the file (the usual order) are checked before any byte is stored.
        checked_callback = None
        if upload.fields:
            checked_callback = submission.read_form(upload.fields).callback_url
            if checked_callback is not None:
                await submission.check_callback(deps, checked_callback)
    except UploadError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    except submission.Refused as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected", "the client closed the connection mid-upload") from None
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

    result = await submission.submit(
        deps, tenant, upload, doc_type.value, checked_callback=checked_callback, job_id=job_id
    )
    if isinstance(result, submission.Refused):
        raise ApiError(result.status, result.code, result.message)
    if isinstance(result, submission.Unavailable):
        raise unavailable(result.message, result.code)
    status_url = public_url(request, "get_job", job_id=result.job_id)
    return JSONResponse(
        {"job_id": result.job_id, "status": result.record.status.value, "status_url": status_url},
        status_code=202,
        headers={"Location": status_url},
    )
