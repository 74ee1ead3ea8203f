"""ParsePool: JetStream consumer, worker Deployment, KEDA ScaledObject, status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf
from nats.js.api import ConsumerConfig
from pydantic import ValidationError

from percolate_operator import builders, models
from percolate_operator.clients.jetstream import ConsumerConflict, NatsUnavailable
from percolate_operator.clients.kube import DEPLOYMENTS, SCALED_OBJECTS, TENANTS, KubeError
from percolate_operator.reconcile.common import Event, kube_error, temporary
from percolate_operator.reconcile.runtime import Runtime
from percolate_reading.contract.subjects import STREAM_NAME, pool_consumers


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


async def reconcile_pool(rt: Runtime, event: Event, namespace: str) -> None:
    pool = await _parse_pool(rt, event, namespace)
    # 1. JetStream first: KEDA must never see a ScaledObject whose consumer does not exist.
    consumer_cfg = await _apply_consumer(rt, event, namespace, pool)
    # 2. Kubernetes children (owned: garbage-collected with the pool).
    deployment, scaled_object = await _apply_children(rt, event, namespace, pool)
    # 3. Status: one condition per child, Ready over all of them.
    await _publish_status(rt, event, pool, consumer_cfg, deployment, scaled_object)


async def _parse_pool(rt: Runtime, event: Event, namespace: str) -> models.ParsePoolSpec:
    try:
        pool = models.parse_pool_spec(dict(event.spec))
        models.check_pool_name(event.name)
    except (ValidationError, ValueError) as exc:
        raise event.invalid(exc) from exc
    if pool.tenant is not None:
        try:
            await check_tenant_claim(rt, namespace, event.meta, pool.tenant)
        except TenantNotAllowed as exc:
            raise event.invalid(exc, reason="TenantNotAllowed") from exc
        except KubeError as exc:
            raise kube_error(exc, rt.settings.nats_retry_delay_s) from exc
    return pool


async def _apply_consumer(
    rt: Runtime, event: Event, namespace: str, pool: models.ParsePoolSpec
) -> ConsumerConfig:
    consumer_cfg = builders.consumer_config(namespace, event.name, pool)
    try:
        await rt.js.ensure_topology(builders.topology_limits(rt.settings))
        outcome = await rt.js.ensure_consumer(STREAM_NAME, consumer_cfg)
    except NatsUnavailable as exc:
        delay = rt.settings.nats_retry_delay_s
        raise event.not_ready("NatsUnavailable", str(exc), delay, "ConsumerReady") from exc
    except ConsumerConflict as exc:
        raise event.invalid(exc) from exc
    event.announce(outcome, "Consumer", f"{consumer_cfg.durable_name} on {consumer_cfg.filter_subject}")
    return consumer_cfg


async def _apply_children(
    rt: Runtime, event: Event, namespace: str, pool: models.ParsePoolSpec
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The worker Deployment and its ScaledObject, as the API server now holds them."""
    owner = event.owner("ParsePool")
    deployment = builders.build_deployment(event.name, namespace, pool, rt.settings, owner)
    scaled_object = builders.build_scaled_object(event.name, namespace, pool, rt.settings, owner)
    try:
        dep_outcome, dep_current = await rt.kube.ensure(
            DEPLOYMENTS, deployment, on_create={"spec": {"replicas": builders.initial_replicas(pool)}}
        )
        so_outcome, so_current = await rt.kube.ensure(SCALED_OBJECTS, scaled_object)
    except KubeError as exc:
        # Visible in `kubectl get parsepools` (e.g. KEDA not installed: no ScaledObject kind).
        if exc.temporary:
            delay = max(rt.settings.nats_retry_delay_s, exc.retry_after or 0.0)
            raise event.not_ready("ApplyFailed", str(exc), delay) from exc
        raise event.invalid(exc, reason="ApplyFailed") from exc
    event.announce(dep_outcome, "Deployment", deployment["metadata"]["name"], updated="Applied")
    event.announce(so_outcome, "ScaledObject", scaled_object["metadata"]["name"], updated="Applied")
    return dep_current, so_current


async def _publish_status(
    rt: Runtime,
    event: Event,
    pool: models.ParsePoolSpec,
    consumer_cfg: ConsumerConfig,
    deployment: dict[str, Any],
    scaled_object: dict[str, Any],
) -> None:
    try:
        pending = await rt.js.consumer_pending(STREAM_NAME, builders.pool_consumer(pool))
    except NatsUnavailable:
        pending = None
    previous = event.previous
    children = [
        builders.deployment_condition(deployment, previous),
        builders.scaled_object_condition(scaled_object, previous),
        builders.scaling_condition(scaled_object, previous),
        event.condition(
            "ConsumerReady",
            pending is not None,
            "Exists" if pending is not None else "Missing",
            f"{consumer_cfg.durable_name} filters {consumer_cfg.filter_subject}",
        ),
    ]
    replicas, ready_replicas = builders.deployment_replicas(deployment)
    waiting, in_flight = pending or (0, 0)
    fields = {
        "subject": consumer_cfg.filter_subject,
        "consumer": consumer_cfg.durable_name,
        "deployment": builders.deployment_name(event.name),
        "replicas": replicas,
        "readyReplicas": ready_replicas,
        # What KEDA scales on: waiting plus delivered-but-unacknowledged.
        "pending": waiting + in_flight,
        "waiting": waiting,
        "inFlight": in_flight,
    }
    event.publish_status(fields, children)


async def delete_pool(rt: Runtime, *, name: str, namespace: str, body: Any, spec: Mapping[str, Any]) -> None:
    try:
        pool = models.parse_pool_spec(dict(spec))
    except (ValidationError, ValueError):
        return  # an invalid pool never got a consumer
    # The workers' consumers too (fair lane, stranded jobs): left behind, they would keep a
    # deleted pool's fair-lane jobs and advisories waiting on consumers nobody reads.
    consumers = pool_consumers(builders.pool_subject(pool), builders.pool_consumer(pool))
    try:
        deleted = await rt.js.delete_pool_consumers(consumers, owner=f"{namespace}/{name}")
    except NatsUnavailable as exc:
        # Keep the finalizer: a consumer left behind would hold the subject forever.
        raise temporary(exc, rt.settings.nats_retry_delay_s) from exc
    if deleted:
        kopf.info(body, reason="ConsumerDeleted", message=", ".join(deleted))
