"""The worker Deployment and KEDA ScaledObject of a ParsePool."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from percolate_operator.builders.jetstream import consumer_limits, topology_limits
from percolate_operator.builders.naming import (
    ENV,
    Manifest,
    deployment_name,
    pool_consumer,
    pool_labels,
    pool_subject,
)
from percolate_operator.models import ParsePoolSpec
from percolate_operator.settings import OperatorSettings
from percolate_reading.contract.subjects import STREAM_NAME
from percolate_reading.contract.topology import TopologyLimits

METRICS_PORT = 9090
# The root filesystem is read-only: parses, sandbox children and model caches write here.
SCRATCH_DIR = "/tmp"  # noqa: S108 -- an emptyDir mount point inside the pod
SCRATCH_SIZE = {"small": "2Gi", "large": "8Gi", "gpu": "8Gi"}
# Headroom between the worker's own drain deadline and the kubelet's SIGKILL.
GRACE_HEADROOM_S = 15


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
        # Workers call no Kubernetes API: no token in the pod.
        "automountServiceAccountToken": False,
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
                # Ready once connected to NATS and S3.
                "readinessProbe": {
                    "httpGet": {"path": "/ready", "port": "metrics"},
                    "periodSeconds": 10,
                    "failureThreshold": 3,
                },
                # Alive while the process answers: a wedged event loop is restarted. A slow
                # parse is not (it runs in a sandboxed child with its own timeout).
                "livenessProbe": {
                    "httpGet": {"path": "/health", "port": "metrics"},
                    "initialDelaySeconds": 10,
                    "periodSeconds": 20,
                    "timeoutSeconds": 5,
                    "failureThreshold": 3,
                },
                "resources": spec.effective_resources.as_k8s(),
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": "scratch", "mountPath": SCRATCH_DIR}],
            }
        ],
        "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": SCRATCH_SIZE[spec.tier.value]}}],
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
    scaled: Manifest = {
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
    if spec.replicas.min >= 1:
        # KEDA's fallback acts through the HPA, which does nothing at 0 replicas, and while it
        # is set KEDA reports no trigger error: only pools that never reach zero get one (a
        # known replica count while the lag cannot be read). Scaler health is surfaced in the
        # ParsePool's `Scaling` condition either way.
        scaled["spec"]["fallback"] = {
            "failureThreshold": 3,
            "replicas": min(max(s.fallback_replicas, spec.replicas.min), spec.replicas.max),
        }
    return scaled
