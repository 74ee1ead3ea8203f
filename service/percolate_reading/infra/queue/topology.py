"""Applying the contract's topology to a JetStream server: the one `ensure_*` family that the
gateway, the workers, `serve` and the operator all use.

`update=False` (gateway, worker, serve): create what is missing, leave what exists as it is
(a difference is logged). `update=True` (the operator): also bring an existing stream or
bucket to the wanted limits. Retention and storage cannot change on a live stream; the server
refuses that clearly. Every NATS failure surfaces as `QueueError`.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Literal

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, KeyValueConfig, StreamConfig
from nats.js.kv import KeyValue

from percolate_reading.contract import topology
from percolate_reading.contract.subjects import STRANDED_STREAM_NAME, STREAM_NAME
from percolate_reading.contract.topology import ConsumerLimits, TopologyLimits
from percolate_reading.contract.webhook_delivery import WEBHOOKS_STREAM_NAME
from percolate_reading.errors import QueueError

log = logging.getLogger(__name__)

Outcome = Literal["created", "updated", "unchanged"]
_NATS_ERRORS = (nats.errors.Error, TimeoutError)


async def ensure_stream(js: JetStreamContext, wanted: StreamConfig, *, update: bool) -> Outcome:
    assert wanted.name is not None
    try:
        try:
            info = await js.stream_info(wanted.name)
        except nats.js.errors.NotFoundError:
            await js.add_stream(wanted)
            log.info("created stream %s", wanted.name)
            return "created"
        drift = topology.stream_drift(info.config, wanted)
        if not drift:
            return "unchanged"
        if not update:
            log.info(
                "stream %s differs from this process's settings (%s); left as it is",
                wanted.name,
                ", ".join(drift),
            )
            return "unchanged"
        await js.update_stream(wanted)
        log.info("updated stream %s (%s)", wanted.name, ", ".join(drift))
        return "updated"
    except _NATS_ERRORS as exc:
        raise QueueError(f"cannot set up stream {wanted.name}: {exc!r}") from exc


async def ensure_bucket(js: JetStreamContext, wanted: KeyValueConfig, *, update: bool) -> KeyValue:
    """The key-value bucket, created when missing (and brought to `wanted` with `update`)."""
    try:
        try:
            kv = await js.key_value(wanted.bucket)
        except nats.js.errors.BucketNotFoundError:
            try:
                kv = await js.create_key_value(wanted)
            except nats.js.errors.BadRequestError:
                # Another process created it between our look and our create.
                kv = await js.key_value(wanted.bucket)
            else:
                log.info("created key-value bucket %s", wanted.bucket)
                return kv
        if update:
            stream = topology.bucket_stream_name(wanted.bucket)
            current = (await js.stream_info(stream)).config
            drift = topology.bucket_drift(current, wanted)
            if drift:
                await js.update_stream(topology.bucket_update(current, wanted))
                log.info("updated key-value bucket %s (%s)", wanted.bucket, ", ".join(drift))
        return kv
    except _NATS_ERRORS as exc:
        raise QueueError(f"cannot set up key-value bucket {wanted.bucket}: {exc!r}") from exc


async def ensure_topology(js: JetStreamContext, limits: TopologyLimits, *, update: bool) -> None:
    """Every stream and bucket of the contract (see `ensure_stream`, `ensure_bucket`)."""
    for stream in topology.streams(limits):
        await ensure_stream(js, stream, update=update)
    for bucket in topology.buckets(limits):
        await ensure_bucket(js, bucket, update=update)


async def ensure_consumer(
    js: JetStreamContext, stream: str, wanted: ConsumerConfig, *, keep_owner_fields: bool = True
) -> Outcome:
    """Create a durable consumer, or update it where its compared settings differ.

    With `keep_owner_fields` an update keeps the consumer's description and metadata: in a
    cluster the operator owns those, and a worker rewriting them on every start would make
    the operator's drift check and the workers undo each other."""
    assert wanted.durable_name is not None
    try:
        try:
            current: ConsumerConfig | None = (await js.consumer_info(stream, wanted.durable_name)).config
        except nats.js.errors.NotFoundError:
            current = None
        if current is not None:
            if keep_owner_fields:
                wanted = dataclasses.replace(
                    wanted, description=current.description, metadata=current.metadata
                )
            if not topology.consumer_drift(current, wanted):
                return "unchanged"
        # CONSUMER.CREATE with a name creates or updates (nats-server >= 2.10).
        await js.add_consumer(stream, wanted)
    except _NATS_ERRORS as exc:
        raise QueueError(f"cannot set up consumer {wanted.durable_name} on {stream}: {exc!r}") from exc
    return "created" if current is None else "updated"


async def ensure_pool_consumers(
    js: JetStreamContext, subject: str, durable: str, limits: ConsumerLimits
) -> None:
    """A pool's consumer on JOBS and the consumer of its stranded-job reports."""
    await ensure_consumer(js, STREAM_NAME, topology.pool_consumer(subject, durable, limits))
    await ensure_consumer(js, STRANDED_STREAM_NAME, topology.stranded_consumer(durable))


async def ensure_webhooks_consumer(js: JetStreamContext) -> None:
    """The webhook senders' consumer on WEBHOOKS."""
    await ensure_consumer(js, WEBHOOKS_STREAM_NAME, topology.webhooks_consumer())
