"""The operator's own manifests: valid Kubernetes objects, one Recreate replica, least RBAC."""

from __future__ import annotations

import subprocess
from typing import Any

import kubernetes_validate
import yaml

from percolate_operator.settings import OperatorSettings
from tests.operator.crd_schema import ROOT

DEPLOY_DIR = ROOT / "operator" / "deploy"


def _built() -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY_DIR)], capture_output=True, text=True, check=True
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in _built() if d["kind"] == kind]


def test_every_manifest_is_valid() -> None:
    docs = _built()
    assert {d["kind"] for d in docs} == {
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment",
    }  # fmt: skip
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30", strict=True)


def test_operator_deployment_shape() -> None:
    (dep,) = _by_kind("Deployment")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "percolate-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["command"] == ["percolate-operator"]
    probe = container["livenessProbe"]["httpGet"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    settings = OperatorSettings(liveness_endpoint=env["PERCOLATE_OPERATOR_LIVENESS_ENDPOINT"])
    assert settings.liveness_endpoint.endswith(":8080" + probe["path"])
    assert container["ports"][0]["containerPort"] == 8080
    for name in env:
        assert name.removeprefix("PERCOLATE_OPERATOR_").lower() in OperatorSettings.model_fields


def _allowed(group: str, resource: str, verb: str, rules: list[dict[str, Any]]) -> bool:
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)


def test_rbac_grants_what_the_operator_calls_and_no_more() -> None:
    (cluster_role,) = _by_kind("ClusterRole")
    (role,) = _by_kind("Role")
    rules = cluster_role["rules"]
    needed = [
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
        ("percolate.dev", "parsepools", "watch"),
        ("percolate.dev", "parsepools", "patch"),
        ("percolate.dev", "parsepools", "create"),
        ("percolate.dev", "tenants", "watch"),
        ("percolate.dev", "tenants/status", "patch"),
        ("percolate.dev", "parsepools/finalizers", "update"),
        ("apps", "deployments", "create"),
        ("apps", "deployments", "patch"),
        ("keda.sh", "scaledobjects", "patch"),
        ("", "events", "create"),
    ]
    for group, resource, verb in needed:
        assert _allowed(group, resource, verb, rules), (group, resource, verb)
    # Secrets: only in the tenant namespace, through the Role.
    assert not any("secrets" in r["resources"] for r in rules)
    assert _allowed("", "secrets", "create", role["rules"])
    assert role["metadata"]["namespace"] == OperatorSettings().tenant_namespace
    # No wildcards, no peering objects, no namespace listing.
    for r in rules + role["rules"]:
        assert "*" not in r["verbs"]
        assert "*" not in r["resources"]
        assert not any("peering" in res for res in r["resources"])
        assert "namespaces" not in r["resources"]
