"""The CRDs and manifests on a real kube-apiserver: accepted, Established, and enforcing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.kube.controlplane import ROOT, ControlPlane
from tests.operator.crd_schema import INVALID_DIR

pytestmark = pytest.mark.kube
INVALID = sorted(INVALID_DIR.glob("*.yaml"))


def test_crds_are_established(crds: ControlPlane) -> None:
    for name in ("parsepools.percolate.dev", "tenants.percolate.dev"):
        crd = json.loads(crds.kubectl_run("get", "crd", name, "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions["Established"] == "True"
        assert conditions["NamesAccepted"] == "True"
    # The short names and categories are served.
    assert "No resources found" in crds.kubectl_run("get", "pp", "-A").stderr
    assert "No resources found" in crds.kubectl_run("get", "tn").stderr


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_examples_are_rejected_by_the_api_server(crds: ControlPlane, path: Path) -> None:
    done = crds.kubectl_run("apply", "--dry-run=server", "-n", "percolate", "-f", str(path), check=False)
    assert done.returncode != 0, f"the API server accepted {path.name}"
    assert "Invalid value" in done.stderr or "Unsupported value" in done.stderr, done.stderr


def test_examples_are_accepted_and_defaulted(crds: ControlPlane) -> None:
    done = crds.kubectl_run("apply", "--dry-run=server", "-k", str(ROOT / "k8s" / "examples"), "-o", "json")
    items = json.loads(done.stdout)["items"]
    kinds = sorted(i["kind"] for i in items)
    assert kinds == ["ParsePool"] * 3 + ["Tenant"] * 2
    for item in items:
        if item["kind"] == "ParsePool":
            # The API server filled in the defaults the operator would otherwise assume.
            assert item["spec"]["consumer"]["maxDeliver"] >= 1
            assert item["spec"]["replicas"]["max"] >= item["spec"]["replicas"]["min"]


# The overlay's ServiceMonitors need the Prometheus Operator's CRD (a documented prerequisite,
# k8s/README.md). Not shipped here: a stand-in with the same group/kind that keeps any field.
SERVICE_MONITOR_CRD_STAND_IN = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names:
    {plural: servicemonitors, singular: servicemonitor, kind: ServiceMonitor, listKind: ServiceMonitorList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def test_dev_overlay_applies_server_side(crds: ControlPlane) -> None:
    crds.kubectl_run("apply", "--server-side", "-f", "-", input_text=SERVICE_MONITOR_CRD_STAND_IN)
    crds.wait_established("servicemonitors.monitoring.coreos.com")
    done = crds.kubectl_run("apply", "--server-side", "-k", str(ROOT / "k8s" / "overlays" / "dev"))
    assert "serverside-applied" in done.stdout
    deployments = json.loads(crds.kubectl_run("get", "deployments", "-n", "percolate", "-o", "json").stdout)
    names = {d["metadata"]["name"] for d in deployments["items"]}
    assert {"percolate-operator", "percolate-gateway"} <= names, names
    # No kubelet or scheduler here: the pods exist only as Deployments' wishes (Pending at most).
    statefulsets = crds.kubectl_run("get", "statefulsets", "-n", "percolate", "-o", "name").stdout.split()
    assert "statefulset.apps/nats" in statefulsets
    # The overlays (dev and prod share base/) carry no example ParsePools or Tenants.
    assert crds.kubectl_run("get", "parsepools", "-A", "-o", "name").stdout.strip() == ""
    assert crds.kubectl_run("get", "tenants", "-o", "name").stdout.strip() == ""
