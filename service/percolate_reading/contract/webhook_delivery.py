"""A job's webhook waiting to be delivered: the message on the `WEBHOOKS` work-queue stream.

The worker that finishes a job records its final status, publishes one of these (de-duplicated
by its Standard Webhooks id, so a redelivered job does not queue a second copy) and only then
acks the job; a sender task delivers it apart from the job. A failed attempt re-queues a copy
with `attempts + 1` and `not_before` set by the backoff: the count survives restarts and the
same `webhook_id` goes out on every attempt. No secret travels here: the sender looks up the
tenant's signing secret when it signs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

WEBHOOKS_STREAM_NAME = "WEBHOOKS"
WEBHOOKS_STREAM_SUBJECTS = ("webhooks.>",)
# The one durable consumer every worker's sender shares (work queue: each delivery to one).
WEBHOOK_SENDER_CONSUMER = "webhook-sender"


def webhook_subject(tenant_id: str) -> str:
    return f"webhooks.{tenant_id}"


def webhook_id(job_id: str, status: str) -> str:
    """Stable per (job, final status): a redelivered job's webhook repeats the same id."""
    return f"msg_{job_id}_{status}"


class WebhookDelivery(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    webhook_id: str
    tenant_id: str
    job_id: str
    url: str
    payload: dict[str, Any]
    enqueued_at: float = Field(description="Unix time the job's worker queued it.")
    attempts: int = Field(0, ge=0, description="HTTP attempts made before this copy.")
    not_before: float = Field(0.0, description="Unix time before which it is not attempted.")

    def dedup_id(self) -> str:
        """The copy's Nats-Msg-Id: the first by the webhook id, each retry by its number."""
        return self.webhook_id if self.attempts == 0 else f"{self.webhook_id}.retry{self.attempts}"
