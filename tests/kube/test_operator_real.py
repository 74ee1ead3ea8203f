"""The operator on a real control plane: kube-apiserver (admission, CEL, server-side apply),
kube-controller-manager (garbage collection, ReplicaSets), KEDA (scaling from the ScaledObject
the operator built), a real nats-server, real kubectl. The operator runs as its own process
with the token of its ServiceAccount (operator/deploy/rbac.yaml).

The tests share one operator and build on each other, in file order (examples first).
There is no kubelet: pods stay Pending, so a pool with `min >= 1` is honestly not Ready.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml
from nats.js.errors import NotFoundError

from percolate_reading.contract.subjects import STREAM_NAME
from percolate_reading.contract.tenancy import TENANTS_KV_BUCKET, TenantRecord
from tests.kube.controlplane import ROOT, ControlPlane
from tests.kube.operator_process import NS, Kube, OperatorProcess, install_operator_rbac, wait_for
from tests.operator.cluster import condition
from tests.servers import NatsServer, free_port

pytestmark = pytest.mark.kube
EXAMPLES = ROOT / "k8s" / "examples"


class Env:
    def __init__(self, kube: Kube, operator: OperatorProcess, nats_server: NatsServer) -> None:
        self.kube = kube
        self.operator = operator
        self.nats = nats_server

    def pool(self, name: str, namespace: str = NS) -> dict[str, Any] | None:
        return self.kube.get("parsepool", name, namespace)

    def ready(self, kind: str, name: str, namespace: str | None = NS) -> dict[str, Any] | None:
        obj = self.kube.get(kind, name, namespace)
        cond = condition(obj, "Ready")
        return obj if cond is not None and cond["status"] == "True" else None


@pytest.fixture(scope="module")
def env(keda: ControlPlane, crds: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    state = Path(tmp_path_factory.mktemp("operator"))
    server = NatsServer(state / "nats")
    server.start()
    operator = OperatorProcess(install_operator_rbac(keda, state), server, state)
    # The platform Secrets the workers read (k8s/README.md): KEDA resolves the scale target's
    # env from them too, and refuses to build the HPA while they are missing.
    keda.kubectl_run(
        "create", "secret", "generic", "percolate-nats", "-n", NS, f"--from-literal=url={server.url}"
    )
    keda.kubectl_run(
        "create", "secret", "generic", "percolate-s3", "-n", NS, "--from-literal=endpoint=http://127.0.0.1:1",
        "--from-literal=access-key=test", "--from-literal=secret-key=test",
    )  # fmt: skip
    try:
        operator.start()
        yield Env(Kube(keda), operator, server)
    finally:
        if operator.proc is not None:
            operator.stop()
        server.stop()


@pytest.fixture
async def js(env: Env) -> AsyncIterator[Any]:
    nc = await nats.connect(env.nats.url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


async def _consumer(js: Any, name: str) -> Any:
    try:
        return await js.consumer_info(STREAM_NAME, name)
    except NotFoundError:
        return None


async def _registry(js: Any, key: str) -> bytes | None:
    kv = await js.key_value(TENANTS_KV_BUCKET)
    try:
        return bytes((await kv.get(key)).value)
    except NotFoundError:
        return None


def _load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return doc


async def test_examples_are_reconciled(env: Env, js: Any) -> None:
    k = env.kube
    k.run("create", "secret", "generic", "globex-webhook", "-n", NS, "--from-literal=secret=whsec_real")
    k.run("apply", "--server-side", "-k", str(EXAMPLES))

    for name in ("small", "gpu"):  # min 0: nothing to schedule, so Ready
        pool = wait_for(lambda n=name: env.ready("parsepool", n))
        assert {c["type"]: c["status"] for c in pool["status"]["conditions"]} == {
            "Ready": "True", "DeploymentReady": "True", "ScaledObjectReady": "True",
            "Scaling": "True", "ConsumerReady": "True",
        }  # fmt: skip
    for name in ("large", "globex-small"):  # min 1 and no kubelet: the pod never runs
        cond = wait_for(
            lambda n=name: (c := condition(env.pool(n), "DeploymentReady")) and c["status"] == "False" and c
        )
        assert cond["reason"] == "ReplicasUnavailable"
        assert condition(env.pool(name), "Ready")["reason"] == "ReplicasUnavailable"  # type: ignore[index]
    for tenant in ("acme", "globex"):
        wait_for(lambda t=tenant: env.ready("tenant", t, None))

    for name, consumer, subject in (
        ("small", "parse-workers-small", "jobs.parse.small"),
        ("large", "parse-workers-large", "jobs.parse.large"),
        ("gpu", "parse-workers-gpu", "jobs.parse.gpu"),
        ("globex-small", "parse-workers-small-globex", "jobs.parse.small.globex"),
    ):
        pool = env.pool(name)
        assert pool is not None
        uid = pool["metadata"]["uid"]
        deployment = k.get("deployment", f"{name}-workers")
        assert deployment is not None
        assert deployment["metadata"]["ownerReferences"][0]["uid"] == uid
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
        scaled = k.get("scaledobject", name)
        assert scaled is not None
        assert scaled["metadata"]["ownerReferences"][0]["uid"] == uid
        assert scaled["spec"]["triggers"][0]["metadata"]["consumer"] == consumer
        info = await _consumer(js, consumer)
        assert info is not None, consumer
        assert info.config.filter_subject == subject
        assert pool["status"]["subject"] == subject
    assert k.get("deployment", "gpu-workers")["spec"]["template"]["spec"]["containers"][0]["image"].endswith(  # type: ignore[index]
        "-gpu"
    )
    for tenant, secret in (("acme", "acme-api-key"), ("globex", "globex-api-key")):
        obj = k.get("secret", secret)
        assert obj is not None
        assert obj["metadata"]["ownerReferences"][0]["name"] == tenant
        record = TenantRecord.model_validate_json(await wait_for_async(lambda t=tenant: _registry(js, t)))
        assert len(record.api_key_hashes) == 1
    # The apiserver's own defaulting and status subresource hold what the operator wrote.
    assert env.pool("small")["status"]["observedGeneration"] == 1  # type: ignore[index]


async def wait_for_async(check: Any, limit_s: float = 60.0) -> Any:
    from tests.operator.cluster import eventually

    return await eventually(check, limit_s)


def _table(text: str) -> list[list[str]]:
    """kubectl's table, cut at the header's column starts (an empty cell stays a cell)."""
    lines = text.rstrip().splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", lines[0])]
    bounds = [*starts[1:], None]
    return [[line[a:b].strip() for a, b in zip(starts, bounds, strict=True)] for line in lines]


def test_kubectl_get_shows_every_column(env: Env) -> None:
    def settled() -> list[list[str]] | None:
        # The min-1 pools show a replica once the controller manager made its pod and the
        # operator read the Deployment's status back: wait for that, then check every column.
        rows = _table(env.kube.run("get", "parsepools", "-n", NS))
        replicas = {r[0]: r[5] for r in rows[1:]}
        return rows if replicas.get("large") == replicas.get("globex-small") == "1" else None

    rows = wait_for(settled)
    assert rows[0] == ["NAME", "TIER", "SUBJECT", "MIN", "MAX", "REPLICAS", "PENDING", "READY", "AGE"]
    by_name = {r[0]: r for r in rows[1:]}
    small_conditions = env.pool("small")["status"]["conditions"]  # type: ignore[index]
    assert by_name["small"][1:8] == ["small", "jobs.parse.small", "0", "20", "0", "0", "True"], (
        small_conditions
    )
    assert by_name["gpu"][1:8] == ["gpu", "jobs.parse.gpu", "0", "4", "0", "0", "True"]
    # large: min 1; the controller manager made a ReplicaSet and a (Pending) pod.
    assert by_name["large"][1:8] == ["large", "jobs.parse.large", "1", "8", "1", "0", "False"]
    assert by_name["globex-small"][1:8] == ["small", "jobs.parse.small.globex", "1", "10", "1", "0", "False"]
    assert re.fullmatch(r"\d+[sm]", by_name["small"][8])

    rows = _table(env.kube.run("get", "tenants"))
    assert rows[0] == ["NAME", "TIERS", "STORAGE", "POOLS", "READY", "AGE"]
    by_name = {r[0]: r for r in rows[1:]}
    assert by_name["acme"][1:5] == ["small,large", "shared", "0", "True"]
    assert by_name["globex"][1:5] == ["small,large,gpu", "tenant", "1", "True"]
    # Short names and the category work too.
    assert "globex" in env.kube.run("get", "tn")
    assert "globex-small" in env.kube.run("get", "percolate", "-A")


async def test_pending_counts_waiting_and_in_flight(env: Env, js: Any) -> None:
    for i in range(3):
        await js.publish("jobs.parse.gpu", f"job-{i}".encode())
    sub = await js.pull_subscribe("jobs.parse.gpu", durable="parse-workers-gpu", stream=STREAM_NAME)
    (msg,) = await sub.fetch(1, timeout=5)  # delivered, not acknowledged: in flight
    status = wait_for(
        lambda: (
            (p := env.pool("gpu"))
            and ((p["status"].get("inFlight") == 1 and p["status"]) or print(p["status"]))
        )
    )
    assert (status["pending"], status["waiting"], status["inFlight"]) == (3, 2, 1)
    # Leave the queue empty for the tests after this one.
    # ack_sync: the wait below blocks this loop, so a plain ack might never be flushed.
    await msg.ack_sync()
    for m in await sub.fetch(2, timeout=5):
        await m.ack_sync()
    wait_for(lambda: env.pool("gpu")["status"]["pending"] == 0)  # type: ignore[index]


async def test_spec_update_reaches_every_child(env: Env, js: Any) -> None:
    env.kube.run(
        "patch", "parsepool", "small", "-n", NS, "--type=merge",
        "-p", json.dumps({"spec": {"replicas": {"max": 12}, "consumer": {"ackWait": "45m"}}}),
    )  # fmt: skip
    wait_for(lambda: env.kube.get("scaledobject", "small")["spec"]["maxReplicaCount"] == 12)  # type: ignore[index]
    info = await wait_for_async(
        lambda: _consumer_with(js, "parse-workers-small", lambda i: i.config.ack_wait == 2700.0)
    )
    assert info.config.filter_subject == "jobs.parse.small"
    wait_for(lambda: env.pool("small")["status"]["observedGeneration"] == 2)  # type: ignore[index]


async def _consumer_with(js: Any, name: str, check: Any) -> Any:
    info = await _consumer(js, name)
    return info if info is not None and check(info) else None


def test_drift_is_repaired_and_quantities_do_not_drift(env: Env) -> None:
    k = env.kube
    k.apply({
        "apiVersion": "percolate.dev/v1alpha1", "kind": "ParsePool",
        "metadata": {"name": "quantities", "namespace": NS},
        "spec": {"tier": "large", "tenant": "qty", "resources": {
            "requests": {"cpu": "0.5", "memory": "1024Mi"}, "limits": {"cpu": "1.5", "memory": "2048Mi"}}},
    })  # fmt: skip
    wait_for(lambda: env.ready("parsepool", "quantities"))
    deployment = k.get("deployment", "quantities-workers")
    assert deployment is not None
    resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": "500m", "memory": "1Gi"}  # normalised by the apiserver
    generation = deployment["metadata"]["generation"]
    # Several drift intervals (3 s here): a textual compare used to re-apply on every one.
    import time

    time.sleep(10)
    assert k.get("deployment", "quantities-workers")["metadata"]["generation"] == generation  # type: ignore[index]
    assert not [e for e in k.events("DeploymentRestored") if e["involvedObject"]["name"] == "quantities"]

    # A hand edit of a field the operator owns is taken back (server-side apply, force).
    k.run("set", "image", "deployment/quantities-workers", "-n", NS, "worker=someone/else:latest")
    wait_for(
        lambda: (
            k.get("deployment", "quantities-workers")["spec"]["template"]["spec"]["containers"][0]["image"]  # type: ignore[index]
            != "someone/else:latest"
        )
    )
    wait_for(
        lambda: [e for e in k.events("DeploymentRestored") if e["involvedObject"]["name"] == "quantities"]
    )


async def test_only_the_tenant_namespace_may_name_a_tenant(env: Env, js: Any) -> None:
    env.kube.apply({
        "apiVersion": "percolate.dev/v1alpha1", "kind": "ParsePool",
        "metadata": {"name": "claim", "namespace": "default"},
        "spec": {"tier": "small", "tenant": "acme"},
    })  # fmt: skip
    cond = wait_for(lambda: condition(env.pool("claim", "default"), "Ready"))
    assert (cond["status"], cond["reason"]) == ("False", "TenantNotAllowed")
    assert "percolate" in cond["message"]
    assert await _consumer(js, "parse-workers-small-acme") is None
    assert env.kube.get("deployment", "claim-workers", "default") is None
    env.kube.run("delete", "parsepool", "claim", "-n", "default", "--wait=true", "--timeout=60s")


def test_missing_webhook_secret_shows_in_kubectl_get(env: Env) -> None:
    env.kube.apply({
        "apiVersion": "percolate.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "initech"},
        "spec": {"allowedTiers": ["small"], "webhookSecretRef": {"name": "initech-webhook", "key": "secret"}},
    })  # fmt: skip
    cond = wait_for(lambda: condition(env.kube.get("tenant", "initech", None), "Ready"))
    assert (cond["status"], cond["reason"]) == ("False", "WebhookSecretMissing")
    row = {r[0]: r for r in _table(env.kube.run("get", "tenants"))}["initech"]
    assert row[1:5] == ["", "shared", "", "False"]
    env.kube.run("create", "secret", "generic", "initech-webhook", "-n", NS, "--from-literal=secret=whsec_2")
    wait_for(lambda: env.ready("tenant", "initech", None))


async def test_delete_runs_finalizers_and_cascades(env: Env, js: Any) -> None:
    k = env.kube
    # A pool: its consumer goes (finalizer), then garbage collection takes its children.
    k.run("delete", "parsepool", "large", "-n", NS, "--wait=true", "--timeout=60s")
    assert await _consumer(js, "parse-workers-large") is None
    wait_for(lambda: k.get("deployment", "large-workers") is None and k.get("scaledobject", "large") is None)

    # A tenant: registry entry (finalizer), then its API key Secret and dedicated pool (owned),
    # whose own finalizer removes its consumer, then the pool's children.
    k.run("delete", "tenant", "globex", "--wait=true", "--timeout=60s")
    assert await _registry(js, "globex") is None
    wait_for(lambda: k.get("parsepool", "globex-small") is None, 90)
    wait_for(lambda: k.get("secret", "globex-api-key") is None)
    assert await _consumer(js, "parse-workers-small-globex") is None
    wait_for(lambda: k.get("deployment", "globex-small-workers") is None)
    assert k.get("scaledobject", "globex-small") is None


SCALER_POOL = {
    "apiVersion": "percolate.dev/v1alpha1", "kind": "ParsePool",
    "metadata": {"name": "scaler", "namespace": NS},
    "spec": {
        "tier": "small", "tenant": "kedatest", "replicas": {"min": 0, "max": 2},
        "scaling": {
            "lagThreshold": 1, "activationLagThreshold": 0, "pollingInterval": 1, "cooldownPeriod": 5,
        },
    },
}  # fmt: skip


async def test_keda_scales_the_pool_from_zero_and_back(env: Env, js: Any) -> None:
    k = env.kube
    k.apply(SCALER_POOL)
    wait_for(lambda: env.ready("parsepool", "scaler"))
    scaled = wait_for(lambda: (so := k.get("scaledobject", "scaler")) and condition(so, "Ready") and so)
    assert condition(scaled, "Ready")["status"] == "True"  # type: ignore[index]
    assert "fallback" not in scaled["spec"]
    assert k.get("deployment", "scaler-workers")["spec"]["replicas"] == 0  # type: ignore[index]

    await js.publish("jobs.parse.small.kedatest", b"job")
    wait_for(lambda: k.get("deployment", "scaler-workers")["spec"]["replicas"] == 1, 60)  # type: ignore[index]
    wait_for(lambda: condition(env.pool("scaler"), "Scaling")["reason"] == "Active")  # type: ignore[index]

    sub = await js.pull_subscribe(
        "jobs.parse.small.kedatest", durable="parse-workers-small-kedatest", stream=STREAM_NAME
    )
    for msg in await sub.fetch(1, timeout=5):
        await msg.ack_sync()
    wait_for(lambda: k.get("deployment", "scaler-workers")["spec"]["replicas"] == 0, 60)  # type: ignore[index]


async def test_restart_resumes_and_a_wrong_monitoring_endpoint_shows(env: Env, js: Any) -> None:
    k = env.kube
    assert env.operator.stop() == 0
    # Changed while the operator was down: a spec, and a consumer deleted behind its back.
    k.run("patch", "parsepool", "small", "-n", NS, "--type=merge", "-p", '{"spec": {"replicas": {"max": 7}}}')
    await js.delete_consumer(STREAM_NAME, "parse-workers-gpu")
    # Restarted with a monitoring endpoint where nothing listens.
    env.operator.start(keda_monitoring_endpoint=f"127.0.0.1:{free_port()}")
    wait_for(lambda: k.get("scaledobject", "small")["spec"]["maxReplicaCount"] == 7)  # type: ignore[index]
    assert await wait_for_async(lambda: _consumer(js, "parse-workers-gpu"))
    cond = wait_for(
        lambda: (c := condition(env.pool("scaler"), "Scaling")) and c["status"] == "False" and c, limit_s=60
    )
    assert cond["reason"], cond
    ready = condition(env.pool("scaler"), "Ready")
    assert ready is not None
    assert ready["status"] == "False"

    # Back to the right endpoint: the pool recovers.
    assert env.operator.stop() == 0
    env.operator.start()
    wait_for(lambda: (c := condition(env.pool("scaler"), "Scaling")) and c["status"] == "True", limit_s=60)


def test_the_operator_needed_nothing_beyond_its_rbac(env: Env) -> None:
    logs = env.operator.logs()
    assert "Forbidden" not in logs, logs[-3000:]
    assert " 403" not in logs, logs[-3000:]
    assert "Traceback" not in logs, logs[-3000:]
