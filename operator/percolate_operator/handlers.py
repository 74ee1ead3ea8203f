"""kopf handlers: decorators that hand each ParsePool/Tenant event to a reconcile step.

`register(registry, settings)` attaches every handler to a registry, so an operator process (or
a test, or the benchmark) runs with its own settings and no module-level state.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from percolate_operator import models
from percolate_operator.reconcile.common import Event, check_immutable
from percolate_operator.reconcile.pool import delete_pool, reconcile_pool
from percolate_operator.reconcile.runtime import Runtime, connection_info, pooled_session
from percolate_operator.reconcile.tenant import delete_tenant, reconcile_tenant
from percolate_operator.settings import OperatorSettings

FINALIZER = "percolate.dev/cleanup"
ANNOTATION_PREFIX = "percolate.dev"
Logger = logging.Logger | logging.LoggerAdapter[Any]

__all__ = ["FINALIZER", "Runtime", "register"]


def configure(settings: kopf.OperatorSettings) -> None:
    # Progress and the last-handled spec go to annotations: the status schema is declared,
    # so the API server would prune kopf's default `status.kopf` field.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER
    # One replica with a Recreate strategy: no peering objects, so no peering RBAC.
    settings.peering.standalone = True
    # Restart watches every 10 minutes: load balancers drop idle streams silently.
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 630
    settings.networking.request_timeout = 30
    # Only our explicit events (one per action or failure), not every log line.
    settings.posting.loggers = False


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> Runtime:
    """Attach every handler to `registry`; the returned Runtime is opened at startup."""
    rt = Runtime(settings)
    pools = (models.GROUP, models.VERSION, "parsepools")
    tenants = (models.GROUP, models.VERSION, "tenants")
    interval, initial_delay = settings.drift_interval_s, settings.drift_initial_delay_s

    @kopf.on.startup(registry=registry)
    async def startup(*, settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings)
        rt.open_kube()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await rt.close()

    @kopf.on.login(registry=registry)
    async def login(*, logger: Logger, **_: Any) -> kopf.AiohttpSession:
        # Async: the session must belong to the operator's event loop.
        info = connection_info(rt.settings, logger)
        return pooled_session(info, rt.settings.kube_max_connections)

    @kopf.on.probe(id="nats", registry=registry)
    def nats_probe(**_: Any) -> bool:
        # Reported on the liveness endpoint, never failing it: NATS outages are retried.
        return rt.js.connected

    # ParsePool ------------------------------------------------------------------------
    @kopf.on.resume(*pools, registry=registry)
    @kopf.on.create(*pools, registry=registry)
    @kopf.on.update(*pools, registry=registry)
    async def pool_changed(*, namespace: str | None, old: Any = None, **kw: Any) -> None:
        event = Event.from_kopf(kw, drift=False)
        check_immutable(event, old, "ParsePool")
        await reconcile_pool(rt, event, namespace or "default")

    @kopf.timer(*pools, registry=registry, interval=interval, initial_delay=initial_delay)
    async def pool_drift(*, namespace: str | None, **kw: Any) -> None:
        await reconcile_pool(rt, Event.from_kopf(kw, drift=True), namespace or "default")

    @kopf.on.delete(*pools, registry=registry)
    async def pool_deleted(
        *, name: str, namespace: str | None, body: kopf.Body, spec: kopf.Spec, **_: Any
    ) -> None:
        await delete_pool(rt, name=name, namespace=namespace or "default", body=body, spec=spec)

    # Tenant ---------------------------------------------------------------------------
    @kopf.on.resume(*tenants, registry=registry)
    @kopf.on.create(*tenants, registry=registry)
    @kopf.on.update(*tenants, registry=registry)
    async def tenant_changed(*, old: Any = None, **kw: Any) -> None:
        event = Event.from_kopf(kw, drift=False)
        check_immutable(event, old, "Tenant")
        await reconcile_tenant(rt, event)

    @kopf.timer(*tenants, registry=registry, interval=interval, initial_delay=initial_delay)
    async def tenant_drift(**kw: Any) -> None:
        await reconcile_tenant(rt, Event.from_kopf(kw, drift=True))

    @kopf.on.delete(*tenants, registry=registry)
    async def tenant_deleted(*, name: str, body: kopf.Body, **_: Any) -> None:
        await delete_tenant(rt, name=name, body=body)

    return rt
