"""The worker's webhook sender: its own task, off the jobs' path.

It pulls queued webhooks from the `WEBHOOKS` stream (one durable shared by every worker) and
makes one HTTP attempt per message:
- delivered -> ack; refused by the SSRF guard -> ack (never retried);
- failed -> a copy with `attempts + 1` and a backoff's `not_before` is queued, then the
  message is acked; after `WEBHOOK_MAX_ACK_ATTEMPTS` the webhook is recorded as failed
  (metric `webhook_deliveries_total{outcome="failed"}` and a log line).
Nothing one tenant's receiver does can hold another's webhooks: at most
`WEBHOOK_TENANT_CONCURRENCY` attempts per tenant run at once (a message of a busy tenant is
handed back with a short delay, not waited on), and a destination that keeps failing is
paused by its circuit breaker (its messages handed back until the pause ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import ValidationError

from percolate_reading import tracing
from percolate_reading.config import Settings
from percolate_reading.contract.tenancy import TenantRecord
from percolate_reading.contract.webhook_delivery import (
    WEBHOOK_SENDER_CONSUMER,
    WEBHOOKS_STREAM_NAME,
    WebhookDelivery,
)
from percolate_reading.errors import QueueError
from percolate_reading.infra.queue.topology import ensure_webhooks_consumer
from percolate_reading.infra.webhook_queue import publish_webhook
from percolate_reading.infra.webhooks import (
    CircuitBreakers,
    WebhookSender,
    backoff_delay,
    destination,
    encode_payload,
)
from percolate_reading.logs import job_context
from percolate_reading.worker.runner import acknowledge, keep_running

log = logging.getLogger(__name__)

# A message of a tenant already at its concurrency limit comes back after about this long.
TENANT_BUSY_DELAY_S = 1.0


class WebhookDispatcher:
    def __init__(
        self,
        settings: Settings,
        js: JetStreamContext,
        sender: WebhookSender,
        tenants: Callable[[str], TenantRecord | None],
    ) -> None:
        self.settings = settings
        self.js = js
        self.sender = sender
        self.tenants = tenants
        self.breakers = CircuitBreakers(
            settings.webhook_circuit_failures, settings.webhook_circuit_open_s, settings.webhook_backoff_max_s
        )
        self._busy: Counter[str] = Counter()  # attempts in flight by tenant
        self._tasks: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self._stopping = False
        self._sub: Any = None
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await ensure_webhooks_consumer(self.js)
        self._sub = await self.js.pull_subscribe_bind(WEBHOOK_SENDER_CONSUMER, stream=WEBHOOKS_STREAM_NAME)
        self._loop_task = asyncio.create_task(
            keep_running(self._pull_loop, "webhook sender loop"), name="webhook-sender"
        )

    @property
    def alive(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    async def drain(self, timeout_s: float) -> None:
        """Stop pulling; attempts under way get `timeout_s` to finish, the rest are handed back."""
        self._stopping = True
        self._slot_freed.set()
        if self._loop_task is not None:
            with contextlib.suppress(Exception):
                await self._loop_task
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    # --- loop ------------------------------------------------------------------------------

    async def _pull_loop(self) -> None:
        while not self._stopping:
            free = self.settings.webhook_sender_concurrency - len(self._tasks)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            for msg in await self._fetch(free):
                if self._stopping:
                    await acknowledge("nak", msg.nak(delay=0), msg)
                    continue
                await self._dispatch(msg)

    async def _fetch(self, batch: int) -> list[Msg]:
        try:
            msgs: list[Msg] = await self._sub.fetch(batch, timeout=self.settings.worker_fetch_timeout_s)
        except (nats.errors.TimeoutError, TimeoutError):
            return []
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("fetch of webhooks failed: %r", exc)
            await asyncio.sleep(1.0)
            return []
        return msgs

    async def _dispatch(self, msg: Msg) -> None:
        """Start an attempt for `msg`, or hand it back for later (not yet due, tenant busy,
        destination paused) without spending one of its attempts."""
        try:
            delivery = WebhookDelivery.model_validate_json(msg.data)
        except ValidationError as exc:
            log.error("dropping an unreadable webhook message: %s", exc)
            await acknowledge("term", msg.term(), msg)
            return
        wait = delivery.not_before - time.time()
        if wait <= 0 and self._busy[delivery.tenant_id] >= self.settings.webhook_tenant_concurrency:
            wait = TENANT_BUSY_DELAY_S * random.uniform(0.5, 1.5)  # noqa: S311 (jitter)
        dest = destination(delivery.url)
        if wait <= 0:
            wait = self.breakers.wait_s(dest)
        if wait > 0:
            await acknowledge("nak", msg.nak(delay=wait), msg)
            return
        self._busy[delivery.tenant_id] += 1
        task = asyncio.create_task(self._deliver(msg, delivery, dest))
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            self._busy[delivery.tenant_id] -= 1
            if self._busy[delivery.tenant_id] <= 0:
                del self._busy[delivery.tenant_id]
            self._slot_freed.set()
            if not t.cancelled() and t.exception() is not None:
                log.error("webhook attempt crashed", exc_info=t.exception())

        task.add_done_callback(done)

    # --- one attempt -----------------------------------------------------------------------

    def _secret(self, tenant_id: str) -> str | None:
        tenant = self.tenants(tenant_id)
        if tenant is not None and tenant.webhook_secret is not None:
            return tenant.webhook_secret
        default = self.settings.webhook_default_secret
        return default.get_secret_value() if default is not None else None

    async def _deliver(self, msg: Msg, delivery: WebhookDelivery, dest: str) -> None:
        with (
            tracing.continued(msg.headers),  # the job's trace, carried by the queued message
            job_context(tenant_id=delivery.tenant_id, job_id=delivery.job_id, pool=None),
        ):
            try:
                with tracing.span("webhook", {"percolate.webhook_id": delivery.webhook_id}):
                    tried = await self.sender.attempt(
                        delivery.url,
                        self._secret(delivery.tenant_id),
                        delivery.webhook_id,
                        encode_payload(delivery.payload),
                    )
            except asyncio.CancelledError:
                self.breakers.release(dest)
                await asyncio.shield(acknowledge("nak", msg.nak(delay=0), msg))  # drain: hand it back
                raise
            await self._settle(msg, delivery, dest, tried.outcome, tried.error)

    async def _settle(
        self, msg: Msg, delivery: WebhookDelivery, dest: str, outcome: str, error: str | None
    ) -> None:
        elapsed = time.time() - delivery.enqueued_at
        attempts = delivery.attempts + 1
        if outcome == "delivered":
            self.breakers.succeeded(dest)
        elif outcome == "refused":
            self.breakers.release(dest)
        elif outcome == "failed":
            self.breakers.failed(dest)
            if attempts < self.settings.webhook_max_attempts:
                await self._retry_later(msg, delivery, attempts, error)
                return
            log.warning(
                "webhook %s of job %s to %s failed after %d attempts: %s",
                delivery.webhook_id,
                delivery.job_id,
                delivery.url,
                attempts,
                error,
            )
        self.sender.record_outcome(outcome, elapsed)
        await acknowledge("ack", msg.ack(), msg)

    async def _retry_later(
        self, msg: Msg, delivery: WebhookDelivery, attempts: int, error: str | None
    ) -> None:
        """Queue the next attempt (its number in the copy), then ack this one. If the copy
        cannot be queued the message is handed back as it is and retried with the same count."""
        delay = backoff_delay(attempts, self.settings.webhook_backoff_s, self.settings.webhook_backoff_max_s)
        retry = delivery.model_copy(update={"attempts": attempts, "not_before": time.time() + delay})
        try:
            await publish_webhook(self.js, retry, ack_timeout_s=self.settings.nats_publish_timeout_s)
        except QueueError as exc:
            log.warning("webhook %s: next attempt not queued (%s); handed back", delivery.webhook_id, exc)
            await acknowledge("nak", msg.nak(delay=delay), msg)
            return
        log.info(
            "webhook %s attempt %d failed (%s); retry in %.1fs", delivery.webhook_id, attempts, error, delay
        )
        await acknowledge("ack", msg.ack(), msg)
