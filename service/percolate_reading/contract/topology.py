"""The JetStream topology every process relies on: streams, key-value buckets, consumers.

Defined once, here, as pure functions of `TopologyLimits`; `infra.queue.topology` applies
them. The gateway, the workers and `serve` create what is missing and never change what
exists; only the operator updates an existing stream or bucket to its limits. So a worker
started with default limits cannot undo the operator's, and the operator hands its limits
to the workers it deploys (`worker_env`) so that a worker that starts first creates the
streams as the operator would.

    JOBS            work queue, subjects jobs.>        (discard new: a full queue says 503)
    JOBS_DLQ        dead letters, subjects dlq.>       (limits retention, read by people)
    JOBS_STRANDED   the server's MAX_DELIVERIES advisories for JOBS (work queue)
    WEBHOOKS        job webhooks waiting to be delivered (work queue, subjects webhooks.>)
    KV JOBS_STATUS  job records and the tenant list index
    KV TENANTS      tenant records, written by the operator
    KV QUOTAS       active-job leases per tenant (gateways take them, workers release them)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from percolate_reading.contract.subjects import (
    DLQ_STREAM_NAME,
    DLQ_STREAM_SUBJECTS,
    STRANDED_STREAM_NAME,
    STREAM_NAME,
    STREAM_SUBJECTS,
    max_deliveries_advisory,
    stranded_consumer_name,
)
from percolate_reading.contract.tenancy import TENANTS_KV_BUCKET
from percolate_reading.contract.webhook_delivery import (
    WEBHOOK_SENDER_CONSUMER,
    WEBHOOKS_STREAM_NAME,
    WEBHOOKS_STREAM_SUBJECTS,
)

if TYPE_CHECKING:
    from percolate_reading.config import Settings

JOBS_STATUS_BUCKET = "JOBS_STATUS"
QUOTAS_BUCKET = "QUOTAS"
# Revisions kept per tenant: enough to see what the operator changed recently.
TENANTS_HISTORY = 5
# Settling one stranded job takes a few requests; a worker that dies meanwhile leaves the
# advisory to another after this long.
STRANDED_ACK_WAIT_S = 60.0
STRANDED_MAX_ACK_PENDING = 100
# A webhook attempt is bounded by WEBHOOK_TIMEOUT_S (default 10 s); an attempt whose sender
# died is retried by another after this long.
WEBHOOK_ACK_WAIT_S = 120.0
WEBHOOK_MAX_ACK_PENDING = 1000
_ENV = "PERCOLATE_READING_"


@dataclass(frozen=True)
class TopologyLimits:
    """The limits a deployment chooses; everything else about the topology is fixed."""

    replicas: int = 1
    max_msgs: int = 100_000
    max_age_s: float = 7 * 24 * 3600.0
    duplicate_window_s: float = 120.0
    dlq_max_age_s: float = 30 * 24 * 3600.0
    status_history: int = 3

    @classmethod
    def from_settings(cls, settings: Settings) -> TopologyLimits:
        return cls(
            replicas=settings.nats_replicas,
            max_msgs=settings.nats_max_msgs,
            max_age_s=settings.nats_max_age_s,
            duplicate_window_s=settings.nats_duplicate_window_s,
            dlq_max_age_s=settings.nats_dlq_max_age_s,
            status_history=settings.nats_kv_history,
        )

    def worker_env(self) -> dict[str, str]:
        """These limits as the environment `from_settings` reads (what the operator gives the
        workers it deploys)."""
        return {
            f"{_ENV}NATS_REPLICAS": str(self.replicas),
            f"{_ENV}NATS_MAX_MSGS": str(self.max_msgs),
            f"{_ENV}NATS_MAX_AGE_S": _number(self.max_age_s),
            f"{_ENV}NATS_DUPLICATE_WINDOW_S": _number(self.duplicate_window_s),
            f"{_ENV}NATS_DLQ_MAX_AGE_S": _number(self.dlq_max_age_s),
            f"{_ENV}NATS_KV_HISTORY": str(self.status_history),
        }


def _number(value: float) -> str:
    """An env value that reads back exactly: `1800`, `0.5`."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# --- streams ----------------------------------------------------------------------------------


