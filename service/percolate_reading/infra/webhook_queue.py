"""Queueing a job's webhook on the `WEBHOOKS` stream (see contract.webhook_delivery).

`WebhookOutbox.enqueue` is what the worker does with a finished job's webhook before it acks
the job: one PubAck'd publish, de-duplicated by the webhook id. A NATS that does not answer
raises `QueueError` (the job is then held or retried like any other outage, and its repeat
queues the same webhook id); a full stream is recorded as a lost webhook and never fails
the job.
"""

from __future__ import annotations

import logging

import nats.js.errors
from nats.js import JetStreamContext

from percolate_reading import tracing
from percolate_reading.contract.webhook_delivery import WEBHOOKS_STREAM_NAME, WebhookDelivery, webhook_subject
from percolate_reading.errors import QueueError
from percolate_reading.infra.queue.jetstream import (
    ERR_MAX_MSGS,
    ERR_STORE_FULL,
    MSG_ID_HEADER,
    publish_raw,
)
from percolate_reading.metrics import Metrics

log = logging.getLogger(__name__)


async def publish_webhook(
    js: JetStreamContext, delivery: WebhookDelivery, *, ack_timeout_s: float = 5.0
) -> int:
    headers = {MSG_ID_HEADER: delivery.dedup_id()}
    tracing.inject(headers)  # the sender's attempt joins the job's trace
    return await publish_raw(
        js,
        webhook_subject(delivery.tenant_id),
        delivery.model_dump_json().encode(),
        headers=headers,
        ack_timeout_s=ack_timeout_s,
        stream=WEBHOOKS_STREAM_NAME,
    )


def is_full(exc: QueueError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, nats.js.errors.APIError) and cause.err_code in (ERR_MAX_MSGS, ERR_STORE_FULL)


class WebhookOutbox:
    def __init__(
        self, js: JetStreamContext, metrics: Metrics | None = None, ack_timeout_s: float = 5.0
    ) -> None:
        self.js = js
        self.metrics = metrics
        self.ack_timeout_s = ack_timeout_s

    async def enqueue(self, delivery: WebhookDelivery) -> None:
        try:
            await publish_webhook(self.js, delivery, ack_timeout_s=self.ack_timeout_s)
        except QueueError as exc:
            if not is_full(exc):
                raise
            log.error("webhook %s of job %s lost: %s", delivery.webhook_id, delivery.job_id, exc)
            if self.metrics is not None:
                self.metrics.webhook_deliveries_total.labels("lost").inc()
