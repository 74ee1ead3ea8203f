"""Bearer API key authentication. The tenant comes from the key, never from the request body."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from percolate_reading.contract.tenancy import TenantRecord
from percolate_reading.gateway.api_errors import ApiError
from percolate_reading.infra.registry import TenantRegistry

MAX_KEY_CHARS = 512


def api_key_from_header(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_KEY_CHARS:
        return None
    return token


def authenticate(registry: TenantRegistry, authorization: str | None) -> TenantRecord:
    """The key's tenant, or a 401. The key itself is never logged or echoed."""
    key = api_key_from_header(authorization)
    if key is None:
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <api key>'")
    tenant = registry.authenticate(key)
    if tenant is None:
        raise ApiError(401, "unauthorized", "the API key is not valid")
    return tenant


async def require_tenant(request: Request) -> TenantRecord:
    """FastAPI dependency: the calling tenant."""
    registry: TenantRegistry = request.app.state.deps.registry
    tenant = authenticate(registry, request.headers.get("authorization"))
    request.state.tenant_id = tenant.tenant_id
    return tenant


# Route parameter type: `tenant: Tenant`.
Tenant = Annotated[TenantRecord, Depends(require_tenant)]
