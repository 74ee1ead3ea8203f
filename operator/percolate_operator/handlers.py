"""kopf handlers: thin wiring from ParsePool/Tenant events to the builders and the I/O modules.

`register(registry, settings)` attaches every handler to a registry, so an operator process (or
a test, or the benchmark) runs with its own settings and no module-level state. Errors are
split the kopf way: `PermanentError` for specs no retry can fix (reported in status and as a
Warning event), `TemporaryError(delay=...)` for NATS or the API server being unreachable.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kopf
from pydantic import ValidationError

from percolate_operator import builders, models
from percolate_operator.jetstream import ConsumerConflict, JetStreamAdmin, NatsUnavailable
from percolate_operator.kube import (
    DEPLOYMENTS,
    PARSEPOOLS,
    SCALED_OBJECTS,
    SECRETS,
    SERVICE_ACCOUNT_TOKEN,
    KubeClient,
    KubeError,
    secret_value,
)
from percolate_operator.settings import OperatorSettings
from percolate_reading.contract.jobs import StorageStrategy
from percolate_reading.contract.subjects import STREAM_NAME, Tier
from percolate_reading.contract.tenancy import generate_api_key, hash_api_key
from percolate_reading.errors import StorageError
from percolate_reading.infra.storage.s3 import S3Endpoint, S3ObjectStore

GROUP, VERSION = models.GROUP, models.VERSION
FINALIZER = "percolate.dev/cleanup"
ANNOTATION_PREFIX = "percolate.dev"
# A Secret we depend on but do not own (webhook secret, a user-supplied API key) may be
# created after the Tenant: look again after this long.
MISSING_SECRET_DELAY_S = 30.0


class Runtime:
    """What the handlers share: settings and the clients (Kubernetes, NATS, S3)."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self.js = JetStreamAdmin(settings)
        self._kube: KubeClient | None = None
        self._s3: S3ObjectStore | None = None
        self._s3_lock = asyncio.Lock()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    async def ensure_buckets(self, buckets: list[str]) -> bool:
        """Create the buckets if the operator has S3 credentials; False when it has none."""
        if not self.settings.s3_endpoint:
            return False
        async with self._s3_lock:
            if self._s3 is None:
                secret = self.settings.s3_secret_key
                self._s3 = await S3ObjectStore.connect(
                    S3Endpoint(
                        endpoint=self.settings.s3_endpoint,
                        access_key=self.settings.s3_access_key,
                        secret_key=secret.get_secret_value() if secret is not None else None,
                        region=self.settings.s3_region,
                    )
                )
        await self._s3.ensure_buckets(buckets)
        return True

    @property
    def kube(self) -> KubeClient:
        if self._kube is None:
            raise kopf.TemporaryError("the Kubernetes client is not open yet", delay=1)
        return self._kube

    def open_kube(self, info: kopf.ConnectionInfo) -> None:
        cert_path = _as_str(info.certificate_path)
        key_path = _as_str(info.private_key_path)
        if info.certificate_data or info.private_key_data:
            # aiohttp's SSL context loads client certificates from files only.
            self._tmp = tempfile.TemporaryDirectory(prefix="percolate-operator-")
            if info.certificate_data:
                cert_path = _write(Path(self._tmp.name) / "client.crt", info.certificate_data)
            if info.private_key_data:
                key_path = _write(Path(self._tmp.name) / "client.key", info.private_key_data)
        ca_data = info.ca_data.encode() if isinstance(info.ca_data, str) else info.ca_data
        self._kube = KubeClient(
            info.server,
            token=info.token,
            token_path=SERVICE_ACCOUNT_TOKEN if info.token and SERVICE_ACCOUNT_TOKEN.exists() else None,
            ca_path=_as_str(info.ca_path),
            ca_data=ca_data,
            insecure=bool(info.insecure),
            certificate_path=cert_path,
            private_key_path=key_path,
            field_manager=self.settings.field_manager,
        )

    async def close(self) -> None:
        if self._s3 is not None:
            await self._s3.close()
            self._s3 = None
        if self._kube is not None:
            await self._kube.close()
            self._kube = None
        await self.js.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _as_str(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _write(path: Path, data: str | bytes) -> str:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(0o600)
    return str(path)


def connection_info(settings: OperatorSettings, logger: logging.Logger | Any) -> kopf.ConnectionInfo:
    if settings.k8s_server:
        return kopf.ConnectionInfo(server=settings.k8s_server)
    kopf_settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=kopf_settings, logger=logger)
    if info is None:
        try:
            info = kopf.login_with_kubeconfig(settings=kopf_settings, logger=logger)
        except (OSError, ValueError) as exc:  # KUBECONFIG names a missing or unreadable file
            raise kopf.PermanentError(f"no API server: kubeconfig unusable: {exc}") from exc
    if info is None:
        # Permanent: kopf would otherwise retry every 60 s forever; the process exits non-zero
        # instead, so Kubernetes shows the crash and restarts it with backoff.
        raise kopf.PermanentError(
            "no API server: set PERCOLATE_OPERATOR_K8S_SERVER, run in-cluster or provide a kubeconfig"
        )
    return info


