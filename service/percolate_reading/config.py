"""Settings: one immutable object built at start-up from `PERCOLATE_READING_*` and passed down.

Names follow the platform design (`PERCOLATE_READING_S3_ENDPOINT`, `..._NATS_URL`, ...). Code
never reads the environment itself; it takes a `Settings` (or a smaller options object made
from one) as an argument.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "PERCOLATE_READING_"

FILES_BUCKET = "percolate-files"
ARTIFACTS_BUCKET = "percolate-artifacts"
CONTEXT_BUCKET = "percolate-context"


class Device(StrEnum):
    CPU = "cpu"
    CUDA = "cuda"
    AUTO = "auto"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="ignore",
        case_sensitive=False,
    )

    # --- roles -------------------------------------------------------------------------
    gateway_mode: bool = Field(False, description="Run the HTTP gateway.")
    worker_mode: bool = Field(False, description="Run a queue worker.")
    operator_mode: bool = Field(
        False, description="Run the Kubernetes operator (container role; excludes gateway/worker)."
    )
    host: str = Field("0.0.0.0", description="Gateway bind address.")
    port: int = Field(8001, ge=1, le=65535, description="Gateway port.")
    data_dir: Path = Field(
        Path(".percolate"),
        description="Local state: single-node job store, local object store, private nats-server.",
    )
    log_level: str = Field("INFO", description="Python logging level.")
    log_format: LogFormat = Field(
        LogFormat.TEXT,
        description="Log lines as `text` (for a terminal) or `json` (one object per line with "
        "timestamp, level, logger, message, tenant_id, job_id, pool and trace_id).",
    )
    metrics_port: int = Field(
        9090, ge=0, le=65535, description="Worker's /metrics and /ready port (0 disables it)."
    )
    queue_stats_interval_s: float = Field(
        15.0,
        ge=0,
        description="Gateway: how often the per-pool queue gauges (depth, oldest-job age, dead "
        "letters) are read from JetStream (0 disables).",
    )

    # --- object storage ----------------------------------------------------------------
    s3_enabled: bool = Field(True, description="Use S3; false stores objects under data_dir.")
    s3_endpoint: str | None = Field(None, description="S3 endpoint URL (MinIO, SeaweedFS, AWS).")
    s3_bucket: str = Field(FILES_BUCKET, description="Bucket for uploaded source files.")
    s3_artifacts_bucket: str = Field(ARTIFACTS_BUCKET, description="Bucket for parse artifacts.")
    s3_context_bucket: str = Field(CONTEXT_BUCKET, description="Bucket for per-tenant context.")
    s3_access_key: str | None = Field(None, description="S3 access key id.")
    s3_secret_key: SecretStr | None = Field(None, description="S3 secret access key.")
    s3_region: str = Field("us-east-1", description="S3 region name.")
    s3_multipart_chunk_bytes: int = Field(
        8 * 1024 * 1024, ge=5 * 1024 * 1024, description="Part size for multipart uploads."
    )
    s3_abort_incomplete_uploads_after_s: float = Field(
        24 * 3600.0,
        gt=0,
        description="Multipart uploads begun longer ago are aborted by the gateway's sweeper (a "
        "gateway killed mid-upload leaves them); buckets also get a lifecycle rule of as many days.",
    )

    # --- NATS JetStream ----------------------------------------------------------------
    nats_url: str | None = Field(None, description="NATS server URL(s), comma-separated.")
    nats_queue_subject: str = Field(
        "jobs.parse.small", description="Subject this worker's consumer filters on."
    )
    nats_queue_group: str = Field(
        "parse-workers-small", description="Durable consumer name this worker pulls from."
    )
    nats_ack_wait: float = Field(300.0, gt=0, description="Seconds before an unacked job is redelivered.")
    nats_max_deliver: int = Field(3, ge=1, description="Deliveries before a job is dead-lettered.")
    nats_max_ack_pending: int = Field(100, ge=1, description="Unacked jobs a consumer may hold.")
    nats_replicas: int = Field(1, ge=1, le=5, description="Stream replicas (3 in a cluster).")
    nats_max_msgs: int = Field(100_000, ge=1, description="Stream message cap (discard new).")
    nats_max_age_s: float = Field(7 * 24 * 3600.0, gt=0, description="Stream message max age.")
    nats_duplicate_window_s: float = Field(120.0, gt=0, description="Publish de-duplication window.")
    nats_dlq_max_age_s: float = Field(
        30 * 24 * 3600.0, gt=0, description="How long dead-lettered jobs stay in JOBS_DLQ."
    )
    nats_publish_timeout_s: float = Field(5.0, gt=0, description="Wait for a PubAck before giving up.")
    nats_kv_history: int = Field(3, ge=1, le=5, description="Revisions kept per key in JOBS_STATUS.")
    nak_backoff_s: str = Field(
        "2,10,30", description="Comma-separated nak delays (s) for transient failures, by delivery."
    )
    dependency_outage_budget_s: float = Field(
        1200.0,
        ge=0,
        description="How long a worker holds jobs through an S3/job-store outage (pulling paused, "
        "probing) before they fall back to nak and dead letter; outages spend time, not deliveries.",
    )
    outage_probe_s: float = Field(
        2.0, gt=0, description="Probe interval of S3 and the job store in an outage."
    )
    worker_fetch_timeout_s: float = Field(2.0, gt=0, description="Long-poll time of one worker fetch.")

    # --- worker ------------------------------------------------------------------------
    device: Device = Field(Device.CPU, description="Inference device for audio/OCR: cpu|cuda|auto.")
    worker_concurrency: int = Field(2, ge=1, description="Parses in flight per worker process.")
    worker_prefetch: int = Field(
        4,
        ge=0,
        description="Jobs a worker holds beyond its parse slots: they download, store artifacts "
        "and report while other jobs parse (a job waiting for a slot is returned at once on SIGTERM).",
    )
    worker_fair_tenants: bool = Field(
        True,
        description="In a shared pool, give each free slot to the waiting tenant with the fewest "
        "jobs on this worker (its oldest job moves to the pool's fair lane) instead of strict "
        "arrival order, so one tenant's burst does not queue the others' jobs behind it.",
    )
    context_rebuild_interval_s: float = Field(
        0.25,
        ge=0,
        description="Least time between two rebuilds of a tenant's context manifest by one worker; "
        "documents that finish meanwhile are listed by the next one (a job reports success after it).",
    )
    drain_timeout_s: float = Field(25.0, ge=0, description="SIGTERM: time to finish in-flight jobs.")

    # --- parsing limits (each parse runs in a sandboxed child) -------------------------
    parse_timeout_s: float = Field(600.0, gt=0, description="Wall-clock limit of one parse.")
    parse_memory_mb: int = Field(2048, ge=64, description="Address-space limit of one parse child.")
    parse_cpu_s: float | None = Field(
        None, gt=0, description="CPU-seconds limit of one parse child (all threads); default 2x timeout."
    )
    parse_threads: int = Field(
        0,
        ge=0,
        description="CPU threads one parse may use (OCR, speech). 0: the CPUs this process may use "
        "(affinity mask and cgroup CPU quota) divided by worker_concurrency, at least 1.",
    )
    max_pages: int = Field(5000, ge=1, description="PDF page cap.")
    split_part_pages: int = Field(
        10,
        ge=0,
        description="Pages per part when a large scanned PDF is split into page ranges that the "
        "pool's workers parse in parallel (0: never split).",
    )
    split_min_pages: int = Field(
        40, ge=2, description="PDFs with at least this many (requested) pages are considered for a split."
    )
    split_min_bytes: int = Field(
        1_000_000,
        ge=0,
        description="PDFs smaller than this are never split (scans are large; the check that a PDF "
        "is a scan costs a sandboxed open, skipped for small files).",
    )
    ocr_enabled: bool = Field(True, description="OCR images and PDF pages without a text layer.")
    whisper_model: str = Field(
        "base",
        description="faster-whisper model: a directory path, or 'base' for the bundled package model.",
    )
    whisper_compute_type: str = Field("int8", description="CTranslate2 compute type.")
    chunk_max_chars: int = Field(2000, ge=200, description="Chunk size limit in characters.")
    chunk_overlap_chars: int = Field(200, ge=0, description="Overlap between consecutive chunks.")

    # --- spreadsheet / image / audio limits (XlsxProvider, ImageProvider, AudioProvider) --
    xlsx_max_cells: int = Field(
        5_000_000, ge=1, description="Cell cap of one workbook (dense sheet area, all sheets)."
    )
    xlsx_max_uncompressed_bytes: int = Field(
        512 * 1024 * 1024, ge=1, description="Zip-bomb guard: total uncompressed size of an XLSX."
    )
    xlsx_max_compression_ratio: float = Field(
        200.0, gt=1, description="Zip-bomb guard: uncompressed/compressed ratio of one large member."
    )
    image_max_pixels: int = Field(
        89_478_485, ge=1, description="Decompression-bomb guard: pixels of one image frame."
    )
    audio_max_duration_s: float = Field(
        2 * 3600.0, gt=0, description="Longest audio transcribed (s); decoded PCM costs 64 KB/s."
    )
    model_cache_dir: Path = Field(
        default_factory=lambda: default_model_cache_dir(),
        description="Where bundled models are assembled (default $XDG_CACHE_HOME/percolate-reading).",
    )

    # --- gateway / tenancy -------------------------------------------------------------
    dev_api_key: SecretStr | None = Field(None, description="API key of one development tenant.")
    dev_tenant_id: str = Field("dev", description="Tenant id the dev key belongs to.")
    tenants_file: Path | None = Field(None, description="YAML/JSON file of tenants (dev/tests).")
    max_upload_bytes: int = Field(512 * 1024 * 1024, ge=1, description="Default per-tenant upload cap.")
    max_active_jobs: int = Field(1000, ge=1, description="Default per-tenant queued+running cap.")
    small_tier_max_bytes: int = Field(
        20 * 1024 * 1024, ge=1, description="Uploads above this go to the large tier."
    )
    gpu_tier_types: str = Field("", description="Comma-separated types (audio,image) routed to the gpu tier.")
    webhook_allow_hosts: str = Field(
        "", description="Comma-separated hosts/CIDRs webhooks may reach despite being private."
    )
    webhook_timeout_s: float = Field(
        10.0, gt=0, le=100, description="Per-attempt webhook timeout (under the WEBHOOKS ack wait, 120 s)."
    )
    webhook_max_attempts: int = Field(
        5, ge=1, description="Webhook delivery attempts; then the webhook is recorded as failed."
    )
    webhook_tenant_concurrency: int = Field(
        4, ge=1, description="Webhook attempts in flight per tenant and worker (the rest wait queued)."
    )
    webhook_sender_concurrency: int = Field(
        32, ge=1, description="Webhook attempts in flight per worker process, all tenants."
    )
    webhook_circuit_failures: int = Field(
        5, ge=1, description="Consecutive failed attempts to one destination that pause it."
    )
    webhook_circuit_open_s: float = Field(
        30.0, gt=0, description="First pause of a failing destination; doubles while it keeps failing."
    )
    webhook_backoff_s: float = Field(
        1.0, gt=0, description="First webhook retry delay; doubles per attempt, with jitter."
    )
    webhook_backoff_max_s: float = Field(60.0, gt=0, description="Longest delay between webhook tries.")
    webhook_default_secret: SecretStr | None = Field(
        None, description="Signing secret (whsec_...) for tenants without their own (dev/tests)."
    )

    # --- gateway HTTP limits (gateway/http_limits.py) -------------------------------------
    public_base_url: str | None = Field(
        None,
        description="Base URL clients reach the gateway at (https://parse.example.com); status and "
        "artifact URLs are built from it, never from the Host header. Unset: relative URLs.",
    )
    http_max_header_bytes: int = Field(
        32 * 1024, ge=1024, description="Largest request head (request line and headers): 431 above."
    )
    http_max_headers: int = Field(100, ge=8, description="Most header fields in one request: 431 above.")
    http_header_timeout_s: float = Field(
        10.0, gt=0, description="Time to receive a complete request head: 408 and closed after."
    )
    http_body_timeout_s: float = Field(
        30.0, gt=0, description="Longest pause between two reads of a request body: 408 and closed after."
    )
    http_keep_alive_s: float = Field(10.0, gt=0, description="Idle keep-alive connections close after this.")
    http_max_concurrency: int = Field(
        1000, ge=1, description="Open connections/requests served at once; more get 503."
    )

    # --- client (`percolate-reading submit`) ---------------------------------------------
    url: str = Field("http://127.0.0.1:8001", description="Gateway URL `submit` talks to.")
    api_key: SecretStr | None = Field(None, description="API key `submit` sends (Bearer).")

    @model_validator(mode="after")
    def _check_chunking(self) -> Settings:
        if self.chunk_overlap_chars >= self.chunk_max_chars:
            raise ValueError("chunk_overlap_chars must be smaller than chunk_max_chars")
        return self

    @property
    def gpu_tier_type_set(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.gpu_tier_types.split(",") if t.strip())

    @property
    def webhook_allow_list(self) -> tuple[str, ...]:
        return tuple(h.strip() for h in self.webhook_allow_hosts.split(",") if h.strip())


@dataclass(frozen=True)
class TracingConfig:
    """What the standard OpenTelemetry variables ask of tracing. They keep their standard names
    (no PERCOLATE_READING_ prefix): the SDK reads the rest of them (endpoint, headers,
    sampler, batch delays) itself."""

    exporter: str | None  # "otlp", "console", or None: tracing off
    service_name: str | None  # OTEL_SERVICE_NAME, which wins over the role's own name

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TracingConfig:
        env = os.environ if environ is None else environ
        service_name = env.get("OTEL_SERVICE_NAME") or None
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return cls(None, service_name)
        exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
        if exporter == "none":
            return cls(None, service_name)
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if exporter or endpoint:
            return cls(exporter or "otlp", service_name)
        return cls(None, service_name)  # nothing configured: off


def default_model_cache_dir() -> Path:
    """$XDG_CACHE_HOME/percolate-reading, else ~/.cache/percolate-reading (read here, in config)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "percolate-reading"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides (CLI flags, tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]
