"""JetStream: the limits this operator applies to the contract's topology, and each pool's
durable consumer. The streams, buckets and consumer shape themselves are defined once, in
`percolate_reading.contract.topology`."""

from __future__ import annotations

from nats.js.api import ConsumerConfig

from percolate_operator.builders.naming import pool_consumer, pool_subject
from percolate_operator.models import ParsePoolSpec
from percolate_operator.settings import OperatorSettings
from percolate_reading.contract import topology
from percolate_reading.contract.subjects import CONSUMER_OWNER_KEY
from percolate_reading.contract.topology import ConsumerLimits, TopologyLimits


def topology_limits(settings: OperatorSettings) -> TopologyLimits:
    """The stream and bucket limits this operator applies (and hands to its workers)."""
    return TopologyLimits(
        replicas=settings.stream_replicas,
        max_msgs=settings.stream_max_msgs,
        max_age_s=settings.stream_max_age_s,
        duplicate_window_s=settings.stream_duplicate_window_s,
        dlq_max_age_s=settings.dlq_max_age_s,
    )


def consumer_limits(spec: ParsePoolSpec) -> ConsumerLimits:
    return ConsumerLimits(
        ack_wait_s=float(spec.consumer.ack_wait_seconds),
        max_deliver=spec.consumer.max_deliver,
        max_ack_pending=spec.consumer.max_ack_pending,
    )


def consumer_config(pool_namespace: str, pool_name: str, spec: ParsePoolSpec) -> ConsumerConfig:
    """The pool's durable pull consumer; its metadata says which pool owns it (two ParsePools
    must not share one filter subject)."""
    return topology.pool_consumer(
        pool_subject(spec),
        pool_consumer(spec),
        consumer_limits(spec),
        description=f"ParsePool {pool_namespace}/{pool_name}",
        metadata={CONSUMER_OWNER_KEY: f"{pool_namespace}/{pool_name}"},
    )
