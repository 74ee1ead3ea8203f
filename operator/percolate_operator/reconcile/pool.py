"""ParsePool: JetStream consumer, worker Deployment, KEDA ScaledObject, status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from percolate_operator import builders, models
from percolate_operator.clients.jetstream import ConsumerConflict, NatsUnavailable
from percolate_operator.clients.kube import DEPLOYMENTS, SCALED_OBJECTS, TENANTS, KubeError
from percolate_operator.reconcile.common import (
    conditions,
    invalid,
    kube_error,
    not_ready,
    set_status,
    temporary,
)
from percolate_operator.reconcile.runtime import Runtime
from percolate_reading.contract.subjects import STREAM_NAME


class TenantNotAllowed(Exception):
    """A pool outside the tenant namespace, not owned by the Tenant, names a tenant."""


async def check_tenant_claim(rt: Runtime, namespace: str, meta: Mapping[str, Any], tenant: str) -> None:
    """Only the operator's tenant namespace, or a pool the Tenant itself owns, may consume a
    tenant's subject: anyone who can create a ParsePool elsewhere must not read its jobs."""
    if namespace == rt.settings.tenant_namespace:
        return
    for ref in meta.get("ownerReferences") or []:
        if (
            ref.get("kind") == "Tenant"
            and ref.get("apiVersion") == models.API_VERSION
            and ref.get("name") == tenant
        ):
            owner = await rt.kube.get(TENANTS, None, tenant)
            if owner is not None and owner.get("metadata", {}).get("uid") == ref.get("uid"):
                return
    raise TenantNotAllowed(
        f"tenant {tenant!r} may only be named by ParsePools in namespace "
        f"{rt.settings.tenant_namespace!r} or owned by Tenant {tenant}"
    )


async def reconcile_pool(
    rt: Runtime,
    *,
    name: str,
    namespace: str,
    body: Any,
    meta: Mapping[str, Any],
    spec: Mapping[str, Any],
    status: Mapping[str, Any] | None,
    patch: kopf.Patch,
    drift: bool,
) -> None:
    settings = rt.settings
    try:
        pool = models.parse_pool_spec(dict(spec))
        models.check_pool_name(name)
    except (ValidationError, ValueError) as exc:
        raise invalid(body, patch, status, exc) from exc
    if pool.tenant is not None:
        try:
            await check_tenant_claim(rt, namespace, meta, pool.tenant)
        except TenantNotAllowed as exc:
            raise invalid(body, patch, status, exc, reason="TenantNotAllowed") from exc
        except KubeError as exc:
            raise kube_error(exc, settings.nats_retry_delay_s) from exc
    previous = conditions(status)
    owner = builders.owner_reference(models.API_VERSION, "ParsePool", name, str(meta.get("uid", "")))
    verb = "Restored" if drift else "Applied"

    # 1. JetStream first: KEDA must never see a ScaledObject whose consumer does not exist.
    consumer_cfg = builders.consumer_config(namespace, name, pool)
    try:
        await rt.js.ensure_topology(builders.topology_limits(settings))
        outcome = await rt.js.ensure_consumer(STREAM_NAME, consumer_cfg)
    except NatsUnavailable as exc:
        raise not_ready(
            body, patch, status, "NatsUnavailable", str(exc), settings.nats_retry_delay_s, "ConsumerReady"
        ) from exc
    except ConsumerConflict as exc:
        raise invalid(body, patch, status, exc) from exc
    if outcome != "unchanged":
        what = {"created": "Created", "updated": "Restored" if drift else "Updated"}[outcome]
        kopf.info(
            body,
            reason=f"Consumer{what}",
            message=f"{consumer_cfg.durable_name} on {consumer_cfg.filter_subject}",
        )

    # 2. Kubernetes children (owned: garbage-collected with the pool).
    deployment = builders.build_deployment(name, namespace, pool, settings, owner)
    scaled_object = builders.build_scaled_object(name, namespace, pool, settings, owner)
    try:
        dep_outcome, dep_current = await rt.kube.ensure(
            DEPLOYMENTS, deployment, on_create={"spec": {"replicas": builders.initial_replicas(pool)}}
        )
        so_outcome, so_current = await rt.kube.ensure(SCALED_OBJECTS, scaled_object)
    except KubeError as exc:
        # Visible in `kubectl get parsepools` (e.g. KEDA not installed: no ScaledObject kind).
        if exc.temporary:
            delay = max(settings.nats_retry_delay_s, exc.retry_after or 0.0)
            raise not_ready(body, patch, status, "ApplyFailed", str(exc), delay) from exc
        raise invalid(body, patch, status, exc, reason="ApplyFailed") from exc
    for kind, result, child in (
        ("Deployment", dep_outcome, deployment),
        ("ScaledObject", so_outcome, scaled_object),
    ):
        if result == "created":
            kopf.info(body, reason=f"{kind}Created", message=child["metadata"]["name"])
        elif result == "updated":
            kopf.info(body, reason=f"{kind}{verb}", message=child["metadata"]["name"])

    # 3. Status: one condition per child, Ready over all of them.
    try:
        pending = await rt.js.consumer_pending(STREAM_NAME, builders.pool_consumer(pool))
    except NatsUnavailable:
        pending = None
    consumer_cond = builders.condition(
        "ConsumerReady",
        pending is not None,
        "Exists" if pending is not None else "Missing",
        f"{consumer_cfg.durable_name} filters {consumer_cfg.filter_subject}",
        previous,
    )
    children = [
        builders.deployment_condition(dep_current, previous),
        builders.scaled_object_condition(so_current, previous),
        builders.scaling_condition(so_current, previous),
        consumer_cond,
    ]
    replicas, ready_replicas = builders.deployment_replicas(dep_current)
    waiting, in_flight = pending or (0, 0)
    set_status(
        patch,
        status,
        {
            "observedGeneration": meta.get("generation"),
            "subject": consumer_cfg.filter_subject,
            "consumer": consumer_cfg.durable_name,
            "deployment": deployment["metadata"]["name"],
            "replicas": replicas,
            "readyReplicas": ready_replicas,
            # What KEDA scales on: waiting plus delivered-but-unacknowledged.
            "pending": waiting + in_flight,
            "waiting": waiting,
            "inFlight": in_flight,
            "conditions": [builders.ready_condition(children, previous), *children],
        },
    )


async def delete_pool(rt: Runtime, *, name: str, namespace: str, body: Any, spec: Mapping[str, Any]) -> None:
    try:
        pool = models.parse_pool_spec(dict(spec))
    except (ValidationError, ValueError):
        return  # an invalid pool never got a consumer
    consumer = builders.pool_consumer(pool)
    try:
        deleted = await rt.js.delete_consumer(STREAM_NAME, consumer, owner=f"{namespace}/{name}")
    except NatsUnavailable as exc:
        # Keep the finalizer: a consumer left behind would hold the subject forever.
        raise temporary(exc, rt.settings.nats_retry_delay_s) from exc
    if deleted:
        kopf.info(body, reason="ConsumerDeleted", message=consumer)
