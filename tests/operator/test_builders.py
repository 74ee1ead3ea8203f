"""Pure builders: manifests valid against the real Kubernetes and KEDA schemas, right content."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from cloudcoil.models.keda.v1alpha1 import ScaledObject

from percolate_operator import builders, models
from percolate_operator.settings import OperatorSettings
from percolate_reading.config import Settings
from percolate_reading.contract import topology
from percolate_reading.contract.subjects import CONSUMER_OWNER_KEY, Tier
from percolate_reading.contract.tenancy import TenantRecord, hash_api_key
from percolate_reading.contract.topology import TopologyLimits
from tests.operator.crd_schema import EXAMPLES_DIR, load_yaml

K8S_VERSION = "1.30"
SETTINGS = OperatorSettings(nats_url="nats://127.0.0.1:4222")
OWNER = builders.owner_reference("percolate.dev/v1alpha1", "ParsePool", "small", "0b3c1a2e-uid")
POOL_EXAMPLES = [p for p in sorted(EXAMPLES_DIR.glob("parsepool-*.yaml"))]


def _pool(path: Path) -> tuple[str, models.ParsePoolSpec]:
    doc = load_yaml(path)
    return doc["metadata"]["name"], models.parse_pool_spec(doc["spec"])


def _env(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("path", POOL_EXAMPLES, ids=lambda p: p.name)
def test_deployment_is_a_valid_kubernetes_deployment(path: Path) -> None:
    name, spec = _pool(path)
    deployment = builders.build_deployment(name, "percolate", spec, SETTINGS, OWNER)
    assert kubernetes_validate.validate(deployment, K8S_VERSION, strict=True) == K8S_VERSION
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pod["terminationGracePeriodSeconds"] > spec.drain_timeout_seconds
    assert pod["containers"][0]["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
    assert pod["containers"][0]["ports"][0]["containerPort"] == 9090
    container = pod["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "metrics"}
    # Hardened like the gateway: no API token, read-only root with a writable scratch volume.
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["volumeMounts"] == [{"name": "scratch", "mountPath": "/tmp"}]
    (volume,) = pod["volumes"]
    assert volume["name"] == "scratch"
    assert "emptyDir" in volume
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
    assert deployment["metadata"]["ownerReferences"] == [OWNER]


def test_worker_topology_limits_are_the_operators() -> None:
    # A worker that starts first creates the streams and buckets: as the operator would.
    name, spec = _pool(EXAMPLES_DIR / "parsepool-large.yaml")
    custom = SETTINGS.model_copy(
        update={"stream_replicas": 3, "stream_max_msgs": 42, "stream_max_age_s": 4000.5, "dlq_max_age_s": 9e6}
    )
    env = _env(builders.build_deployment(name, "percolate", spec, custom))
    assert env["PERCOLATE_READING_NATS_REPLICAS"] == "3"
    worker = Settings(
        **{k.removeprefix("PERCOLATE_READING_").lower(): v for k, v in env.items() if isinstance(v, str)}
    )
    assert TopologyLimits.from_settings(worker) == builders.topology_limits(custom)


def test_worker_env_names_are_worker_settings() -> None:
    """Every variable the operator sets is a Settings field the worker reads."""
    name, spec = _pool(EXAMPLES_DIR / "parsepool-large.yaml")
    env = _env(builders.build_deployment(name, "percolate", spec, SETTINGS))
    fields = set(Settings.model_fields)
    for var in env:
        assert var.startswith("PERCOLATE_READING_")
        assert var.removeprefix("PERCOLATE_READING_").lower() in fields, var
    assert env["PERCOLATE_READING_WORKER_MODE"] == "true"
    assert env["PERCOLATE_READING_NATS_QUEUE_SUBJECT"] == "jobs.parse.large"
    assert env["PERCOLATE_READING_NATS_QUEUE_GROUP"] == "parse-workers-large"
    assert env["PERCOLATE_READING_NATS_REPLICAS"] == str(SETTINGS.stream_replicas)
    assert env["PERCOLATE_READING_NATS_ACK_WAIT"] == "1800"
    assert env["PERCOLATE_READING_DRAIN_TIMEOUT_S"] == "120"
    assert env["PERCOLATE_READING_WORKER_CONCURRENCY"] == "1"
    assert env["PERCOLATE_READING_DEVICE"] == "cpu"
    assert env["PERCOLATE_READING_NATS_URL"] == {"secretKeyRef": {"name": "percolate-nats", "key": "url"}}
    assert env["PERCOLATE_READING_S3_SECRET_KEY"] == {
        "secretKeyRef": {"name": "percolate-s3", "key": "secret-key"}
    }
    # The values parse as the worker's settings would.
    plain: dict[str, Any] = {
        k.removeprefix("PERCOLATE_READING_").lower(): v for k, v in env.items() if isinstance(v, str)
    }
    worker = Settings.model_validate(plain)
    assert worker.worker_mode
    assert worker.nats_ack_wait == 1800.0


@pytest.mark.parametrize(
    ("tier", "requests", "limits"),
    [
        ("small", {"cpu": "1", "memory": "2Gi"}, {"cpu": "2", "memory": "4Gi"}),
        ("large", {"cpu": "2", "memory": "8Gi"}, {"cpu": "4", "memory": "16Gi"}),
        (
            "gpu",
            {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
            {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"},
        ),
    ],
)
def test_tier_resource_defaults(tier: str, requests: dict[str, str], limits: dict[str, str]) -> None:
    spec = models.parse_pool_spec({"tier": tier})
    deployment = builders.build_deployment("p", "ns", spec, SETTINGS)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {"requests": requests, "limits": limits}
    assert _env(deployment)["PERCOLATE_READING_DEVICE"] == ("cuda" if tier == "gpu" else "cpu")
    if tier == "gpu":
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    else:
        assert "tolerations" not in pod


def test_resource_overrides_merge_with_tier_defaults() -> None:
    spec = models.parse_pool_spec({"tier": "small", "resources": {"limits": {"memory": "6Gi"}}})
    resources = builders.build_deployment("p", "ns", spec, SETTINGS)["spec"]["template"]["spec"][
        "containers"
    ][0]["resources"]
    assert resources == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "6Gi"}}


@pytest.mark.parametrize("path", POOL_EXAMPLES, ids=lambda p: p.name)
def test_scaled_object_matches_keda_schema(path: Path) -> None:
    name, spec = _pool(path)
    manifest = builders.build_scaled_object(name, "percolate", spec, SETTINGS, OWNER)
    model = ScaledObject.model_validate(manifest)
    # Round trip: nothing was dropped as unknown to KEDA's schema.
    assert model.model_dump(by_alias=True, exclude_none=True, mode="json") == manifest
    so = manifest["spec"]
    assert so["scaleTargetRef"]["name"] == f"{name}-workers"
    assert (so["minReplicaCount"], so["maxReplicaCount"]) == (spec.replicas.min, spec.replicas.max)
    (trigger,) = so["triggers"]
    assert trigger["type"] == "nats-jetstream"
    assert trigger["metadata"] == {
        "natsServerMonitoringEndpoint": SETTINGS.keda_monitoring_endpoint,
        "account": "$G",
        "stream": "JOBS",
        "consumer": f"parse-workers-{spec.tier.value}",
        "lagThreshold": str(spec.scaling.lag_threshold),
        "activationLagThreshold": str(spec.scaling.activation_lag_threshold),
        "useHttps": "false",
    }
    if spec.replicas.min == 0:
        # Fallback acts through the HPA, which does nothing at zero, and hides trigger errors.
        assert "fallback" not in so
    else:
        assert spec.replicas.min <= so["fallback"]["replicas"] <= spec.replicas.max


def test_fallback_only_for_pools_that_never_reach_zero() -> None:
    at_zero = models.parse_pool_spec({"tier": "small", "replicas": {"min": 0, "max": 3}})
    kept_up = models.parse_pool_spec({"tier": "small", "replicas": {"min": 2, "max": 3}})
    assert "fallback" not in builders.build_scaled_object("p", "ns", at_zero, SETTINGS)["spec"]
    fallback = builders.build_scaled_object("p", "ns", kept_up, SETTINGS)["spec"]["fallback"]
    assert fallback == {"failureThreshold": 3, "replicas": 2}


def _scaled(status: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {}, "status": status}


def test_scaling_condition_reports_keda_health() -> None:
    ok = {"type": "Ready", "status": "True", "reason": "ScaledObjectReady"}
    assert builders.scaling_condition(None, [])["reason"] == "Pending"
    assert builders.scaling_condition(_scaled({"conditions": [ok]}), [])["reason"] == "Idle"
    active = {"type": "Active", "status": "True"}
    assert builders.scaling_condition(_scaled({"conditions": [ok, active]}), [])["reason"] == "Active"
    failing = _scaled(
        {
            "conditions": [ok],
            "health": {"s0-nats-jetstream-JOBS": {"numberOfFailures": 4, "status": "Failing"}},
        }
    )
    cond = builders.scaling_condition(failing, [])
    assert (cond["status"], cond["reason"]) == ("False", "ScalerFailing")
    assert "4 failed" in cond["message"]
    broken = {"type": "Ready", "status": "False", "reason": "TriggerError", "message": "dial tcp: refused"}
    cond = builders.scaling_condition(_scaled({"conditions": [broken]}), [])
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "TriggerError", "dial tcp: refused")


def test_consumer_config_is_the_contract_pool_consumer() -> None:
    spec = models.parse_pool_spec({"tier": "gpu", "tenant": "acme", "consumer": {"ackWait": "90s"}})
    consumer = builders.consumer_config("percolate", "acme-gpu", spec)
    assert consumer.durable_name == "parse-workers-gpu-acme"
    assert consumer.filter_subject == "jobs.parse.gpu.acme"
    assert consumer.ack_wait == 90.0
    assert consumer.max_deliver == 3
    assert consumer.max_ack_pending == 100
    assert consumer.as_dict()["ack_wait"] == 90 * 10**9  # nanoseconds on the wire
    assert consumer.metadata == {CONSUMER_OWNER_KEY: "percolate/acme-gpu"}


def test_topology_limits_follow_the_operator_settings() -> None:
    custom = SETTINGS.model_copy(
        update={"stream_max_msgs": 42, "stream_max_age_s": 3600.0, "dlq_max_age_s": 7200.0}
    )
    limits = builders.topology_limits(custom)
    assert (limits.max_msgs, limits.max_age_s, limits.dlq_max_age_s) == (42, 3600.0, 7200.0)
    assert topology.jobs_stream(limits).max_msgs == 42
    assert topology.dlq_stream(limits).max_age == 7200.0


def test_consumer_drift_detects_changed_fields() -> None:
    spec = models.parse_pool_spec({"tier": "small"})
    desired = builders.consumer_config("ns", "small", spec)
    actual = dataclasses.replace(desired, metadata={**(desired.metadata or {}), "_nats.ver": "2.15"})
    assert topology.consumer_drift(actual, desired) == []
    changed = dataclasses.replace(actual, ack_wait=30.0, max_deliver=9)
    assert topology.consumer_drift(changed, desired) == ["ack_wait", "max_deliver"]
    foreign = dataclasses.replace(actual, metadata={CONSUMER_OWNER_KEY: "other/pool"})
    assert topology.consumer_drift(foreign, desired) == ["metadata"]


def test_subjects_of_pools_never_overlap() -> None:
    """Every shared and dedicated pool subject is distinct and none matches another's filter."""
    pools = [models.parse_pool_spec({"tier": t}) for t in Tier] + [
        models.parse_pool_spec({"tier": t, "tenant": tenant}) for t in Tier for tenant in ("acme", "small")
    ]
    subjects = [builders.pool_subject(p) for p in pools]
    consumers = [builders.pool_consumer(p) for p in pools]
    assert len(set(subjects)) == len(subjects)
    assert len(set(consumers)) == len(consumers)
    for a in subjects:
        for b in subjects:
            # No wildcards in filters: two filters overlap only when equal.
            assert a == b or (a.split(".") != b.split(".")), (a, b)
            assert "*" not in a
            assert ">" not in a


