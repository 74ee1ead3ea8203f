"""Pure builders: a validated spec in, the manifest, config or status the cluster should hold out.

Nothing here does I/O, so every output can be checked against the real schemas in tests
(Kubernetes via kubernetes-validate, KEDA via its CRD models, JetStream via nats-server itself).
One module per concept; everything is re-exported here (`builders.build_deployment(...)`).
"""

from percolate_operator.builders.drift import is_subset, quantities_equal
from percolate_operator.builders.jetstream import (
    consumer_config,
    consumer_limits,
    topology_limits,
)
from percolate_operator.builders.naming import (
    API_KEY_SECRET_KEY,
    ENV,
    MANAGED_BY,
    Manifest,
    dedicated_pool_name,
    deployment_name,
    owner_reference,
    pool_consumer,
    pool_labels,
    pool_subject,
)
from percolate_operator.builders.status import (
    condition,
    deployment_condition,
    deployment_replicas,
    now_iso,
    ready_condition,
    scaled_object_condition,
    scaling_condition,
)
from percolate_operator.builders.tenants import (
    api_key_secret_name,
    build_api_key_secret,
    build_dedicated_pool,
    build_tenant_record,
    registry_entry,
    tenant_buckets,
)
from percolate_operator.builders.workers import (
    GRACE_HEADROOM_S,
    METRICS_PORT,
    SCRATCH_DIR,
    build_deployment,
    build_scaled_object,
    initial_replicas,
    worker_env,
)

__all__ = [
    "API_KEY_SECRET_KEY",
    "ENV",
    "GRACE_HEADROOM_S",
    "MANAGED_BY",
    "METRICS_PORT",
    "SCRATCH_DIR",
    "Manifest",
    "api_key_secret_name",
    "build_api_key_secret",
    "build_dedicated_pool",
    "build_deployment",
    "build_scaled_object",
    "build_tenant_record",
    "condition",
    "consumer_config",
    "consumer_limits",
    "dedicated_pool_name",
    "deployment_condition",
    "deployment_name",
    "deployment_replicas",
    "initial_replicas",
    "is_subset",
    "now_iso",
    "owner_reference",
    "pool_consumer",
    "pool_labels",
    "pool_subject",
    "quantities_equal",
    "ready_condition",
    "registry_entry",
    "scaled_object_condition",
    "scaling_condition",
    "tenant_buckets",
    "topology_limits",
    "worker_env",
]
