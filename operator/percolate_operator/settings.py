"""Operator settings: one immutable object built at start-up from `PERCOLATE_OPERATOR_*`.

These are operator-only knobs (the workers' settings live in `percolate_reading.config` and are
what the operator writes into each worker Deployment's environment).
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "PERCOLATE_OPERATOR_"


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="ignore", case_sensitive=False
    )

    # --- Kubernetes ---------------------------------------------------------------------
    k8s_server: str | None = Field(
        None,
        description="API server URL without auth (tests, `kubectl proxy`); unset: in-cluster "
        "service account, then kubeconfig.",
    )
    tenant_namespace: str = Field(
        "percolate", description="Namespace of Tenant children (API key Secrets, dedicated ParsePools)."
    )
    liveness_endpoint: str = Field(
        "http://0.0.0.0:8080/healthz", description="kopf's liveness endpoint (probed by the Deployment)."
    )
    field_manager: str = Field("percolate-operator", description="Field manager name for applied children.")
    kube_max_connections: int = Field(
        32,
        ge=4,
        description="Most connections to the API server per client (kopf's, the children's): each "
        "TLS connection costs about 256 KiB, so an unbounded burst costs hundreds of MB.",
    )

    # --- NATS (the operator's own connection, for streams, consumers and the registry) ---
    nats_url: str = Field("nats://nats:4222", description="NATS URL(s), comma-separated.")
    nats_connect_timeout_s: float = Field(5.0, gt=0, description="Connect timeout to NATS.")
    nats_request_timeout_s: float = Field(5.0, gt=0, description="JetStream API request timeout.")
    nats_retry_delay_s: float = Field(
        10.0, gt=0, description="Delay before retrying a reconcile when NATS is unreachable."
    )
    stream_replicas: int = Field(
        1, ge=1, le=5, description="Replicas of the JOBS, JOBS_DLQ and JOBS_STRANDED streams."
    )
    stream_max_msgs: int = Field(100_000, ge=1, description="JOBS message cap (discard new when full).")
    stream_max_age_s: float = Field(7 * 24 * 3600.0, gt=0, description="JOBS message max age.")
    stream_duplicate_window_s: float = Field(120.0, gt=0, description="JOBS publish de-dup window.")
    dlq_max_age_s: float = Field(30 * 24 * 3600.0, gt=0, description="JOBS_DLQ message max age.")

    # --- S3 (only to create the buckets of tenants with `storage.strategy: tenant`) --------
    s3_endpoint: str | None = Field(
        None, description="S3 endpoint for creating tenant buckets; unset: the platform creates them."
    )
    s3_access_key: str | None = Field(None, description="S3 access key id (bucket creation).")
    s3_secret_key: SecretStr | None = Field(None, description="S3 secret access key (bucket creation).")
    s3_region: str = Field("us-east-1", description="S3 region name.")

    # --- KEDA ---------------------------------------------------------------------------
    keda_monitoring_endpoint: str = Field(
        "nats.percolate.svc.cluster.local:8222",
        description="host:port of the NATS monitoring endpoint KEDA polls for consumer lag.",
    )
    keda_account: str = Field("$G", description="NATS account of the JOBS stream ($G without accounts).")
    keda_use_https: bool = Field(False, description="KEDA reaches the monitoring endpoint over HTTPS.")

    # --- workers ------------------------------------------------------------------------
    default_image: str = Field(
        "ghcr.io/percolate/percolate-reading:0.1.0", description="Worker image when a pool names none."
    )

    # --- timers -------------------------------------------------------------------------
    drift_interval_s: float = Field(60.0, gt=0, description="How often each object is checked for drift.")
    drift_initial_delay_s: float = Field(
        30.0, ge=0, description="Delay before an object's first drift check (creation handles it)."
    )