def test_tenant_secret_is_a_valid_secret() -> None:
    spec = models.parse_tenant_spec({})
    secret = builders.build_api_key_secret("acme", "percolate", "acme-api-key", "pr_secret", OWNER)
    assert kubernetes_validate.validate(secret, K8S_VERSION, strict=True) == K8S_VERSION
    assert secret["stringData"] == {"api-key": "pr_secret"}
    assert builders.api_key_secret_name("acme", spec) == "acme-api-key"


def test_tenant_record_keeps_only_the_key_hash() -> None:
    doc = load_yaml(EXAMPLES_DIR / "tenant-dedicated.yaml")
    spec = models.parse_tenant_spec(doc["spec"])
    record = builders.build_tenant_record("globex", spec, [hash_api_key("pr_key")], "whsec")
    key, value = builders.registry_entry(record)
    assert key == "globex"
    assert b"pr_key" not in value
    parsed = TenantRecord.model_validate_json(value)
    assert parsed.accepts_key("pr_key")
    assert parsed.dedicated_subjects == {Tier.SMALL: "jobs.parse.small.globex"}
    assert parsed.files_bucket == "percolate-files-globex"
    assert parsed.quotas.max_file_bytes == 1024 * 1024 * 1024
    assert parsed.quotas.max_active_jobs == 5000
    shared = builders.build_tenant_record("acme", models.parse_tenant_spec({}), [], None)
    assert shared.files_bucket == "percolate-files"


