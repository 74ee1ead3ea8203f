"""`percolate-operator`: run kopf with this package's handlers (one replica, no peering)."""

from __future__ import annotations

import sys

import kopf

from percolate_operator.handlers import register
from percolate_operator.settings import OperatorSettings


def main() -> int:
    settings = OperatorSettings()
    registry = kopf.OperatorRegistry()
    register(registry, settings)
    kopf.configure(verbose=False)
    # clusterwide: Tenants are cluster-scoped and ParsePools may live in any namespace.
    # standalone: a single replica (Deployment strategy Recreate), so no peering objects/RBAC.
    try:
        kopf.run(
            registry=registry,
            clusterwide=True,
            standalone=True,
            liveness_endpoint=settings.liveness_endpoint,
        )
    except Exception as exc:
        # kopf raises when a start-up or login handler fails permanently (no API server, bad
        # credentials): a non-zero exit makes the failure visible to Kubernetes.
        print(f"percolate-operator: stopped: {exc.__cause__ or exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
