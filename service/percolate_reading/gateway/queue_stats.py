"""Exports each pool's queue depth, in-flight count and oldest-job age, and the dead-letter
counts, read from JetStream every `queue_stats_interval_s`.

The gateway collects them, not the workers: a pool's workers scale to zero (KEDA) exactly
when a backlog with no worker must be seen, a worker knows only its own consumer, and the
gateway is always up with a JetStream connection. Every gateway replica exports the same
values; queries take `max by (pool)`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from nats.js import JetStreamContext

from percolate_reading.infra.queue.stats import DeadLetterStats, PoolQueueStats, read_queue_stats
from percolate_reading.metrics import Metrics

log = logging.getLogger(__name__)


def apply_queue_stats(metrics: Metrics, pools: list[PoolQueueStats], dead: list[DeadLetterStats]) -> None:
    """Replace the gauges' series with these values (a deleted pool's series disappear).
    Synchronous, so no /metrics scrape sees the gauges half-updated."""
    gauges = (
        metrics.queue_depth,
        metrics.queue_in_flight,
        metrics.queue_waiting_pulls,
        metrics.queue_oldest_message_age_seconds,
        metrics.dead_letter_messages,
    )
    for gauge in gauges:
        gauge.clear()
    for p in pools:
        metrics.queue_depth.labels(*p.labels).set(p.depth)
        metrics.queue_in_flight.labels(*p.labels).set(p.in_flight)
        metrics.queue_waiting_pulls.labels(*p.labels).set(p.waiting_pulls)
        metrics.queue_oldest_message_age_seconds.labels(*p.labels).set(p.oldest_age_s)
    for d in dead:
        metrics.dead_letter_messages.labels(d.tier, d.tenant).set(d.messages)
    metrics.queue_stats_last_success_timestamp_seconds.set_to_current_time()


async def refresh_queue_stats(js: JetStreamContext, stream: str, metrics: Metrics) -> None:
    pools, dead = await read_queue_stats(js, stream, datetime.now(UTC))
    apply_queue_stats(metrics, pools, dead)


async def collect_forever(js: JetStreamContext, stream: str, metrics: Metrics, interval_s: float) -> None:
    """Refresh until cancelled; a failed read is counted and logged, never fatal (the gauges
    keep their last values and queue_stats_last_success_timestamp_seconds ages)."""
    failures = 0
    while True:
        try:
            await refresh_queue_stats(js, stream, metrics)
            failures = 0
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            metrics.queue_stats_errors_total.inc()
            failures += 1
            if failures == 1 or failures % 20 == 0:
                log.warning("reading the queue state failed (%d in a row): %r", failures, exc)
        await asyncio.sleep(interval_s)