def test_dedicated_pool_is_a_valid_parsepool() -> None:
    from tests.operator.crd_schema import api_server_errors

    doc = load_yaml(EXAMPLES_DIR / "tenant-dedicated.yaml")
    spec = models.parse_tenant_spec(doc["spec"])
    pool = builders.build_dedicated_pool("globex", "percolate", spec.dedicated_pools[0], OWNER)
    assert pool["metadata"]["name"] == "globex-small"
    assert pool["spec"]["tenant"] == "globex"
    assert api_server_errors(pool) == []
    parsed = models.parse_pool_spec(pool["spec"])
    assert builders.pool_subject(parsed) == "jobs.parse.small.globex"
    assert parsed.concurrency == 4


def test_conditions_keep_transition_time_until_status_flips() -> None:
    first = builders.condition("ConsumerReady", True, "Exists", "ok", now="2026-01-01T00:00:00Z")
    same = builders.condition("ConsumerReady", True, "Exists", "ok", [first], now="2026-02-01T00:00:00Z")
    flipped = builders.condition(
        "ConsumerReady", False, "Missing", "gone", [first], now="2026-03-01T00:00:00Z"
    )
    assert same["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert flipped["lastTransitionTime"] == "2026-03-01T00:00:00Z"
    ready = builders.ready_condition([first, flipped])
    assert ready["status"] == "False"
    assert ready["reason"] == "Missing"


def test_drift_check_ignores_server_defaults_but_not_edits() -> None:
    name, spec = _pool(EXAMPLES_DIR / "parsepool-small.yaml")
    desired = builders.build_deployment(name, "percolate", spec, SETTINGS)
    actual = copy.deepcopy(desired)
    actual["spec"]["template"]["spec"]["dnsPolicy"] = "ClusterFirst"
    actual["status"] = {"replicas": 1}
    assert builders.is_subset(desired, actual)
    actual["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"
    assert not builders.is_subset(desired, actual)


def test_drift_check_compares_quantities_as_amounts() -> None:
    # The API server stores "0.5" as 500m and "1024Mi" as 1Gi: not drift (it was, forever).
    spec = models.parse_pool_spec(
        {"tier": "small", "resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}}}
    )
    desired = builders.build_deployment("p", "ns", spec, SETTINGS)
    actual = copy.deepcopy(desired)
    resources = actual["spec"]["template"]["spec"]["containers"][0]["resources"]
    resources["requests"] = {"cpu": "500m", "memory": "1Gi"}
    assert builders.is_subset(desired, actual)
    resources["requests"] = {"cpu": "600m", "memory": "1Gi"}
    assert not builders.is_subset(desired, actual)
    # Only resource amounts are compared that way: an env value "0.5" is not "500m".
    assert not builders.is_subset({"env": [{"value": "0.5"}]}, {"env": [{"value": "500m"}]})


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [("0.5", "500m", True), ("1024Mi", "1Gi", True), ("1", "1000m", True), ("2Gi", "2G", False),
     ("1e3", "1k", True), ("100m", "0.1", True), ("1Ki", "1024", True), ("x", "x", True), ("x", "y", False)],
)  # fmt: skip
def test_quantities_equal(a: str, b: str, equal: bool) -> None:
    assert builders.quantities_equal(a, b) is equal
