"""Job status, listing, artifact download and cancellation; every lookup is scoped to the tenant."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from percolate_reading.contract.jobs import JobRecord, JobStatus
from percolate_reading.contract.keys import (
    ARTIFACT_MEDIA_TYPES,
    DEFAULT_ARTIFACT_MEDIA_TYPE,
    artifact_media_type,
    is_job_id,
    object_key,
)
from percolate_reading.contract.tenancy import TenantRecord
from percolate_reading.errors import InvalidTransitionError, JobNotFoundError, ObjectNotFoundError
from percolate_reading.gateway.api_errors import ApiError, error_responses, unavailable
from percolate_reading.gateway.auth import Tenant
from percolate_reading.gateway.deps import GatewayDeps
from percolate_reading.gateway.schemas import JobList, JobView
from percolate_reading.gateway.urls import public_url
from percolate_reading.infra.jobs.index import tenant_prefix

log = logging.getLogger(__name__)
router = APIRouter(tags=["jobs"], responses=error_responses(401, 422, 503))

MAX_ARTIFACT_PATH_CHARS = 512


def served_media_type(path: str) -> str:
    """The stored media type, except that HTML is served as text: never rendered by a browser
    from the gateway's origin."""
    media = artifact_media_type(path)
    return "text/plain; charset=utf-8" if media.startswith("text/html") else media


def _deps(request: Request) -> GatewayDeps:
    deps: GatewayDeps = request.app.state.deps
    return deps


def not_found(job_id: str) -> ApiError:
    # Same answer for "no such job" and "another tenant's job": ids reveal nothing.
    return ApiError(404, "job_not_found", f"no job {job_id!r}")


async def load_job(deps: GatewayDeps, tenant: TenantRecord, job_id: str) -> JobRecord:
    if not is_job_id(job_id):
        raise not_found(job_id)
    try:
        record = await deps.jobs.get(job_id)
    except Exception as exc:
        log.warning("job store unavailable: %s", exc)
        raise unavailable("the job store is unavailable") from exc
    if record is None or record.tenant_id != tenant.tenant_id:
        raise not_found(job_id)
    return record


def job_view(request: Request, record: JobRecord) -> dict[str, Any]:
    body = record.model_dump(mode="json")
    body["status_url"] = public_url(request, "get_job", job_id=record.job_id)
    body["artifact_urls"] = {
        path: public_url(request, "get_artifact", job_id=record.job_id, path=path)
        for path in record.artifacts
    }
    return body


def valid_artifact_path(path: str) -> bool:
    if not path or len(path) > MAX_ARTIFACT_PATH_CHARS or path.startswith("/") or "\\" in path:
        return False
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


@router.get("/v1/jobs/{job_id}", name="get_job", responses={200: {"model": JobView}, **error_responses(404)})
async def get_job(job_id: str, request: Request, tenant: Tenant) -> JSONResponse:
    record = await load_job(_deps(request), tenant, job_id)
    return JSONResponse(job_view(request, record))


@router.get("/v1/jobs", responses={200: {"model": JobList}, **error_responses(400)})
async def list_jobs(
    request: Request,
    tenant: Tenant,
    status: JobStatus | None = None,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, max_length=256),
) -> JSONResponse:
    deps = _deps(request)
    if cursor is not None and not cursor.startswith(tenant_prefix(tenant.tenant_id)):
        # Forged, or another tenant's: the caller's error, not the store's.
        raise ApiError(400, "invalid_cursor", "the cursor is not one this listing handed out")
    try:
        page, next_cursor = await deps.jobs.list_for_tenant(tenant.tenant_id, status, limit, cursor)
    except Exception as exc:
        log.warning("job store unavailable: %s", exc)
        raise unavailable("the job store is unavailable") from exc
    return JSONResponse(
        {
            "jobs": [job_view(request, r) for r in page if r.tenant_id == tenant.tenant_id],
            "next_cursor": next_cursor,
        }
    )


@router.get(
    "/v1/jobs/{job_id}/artifacts/{path:path}",
    name="get_artifact",
    responses={
        "200": {
            "description": "The artifact's bytes.",
            # In the table's order (a set would reorder the schema from one process to the next).
            "content": {
                media: {}
                for media in (*map(served_media_type, ARTIFACT_MEDIA_TYPES), DEFAULT_ARTIFACT_MEDIA_TYPE)
            },
        },
        **error_responses(404),
    },
)
async def get_artifact(job_id: str, path: str, request: Request, tenant: Tenant) -> StreamingResponse:
    deps = _deps(request)
    record = await load_job(deps, tenant, job_id)
    # Only paths the job lists: no traversal, no guessing at other objects under the prefix.
    if not valid_artifact_path(path) or path not in record.artifacts:
        raise ApiError(404, "artifact_not_found", f"job {job_id!r} has no artifact {path!r}")
    key = object_key(tenant.tenant_id, job_id, path)
    chunks = deps.store.iter_object(tenant.artifacts_bucket, key, 1 << 16)
    try:
        # Read the first chunk here, so a missing object or a dead store is a clean 404/503.
        first = await anext(chunks, b"")
    except ObjectNotFoundError:
        await chunks.aclose()  # type: ignore[attr-defined]
        raise ApiError(404, "artifact_not_found", f"artifact {path!r} of job {job_id!r} is gone") from None
    except Exception as exc:
        await chunks.aclose()  # type: ignore[attr-defined]
        raise unavailable("object storage is unavailable", "storage_unavailable") from exc

    async def body() -> AsyncIterator[bytes]:
        try:
            if first:
                yield first
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]

    media_type = served_media_type(path)
    filename = path.rsplit("/", 1)[-1]
    return StreamingResponse(
        body(),
        media_type=media_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{_quote(filename)}",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


@router.delete("/v1/jobs/{job_id}", responses={200: {"model": JobView}, **error_responses(404, 409)})
async def cancel_job(job_id: str, request: Request, tenant: Tenant) -> JSONResponse:
    deps = _deps(request)
    record = await load_job(deps, tenant, job_id)
    if record.status is not JobStatus.QUEUED:
        raise ApiError(
            409,
            "not_cancellable",
            f"job {job_id!r} is {record.status.value}; only queued jobs can be cancelled",
        )
    try:
        record = await deps.jobs.transition(job_id, JobStatus.CANCELLED)
    except InvalidTransitionError:
        current = await load_job(deps, tenant, job_id)
        raise ApiError(
            409,
            "not_cancellable",
            f"job {job_id!r} is {current.status.value}; only queued jobs can be cancelled",
        ) from None
    except JobNotFoundError:
        raise not_found(job_id) from None
    except Exception as exc:
        log.warning("job store unavailable: %s", exc)
        raise unavailable("the job store is unavailable") from exc
    if deps.metrics is not None:
        tier, status = record.tier.value, record.status.value
        deps.metrics.observe_job_end(tier, status, record.created_at, record.finished_at)
    # The job will never run (a worker that gets its message sees it cancelled and skips it):
    # its staged file is no longer needed.
    assert deps.sweeper is not None
    await deps.sweeper.discard_object(
        tenant.files_bucket, object_key(tenant.tenant_id, job_id, record.file_name)
    )
    return JSONResponse(job_view(request, record))