def _temporary(exc: Exception, delay: float) -> kopf.TemporaryError:
    return kopf.TemporaryError(str(exc), delay=delay)


def _kube_error(exc: KubeError, retry_delay: float) -> kopf.TemporaryError | kopf.PermanentError:
    if exc.temporary:
        return kopf.TemporaryError(str(exc), delay=retry_delay)
    return kopf.PermanentError(str(exc))


def _conditions(status: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    return list((status or {}).get("conditions") or [])


def _invalid(
    body: Any, patch: kopf.Patch, status: Mapping[str, Any] | None, exc: Exception
) -> kopf.PermanentError:
    message = (
        str(exc)
        if not isinstance(exc, ValidationError)
        else "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
    )
    previous = _conditions(status)
    ready = builders.condition("Ready", False, "InvalidSpec", message, previous)
    # One Warning per new problem, not one per drift check of an unchanged invalid spec.
    if not any(c.get("type") == "Ready" and c.get("message") == message for c in previous):
        kopf.warn(body, reason="InvalidSpec", message=message)
    if previous != [ready]:
        patch.status["conditions"] = [ready]
    return kopf.PermanentError(f"invalid spec: {message}")


def _set_status(patch: kopf.Patch, status: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> None:
    """Patch only the status fields that changed: a drift check that finds everything in
    place then writes nothing (hundreds of objects x every interval otherwise)."""
    current = status or {}
    for key, value in desired.items():
        if current.get(key) != value:
            patch.status[key] = value


# --- ParsePool ------------------------------------------------------------------------------


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
        raise _invalid(body, patch, status, exc) from exc
    previous = _conditions(status)
    owner = builders.owner_reference(models.API_VERSION, "ParsePool", name, str(meta.get("uid", "")))
    verb = "Restored" if drift else "Applied"

    # 1. JetStream first: KEDA must never see a ScaledObject whose consumer does not exist.
    consumer_cfg = builders.consumer_config(namespace, name, pool)
    try:
        await rt.js.ensure_topology(builders.topology_limits(settings))
        outcome = await rt.js.ensure_consumer(STREAM_NAME, consumer_cfg)
    except NatsUnavailable as exc:
        patch.status["conditions"] = [
            builders.condition("ConsumerReady", False, "NatsUnavailable", str(exc), previous),
            builders.condition("Ready", False, "NatsUnavailable", str(exc), previous),
        ]
        kopf.warn(body, reason="NatsUnavailable", message=str(exc))
        raise _temporary(exc, settings.nats_retry_delay_s) from exc
    except ConsumerConflict as exc:
        raise _invalid(body, patch, status, exc) from exc
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
        kopf.warn(body, reason="ApplyFailed", message=str(exc))
        raise _kube_error(exc, settings.nats_retry_delay_s) from exc
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
        consumer_cond,
    ]
    replicas, ready_replicas = builders.deployment_replicas(dep_current)
    _set_status(
        patch,
        status,
        {
            "observedGeneration": meta.get("generation"),
            "subject": consumer_cfg.filter_subject,
            "consumer": consumer_cfg.durable_name,
            "deployment": deployment["metadata"]["name"],
            "replicas": replicas,
            "readyReplicas": ready_replicas,
            "pending": pending or 0,
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
        raise _temporary(exc, rt.settings.nats_retry_delay_s) from exc
    if deleted:
        kopf.info(body, reason="ConsumerDeleted", message=consumer)


# --- Tenant ---------------------------------------------------------------------------------


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
        raise _invalid(body, patch, status, exc) from exc
    previous = _conditions(status)
    owner = builders.owner_reference(models.API_VERSION, "Tenant", name, str(meta.get("uid", "")))
    secret_name = builders.api_key_secret_name(name, tenant)
    try:
        # 1. The API key: generated once into a Secret; only its hash goes anywhere else.
        secret = await rt.kube.get(SECRETS, ns, secret_name)
        if secret is None:
            api_key = generate_api_key()
            await rt.kube.create(
                SECRETS, ns, builders.build_api_key_secret(name, ns, secret_name, api_key, owner)
            )
            kopf.info(body, reason="ApiKeyGenerated", message=f"Secret {ns}/{secret_name}")
        else:
            found = secret_value(secret, builders.API_KEY_SECRET_KEY)
            if not found:
                message = f"Secret {ns}/{secret_name} has no {builders.API_KEY_SECRET_KEY!r} key"
                kopf.warn(body, reason="ApiKeyMissing", message=message)
                raise kopf.TemporaryError(message, delay=MISSING_SECRET_DELAY_S)
            api_key = found
        webhook_secret = None
        if tenant.webhook_secret_ref is not None:
            ref = tenant.webhook_secret_ref
            webhook = await rt.kube.get(SECRETS, ns, ref.name)
            webhook_secret = secret_value(webhook, ref.key) if webhook is not None else None
            if webhook_secret is None:
                message = f"webhook Secret {ns}/{ref.name} (key {ref.key!r}) not found"
                kopf.warn(body, reason="WebhookSecretMissing", message=message)
                raise kopf.TemporaryError(message, delay=MISSING_SECRET_DELAY_S)

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
        wanted = {p.tier for p in tenant.dedicated_pools}
        # Look for pools to remove only if the tenant had some (status.pools): a Tenant
        # without dedicated pools then costs one Secret read per reconcile, not four reads.
        had_pools = int((status or {}).get("pools") or 0) > len(wanted)
        for tier in Tier:
            if tier in wanted or not had_pools:
                continue
            pool_name = builders.dedicated_pool_name(name, tier)
            existing = await rt.kube.get(PARSEPOOLS, ns, pool_name)
            owners = (existing or {}).get("metadata", {}).get("ownerReferences") or []
            if existing is not None and any(
                o.get("kind") == "Tenant" and o.get("name") == name for o in owners
            ):
                await rt.kube.delete(PARSEPOOLS, ns, pool_name)
                kopf.info(body, reason="PoolDeleted", message=f"ParsePool {ns}/{pool_name}")
    except KubeError as exc:
        kopf.warn(body, reason="ApplyFailed", message=str(exc))
        raise _kube_error(exc, settings.nats_retry_delay_s) from exc

    # 3. The registry entry gateways read (after the pools, so routing never names a subject
    #    without a consumer behind it).
    record = builders.build_tenant_record(name, tenant, [hash_api_key(api_key)], webhook_secret)
    key, value = builders.registry_entry(record)
    try:
        changed = await rt.js.put_tenant(key, value)
    except NatsUnavailable as exc:
        patch.status["conditions"] = [
            builders.condition("RegistryReady", False, "NatsUnavailable", str(exc), previous),
            builders.condition("Ready", False, "NatsUnavailable", str(exc), previous),
        ]
        kopf.warn(body, reason="NatsUnavailable", message=str(exc))
        raise _temporary(exc, settings.nats_retry_delay_s) from exc
    if changed:
        kopf.info(body, reason="RegistryRestored" if drift else "RegistryUpdated", message=f"TENANTS/{key}")

    cond = builders.condition
    children = [
        cond("ApiKeyReady", True, "Exists", f"Secret {ns}/{secret_name}", previous),
        cond("RegistryReady", True, "Written", f"TENANTS/{key}", previous),
        cond("PoolsReady", True, "Applied", ", ".join(pool_names) or "no dedicated pools", previous),
        await _storage_condition(rt, body, name, tenant, previous),
    ]
    _set_status(
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
        created = await rt.ensure_buckets(buckets)
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
        raise _temporary(exc, rt.settings.nats_retry_delay_s) from exc
    kopf.info(body, reason="RegistryDeleted", message=f"TENANTS/{name}")


# --- wiring ---------------------------------------------------------------------------------

Logger = logging.Logger | logging.LoggerAdapter[Any]


def _check_immutable(body: Any, patch: kopf.Patch, status: Any, old: Any, spec: Any, kind: str) -> None:
    if not old or not old.get("spec"):
        return
    try:
        if kind == "ParsePool":
            changed = models.pool_immutable_changes(
                models.parse_pool_spec(dict(old["spec"])), models.parse_pool_spec(dict(spec))
            )
        else:
            changed = models.tenant_immutable_changes(
                models.parse_tenant_spec(dict(old["spec"])), models.parse_tenant_spec(dict(spec))
            )
    except (ValidationError, ValueError):
        return  # reported by the reconcile that follows
    if changed:
        raise _invalid(body, patch, status, ValueError(f"{', '.join(changed)} cannot change after creation"))


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> Runtime:
    """Attach every handler to `registry`; the returned Runtime is opened at startup."""
    rt = Runtime(settings)
    pools = (GROUP, VERSION, "parsepools")
    tenants = (GROUP, VERSION, "tenants")
    interval, initial_delay = settings.drift_interval_s, settings.drift_initial_delay_s

    @kopf.on.startup(registry=registry)
    async def startup(*, settings: kopf.OperatorSettings, logger: Logger, **_: Any) -> None:
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
        rt.open_kube(connection_info(rt.settings, logger))

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await rt.close()

    @kopf.on.login(registry=registry)
    def login(*, logger: Logger, **_: Any) -> kopf.ConnectionInfo:
        return connection_info(rt.settings, logger)

    @kopf.on.probe(id="nats", registry=registry)
    def nats_probe(**_: Any) -> bool:
        # Reported on the liveness endpoint, never failing it: NATS outages are retried.
        return rt.js.connected

    # ParsePool ------------------------------------------------------------------------
    @kopf.on.resume(*pools, registry=registry)
    @kopf.on.create(*pools, registry=registry)
    @kopf.on.update(*pools, registry=registry)
    async def pool_changed(
        *,
        name: str,
        namespace: str | None,
        body: kopf.Body,
        meta: kopf.Meta,
        spec: kopf.Spec,
        status: kopf.Status,
        patch: kopf.Patch,
        old: Any = None,
        **_: Any,
    ) -> None:
        _check_immutable(body, patch, status, old, spec, "ParsePool")
        await reconcile_pool(
            rt,
            name=name,
            namespace=namespace or "default",
            body=body,
            meta=meta,
            spec=spec,
            status=status,
            patch=patch,
            drift=False,
        )

    @kopf.timer(*pools, registry=registry, interval=interval, initial_delay=initial_delay)
    async def pool_drift(
        *,
        name: str,
        namespace: str | None,
        body: kopf.Body,
        meta: kopf.Meta,
        spec: kopf.Spec,
        status: kopf.Status,
        patch: kopf.Patch,
        **_: Any,
    ) -> None:
        await reconcile_pool(
            rt,
            name=name,
            namespace=namespace or "default",
            body=body,
            meta=meta,
            spec=spec,
            status=status,
            patch=patch,
            drift=True,
        )

    @kopf.on.delete(*pools, registry=registry)
    async def pool_deleted(
        *, name: str, namespace: str | None, body: kopf.Body, spec: kopf.Spec, **_: Any
    ) -> None:
        await delete_pool(rt, name=name, namespace=namespace or "default", body=body, spec=spec)

    # Tenant ---------------------------------------------------------------------------
    @kopf.on.resume(*tenants, registry=registry)
    @kopf.on.create(*tenants, registry=registry)
    @kopf.on.update(*tenants, registry=registry)
    async def tenant_changed(
        *,
        name: str,
        body: kopf.Body,
        meta: kopf.Meta,
        spec: kopf.Spec,
        status: kopf.Status,
        patch: kopf.Patch,
        old: Any = None,
        **_: Any,
    ) -> None:
        _check_immutable(body, patch, status, old, spec, "Tenant")
        await reconcile_tenant(
            rt, name=name, body=body, meta=meta, spec=spec, status=status, patch=patch, drift=False
        )

    @kopf.timer(*tenants, registry=registry, interval=interval, initial_delay=initial_delay)
    async def tenant_drift(
        *,
        name: str,
        body: kopf.Body,
        meta: kopf.Meta,
        spec: kopf.Spec,
        status: kopf.Status,
        patch: kopf.Patch,
        **_: Any,
    ) -> None:
        await reconcile_tenant(
            rt, name=name, body=body, meta=meta, spec=spec, status=status, patch=patch, drift=True
        )

    @kopf.on.delete(*tenants, registry=registry)
    async def tenant_deleted(*, name: str, body: kopf.Body, **_: Any) -> None:
        await delete_tenant(rt, name=name, body=body)

    return rt
