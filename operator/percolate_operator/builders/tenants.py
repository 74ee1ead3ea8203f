"""A Tenant's API key Secret, dedicated ParsePools, buckets and registry record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from percolate_operator.builders.naming import (
    API_KEY_SECRET_KEY,
    MANAGED_BY,
    Manifest,
    dedicated_pool_name,
)
from percolate_operator.models import API_VERSION, PoolSettings, TenantSpec
from percolate_reading.config import ARTIFACTS_BUCKET, CONTEXT_BUCKET, FILES_BUCKET
from percolate_reading.contract.jobs import StorageStrategy
from percolate_reading.contract.subjects import job_subject
from percolate_reading.contract.tenancy import Quotas, TenantRecord


def api_key_secret_name(tenant_name: str, spec: TenantSpec) -> str:
    return spec.api_key_secret_name or f"{tenant_name}-api-key"


def build_api_key_secret(
    tenant_name: str, namespace: str, secret_name: str, api_key: str, owner: Mapping[str, Any] | None
) -> Manifest:
    metadata: dict[str, Any] = {
        "name": secret_name,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, "percolate.dev/tenant": tenant_name},
    }
    if owner is not None:
        metadata["ownerReferences"] = [dict(owner)]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "stringData": {API_KEY_SECRET_KEY: api_key},
    }


def build_dedicated_pool(
    tenant_name: str, namespace: str, pool: PoolSettings, owner: Mapping[str, Any] | None
) -> Manifest:
    spec = pool.model_dump(by_alias=True, exclude_none=True, mode="json")
    spec["tenant"] = tenant_name
    metadata: dict[str, Any] = {
        "name": dedicated_pool_name(tenant_name, pool.tier),
        "namespace": namespace,
        "labels": {
            "app.kubernetes.io/managed-by": MANAGED_BY,
            "percolate.dev/tenant": tenant_name,
            "percolate.dev/tier": pool.tier.value,
        },
    }
    if owner is not None:
        metadata["ownerReferences"] = [dict(owner)]
    return {"apiVersion": API_VERSION, "kind": "ParsePool", "metadata": metadata, "spec": spec}


def tenant_buckets(tenant_name: str, spec: TenantSpec) -> tuple[str, str, str]:
    """(files, artifacts, context) buckets; shared tenants use prefixes in the platform buckets."""
    if spec.storage.strategy == StorageStrategy.TENANT:
        return (
            f"{FILES_BUCKET}-{tenant_name}",
            f"{ARTIFACTS_BUCKET}-{tenant_name}",
            f"{CONTEXT_BUCKET}-{tenant_name}",
        )
    return (FILES_BUCKET, ARTIFACTS_BUCKET, CONTEXT_BUCKET)


def build_tenant_record(
    tenant_name: str, spec: TenantSpec, key_hashes: Sequence[str], webhook_secret: str | None
) -> TenantRecord:
    files, artifacts, context = tenant_buckets(tenant_name, spec)
    return TenantRecord(
        tenant_id=tenant_name,
        display_name=spec.display_name or tenant_name,
        api_key_hashes=tuple(key_hashes),
        storage_strategy=spec.storage.strategy,
        files_bucket=files,
        artifacts_bucket=artifacts,
        context_bucket=context,
        quotas=Quotas(
            max_file_bytes=spec.quotas.max_file_megabytes * 1024 * 1024,
            max_active_jobs=spec.quotas.max_active_jobs,
            retention_days=spec.quotas.retention_days,
        ),
        allowed_tiers=spec.allowed_tiers,
        dedicated_subjects={p.tier: job_subject(p.tier, tenant_name) for p in spec.dedicated_pools},
        webhook_secret=webhook_secret,
    )


def registry_entry(record: TenantRecord) -> tuple[str, bytes]:
    """(key, value) of the tenant in the TENANTS key-value bucket."""
    return record.tenant_id, record.model_dump_json().encode()
