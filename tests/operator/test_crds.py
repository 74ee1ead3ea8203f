"""The CRDs: structure, examples accepted, invalid resources rejected, CEL == Python rules."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from percolate_operator import models
from tests.operator.crd_schema import (
    CRD_DIR,
    EXAMPLES_DIR,
    INVALID_DIR,
    api_server_errors,
    apply_defaults,
    crd_schema,
    default_errors,
    load_crd,
    load_yaml,
    python_errors,
)

EXAMPLES = sorted(EXAMPLES_DIR.glob("*.yaml"))
INVALID = sorted(INVALID_DIR.glob("*.yaml"))


def _walk(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    if isinstance(schema, dict):
        out.append((path, schema))
        for name, sub in (schema.get("properties") or {}).items():
            out += _walk(sub, f"{path}.{name}")
        if isinstance(schema.get("items"), dict):
            out += _walk(schema["items"], f"{path}[]")
        if isinstance(schema.get("additionalProperties"), dict):
            out += _walk(schema["additionalProperties"], f"{path}{{}}")
    return out


@pytest.mark.parametrize("kind", ["ParsePool", "Tenant"])
def test_crd_is_structural_with_status_subresource(kind: str) -> None:
    crd = load_crd(kind)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["spec"]["group"] == "percolate.dev"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}}
    schema = version["schema"]["openAPIV3Schema"]
    assert "status" in schema["properties"], "an undeclared status would be pruned"
    # Structural: every node has a type (metadata excepted by the API server only at the root).
    for path, node in _walk(schema):
        assert "type" in node, f"{kind}{path} has no type"
        if node["type"] == "string" and "x-kubernetes-validations" in node:
            assert "enum" in node or "maxLength" in node, f"{kind}{path}: CEL on unbounded string"
        if node["type"] == "array":
            assert "maxItems" in node or path.startswith(".status"), f"{kind}{path}: unbounded list"


def test_printer_columns_and_short_names() -> None:
    pp = load_crd("ParsePool")["spec"]
    tn = load_crd("Tenant")["spec"]
    assert pp["names"]["shortNames"] == ["pp"]
    assert tn["names"]["shortNames"] == ["tn"]
    assert [c["name"].upper() for c in pp["versions"][0]["additionalPrinterColumns"]] == [
        "TIER", "SUBJECT", "MIN", "MAX", "REPLICAS", "PENDING", "READY", "AGE",
    ]  # fmt: skip
    assert [c["name"].upper() for c in tn["versions"][0]["additionalPrinterColumns"]] == [
        "TIERS", "STORAGE", "POOLS", "READY", "AGE",
    ]  # fmt: skip
    # Every printer column reads a field the schema declares.
    for spec in (pp, tn):
        schema = spec["versions"][0]["schema"]["openAPIV3Schema"]
        for column in spec["versions"][0]["additionalPrinterColumns"]:
            node = schema
            for part in column["jsonPath"].lstrip(".").split("[")[0].split("."):
                if part == "metadata":
                    break
                node = node["properties"][part]


def test_kustomization_lists_both_crds() -> None:
    kustomization = yaml.safe_load((CRD_DIR / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == ["parsepool.yaml", "tenant.yaml"]
    built = subprocess.run(["kubectl", "kustomize", str(CRD_DIR)], capture_output=True, text=True, check=True)
    names = sorted(doc["metadata"]["name"] for doc in yaml.safe_load_all(built.stdout))
    assert names == ["parsepools.percolate.dev", "tenants.percolate.dev"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_accepted(path: Path) -> None:
    obj = load_yaml(path)
    assert obj["apiVersion"] == "percolate.dev/v1alpha1"
    assert api_server_errors(obj) == []
    assert python_errors(apply_defaults(crd_schema(obj["kind"]), obj)) == []
    assert python_errors(obj) == []


def test_examples_cover_each_tier_and_storage() -> None:
    docs = [load_yaml(p) for p in EXAMPLES]
    assert {d["spec"]["tier"] for d in docs if d["kind"] == "ParsePool"} == {"small", "large", "gpu"}
    tenants = [d for d in docs if d["kind"] == "Tenant"]
    assert {t["spec"]["storage"]["strategy"] for t in tenants} == {"shared", "tenant"}
    assert any(t["spec"].get("dedicatedPools") for t in tenants)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_resources_are_rejected_by_both(path: Path) -> None:
    obj = load_yaml(path)
    assert api_server_errors(obj), "the API server would accept it"
    assert python_errors(obj), "the operator would accept it"


def test_max_below_min_is_a_cel_rejection() -> None:
    errors = api_server_errors(load_yaml(INVALID_DIR / "parsepool-max-below-min.yaml"))
    assert errors == [".spec.replicas: replicas.min must not exceed replicas.max"]


def test_unknown_tier_is_a_schema_rejection() -> None:
    errors = api_server_errors(load_yaml(INVALID_DIR / "parsepool-unknown-tier.yaml"))
    assert len(errors) == 1
    assert "'huge' is not one of ['small', 'large', 'gpu']" in errors[0]


def _pool(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "percolate.dev/v1alpha1",
        "kind": "ParsePool",
        "metadata": {"name": "p"},
        "spec": spec,
    }


UPDATES = [
    ("tier changed", _pool(tier="small"), _pool(tier="large"), False),
    ("tenant added", _pool(tier="small"), _pool(tier="small", tenant="acme"), False),
    ("tenant changed", _pool(tier="small", tenant="a"), _pool(tier="small", tenant="b"), False),
    ("max raised", _pool(tier="small", replicas={"max": 2}), _pool(tier="small", replicas={"max": 9}), True),
    ("ack wait", _pool(tier="gpu"), _pool(tier="gpu", consumer={"ackWait": "30s"}), True),
]


@pytest.mark.parametrize(("old", "new", "allowed"), [u[1:] for u in UPDATES], ids=[u[0] for u in UPDATES])
def test_transition_rules_agree(old: dict[str, Any], new: dict[str, Any], allowed: bool) -> None:
    schema = crd_schema("ParsePool")
    assert (api_server_errors(new, old) == []) is allowed
    assert (python_errors(apply_defaults(schema, new), apply_defaults(schema, old)) == []) is allowed


def test_tenant_storage_strategy_is_immutable() -> None:
    old = load_yaml(EXAMPLES_DIR / "tenant-shared.yaml")
    new = copy.deepcopy(old)
    new["spec"]["storage"]["strategy"] = "tenant"
    assert api_server_errors(new, old) == [".spec.storage.strategy: storage.strategy is immutable"]
    assert python_errors(new, old) == ["storage.strategy"]
    new["spec"]["storage"]["strategy"] = "shared"
    new["spec"]["quotas"]["maxActiveJobs"] = 10
    assert api_server_errors(new, old) == []
    assert python_errors(new, old) == []


def test_long_tenant_name_with_pools_rejected_by_both() -> None:
    obj = load_yaml(EXAMPLES_DIR / "tenant-dedicated.yaml")
    obj["metadata"]["name"] = "a" * 35
    assert api_server_errors(obj)
    assert python_errors(obj)
    del obj["spec"]["dedicatedPools"]
    assert api_server_errors(obj) == []
    assert python_errors(obj) == []


def test_crd_defaults_agree_with_model_defaults() -> None:
    """The operator reads a spec the same with or without the API server's defaulting."""
    for tier in ("small", "large", "gpu"):
        minimal = {"tier": tier}
        defaulted = apply_defaults(crd_schema("ParsePool"), {"spec": minimal})["spec"]
        assert defaulted != minimal
        assert models.parse_pool_spec(defaulted) == models.parse_pool_spec(minimal)
    minimal_tenant: dict[str, Any] = {"dedicatedPools": [{"tier": "large"}]}
    defaulted = apply_defaults(crd_schema("Tenant"), {"spec": minimal_tenant})["spec"]
    assert defaulted["dedicatedPools"][0]["consumer"] == {
        "ackWait": "5m",
        "maxDeliver": 3,
        "maxAckPending": 100,
    }
    assert models.parse_tenant_spec(defaulted) == models.parse_tenant_spec(minimal_tenant)


