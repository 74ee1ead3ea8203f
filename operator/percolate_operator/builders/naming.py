"""Names, labels and owner references the other builders share."""

from __future__ import annotations

from typing import Any

from percolate_operator.models import ParsePoolSpec
from percolate_reading.contract.subjects import Tier, consumer_name, job_subject

ENV = "PERCOLATE_READING_"
MANAGED_BY = "percolate-operator"
API_KEY_SECRET_KEY = "api-key"  # noqa: S105 -- a key name, not a secret

Manifest = dict[str, Any]


def pool_subject(spec: ParsePoolSpec) -> str:
    return job_subject(spec.tier, spec.tenant)


def pool_consumer(spec: ParsePoolSpec) -> str:
    return consumer_name(spec.tier, spec.tenant)


def deployment_name(pool_name: str) -> str:
    return f"{pool_name}-workers"


def pool_labels(pool_name: str, spec: ParsePoolSpec) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": "percolate-worker",
        "app.kubernetes.io/instance": pool_name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "percolate.dev/pool": pool_name,
        "percolate.dev/tier": spec.tier.value,
    }
    if spec.tenant is not None:
        labels["percolate.dev/tenant"] = spec.tenant
    return labels


def owner_reference(api_version: str, kind: str, name: str, uid: str) -> dict[str, Any]:
    # controller=true: children are garbage-collected with the owner and `kubectl` shows who
    # manages them; blockOwnerDeletion keeps foreground deletion ordered.
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def dedicated_pool_name(tenant_name: str, tier: Tier) -> str:
    return f"{tenant_name}-{tier.value}"
