"""`verify_webhook`: check a completion webhook in the receiver (Standard Webhooks format),
with the very code the platform signs with (`percolate_reading.contract.webhook_signature`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from percolate_reading.contract.webhook_signature import DEFAULT_TOLERANCE_S, verify
from percolate_reading.errors import WebhookVerificationError


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> dict[str, Any]:
    """The event (`{"type": "job.succeeded", "timestamp": ..., "data": <job>}`) when the
    `webhook-signature` over the raw `body` matches `secret` and `webhook-timestamp` is within
    `tolerance_s` of now; WebhookVerificationError otherwise. Pass the body exactly as
    received (before any JSON parsing)."""
    try:
        valid = verify(secret, headers, body, tolerance_s=tolerance_s, now=now)
    except ValueError as exc:  # a malformed whsec_ secret
        raise WebhookVerificationError(str(exc)) from None
    if not valid:
        raise WebhookVerificationError("the webhook signature or timestamp does not check out")
    try:
        event: dict[str, Any] = json.loads(body)
    except ValueError:
        raise WebhookVerificationError("the webhook body is not JSON") from None
    return event
