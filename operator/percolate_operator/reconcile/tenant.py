"""Tenant: API key Secret, dedicated ParsePools, buckets, the TENANTS registry entry, status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from percolate_operator import builders, models
from percolate_operator.clients.jetstream import NatsUnavailable
from percolate_operator.clients.kube import PARSEPOOLS, SECRETS, KubeError, secret_value
from percolate_operator.reconcile.common import Event, kube_error, temporary
from percolate_operator.reconcile.runtime import Runtime
from percolate_reading.contract.jobs import StorageStrategy
from percolate_reading.contract.subjects import Tier
from percolate_reading.contract.tenancy import TenantRecord, generate_api_key, hash_api_key
from percolate_reading.errors import StorageError

# A Secret we depend on but do not own (webhook secret, a user-supplied API key) may be
# created after the Tenant: look again after this long.
MISSING_SECRET_DELAY_S = 30.0


async def reconcile_tenant(rt: Runtime, event: Event) -> None:
    tenant = _parse_tenant(event)
    try:
        # 1. The API key: generated once into a Secret; only its hash goes anywhere else.
        api_key = await _api_key(rt, event, tenant)
        webhook_secret = await _webhook_secret(rt, event, tenant)
        # 2. Dedicated pools: created and owned; pools for tiers no longer listed are removed.
        pool_names = await _apply_pools(rt, event, tenant)
        await _remove_dropped_pools(rt, event.body, event.name, tenant, event.status)
    except KubeError as exc:
        kopf.warn(event.body, reason="ApplyFailed", message=str(exc))
        raise kube_error(exc, rt.settings.nats_retry_delay_s) from exc
    # 3. The registry entry gateways read (after the pools, so routing never names a subject
    #    without a consumer behind it).
    record = builders.build_tenant_record(event.name, tenant, [hash_api_key(api_key)], webhook_secret)
    registry_key = await _write_registry(rt, event, record)
    # 4. Status.
    ns, secret_name = rt.settings.tenant_namespace, builders.api_key_secret_name(event.name, tenant)
    children = [
        event.condition("ApiKeyReady", True, "Exists", f"Secret {ns}/{secret_name}"),
        event.condition("RegistryReady", True, "Written", f"TENANTS/{registry_key}"),
        event.condition("PoolsReady", True, "Applied", ", ".join(pool_names) or "no dedicated pools"),
        await _storage_condition(rt, event, tenant),
    ]
    fields = {
        "tiers": ",".join(t.value for t in tenant.allowed_tiers),
        "pools": len(pool_names),
        "apiKeySecret": f"{ns}/{secret_name}",
    }
    event.publish_status(fields, children)


def _parse_tenant(event: Event) -> models.TenantSpec:
    try:
        tenant = models.parse_tenant_spec(dict(event.spec))
        models.check_tenant_name(event.name, tenant)
    except (ValidationError, ValueError) as exc:
        raise event.invalid(exc) from exc
    return tenant


def _missing_secret_delay(rt: Runtime) -> float:
    return min(MISSING_SECRET_DELAY_S, rt.settings.drift_interval_s)


async def _api_key(rt: Runtime, event: Event, tenant: models.TenantSpec) -> str:
    """The tenant's API key: read from its Secret, or generated into a new one."""
    ns, secret_name = rt.settings.tenant_namespace, builders.api_key_secret_name(event.name, tenant)
    secret = await rt.kube.get(SECRETS, ns, secret_name)
    if secret is None:
        api_key = generate_api_key()
        manifest = builders.build_api_key_secret(event.name, ns, secret_name, api_key, event.owner("Tenant"))
        await rt.kube.create(SECRETS, manifest)
        kopf.info(event.body, reason="ApiKeyGenerated", message=f"Secret {ns}/{secret_name}")
        return api_key
    found = secret_value(secret, builders.API_KEY_SECRET_KEY)
    if not found:
        message = f"Secret {ns}/{secret_name} has no {builders.API_KEY_SECRET_KEY!r} key"
        raise event.not_ready("ApiKeyMissing", message, _missing_secret_delay(rt), "ApiKeyReady")
    return found


async def _webhook_secret(rt: Runtime, event: Event, tenant: models.TenantSpec) -> str | None:
    """The signing secret of the tenant's webhooks, from a Secret it names (None if it names none)."""
    ref = tenant.webhook_secret_ref
    if ref is None:
        return None
    ns = rt.settings.tenant_namespace
    webhook = await rt.kube.get(SECRETS, ns, ref.name)
    webhook_secret = secret_value(webhook, ref.key) if webhook is not None else None
    if webhook_secret is None:
        message = f"webhook Secret {ns}/{ref.name} (key {ref.key!r}) not found"
        raise event.not_ready("WebhookSecretMissing", message, _missing_secret_delay(rt))
    return webhook_secret


async def _apply_pools(rt: Runtime, event: Event, tenant: models.TenantSpec) -> list[str]:
    """The tenant's dedicated ParsePools, created or brought back to spec; their names."""
    ns, owner = rt.settings.tenant_namespace, event.owner("Tenant")
    pool_names = []
    for pool in tenant.dedicated_pools:
        manifest = builders.build_dedicated_pool(event.name, ns, pool, owner)
        outcome, _ = await rt.kube.ensure(PARSEPOOLS, manifest)
        pool_names.append(manifest["metadata"]["name"])
        event.announce(outcome, "Pool", f"ParsePool {ns}/{manifest['metadata']['name']}")
    return pool_names


async def _write_registry(rt: Runtime, event: Event, record: TenantRecord) -> str:
    """The tenant's TENANTS entry; its key."""
    key, value = builders.registry_entry(record)
    try:
        changed = await rt.js.put_tenant(key, value)
    except NatsUnavailable as exc:
        delay = rt.settings.nats_retry_delay_s
        raise event.not_ready("NatsUnavailable", str(exc), delay, "RegistryReady") from exc
    event.announce("updated" if changed else "unchanged", "Registry", f"TENANTS/{key}")
    return key


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


async def _storage_condition(rt: Runtime, event: Event, tenant: models.TenantSpec) -> dict[str, Any]:
    buckets = list(builders.tenant_buckets(event.name, tenant))
    if tenant.storage.strategy != StorageStrategy.TENANT:
        return event.condition("StorageReady", True, "SharedPrefix", f"prefix {event.name}/ in {buckets[0]}")
    listed = ", ".join(buckets)
    try:
        created = await rt.buckets.ensure_buckets(buckets)
    except StorageError as exc:
        kopf.warn(event.body, reason="StorageFailed", message=str(exc))
        raise kopf.TemporaryError(str(exc), delay=rt.settings.nats_retry_delay_s) from exc
    if created:
        return event.condition("StorageReady", True, "BucketsReady", listed)
    # No S3 credentials given to the operator: the platform's bucket job creates them.
    return event.condition("StorageReady", True, "BucketsExternal", f"{listed} (not created here)")


async def delete_tenant(rt: Runtime, *, name: str, body: Any) -> None:
    try:
        await rt.js.delete_tenant(name)
    except NatsUnavailable as exc:
        # Keep the finalizer: a registry entry left behind would keep the API key valid.
        raise temporary(exc, rt.settings.nats_retry_delay_s) from exc
    kopf.info(body, reason="RegistryDeleted", message=f"TENANTS/{name}")
