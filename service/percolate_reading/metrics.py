"""Prometheus metrics, one `Metrics` object (with its own registry) per process.

Built explicitly and passed down instead of living in module globals, so tests and the
single-node `serve` (gateway and worker in one process) get one coherent set without
"duplicated timeseries" errors.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_PARSE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class Metrics:
    """Every metric the gateway and workers export."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # gateway
        self.http_requests_total = Counter(
            "http_requests_total", "HTTP requests served.", ["endpoint", "method", "status"], registry=r
        )
        self.s3_upload_duration_seconds = Histogram(
            "s3_upload_duration_seconds",
            "Upload of one source file to S3.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.nats_publish_duration_seconds = Histogram(
            "nats_publish_duration_seconds",
            "JetStream publish until PubAck.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # worker
        self.nats_messages_processed_total = Counter(
            "nats_messages_processed_total",
            "Job messages handled, by outcome (succeeded, failed, retried, dead_lettered, rejected, "
            "cancelled, returned).",
            ["outcome"],
            registry=r,
        )
        self.parse_duration_seconds = Histogram(
            "parse_duration_seconds",
            "One parse, by provider.",
            ["provider"],
            buckets=_PARSE_BUCKETS,
            registry=r,
        )
        self.parse_errors_total = Counter(
            "parse_errors_total",
            "Failed parses, by provider and error code.",
            ["provider", "code"],
            registry=r,
        )
        self.s3_artifact_write_duration_seconds = Histogram(
            "s3_artifact_write_duration_seconds",
            "Writing one job's artifacts to S3.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.jobs_in_flight = Gauge("jobs_in_flight", "Jobs this worker is processing now.", registry=r)
        self.webhook_deliveries_total = Counter(
            "webhook_deliveries_total", "Webhook deliveries, by outcome.", ["outcome"], registry=r
        )

    def render(self) -> bytes:
        """The text exposition format for GET /metrics."""
        return generate_latest(self.registry)
