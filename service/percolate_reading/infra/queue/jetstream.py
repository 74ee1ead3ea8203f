"""NATS JetStream plumbing: connection, the JOBS / JOBS_DLQ / JOBS_STRANDED streams, consumers, publishing.

Stream configs are built by pure functions from `Settings` so the operator and tests can
inspect exactly what the runtime asks for. Every NATS failure a caller can hit while
publishing (no connection, no responders, no PubAck in time, stream full) surfaces as
`QueueError`, which the gateway answers with 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections.abc import Mapping

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from percolate_reading.config import Settings
from percolate_reading.contract.subjects import (
    DLQ_STREAM_NAME,
    DLQ_STREAM_SUBJECTS,
    STRANDED_STREAM_NAME,
    STREAM_SUBJECTS,
    max_deliveries_advisory,
    stranded_consumer_name,
)
from percolate_reading.errors import QueueError
from percolate_reading.infra.jobs.models import JobMessage

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
# JetStream API error codes we translate.
ERR_STREAM_NOT_FOUND = 10059
ERR_MAX_MSGS = 10077  # "maximum messages exceeded" (discard new on a full stream)
ERR_STORE_FULL = 10047  # insufficient storage resources
# Headers on dead-lettered copies.
DLQ_REASON_HEADER = "Percolate-Dead-Letter-Reason"
DLQ_CODE_HEADER = "Percolate-Dead-Letter-Code"
DLQ_SUBJECT_HEADER = "Percolate-Original-Subject"
DLQ_DELIVERIES_HEADER = "Percolate-Deliveries"


def nats_servers(settings: Settings) -> list[str]:
    if not settings.nats_url:
        raise QueueError("NATS is enabled but PERCOLATE_READING_NATS_URL is not set")
    return [u.strip() for u in settings.nats_url.split(",") if u.strip()]


async def connect(
    settings: Settings, *, name: str = "percolate-reading", connect_wait_s: float = 10.0
) -> NATS:
    """Connect with unlimited reconnects; connection events are logged, not raised."""

    async def on_error(exc: Exception) -> None:
        log.warning("nats error: %s", exc)

    async def on_disconnect() -> None:
        # nats-py reports a disconnect on its own close too: only a lost connection is news.
        if nc.is_closed:
            log.debug("nats disconnected (closing)")
        else:
            log.warning("nats disconnected")

    async def on_reconnect() -> None:
        log.info("nats reconnected")

    async def on_closed() -> None:
        log.info("nats connection closed")

    nc = NATS()
    try:
        # Unlimited reconnects once connected; the first connect is bounded by `connect_wait_s`
        # (nats-py would otherwise retry an unreachable server forever).
        async with asyncio.timeout(connect_wait_s):
            await nc.connect(
                servers=nats_servers(settings),
                name=name,
                connect_timeout=2,
                reconnect_time_wait=1,
                max_reconnect_attempts=-1,
                ping_interval=10,
                max_outstanding_pings=3,
                error_cb=on_error,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
                closed_cb=on_closed,
            )
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        with contextlib.suppress(Exception):
            await nc.close()
        raise QueueError(f"cannot connect to NATS at {settings.nats_url}: {exc or 'timed out'}") from exc
    return nc


async def close_quietly(nc: NATS) -> None:
    """Close a connection at shutdown. nats-py's close flushes first and raises when the
    server is already gone; that must not turn a clean shutdown into a failed one."""
    try:
        await nc.close()
    except Exception as exc:
        log.info("nats connection closed with an error (server gone?): %s", exc)


def jobs_stream_config(settings: Settings) -> StreamConfig:
    """The work queue: one copy of each job until a worker acks it.

    `discard: new` makes a full queue refuse new jobs (the gateway answers 503) instead of
    silently dropping the oldest unprocessed one."""
    return StreamConfig(
        name=settings.nats_stream,
        subjects=list(STREAM_SUBJECTS),
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        max_age=settings.nats_max_age_s,
        max_msgs=settings.nats_max_msgs,
        discard=DiscardPolicy.NEW,
        duplicate_window=settings.nats_duplicate_window_s,
        num_replicas=settings.nats_replicas,
    )


def dlq_stream_config(settings: Settings) -> StreamConfig:
    """Dead letters: kept for inspection by age, never consumed as work."""
    return StreamConfig(
        name=DLQ_STREAM_NAME,
        subjects=list(DLQ_STREAM_SUBJECTS),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=settings.nats_dlq_max_age_s,
        discard=DiscardPolicy.OLD,
        # Said explicitly: nats-py's default 0 means "server default" (120 s) on create, so a
        # comparison against 0 would find a difference and rewrite the stream on every start.
        duplicate_window=settings.nats_duplicate_window_s,
        num_replicas=settings.nats_replicas,
    )


def stranded_stream_config(settings: Settings) -> StreamConfig:
    """The server's MAX_DELIVERIES advisories for the jobs stream, kept until a worker of the
    pool settles the stranded job. A plain subscription would miss an advisory sent while no
    worker of that pool was connected, and the job would sit in the queue until max age.
    Work-queue retention: each pool's consumer takes only its own durable's advisories."""
    return StreamConfig(
        name=STRANDED_STREAM_NAME,
        subjects=[max_deliveries_advisory(settings.nats_stream)],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        max_age=settings.nats_max_age_s,
        discard=DiscardPolicy.OLD,
        duplicate_window=settings.nats_duplicate_window_s,
        num_replicas=settings.nats_replicas,
    )


# Settling one stranded job takes a few requests; a worker that dies meanwhile leaves the
# advisory to another after this long.
STRANDED_ACK_WAIT_S = 60.0


def stranded_consumer_config(settings: Settings, durable: str) -> ConsumerConfig:
    name = stranded_consumer_name(durable)
    return ConsumerConfig(
        name=name,
        durable_name=name,
        filter_subject=max_deliveries_advisory(settings.nats_stream, durable),
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=STRANDED_ACK_WAIT_S,
        max_deliver=-1,  # retried until settled: dropping one would strand its job again
        max_ack_pending=100,
    )


_COMPARED_FIELDS = (
    "subjects",
    "retention",
    "storage",
    "max_age",
    "max_msgs",
    "discard",
    "duplicate_window",
    "num_replicas",
)


def _differs(current: StreamConfig, wanted: StreamConfig) -> list[str]:
    out: list[str] = []
    for field in _COMPARED_FIELDS:
        want = getattr(wanted, field)
        have = getattr(current, field)
        if want is None or (field == "duplicate_window" and want == 0):
            continue
        if isinstance(want, float) and isinstance(have, (int, float)):
            if not math.isclose(want, have, rel_tol=1e-6):
                out.append(field)
        elif field == "subjects":
            if sorted(have or []) != sorted(want):
                out.append(field)
        elif have != want:
            out.append(field)
    return out


async def _ensure_stream(js: JetStreamContext, wanted: StreamConfig) -> None:
    assert wanted.name is not None
    try:
        info = await js.stream_info(wanted.name)
    except nats.js.errors.NotFoundError:
        await js.add_stream(wanted)
        log.info("created stream %s", wanted.name)
        return
    changed = _differs(info.config, wanted)
    if changed:
        # Retention and storage cannot change on a live stream; the server says so clearly.
        await js.update_stream(wanted)
        log.info("updated stream %s (%s)", wanted.name, ", ".join(changed))


async def ensure_streams(js: JetStreamContext, settings: Settings) -> None:
    """Create or update JOBS, JOBS_DLQ and JOBS_STRANDED to match settings."""
    try:
        await _ensure_stream(js, jobs_stream_config(settings))
        await _ensure_stream(js, dlq_stream_config(settings))
        await _ensure_stream(js, stranded_stream_config(settings))
    except (nats.errors.Error, TimeoutError) as exc:
        raise QueueError(f"cannot set up JetStream streams: {exc}") from exc


def consumer_config(settings: Settings, subject: str, durable: str) -> ConsumerConfig:
    return ConsumerConfig(
        name=durable,
        durable_name=durable,
        filter_subject=subject,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=settings.nats_ack_wait,
        max_deliver=settings.nats_max_deliver,
        max_ack_pending=settings.nats_max_ack_pending,
    )


# The consumer settings this service decides; anything else (description, metadata written by
# the operator) is left as the consumer already has it.
_CONSUMER_FIELDS = ("filter_subject", "ack_policy", "ack_wait", "max_deliver", "max_ack_pending")


def consumer_matches(current: ConsumerConfig, wanted: ConsumerConfig) -> bool:
    return all(getattr(current, f) == getattr(wanted, f) for f in _CONSUMER_FIELDS)


async def ensure_stranded_consumer(js: JetStreamContext, settings: Settings, durable: str) -> None:
    """The durable pull consumer on JOBS_STRANDED for one pool (created, or updated where its
    filter or settings differ)."""
    wanted = stranded_consumer_config(settings, durable)
    await _ensure_consumer_config(js, STRANDED_STREAM_NAME, wanted, f"the stranded-job consumer of {durable}")


async def ensure_consumer(js: JetStreamContext, settings: Settings, subject: str, durable: str) -> None:
    """Create the durable pull consumer, or update it where it differs from the wanted config."""
    wanted = consumer_config(settings, subject, durable)
    await _ensure_consumer_config(js, settings.nats_stream, wanted, f"consumer {durable} on {subject}")


async def _ensure_consumer_config(
    js: JetStreamContext, stream: str, wanted: ConsumerConfig, what: str
) -> None:
    """Create or update a durable consumer of `stream` to `wanted`.

    An up-to-date consumer is not rewritten, and an update keeps its description and metadata:
    in a cluster the operator owns those, and rewriting them on every worker start would make
    the operator's drift check and the workers undo each other."""
    assert wanted.durable_name is not None
    try:
        try:
            current: ConsumerConfig | None = (await js.consumer_info(stream, wanted.durable_name)).config
        except nats.js.errors.NotFoundError:
            current = None
        if current is not None:
            if consumer_matches(current, wanted):
                return
            wanted = dataclasses.replace(wanted, description=current.description, metadata=current.metadata)
        # CONSUMER.CREATE with a name creates or updates (nats-server >= 2.10).
        await js.add_consumer(stream, wanted)
    except (nats.errors.Error, TimeoutError) as exc:
        raise QueueError(f"cannot set up {what}: {exc}") from exc


