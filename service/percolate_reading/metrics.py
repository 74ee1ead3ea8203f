"""Prometheus metrics, one `Metrics` object (with its own registry) per process.

Built explicitly and passed down instead of living in module globals, so tests and the
single-node `serve` (gateway and worker in one process) get one coherent set without
"duplicated timeseries" errors.

Label rule (cardinality): a label may carry a tenant id only where the set of series is
bounded by configuration an operator controls, never by traffic. So the per-pool queue
gauges and the dead-letter gauge carry `tenant` (a dedicated pool or dead-letter subject
exists per Tenant/ParsePool object; shared pools have tenant=""), while per-request and
per-job metrics (HTTP, parse, job duration, webhooks, sandbox kills) never do: there a
tenant label would multiply every histogram bucket by the number of tenants. Error codes,
outcomes, tiers and providers are closed sets defined in code. Route labels are templates.
See docs/observability.md.
"""

from __future__ import annotations

from datetime import UTC, datetime

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
# Accepted to terminal: includes queueing, retries with backoff and webhook delivery.
_JOB_BUCKETS = (
    *(0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0),
    *(1800.0, 3600.0, 7200.0, 21600.0, 86400.0),
)
_WEBHOOK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# Labels of the per-pool queue gauges (see the label rule above).
POOL_LABELS = ("pool", "tier", "tenant")


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
            "webhook_deliveries_total",
            "Webhooks by final outcome (delivered, refused, failed after the attempts, lost: the "
            "WEBHOOKS stream was full).",
            ["outcome"],
            registry=r,
        )
        self.webhook_delivery_duration_seconds = Histogram(
            "webhook_delivery_duration_seconds",
            "One webhook from its queueing on WEBHOOKS to its outcome (retries and backoff "
            "included), by outcome (delivered, failed, refused).",
            ["outcome"],
            buckets=_WEBHOOK_BUCKETS,
            registry=r,
        )
        self.webhook_attempt_failures_total = Counter(
            "webhook_attempt_failures_total",
            "Webhook attempts that did not get a 2xx, by reason (http_4xx, http_5xx, http_other, "
            "timeout, connection).",
            ["reason"],
            registry=r,
        )
        self.job_duration_seconds = Histogram(
            "job_duration_seconds",
            "A job from acceptance (202) to its terminal status, by tier and outcome "
            "(succeeded, failed, cancelled).",
            ["tier", "outcome"],
            buckets=_JOB_BUCKETS,
            registry=r,
        )
        self.jobs_dead_lettered_total = Counter(
            "jobs_dead_lettered_total",
            "Jobs this worker copied to the dead-letter stream, by tier and error code.",
            ["tier", "code"],
            registry=r,
        )
        self.sandbox_kills_total = Counter(
            "sandbox_kills_total",
            "Parse children stopped by a sandbox limit, by reason (wall_timeout, cpu_limit, "
            "memory_limit, signal, cancelled).",
            ["reason"],
            registry=r,
        )
        # Queue state per pool, read from JetStream consumer info by the gateway (always
        # running, unlike workers that scale to zero; see gateway/queue_stats.py).
        self.queue_depth = Gauge(
            "queue_depth",
            "Jobs waiting in a pool's consumer, not yet delivered to a worker (num_pending).",
            POOL_LABELS,
            registry=r,
        )
        self.queue_in_flight = Gauge(
            "queue_in_flight",
            "Jobs delivered to a pool's workers and not yet acknowledged (num_ack_pending).",
            POOL_LABELS,
            registry=r,
        )
        self.queue_waiting_pulls = Gauge(
            "queue_waiting_pulls",
            "Pull requests waiting on a pool's consumer (num_waiting): >0 means a worker is "
            "connected with a free slot.",
            POOL_LABELS,
            registry=r,
        )
        self.queue_oldest_message_age_seconds = Gauge(
            "queue_oldest_message_age_seconds",
            "Age of the oldest unfinished job in a pool's consumer (0 when it is empty).",
            POOL_LABELS,
            registry=r,
        )
        self.dead_letter_messages = Gauge(
            "dead_letter_messages",
            "Messages held in the dead-letter stream JOBS_DLQ, by tier and tenant (dedicated "
            "pools; empty for shared ones).",
            ["tier", "tenant"],
            registry=r,
        )
        self.queue_stats_errors_total = Counter(
            "queue_stats_errors_total",
            "Failed reads of the queue state from JetStream (the queue gauges keep old values).",
            registry=r,
        )
        self.queue_stats_last_success_timestamp_seconds = Gauge(
            "queue_stats_last_success_timestamp_seconds",
            "Unix time of the last complete read of the queue state.",
            registry=r,
        )

    def observe_job_end(
        self, tier: str, outcome: str, accepted_at: datetime, finished_at: datetime | None
    ) -> None:
        """A job reached a terminal status: its time since the gateway accepted it."""
        end = finished_at or datetime.now(UTC)
        seconds = max((end - accepted_at).total_seconds(), 0.0)
        self.job_duration_seconds.labels(tier, outcome).observe(seconds)

    def render(self) -> bytes:
        """The text exposition format for GET /metrics."""
        return generate_latest(self.registry)
