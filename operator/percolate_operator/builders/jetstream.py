"""JetStream configs: the streams and each pool's durable consumer (nats-py keyword arguments)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from percolate_operator.builders.naming import CONSUMER_OWNER_KEY, pool_consumer, pool_subject
from percolate_operator.models import ParsePoolSpec
from percolate_operator.settings import OperatorSettings
from percolate_reading.contract.subjects import (
    DLQ_STREAM_NAME,
    DLQ_STREAM_SUBJECTS,
    STRANDED_STREAM_NAME,
    STREAM_NAME,
    STREAM_SUBJECTS,
    max_deliveries_advisory,
)


def stream_config(settings: OperatorSettings) -> dict[str, Any]:
    """Config of the JOBS work-queue stream (keyword arguments of nats-py's StreamConfig)."""
    return {
        "name": STREAM_NAME,
        "subjects": list(STREAM_SUBJECTS),
        "retention": "workqueue",
        "storage": "file",
        "max_age": settings.stream_max_age_s,
        "max_msgs": settings.stream_max_msgs,
        # A full queue refuses new jobs (the gateway answers 503) instead of dropping old ones.
        "discard": "new",
        "duplicate_window": settings.stream_duplicate_window_s,
        "num_replicas": settings.stream_replicas,
    }


def dlq_stream_config(settings: OperatorSettings) -> dict[str, Any]:
    """Config of JOBS_DLQ: limits retention so dead letters stay readable until they age out."""
    return {
        "name": DLQ_STREAM_NAME,
        "subjects": list(DLQ_STREAM_SUBJECTS),
        "retention": "limits",
        "storage": "file",
        "max_age": settings.dlq_max_age_s,
        "discard": "old",
        "num_replicas": settings.stream_replicas,
    }


def stranded_stream_config(settings: OperatorSettings) -> dict[str, Any]:
    """Config of JOBS_STRANDED: the server's MAX_DELIVERIES advisories for JOBS, kept until a
    worker of the pool settles the job (the workers create it too, with the same config)."""
    return {
        "name": STRANDED_STREAM_NAME,
        "subjects": [max_deliveries_advisory(STREAM_NAME)],
        "retention": "workqueue",
        "storage": "file",
        "max_age": settings.stream_max_age_s,
        "discard": "old",
        "num_replicas": settings.stream_replicas,
    }


def consumer_config(pool_namespace: str, pool_name: str, spec: ParsePoolSpec) -> dict[str, Any]:
    """The pool's durable pull consumer (keyword arguments of nats-py's ConsumerConfig)."""
    return {
        "durable_name": pool_consumer(spec),
        "description": f"ParsePool {pool_namespace}/{pool_name}",
        "filter_subject": pool_subject(spec),
        "ack_policy": "explicit",
        "deliver_policy": "all",
        "ack_wait": float(spec.consumer.ack_wait_seconds),
        "max_deliver": spec.consumer.max_deliver,
        "max_ack_pending": spec.consumer.max_ack_pending,
        # Which pool owns the consumer: two ParsePools must not share one filter subject.
        "metadata": {CONSUMER_OWNER_KEY: f"{pool_namespace}/{pool_name}"},
    }


CONSUMER_COMPARED_FIELDS = ("filter_subject", "ack_wait", "max_deliver", "max_ack_pending", "metadata")


def consumer_drift(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    """Names of the compared fields whose values differ (actual: ConsumerConfig.as_dict-like)."""
    drift = []
    for field in CONSUMER_COMPARED_FIELDS:
        want = desired.get(field)
        have = actual.get(field)
        if field == "metadata":
            # The server adds its own metadata keys (e.g. _nats.*); only ours must match.
            have_map = have or {}
            if any(have_map.get(k) != v for k, v in (want or {}).items()):
                drift.append(field)
        elif field == "ack_wait":
            if have is None or want is None or abs(float(have) - float(want)) > 1e-3:
                drift.append(field)
        elif want != have:
            drift.append(field)
    return drift