def _queue_error(exc: BaseException, subject: str) -> QueueError:
    if isinstance(exc, nats.js.errors.APIError) and exc.err_code in (ERR_MAX_MSGS, ERR_STORE_FULL):
        return QueueError(f"job queue full ({exc.description}); try again later")
    if isinstance(exc, nats.js.errors.NoStreamResponseError | nats.errors.NoRespondersError):
        return QueueError(f"no JetStream stream answers on {subject}")
    if isinstance(exc, nats.errors.TimeoutError | TimeoutError):
        return QueueError(f"no PubAck for {subject} in time")
    return QueueError(f"publish to {subject} failed: {exc}")


async def publish_job(
    js: JetStreamContext,
    msg: JobMessage,
    subject: str,
    *,
    ack_timeout_s: float = 5.0,
    stream: str | None = None,
) -> int:
    """Publish a job, de-duplicated by job_id; returns the stream sequence from the PubAck.

    A re-publish within the duplicate window returns the first publish's sequence."""
    return await publish_raw(
        js,
        subject,
        msg.model_dump_json().encode(),
        headers={MSG_ID_HEADER: msg.job_id},
        ack_timeout_s=ack_timeout_s,
        stream=stream,
    )


async def publish_raw(
    js: JetStreamContext,
    subject: str,
    payload: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    ack_timeout_s: float = 5.0,
    stream: str | None = None,
) -> int:
    nc = js._nc
    # While disconnected nats-py buffers publishes and may send them after we gave up; a
    # caller that answered 503 must not see its job appear later, so refuse up front.
    if not nc.is_connected:
        raise QueueError("not connected to NATS")
    try:
        ack = await js.publish(
            subject, payload, timeout=ack_timeout_s, stream=stream, headers=dict(headers or {})
        )
    except (nats.errors.Error, TimeoutError) as exc:
        raise _queue_error(exc, subject) from exc
    return int(ack.seq)


async def publish_dead_letter(
    js: JetStreamContext,
    job_subject: str,
    dlq_subject: str,
    payload: bytes,
    *,
    job_id: str,
    code: str,
    reason: str,
    deliveries: int,
    ack_timeout_s: float = 5.0,
) -> int:
    """Copy a job that exhausted its deliveries to the dead-letter stream with the reason."""
    headers = {
        MSG_ID_HEADER: f"dlq-{job_id}",
        DLQ_SUBJECT_HEADER: job_subject,
        DLQ_CODE_HEADER: code,
        # Header values are single-line.
        DLQ_REASON_HEADER: " ".join(reason.split())[:1000],
        DLQ_DELIVERIES_HEADER: str(deliveries),
    }
    return await publish_raw(
        js, dlq_subject, payload, headers=headers, ack_timeout_s=ack_timeout_s, stream=DLQ_STREAM_NAME
    )