def jobs_stream(limits: TopologyLimits) -> StreamConfig:
    """The work queue: one copy of each job until a worker acks it. `discard: new` makes a
    full queue refuse new jobs (the gateway answers 503) instead of dropping the oldest."""
    return StreamConfig(
        name=STREAM_NAME,
        subjects=list(STREAM_SUBJECTS),
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        max_age=limits.max_age_s,
        max_msgs=limits.max_msgs,
        discard=DiscardPolicy.NEW,
        duplicate_window=limits.duplicate_window_s,
        num_replicas=limits.replicas,
    )


def dlq_stream(limits: TopologyLimits) -> StreamConfig:
    """Dead letters: kept for inspection by age, never consumed as work."""
    return StreamConfig(
        name=DLQ_STREAM_NAME,
        subjects=list(DLQ_STREAM_SUBJECTS),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=limits.dlq_max_age_s,
        max_msgs=-1,
        discard=DiscardPolicy.OLD,
        duplicate_window=limits.duplicate_window_s,
        num_replicas=limits.replicas,
    )


def stranded_stream(limits: TopologyLimits) -> StreamConfig:
    """MAX_DELIVERIES advisories of JOBS, kept until a worker of the pool settles the stranded
    job (a plain subscription would miss one sent while no worker was connected). Work-queue
    retention: each pool's consumer takes only its own durable's advisories."""
    return StreamConfig(
        name=STRANDED_STREAM_NAME,
        subjects=[max_deliveries_advisory(STREAM_NAME)],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        max_age=limits.max_age_s,
        max_msgs=-1,
        discard=DiscardPolicy.OLD,
        duplicate_window=limits.duplicate_window_s,
        num_replicas=limits.replicas,
    )


def webhooks_stream(limits: TopologyLimits) -> StreamConfig:
    """Webhooks between a job's end and their delivery (or the end of their retry budget).
    `discard: new`: a full stream refuses the webhook (recorded as lost), never a job."""
    return StreamConfig(
        name=WEBHOOKS_STREAM_NAME,
        subjects=list(WEBHOOKS_STREAM_SUBJECTS),
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        max_age=limits.max_age_s,
        max_msgs=limits.max_msgs,
        discard=DiscardPolicy.NEW,
        duplicate_window=limits.duplicate_window_s,
        num_replicas=limits.replicas,
    )


def streams(limits: TopologyLimits) -> tuple[StreamConfig, ...]:
    return (jobs_stream(limits), dlq_stream(limits), stranded_stream(limits), webhooks_stream(limits))


# What a stream's config is compared on: the fields these builders set.
STREAM_FIELDS = (
    "subjects",
    "retention",
    "storage",
    "max_age",
    "max_msgs",
    "discard",
    "duplicate_window",
    "num_replicas",
)


def _same(have: object, want: object) -> bool:
    if isinstance(want, float) and isinstance(have, int | float):
        return math.isclose(want, have, rel_tol=1e-6)
    if isinstance(want, list) and isinstance(have, list | None):
        return sorted(have or []) == sorted(want)
    return have == want


def stream_drift(current: StreamConfig, wanted: StreamConfig) -> list[str]:
    """The compared fields of `current` that differ from `wanted`."""
    return [f for f in STREAM_FIELDS if not _same(getattr(current, f), getattr(wanted, f))]


# --- key-value buckets --------------------------------------------------------------------------


def status_bucket(limits: TopologyLimits) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=JOBS_STATUS_BUCKET,
        description="percolate-reading job status",
        history=limits.status_history,
        storage=StorageType.FILE,
        replicas=limits.replicas,
    )


def tenants_bucket(limits: TopologyLimits) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=TENANTS_KV_BUCKET,
        description="percolate-reading tenant registry (written by the operator)",
        history=TENANTS_HISTORY,
        storage=StorageType.FILE,
        replicas=limits.replicas,
    )


def quotas_bucket(limits: TopologyLimits) -> KeyValueConfig:
    """One entry per tenant, written with compare-and-set: only the latest revision counts."""
    return KeyValueConfig(
        bucket=QUOTAS_BUCKET,
        description="percolate-reading active-job leases per tenant",
        history=1,
        storage=StorageType.FILE,
        replicas=limits.replicas,
    )