def test_dedicated_pool_schema_is_the_parsepool_spec() -> None:
    """Tenant.spec.dedicatedPools items take a ParsePool spec, less tenant and update rules."""
    pool = copy.deepcopy(crd_schema("ParsePool")["properties"]["spec"])
    del pool["properties"]["tenant"]
    del pool["properties"]["tier"]["x-kubernetes-validations"]
    pool["x-kubernetes-validations"] = [
        r for r in pool["x-kubernetes-validations"] if "oldSelf" not in r["rule"]
    ]
    item = crd_schema("Tenant")["properties"]["spec"]["properties"]["dedicatedPools"]["items"]
    assert item == pool
    # ...and the models agree on the field names.
    assert set(pool["properties"]) == {f.alias for f in models.PoolSettings.model_fields.values()}
    tenant_props = crd_schema("Tenant")["properties"]["spec"]["properties"]
    assert set(tenant_props) == {f.alias for f in models.TenantSpec.model_fields.values()}


@pytest.mark.parametrize("kind", ["ParsePool", "Tenant"])
def test_every_default_passes_the_cel_rules_as_written(kind: str) -> None:
    # What the API server checks on `kubectl apply` of the CRD (finding: `default: {}` under
    # `self.min <= self.max` got both CRDs rejected).
    assert default_errors(crd_schema(kind)) == []


def test_default_check_catches_an_empty_default_under_a_rule() -> None:
    schema = copy.deepcopy(crd_schema("ParsePool"))
    schema["properties"]["spec"]["properties"]["replicas"]["default"] = {}
    errors = default_errors(schema)
    assert len(errors) == 1
    assert errors[0].startswith(".spec.replicas (default)")
    assert "min" in errors[0]
