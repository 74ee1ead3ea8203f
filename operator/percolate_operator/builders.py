"""Pure builders: a validated spec in, the manifest or config the cluster should hold out.

Nothing here does I/O, so every output can be checked against the real schemas in tests
(Kubernetes via kubernetes-validate, KEDA via its CRD models, JetStream via nats-server itself).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from nats.js.api import ConsumerConfig

from percolate_operator.models import API_VERSION, ParsePoolSpec, PoolSettings, TenantSpec
from percolate_operator.settings import OperatorSettings
from percolate_reading.config import ARTIFACTS_BUCKET, CONTEXT_BUCKET, FILES_BUCKET
from percolate_reading.contract import topology
from percolate_reading.contract.jobs import StorageStrategy
from percolate_reading.contract.subjects import STREAM_NAME, Tier, consumer_name, job_subject
from percolate_reading.contract.tenancy import Quotas, TenantRecord
from percolate_reading.contract.topology import ConsumerLimits, TopologyLimits

ENV = "PERCOLATE_READING_"
MANAGED_BY = "percolate-operator"
METRICS_PORT = 9090
# Headroom between the worker's own drain deadline and the kubelet's SIGKILL.
GRACE_HEADROOM_S = 15
CONSUMER_OWNER_KEY = "percolate.dev/owner"
API_KEY_SECRET_KEY = "api-key"  # noqa: S105 -- a key name, not a secret

Manifest = dict[str, Any]


# --- naming ------------------------------------------------------------------------------


def pool_subject(spec: ParsePoolSpec) -> str:
    return job_subject(spec.tier, spec.tenant)


def pool_consumer(spec: ParsePoolSpec) -> str:
    return consumer_name(spec.tier, spec.tenant)


def deployment_name(pool_name: str) -> str:
    return f"{pool_name}-workers"


def pool_labels(pool_name: str, spec: ParsePoolSpec) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": "percolate-worker",
        "app.kubernetes.io/instance": pool_name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "percolate.dev/pool": pool_name,
        "percolate.dev/tier": spec.tier.value,
    }
    if spec.tenant is not None:
        labels["percolate.dev/tenant"] = spec.tenant
    return labels


def owner_reference(api_version: str, kind: str, name: str, uid: str) -> dict[str, Any]:
    # controller=true: children are garbage-collected with the owner and `kubectl` shows who
    # manages them; blockOwnerDeletion keeps foreground deletion ordered.
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


# --- JetStream -----------------------------------------------------------------------------


def topology_limits(settings: OperatorSettings) -> TopologyLimits:
    """The stream and bucket limits this operator applies (and hands to its workers)."""
    return TopologyLimits(
        replicas=settings.stream_replicas,
        max_msgs=settings.stream_max_msgs,
        max_age_s=settings.stream_max_age_s,
        duplicate_window_s=settings.stream_duplicate_window_s,
        dlq_max_age_s=settings.dlq_max_age_s,
    )


def consumer_limits(spec: ParsePoolSpec) -> ConsumerLimits:
    return ConsumerLimits(
        ack_wait_s=float(spec.consumer.ack_wait_seconds),
        max_deliver=spec.consumer.max_deliver,
        max_ack_pending=spec.consumer.max_ack_pending,
    )


def consumer_config(pool_namespace: str, pool_name: str, spec: ParsePoolSpec) -> ConsumerConfig:
    """The pool's durable pull consumer; its metadata says which pool owns it (two ParsePools
    must not share one filter subject)."""
    return topology.pool_consumer(
        pool_subject(spec),
        pool_consumer(spec),
        consumer_limits(spec),
        description=f"ParsePool {pool_namespace}/{pool_name}",
        metadata={CONSUMER_OWNER_KEY: f"{pool_namespace}/{pool_name}"},
    )


# --- worker Deployment ---------------------------------------------------------------------


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def worker_env(pool_name: str, spec: ParsePoolSpec, limits: TopologyLimits) -> list[dict[str, Any]]:
    """The worker's environment, in the names of `percolate_reading.config.Settings`.

    A worker creates missing streams at start-up: with the operator's limits it creates them
    as the operator would, so the operator has nothing to correct afterwards.
    """
    topology_env = limits.worker_env() | consumer_limits(spec).worker_env()
    return [
        {"name": f"{ENV}WORKER_MODE", "value": "true"},
        _secret_env(f"{ENV}NATS_URL", spec.nats.secret_name, spec.nats.url_key),
        {"name": f"{ENV}NATS_QUEUE_SUBJECT", "value": pool_subject(spec)},
        {"name": f"{ENV}NATS_QUEUE_GROUP", "value": pool_consumer(spec)},
        *({"name": k, "value": v} for k, v in topology_env.items()),
        _secret_env(f"{ENV}S3_ENDPOINT", spec.s3.secret_name, spec.s3.endpoint_key),
        _secret_env(f"{ENV}S3_ACCESS_KEY", spec.s3.secret_name, spec.s3.access_key_key),
        _secret_env(f"{ENV}S3_SECRET_KEY", spec.s3.secret_name, spec.s3.secret_key_key),
        {"name": f"{ENV}DEVICE", "value": spec.effective_device.value},
        {"name": f"{ENV}WORKER_CONCURRENCY", "value": str(spec.concurrency)},
        {"name": f"{ENV}DRAIN_TIMEOUT_S", "value": str(spec.drain_timeout_seconds)},
        {"name": f"{ENV}METRICS_PORT", "value": str(METRICS_PORT)},
    ]


def _tolerations(spec: ParsePoolSpec) -> list[dict[str, Any]]:
    tolerations = [t.model_dump(by_alias=True, exclude_none=True) for t in spec.tolerations]
    if spec.effective_resources.gpus and not any(t.get("key") == "nvidia.com/gpu" for t in tolerations):
        # GPU nodes are usually tainted so that only GPU work lands there.
        tolerations.append({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
    return tolerations


def build_deployment(
    pool_name: str,
    namespace: str,
    spec: ParsePoolSpec,
    settings: OperatorSettings,
    owner: Mapping[str, Any] | None = None,
) -> Manifest:
    """The worker Deployment. `spec.replicas` is left out: KEDA's HPA owns the replica count,
    and writing it back on every reconcile would fight the autoscaler."""
    labels = pool_labels(pool_name, spec)
    selector = {k: labels[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}
    pod_spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": spec.drain_timeout_seconds + GRACE_HEADROOM_S,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "worker",
                "image": spec.image or settings.default_image,
                "command": ["percolate-reading", "run"],
                "env": worker_env(pool_name, spec, topology_limits(settings)),
                "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
                # Ready once connected to NATS and S3; no liveness probe: a stuck parse is
                # killed by the worker's own parse timeout, not by restarting the pod.
                "readinessProbe": {
                    "httpGet": {"path": "/ready", "port": "metrics"},
                    "periodSeconds": 10,
                    "failureThreshold": 3,
                },
                "resources": spec.effective_resources.as_k8s(),
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    tolerations = _tolerations(spec)
    if tolerations:
        pod_spec["tolerations"] = tolerations
    metadata: dict[str, Any] = {"name": deployment_name(pool_name), "namespace": namespace, "labels": labels}
    if owner is not None:
        metadata["ownerReferences"] = [dict(owner)]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": selector},
            # Workers drain in-flight jobs on SIGTERM, so a rollout may take them down freely;
            # surge keeps queue capacity while new pods start.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def initial_replicas(spec: ParsePoolSpec) -> int:
    """Replicas written only when the Deployment is created (KEDA owns them afterwards)."""
    return spec.replicas.min


# --- KEDA ScaledObject ---------------------------------------------------------------------


def build_scaled_object(
    pool_name: str,
    namespace: str,
    spec: ParsePoolSpec,
    settings: OperatorSettings,
    owner: Mapping[str, Any] | None = None,
) -> Manifest:
    metadata: dict[str, Any] = {
        "name": pool_name,
        "namespace": namespace,
        "labels": pool_labels(pool_name, spec),
    }
    if owner is not None:
        metadata["ownerReferences"] = [dict(owner)]
    s = spec.scaling
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata,
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": deployment_name(pool_name),
            },
            "minReplicaCount": spec.replicas.min,
            "maxReplicaCount": spec.replicas.max,
            "pollingInterval": s.polling_interval,
            "cooldownPeriod": s.cooldown_period,
            # If KEDA cannot read the lag (monitoring endpoint down), hold a known replica count
            # instead of freezing at whatever it was.
            "fallback": {
                "failureThreshold": 3,
                "replicas": min(max(s.fallback_replicas, spec.replicas.min), spec.replicas.max),
            },
            "triggers": [
                {
                    "type": "nats-jetstream",
                    "metadata": {
                        "natsServerMonitoringEndpoint": settings.keda_monitoring_endpoint,
                        "account": settings.keda_account,
                        "stream": STREAM_NAME,
                        "consumer": pool_consumer(spec),
                        "lagThreshold": str(s.lag_threshold),
                        "activationLagThreshold": str(s.activation_lag_threshold),
                        "useHttps": "true" if settings.keda_use_https else "false",
                    },
                }
            ],
        },
    }


# --- Tenant ----------------------------------------------------------------------------------


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


def dedicated_pool_name(tenant_name: str, tier: Tier) -> str:
    return f"{tenant_name}-{tier.value}"


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


# --- status ----------------------------------------------------------------------------------


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    type_: str, ok: bool, reason: str, message: str, previous: Sequence[Mapping[str, Any]] = (), now: str = ""
) -> dict[str, Any]:
    """A status condition; lastTransitionTime only moves when the status flips."""
    status = "True" if ok else "False"
    stamp = now or now_iso()
    for old in previous:
        if old.get("type") == type_ and old.get("status") == status and old.get("lastTransitionTime"):
            stamp = str(old["lastTransitionTime"])
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": stamp,
    }


def ready_condition(
    children: Sequence[Mapping[str, Any]], previous: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    failing = [c for c in children if c["status"] != "True"]
    if failing:
        return condition(
            "Ready",
            False,
            str(failing[0]["reason"]),
            "; ".join(f"{c['type']}: {c['message']}" for c in failing),
            previous,
        )
    return condition("Ready", True, "Reconciled", "all children are in place", previous)


def deployment_condition(
    deployment: Mapping[str, Any] | None, previous: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    if deployment is None:
        return condition("DeploymentReady", False, "Missing", "worker Deployment not found", previous)
    status = deployment.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return condition(
                "DeploymentReady", False, "ProgressDeadlineExceeded", str(cond.get("message", "")), previous
            )
    unavailable = int(status.get("unavailableReplicas") or 0)
    if unavailable:
        return condition(
            "DeploymentReady",
            False,
            "ReplicasUnavailable",
            f"{unavailable} replica(s) not available yet",
            previous,
        )
    ready = int(status.get("readyReplicas") or 0)
    return condition("DeploymentReady", True, "Available", f"{ready} replica(s) ready", previous)


def scaled_object_condition(
    scaled_object: Mapping[str, Any] | None, previous: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    if scaled_object is None:
        return condition("ScaledObjectReady", False, "Missing", "KEDA ScaledObject not found", previous)
    for cond in (scaled_object.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "False":
            return condition(
                "ScaledObjectReady",
                False,
                str(cond.get("reason") or "KedaNotReady"),
                str(cond.get("message", "")),
                previous,
            )
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            return condition(
                "ScaledObjectReady", True, "KedaReady", str(cond.get("message") or "ready"), previous
            )
    return condition("ScaledObjectReady", True, "Applied", "applied; KEDA has not reported yet", previous)


def deployment_replicas(deployment: Mapping[str, Any] | None) -> tuple[int, int]:
    status = (deployment or {}).get("status") or {}
    return int(status.get("replicas") or 0), int(status.get("readyReplicas") or 0)


def is_subset(desired: Any, actual: Any) -> bool:
    """Whether every field of `desired` is present with the same value in `actual` (drift check).

    Lists must match element-wise (each element a subset), so a removed or edited container,
    env var or toleration counts as drift, while server-added defaults do not.
    """
    if isinstance(desired, Mapping):
        if not isinstance(actual, Mapping):
            return False
        return all(k in actual and is_subset(v, actual[k]) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(desired) != len(actual):
            return False
        return all(is_subset(d, a) for d, a in zip(desired, actual, strict=True))
    return bool(desired == actual)