def buckets(limits: TopologyLimits) -> tuple[KeyValueConfig, ...]:
    return (status_bucket(limits), tenants_bucket(limits), quotas_bucket(limits))


def bucket_stream_name(bucket: str) -> str:
    """The stream behind a key-value bucket."""
    return f"KV_{bucket}"


def bucket_drift(current: StreamConfig, wanted: KeyValueConfig) -> list[str]:
    """The bucket settings of the stream behind a bucket that differ from `wanted`."""
    pairs = {
        "history": (current.max_msgs_per_subject, wanted.history),
        "replicas": (current.num_replicas, wanted.replicas),
        "description": (current.description, wanted.description),
    }
    return [name for name, (have, want) in pairs.items() if have != want]


def bucket_update(current: StreamConfig, wanted: KeyValueConfig) -> StreamConfig:
    """The bucket's stream config with `wanted`'s settings (everything else as the server has it)."""
    values = dict(current.as_dict())
    values.update(
        max_msgs_per_subject=wanted.history, num_replicas=wanted.replicas, description=wanted.description
    )
    updated: StreamConfig = StreamConfig.from_response(values)
    return updated


# --- consumers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsumerLimits:
    """A pool's delivery settings (the ParsePool spec's `consumer`, the worker's settings)."""

    ack_wait_s: float = 300.0
    max_deliver: int = 3
    max_ack_pending: int = 100

    @classmethod
    def from_settings(cls, settings: Settings) -> ConsumerLimits:
        return cls(settings.nats_ack_wait, settings.nats_max_deliver, settings.nats_max_ack_pending)

    def worker_env(self) -> dict[str, str]:
        return {
            f"{_ENV}NATS_ACK_WAIT": _number(self.ack_wait_s),
            f"{_ENV}NATS_MAX_DELIVER": str(self.max_deliver),
            f"{_ENV}NATS_MAX_ACK_PENDING": str(self.max_ack_pending),
        }


def pool_consumer(
    subject: str,
    durable: str,
    limits: ConsumerLimits,
    *,
    description: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> ConsumerConfig:
    """A pool's durable pull consumer on JOBS, filtered on the pool's subject."""
    return ConsumerConfig(
        name=durable,
        durable_name=durable,
        description=description,
        filter_subject=subject,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=float(limits.ack_wait_s),
        max_deliver=limits.max_deliver,
        max_ack_pending=limits.max_ack_pending,
        metadata=dict(metadata) if metadata is not None else None,
    )


def stranded_consumer(durable: str) -> ConsumerConfig:
    """The durable on JOBS_STRANDED that takes the advisories of one pool's consumer."""
    name = stranded_consumer_name(durable)
    return ConsumerConfig(
        name=name,
        durable_name=name,
        filter_subject=max_deliveries_advisory(STREAM_NAME, durable),
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=STRANDED_ACK_WAIT_S,
        max_deliver=-1,  # retried until settled: dropping one would strand its job again
        max_ack_pending=STRANDED_MAX_ACK_PENDING,
    )


def webhooks_consumer() -> ConsumerConfig:
    """The senders' shared durable on WEBHOOKS. Every delivery is retried by re-queueing a
    copy (attempts counted in the message), so the server never gives up on one itself."""
    return ConsumerConfig(
        name=WEBHOOK_SENDER_CONSUMER,
        durable_name=WEBHOOK_SENDER_CONSUMER,
        filter_subject=WEBHOOKS_STREAM_SUBJECTS[0],
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=WEBHOOK_ACK_WAIT_S,
        max_deliver=-1,
        max_ack_pending=WEBHOOK_MAX_ACK_PENDING,
    )


# The consumer settings compared; description and metadata belong to whoever created the
# consumer (the operator in a cluster) and are compared only where the caller sets them.
CONSUMER_FIELDS = ("filter_subject", "ack_policy", "ack_wait", "max_deliver", "max_ack_pending")


def consumer_drift(current: ConsumerConfig, wanted: ConsumerConfig) -> list[str]:
    drift = [f for f in CONSUMER_FIELDS if not _same(getattr(current, f), getattr(wanted, f))]
    # The server adds its own metadata keys (_nats.*); only the wanted ones must match.
    have = current.metadata or {}
    if any(have.get(k) != v for k, v in (wanted.metadata or {}).items()):
        drift.append("metadata")
    return drift
