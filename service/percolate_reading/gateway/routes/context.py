"""GET /v1/context: the tenant's corpus manifest (documents, artifact URIs, metadata, chunks)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from percolate_reading.gateway.api_errors import error_responses, unavailable
from percolate_reading.gateway.auth import Tenant
from percolate_reading.gateway.deps import GatewayDeps
from percolate_reading.gateway.schemas import Context
from percolate_reading.infra.context import read_context

log = logging.getLogger(__name__)
router = APIRouter(tags=["context"], responses=error_responses(401, 422, 503))


@router.get("/v1/context", responses={200: {"model": Context}})
async def get_context(
    request: Request, tenant: Tenant, include_chunks: bool = Query(False, description="inline every chunk")
) -> JSONResponse:
    """The tenant's documents, newest first, in one read (with `include_chunks`, their chunks)."""
    deps: GatewayDeps = request.app.state.deps
    try:
        context = await read_context(
            deps.store, tenant.tenant_id, tenant.context_bucket, include_chunks=include_chunks
        )
    except Exception as exc:
        log.warning("context of %s unreadable: %s", tenant.tenant_id, exc)
        raise unavailable("object storage is unavailable", "storage_unavailable") from exc
    return JSONResponse(context)
