"""Standard Webhooks signatures: what the worker signs and what a receiver checks.

Both sides cross a process boundary (the platform's webhook sender and the customer's
receiver, through `percolate_reading.client.verify_webhook`), so the format is defined once,
here: `webhook-signature` = `v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`,
with a `whsec_<base64>` secret (or plain text).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"  # noqa: S105 (a format prefix, not a secret)
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300


def secret_bytes(secret: str) -> bytes:
    """`whsec_<base64>` decodes to its key bytes; anything else is used as UTF-8 text."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except ValueError as exc:
            raise ValueError("webhook secret has the whsec_ prefix but is not base64") from exc
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one message."""
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), to_sign, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """A receiver's check: a valid v1 signature over the body and a fresh timestamp."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id")
    ts_text = lower.get("webhook-timestamp")
    sig_header = lower.get("webhook-signature")
    if not msg_id or not ts_text or not sig_header:
        return False
    try:
        ts = int(ts_text)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        return False
    expected = sign(secret, msg_id, ts, body)
    # The header may carry several space-separated signatures (key rotation).
    return any(hmac.compare_digest(candidate, expected) for candidate in sig_header.split())
