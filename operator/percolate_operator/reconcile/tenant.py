"""Tenant: API key Secret, dedicated ParsePools, buckets, the TENANTS registry entry, status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from percolate_operator import builders, models
from percolate_operator.clients.jetstream import NatsUnavailable
from percolate_operator.clients.kube import PARSEPOOLS, SECRETS, KubeError, secret_value
from percolate_operator.reconcile.common import (
    conditions,
    invalid,
    kube_error,
    not_ready,
    set_status,
    temporary,
)
from percolate_operator.reconcile.runtime import Runtime
from percolate_reading.contract.jobs import StorageStrategy
from percolate_reading.contract.subjects import Tier
from percolate_reading.contract.tenancy import generate_api_key, hash_api_key
from percolate_reading.errors import StorageError

# A Secret we depend on but do not own (webhook secret, a user-supplied API key) may be
# created after the Tenant: look again after this long.
MISSING_SECRET_DELAY_S = 30.0


async def reconcile_tenant(
    rt: Runtime,
    *,
    name: str,
    body: Any,
    meta: Mapping[str, Any],
    spec: Mapping[str, Any],
    status: Mapping[str, Any] | None,
    patch: kopf.Patch,
    drift: bool,
) -> None:
    settings = rt.settings
    ns = settings.tenant_namespace
    try:
        tenant = models.parse_tenant_spec(dict(spec))
        models.check_tenant_name(name, tenant)
    except (ValidationError, ValueError) as exc:
        raise invalid(body, patch, status, exc) from exc
    previous = conditions(status)
    owner = builders.owner_reference(models.API_VERSION, "Tenant", name, str(meta.get("uid", "")))
    secret_name = builders.api_key_secret_name(name, tenant)
    missing_delay = min(MISSING_SECRET_DELAY_S, settings.drift_interval_s)
    try:
        # 1. The API key: generated once into a Secret; only its hash goes anywhere else.
        secret = await rt.kube.get(SECRETS, ns, secret_name)
        if secret is None:
            api_key = generate_api_key()
            await rt.kube.create(
                SECRETS, builders.build_api_key_secret(name, ns, secret_name, api_key, owner)
            )
            kopf.info(body, reason="ApiKeyGenerated", message=f"Secret {ns}/{secret_name}")
        else:
            found = secret_value(secret, builders.API_KEY_SECRET_KEY)
            if not found:
                message = f"Secret {ns}/{secret_name} has no {builders.API_KEY_SECRET_KEY!r} key"
                raise not_ready(body, patch, status, "ApiKeyMissing", message, missing_delay, "ApiKeyReady")
            api_key = found
        webhook_secret = None
        if tenant.webhook_secret_ref is not None:
            ref = tenant.webhook_secret_ref
            webhook = await rt.kube.get(SECRETS, ns, ref.name)
            webhook_secret = secret_value(webhook, ref.key) if webhook is not None else None
            if webhook_secret is None:
                message = f"webhook Secret {ns}/{ref.name} (key {ref.key!r}) not found"
                raise not_ready(body, patch, status, "WebhookSecretMissing", message, missing_delay)

        # 2. Dedicated pools: created and owned; pools for tiers no longer listed are removed.
        pool_names = []
        for pool in tenant.dedicated_pools:
            manifest = builders.build_dedicated_pool(name, ns, pool, owner)
            outcome, _ = await rt.kube.ensure(PARSEPOOLS, manifest)
            pool_names.append(manifest["metadata"]["name"])
            if outcome != "unchanged":
                reason = (
                    "PoolCreated" if outcome == "created" else ("PoolRestored" if drift else "PoolUpdated")
                )
                kopf.info(body, reason=reason, message=f"ParsePool {ns}/{manifest['metadata']['name']}")
        await _remove_dropped_pools(rt, body, name, tenant, status)
    except KubeError as exc:
        kopf.warn(body, reason="ApplyFailed", message=str(exc))
        raise kube_error(exc, settings.nats_retry_delay_s) from exc

    # 3. The registry entry gateways read (after the pools, so routing never names a subject
    #    without a consumer behind it).
    record = builders.build_tenant_record(name, tenant, [hash_api_key(api_key)], webhook_secret)
    key, value = builders.registry_entry(record)
    try:
        changed = await rt.js.put_tenant(key, value)
    except NatsUnavailable as exc:
        raise not_ready(
            body, patch, status, "NatsUnavailable", str(exc), settings.nats_retry_delay_s, "RegistryReady"
        ) from exc
    if changed:
        kopf.info(body, reason="RegistryRestored" if drift else "RegistryUpdated", message=f"TENANTS/{key}")

    cond = builders.condition
    children = [
        cond("ApiKeyReady", True, "Exists", f"Secret {ns}/{secret_name}", previous),
        cond("RegistryReady", True, "Written", f"TENANTS/{key}", previous),
        cond("PoolsReady", True, "Applied", ", ".join(pool_names) or "no dedicated pools", previous),
        await _storage_condition(rt, body, name, tenant, previous),
    ]
    set_status(
        patch,
        status,
        {
            "observedGeneration": meta.get("generation"),
            "tiers": ",".join(t.value for t in tenant.allowed_tiers),
            "pools": len(pool_names),
            "apiKeySecret": f"{ns}/{secret_name}",
            "conditions": [builders.ready_condition(children, previous), *children],
        },
    )


async def _remove_dropped_pools(
    rt: Runtime, body: Any, name: str, tenant: models.TenantSpec, status: Mapping[str, Any] | None
) -> None:
    ns = rt.settings.tenant_namespace
    wanted = {p.tier for p in tenant.dedicated_pools}
    # Look for pools to remove only if the tenant had some (status.pools): a Tenant
    # without dedicated pools then costs one Secret read per reconcile, not four reads.
    if int((status or {}).get("pools") or 0) <= len(wanted):
        return
    for tier in Tier:
        if tier in wanted:
            continue
        pool_name = builders.dedicated_pool_name(name, tier)
        existing = await rt.kube.get(PARSEPOOLS, ns, pool_name)
        owners = (existing or {}).get("metadata", {}).get("ownerReferences") or []
        if existing is not None and any(o.get("kind") == "Tenant" and o.get("name") == name for o in owners):
            await rt.kube.delete(PARSEPOOLS, ns, pool_name)
            kopf.info(body, reason="PoolDeleted", message=f"ParsePool {ns}/{pool_name}")


async def _storage_condition(
    rt: Runtime, body: Any, name: str, tenant: models.TenantSpec, previous: list[Mapping[str, Any]]
) -> dict[str, Any]:
    buckets = list(builders.tenant_buckets(name, tenant))
    if tenant.storage.strategy != StorageStrategy.TENANT:
        return builders.condition(
            "StorageReady", True, "SharedPrefix", f"prefix {name}/ in {buckets[0]}", previous
        )
    listed = ", ".join(buckets)
    try:
        created = await rt.buckets.ensure_buckets(buckets)
    except StorageError as exc:
        kopf.warn(body, reason="StorageFailed", message=str(exc))
        raise kopf.TemporaryError(str(exc), delay=rt.settings.nats_retry_delay_s) from exc
    if created:
        return builders.condition("StorageReady", True, "BucketsReady", listed, previous)
    # No S3 credentials given to the operator: the platform's bucket job creates them.
    return builders.condition(
        "StorageReady", True, "BucketsExternal", f"{listed} (not created here)", previous
    )


async def delete_tenant(rt: Runtime, *, name: str, body: Any) -> None:
    try:
        await rt.js.delete_tenant(name)
    except NatsUnavailable as exc:
        # Keep the finalizer: a registry entry left behind would keep the API key valid.
        raise temporary(exc, rt.settings.nats_retry_delay_s) from exc
    kopf.info(body, reason="RegistryDeleted", message=f"TENANTS/{name}")
