"""NATS JetStream plumbing: connection and publishing (the streams, buckets and consumers are
the contract's `topology`, applied by `infra.queue.topology`).

Every NATS failure a caller can hit while
publishing (no connection, no responders, no PubAck in time, stream full) surfaces as
`QueueError`, which the gateway answers with 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from percolate_reading import tracing
from percolate_reading.config import Settings
from percolate_reading.contract.jobs import JobMessage, message_id
from percolate_reading.contract.subjects import DLQ_STREAM_NAME
from percolate_reading.errors import ConfigError, QueueError

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
        raise ConfigError("NATS is enabled but PERCOLATE_READING_NATS_URL is not set")
    return [u.strip() for u in settings.nats_url.split(",") if u.strip()]


async def connect(
    settings: Settings, *, name: str = "percolate-reading", connect_wait_s: float = 10.0
) -> NATS:
    """Connect with unlimited reconnects; connection events are logged, not raised."""

    async def on_error(exc: Exception) -> None:
        # Before the first connection the caller reports why (once per attempt), not nats-py
        # once per second.
        log.log(
            logging.WARNING if nc.is_connected or nc.is_reconnecting else logging.DEBUG, "nats error: %s", exc
        )

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
        reason = str(exc) or f"no connection within {connect_wait_s:g}s"
        raise QueueError(f"cannot connect to NATS at {settings.nats_url}: {reason}") from exc
    return nc


async def close_quietly(nc: NATS) -> None:
    """Close a connection at shutdown. nats-py's close flushes first and raises when the
    server is already gone; that must not turn a clean shutdown into a failed one."""
    try:
        await nc.close()
    except Exception as exc:
        log.info("nats connection closed with an error (server gone?): %s", exc)


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
    """Publish a job, de-duplicated by job id (and a part's page range); returns the stream
    sequence from the PubAck.

    A re-publish within the duplicate window returns the first publish's sequence."""
    headers = {MSG_ID_HEADER: message_id(msg.job_id, msg.part)}
    tracing.inject(headers)  # W3C traceparent: the worker continues this trace
    return await publish_raw(
        js,
        subject,
        msg.model_dump_json().encode(),
        headers=headers,
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
