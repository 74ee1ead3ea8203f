"""The operator running for real: kopf against kmock's Kubernetes emulator and a real nats-server."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator
from typing import Any

import aiobotocore.session
import aiohttp
import nats
import pytest
from nats.js.errors import NotFoundError

from percolate_operator.settings import OperatorSettings
from percolate_reading.contract.subjects import (
    STREAM_NAME,
    fair_lane_durable,
    fair_lane_subject,
    pool_consumers,
    tenant_of_subject,
)
from percolate_reading.contract.tenancy import TENANTS_KV_BUCKET, TenantRecord, key_matches
from percolate_reading.contract.topology import ConsumerLimits
from percolate_reading.infra.queue.topology import ensure_pool_consumers
from tests.operator.cluster import (
    DEPLOYMENTS,
    EVENTS,
    PARSEPOOLS,
    SCALED_OBJECTS,
    SECRETS,
    TENANTS,
    Api,
    Cluster,
    condition,
    eventually,
    is_ready,
    running_operator,
    serving_cluster,
)
from tests.operator.crd_schema import EXAMPLES_DIR, load_yaml, schema_errors
from tests.servers import NatsServer, SeaweedS3

pytestmark = pytest.mark.integration
NS = "percolate"


class Env:
    def __init__(self, cluster: Cluster, api: Api, js: Any, nats_server: NatsServer, s3: SeaweedS3) -> None:
        self.cluster = cluster
        self.api = api
        self.js = js
        self.nats_server = nats_server
        self.s3 = s3

    def pool(self, name: str) -> dict[str, Any] | None:
        return self.cluster.read(PARSEPOOLS, NS, name)

    async def consumer(self, name: str) -> Any:
        try:
            return await self.js.consumer_info(STREAM_NAME, name)
        except NotFoundError:
            return None

    def events(self, reason: str) -> list[dict[str, Any]]:
        out = []
        for key in list(self.cluster.objects):
            obj = self.cluster.objects[key]
            if key[0] == EVENTS and not obj.deleted and obj.raw.get("reason") == reason:
                out.append(obj.raw)
        return out


@pytest.fixture
async def env(fresh_nats_server: NatsServer, seaweed_s3: SeaweedS3) -> AsyncIterator[Env]:
    settings = OperatorSettings(
        s3_endpoint=seaweed_s3.endpoint,
        s3_access_key=seaweed_s3.access_key,
        s3_secret_key=seaweed_s3.secret_key,
        nats_url=fresh_nats_server.url,
        tenant_namespace=NS,
        drift_interval_s=1.0,
        drift_initial_delay_s=1.0,
        nats_retry_delay_s=1.0,
        keda_monitoring_endpoint=f"127.0.0.1:{fresh_nats_server.monitor_port}",
    )
    async with serving_cluster() as (cluster, url):
        settings = settings.model_copy(update={"k8s_server": url})
        nc = await nats.connect(fresh_nats_server.url)
        try:
            async with aiohttp.ClientSession() as session, running_operator(settings):
                yield Env(cluster, Api(url, session), nc.jetstream(), fresh_nats_server, seaweed_s3)
        finally:
            await nc.close()


async def test_parsepool_creates_children_consumer_and_ready_status(env: Env) -> None:
    example = load_yaml(EXAMPLES_DIR / "parsepool-small.yaml")
    await env.api.create(PARSEPOOLS, example)

    pool = await eventually(lambda: (p := env.pool("small")) and is_ready(p) and p)
    status = pool["status"]
    assert status["observedGeneration"] == 1
    assert status["subject"] == "jobs.parse.small"
    assert status["consumer"] == "parse-workers-small"
    assert (status["pending"], status["waiting"], status["inFlight"]) == (0, 0, 0)
    assert {c["type"] for c in status["conditions"]} == {
        "Ready",
        "DeploymentReady",
        "ScaledObjectReady",
        "Scaling",
        "ConsumerReady",
    }
    assert pool["metadata"]["finalizers"] == ["percolate.dev/cleanup"]
    # Everything the operator wrote fits the CRD (the API server would prune undeclared status).
    assert schema_errors("ParsePool", pool) == []

    deployment = env.cluster.read(DEPLOYMENTS, NS, "small-workers")
    assert deployment is not None
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == pool["metadata"]["uid"]
    assert deployment["spec"]["replicas"] == 0  # min, set at creation only
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env_vars = {e["name"]: e.get("value") for e in container["env"]}
    assert env_vars["PERCOLATE_READING_NATS_QUEUE_SUBJECT"] == "jobs.parse.small"
    assert env_vars["PERCOLATE_READING_NATS_QUEUE_GROUP"] == "parse-workers-small"

    scaled = env.cluster.read(SCALED_OBJECTS, NS, "small")
    assert scaled is not None
    assert scaled["spec"]["maxReplicaCount"] == 20
    assert scaled["spec"]["triggers"][0]["metadata"]["consumer"] == "parse-workers-small"

    info = await env.consumer("parse-workers-small")
    assert info is not None
    assert info.config.filter_subject == "jobs.parse.small"
    assert info.config.ack_wait == 300.0
    assert info.config.max_ack_pending == 100
    stream = await env.js.stream_info(STREAM_NAME)
    assert stream.config.retention == "workqueue"
    assert stream.config.subjects == ["jobs.>"]
    await eventually(lambda: env.events("ConsumerCreated"))
    await eventually(lambda: env.events("DeploymentCreated"))


async def test_spec_changes_propagate_to_children(env: Env) -> None:
    await env.api.create(PARSEPOOLS, load_yaml(EXAMPLES_DIR / "parsepool-large.yaml"))
    await eventually(lambda: is_ready(env.pool("large")))

    await env.api.patch(
        PARSEPOOLS,
        NS,
        "large",
        {
            "spec": {
                "replicas": {"max": 12},
                "consumer": {"ackWait": "45m"},
                "image": "registry.local/worker:2",
            }
        },
    )
    pool = await eventually(
        lambda: (p := env.pool("large")) and p["status"].get("observedGeneration") == 2 and p
    )
    assert is_ready(pool)
    # Eventually: a drift tick that started with the old spec may land just after the update.
    await eventually(lambda: env.cluster.read(SCALED_OBJECTS, NS, "large")["spec"]["maxReplicaCount"] == 12)  # type: ignore[index]
    deployment = env.cluster.read(DEPLOYMENTS, NS, "large-workers")
    assert deployment is not None
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.local/worker:2"
    ack_wait = {e["name"]: e.get("value") for e in container["env"]}["PERCOLATE_READING_NATS_ACK_WAIT"]
    assert ack_wait == "2700"
    info = await env.consumer("parse-workers-large")
    assert info.config.ack_wait == 2700.0
    await eventually(lambda: env.events("ConsumerUpdated"))


async def test_drift_is_repaired_by_the_timer(env: Env) -> None:
    await env.api.create(PARSEPOOLS, load_yaml(EXAMPLES_DIR / "parsepool-gpu.yaml"))
    await eventually(lambda: is_ready(env.pool("gpu")))

    # A consumer deleted behind the operator's back comes back with the pool's filter.
    await env.js.delete_consumer(STREAM_NAME, "parse-workers-gpu")
    info = await eventually(lambda: env.consumer("parse-workers-gpu"))
    assert info.config.filter_subject == "jobs.parse.gpu"
    await eventually(lambda: env.events("ConsumerCreated"))

    # So does the whole JOBS stream.
    await env.js.delete_stream(STREAM_NAME)
    info = await eventually(lambda: env.consumer("parse-workers-gpu"))
    assert info.config.filter_subject == "jobs.parse.gpu"
    assert (await env.js.stream_info(STREAM_NAME)).config.subjects == ["jobs.>"]

    # A hand-edited Deployment is restored.
    deployment = env.cluster.read(DEPLOYMENTS, NS, "gpu-workers")
    assert deployment is not None
    edited = copy.deepcopy(deployment["spec"]["template"])
    edited["spec"]["containers"][0]["image"] = "someone/else:latest"
    await env.api.patch(DEPLOYMENTS, NS, "gpu-workers", {"spec": {"template": edited}})

    def image() -> str:
        dep = env.cluster.read(DEPLOYMENTS, NS, "gpu-workers")
        return str(dep["spec"]["template"]["spec"]["containers"][0]["image"]) if dep else ""

    example_image = load_yaml(EXAMPLES_DIR / "parsepool-gpu.yaml")["spec"]["image"]
    await eventually(lambda: image() == example_image)
    await eventually(lambda: env.events("DeploymentRestored"))


async def workers_consumers(env: Env, pool_subject: str, pool_durable: str) -> list[tuple[str, str]]:
    """Make the consumers a pool's workers make at start (worker.runner): the stranded-job
    consumer and, in a shared pool, the fair lane's; all the pool's consumers, as (stream, name)."""
    limits = ConsumerLimits()
    await ensure_pool_consumers(env.js, pool_subject, pool_durable, limits)
    if tenant_of_subject(pool_subject) is None:
        lane, lane_durable = fair_lane_subject(pool_subject), fair_lane_durable(pool_durable)
        await ensure_pool_consumers(env.js, lane, lane_durable, limits)
    consumers = pool_consumers(pool_subject, pool_durable)
    for stream, name in consumers:
        assert await env.js.consumer_info(stream, name), name
    return consumers


async def existing(env: Env, consumers: list[tuple[str, str]]) -> list[str]:
    found = []
    for stream, name in consumers:
        with contextlib.suppress(NotFoundError):
            found.append((await env.js.consumer_info(stream, name)).name)
    return found


async def test_deleting_a_pool_removes_its_consumers(env: Env) -> None:
    await env.api.create(PARSEPOOLS, load_yaml(EXAMPLES_DIR / "parsepool-small.yaml"))
    await eventually(lambda: is_ready(env.pool("small")))
    consumers = await workers_consumers(env, "jobs.parse.small", "parse-workers-small")
    assert [name for _, name in consumers] == [
        "parse-workers-small",
        "parse-workers-small--fair",
        "parse-workers-small-stranded",
        "parse-workers-small--fair-stranded",
    ]
    # A job moved to the fair lane stays in JOBS for the tier's next pool.
    await env.js.publish(fair_lane_subject("jobs.parse.small"), b"moved-job")

    await env.api.delete(PARSEPOOLS, NS, "small")
    await eventually(lambda: env.pool("small") is None)
    # Every consumer of the pool went with it: the operator's and those its workers made.
    assert await existing(env, consumers) == []
    await eventually(lambda: env.events("ConsumerDeleted"))
    assert "parse-workers-small--fair" in env.events("ConsumerDeleted")[0]["message"]
    assert (await env.js.stream_info(STREAM_NAME)).state.messages == 1


async def test_deleting_a_dedicated_pool_removes_its_consumers(env: Env) -> None:
    pool = load_yaml(EXAMPLES_DIR / "parsepool-small.yaml")
    pool["metadata"]["name"] = "acme-small"
    pool["spec"]["tenant"] = "acme"
    await env.api.create(PARSEPOOLS, pool)
    await eventually(lambda: is_ready(env.pool("acme-small")))
    consumers = await workers_consumers(env, "jobs.parse.small.acme", "parse-workers-small-acme")
    assert [name for _, name in consumers] == [
        "parse-workers-small-acme",
        "parse-workers-small-acme-stranded",
    ]
    await env.api.delete(PARSEPOOLS, NS, "acme-small")
    await eventually(lambda: env.pool("acme-small") is None)
    assert await existing(env, consumers) == []


async def test_invalid_pool_is_reported_not_retried(env: Env) -> None:
    bad = load_yaml(EXAMPLES_DIR / "parsepool-small.yaml")
    bad["metadata"]["name"] = "backwards"
    bad["spec"]["replicas"] = {"min": 5, "max": 2}
    await env.api.create(PARSEPOOLS, bad)
    cond = await eventually(lambda: condition(env.pool("backwards"), "Ready"))
    assert cond["status"] == "False"
    assert cond["reason"] == "InvalidSpec"
    assert "must not exceed" in cond["message"]
    assert env.cluster.read(DEPLOYMENTS, NS, "backwards-workers") is None
    await eventually(lambda: env.events("InvalidSpec"))


async def test_two_pools_cannot_claim_one_subject(env: Env) -> None:
    await env.api.create(PARSEPOOLS, load_yaml(EXAMPLES_DIR / "parsepool-small.yaml"))
    await eventually(lambda: is_ready(env.pool("small")))
    twin = load_yaml(EXAMPLES_DIR / "parsepool-small.yaml")
    twin["metadata"]["name"] = "small-twin"
    await env.api.create(PARSEPOOLS, twin)
    cond = await eventually(lambda: condition(env.pool("small-twin"), "Ready"))
    assert cond["reason"] == "InvalidSpec"
    assert "already belongs to ParsePool percolate/small" in cond["message"]
    info = await env.consumer("parse-workers-small")
    assert info.config.metadata["percolate.dev/owner"] == "percolate/small"
    # Deleting the refused twin leaves the owner's consumers, its workers' ones included.
    consumers = await workers_consumers(env, "jobs.parse.small", "parse-workers-small")
    await env.api.delete(PARSEPOOLS, NS, "small-twin")
    await eventually(lambda: env.pool("small-twin") is None)
    assert await existing(env, consumers) == [name for _, name in consumers]


async def test_tenant_with_dedicated_pool(env: Env) -> None:
    await env.api.create(SECRETS, {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "globex-webhook", "namespace": NS},
        "stringData": {"secret": "whsec_123"},
    })  # fmt: skip
    await env.api.create(PARSEPOOLS, load_yaml(EXAMPLES_DIR / "parsepool-small.yaml"))
    await env.api.create(TENANTS, load_yaml(EXAMPLES_DIR / "tenant-dedicated.yaml"))

    tenant = await eventually(lambda: (t := env.cluster.read(TENANTS, None, "globex")) and is_ready(t) and t)
    assert tenant["status"]["pools"] == 1
    assert tenant["status"]["tiers"] == "small,large,gpu"
    assert schema_errors("Tenant", tenant) == []

    # The API key lives in the Secret only; the registry holds its hash.
    secret = env.cluster.read(SECRETS, NS, "globex-api-key")
    assert secret is not None
    assert secret["metadata"]["ownerReferences"][0]["uid"] == tenant["metadata"]["uid"]
    import base64

    api_key = base64.b64decode(secret["data"]["api-key"]).decode()
    kv = await env.js.key_value(TENANTS_KV_BUCKET)
    entry = await kv.get("globex")
    assert api_key.encode() not in entry.value
    record = TenantRecord.model_validate_json(entry.value)
    assert record.accepts_key(api_key)
    assert key_matches(api_key, record.api_key_hashes[0])
    assert record.webhook_secret == "whsec_123"
    assert record.files_bucket == "percolate-files-globex"
    # Storage strategy `tenant`: the tenant's own buckets exist.
    assert condition(tenant, "StorageReady")["reason"] == "BucketsReady"  # type: ignore[index]
    assert await _buckets(env) >= {
        "percolate-files-globex",
        "percolate-artifacts-globex",
        "percolate-context-globex",
    }
    assert record.dedicated_subjects == {"small": "jobs.parse.small.globex"}

    # The dedicated pool is owned by the tenant and consumes its own, non-overlapping subject.
    pool = await eventually(lambda: (p := env.pool("globex-small")) and is_ready(p) and p)
    assert pool["metadata"]["ownerReferences"][0]["uid"] == tenant["metadata"]["uid"]
    assert pool["spec"]["tenant"] == "globex"
    await eventually(lambda: is_ready(env.pool("small")))
    dedicated = await env.consumer("parse-workers-small-globex")
    shared = await env.consumer("parse-workers-small")
    assert dedicated.config.filter_subject == "jobs.parse.small.globex"
    assert shared.config.filter_subject == "jobs.parse.small"
    # A job for the tenant's pool reaches only the dedicated consumer (no overlap: 10138 never hit).
    await env.js.publish("jobs.parse.small.globex", b"job-1")
    info = await eventually(lambda: _pending(env, "parse-workers-small-globex"))
    assert info == 1
    assert (await env.consumer("parse-workers-small")).num_pending == 0
    # ...and the pool's PENDING column (status.pending) shows it after the next check.
    await eventually(lambda: (env.pool("globex-small") or {}).get("status", {}).get("pending") == 1)

    # Dropping the dedicated pool from the spec removes the pool and its routing.
    await env.api.patch(TENANTS, None, "globex", {"spec": {"dedicatedPools": []}})
    await eventually(lambda: env.pool("globex-small") is None)
    await eventually(lambda: _registry_value(env, "globex"))
    await eventually(lambda: _routing_cleared(env))
    assert await env.consumer("parse-workers-small-globex") is None

    # Deleting the tenant removes its registry entry.
    await env.api.delete(TENANTS, None, "globex")
    await eventually(lambda: env.cluster.read(TENANTS, None, "globex") is None)
    assert await _registry_value(env, "globex") is None


async def _pending(env: Env, consumer: str) -> int:
    info = await env.consumer(consumer)
    return int(info.num_pending) if info else 0


async def _buckets(env: Env) -> set[str]:
    session = aiobotocore.session.get_session()
    async with session.create_client(
        "s3",
        endpoint_url=env.s3.endpoint,
        region_name="us-east-1",
        aws_access_key_id=env.s3.access_key,
        aws_secret_access_key=env.s3.secret_key,
    ) as client:
        listed = await client.list_buckets()
    return {b["Name"] for b in listed.get("Buckets", [])}


async def _routing_cleared(env: Env) -> bool:
    value = await _registry_value(env, "globex")
    return value is not None and TenantRecord.model_validate_json(value).dedicated_subjects == {}


async def _registry_value(env: Env, key: str) -> bytes | None:
    kv = await env.js.key_value(TENANTS_KV_BUCKET)
    try:
        return (await kv.get(key)).value
    except NotFoundError:
        return None


async def test_nats_outage_is_retried_until_nats_returns(env: Env) -> None:
    env.nats_server.stop()
    await env.api.create(PARSEPOOLS, load_yaml(EXAMPLES_DIR / "parsepool-small.yaml"))
    cond = await eventually(lambda: condition(env.pool("small"), "Ready"))
    assert cond["reason"] == "NatsUnavailable"
    await eventually(lambda: env.events("NatsUnavailable"))
    env.nats_server.start()
    await eventually(lambda: is_ready(env.pool("small")))


async def test_registry_is_kept_in_sync(env: Env) -> None:
    await env.api.create(TENANTS, load_yaml(EXAMPLES_DIR / "tenant-shared.yaml"))
    await eventually(lambda: is_ready(env.cluster.read(TENANTS, None, "acme")))
    first = TenantRecord.model_validate_json(await eventually(lambda: _registry_value(env, "acme")))
    assert first.allowed_tiers == ("small", "large")
    assert first.quotas.max_active_jobs == 500

    # An entry removed behind the operator's back comes back (drift timer).
    kv = await env.js.key_value(TENANTS_KV_BUCKET)
    await kv.delete("acme")
    await eventually(lambda: _registry_value(env, "acme"))
    await eventually(lambda: env.events("RegistryRestored"))

    # A spec change reaches the registry.
    await env.api.patch(TENANTS, None, "acme", {"spec": {"quotas": {"maxActiveJobs": 42}}})

    async def quota() -> int:
        value = await _registry_value(env, "acme")
        return TenantRecord.model_validate_json(value).quotas.max_active_jobs if value else 0

    await eventually(lambda: _equals(quota(), 42))

    # A rotated API key (new value in the Secret) replaces the old hash.
    await env.api.patch(SECRETS, NS, "acme-api-key", {"data": {"api-key": "cHJfcm90YXRlZA=="}})  # pr_rotated

    async def accepts_rotated() -> bool:
        value = await _registry_value(env, "acme")
        return bool(value) and TenantRecord.model_validate_json(value).accepts_key("pr_rotated")

    await eventually(accepts_rotated)


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)
