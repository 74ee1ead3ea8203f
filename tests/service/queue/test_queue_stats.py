"""Per-pool queue gauges (depth, in flight, oldest-job age) and dead-letter counts, read from
a real nats-server the way the gateway's collector reads them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.js.api import ConsumerConfig, ConsumerInfo
from prometheus_client.parser import text_string_to_metric_families

from percolate_reading.config import load_settings
from percolate_reading.contract.subjects import (
    CONSUMER_OWNER_KEY,
    Tier,
    consumer_name,
    dead_letter_subject,
    job_subject,
    parse_job_subject,
)
from percolate_reading.contract.topology import ConsumerLimits, TopologyLimits
from percolate_reading.gateway.queue_stats import collect_forever, refresh_queue_stats
from percolate_reading.infra.queue.jetstream import connect, publish_dead_letter, publish_job
from percolate_reading.infra.queue.stats import (
    PoolQueueStats,
    dead_letter_stats,
    pool_name,
    pool_stats,
    with_fair_lanes,
)
from percolate_reading.infra.queue.topology import ensure_pool_consumers, ensure_topology
from percolate_reading.metrics import Metrics
from tests.harness.jobs import job_message
from tests.servers import NatsServer

pytestmark = pytest.mark.integration


def samples(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_parse_job_subject() -> None:
    assert parse_job_subject("jobs.parse.small") == (Tier.SMALL, None)
    assert parse_job_subject("jobs.parse.gpu.acme") == (Tier.GPU, "acme")
    assert parse_job_subject("dlq.parse.large") == (Tier.LARGE, None)
    assert parse_job_subject("jobs.parse.huge") is None
    assert parse_job_subject("jobs.other.small") is None
    assert parse_job_subject("jobs.parse.small.acme.x") is None


def test_pool_name_prefers_the_operator_owner() -> None:
    cfg = ConsumerConfig(durable_name="parse-workers-small", filter_subject="jobs.parse.small")
    info = ConsumerInfo(name="parse-workers-small", stream_name="JOBS", config=cfg, created=datetime.now(UTC))
    assert pool_name(info) == "parse-workers-small"
    owned = ConsumerConfig(
        durable_name="parse-workers-small",
        filter_subject="jobs.parse.small",
        metadata={CONSUMER_OWNER_KEY: "percolate/small-pool"},
    )
    info = ConsumerInfo(
        name="parse-workers-small", stream_name="JOBS", config=owned, created=datetime.now(UTC)
    )
    now = datetime.now(UTC)
    stats = pool_stats(info, now - timedelta(seconds=42), now)
    assert stats is not None
    assert stats.labels == ("small-pool", "small", "")
    assert stats.oldest_age_s == pytest.approx(42)
    other = ConsumerConfig(durable_name="x", filter_subject="jobs.something")
    assert (
        pool_stats(ConsumerInfo(name="x", stream_name="JOBS", config=other, created=now), None, now) is None
    )


def test_a_fair_lane_counts_with_its_pool() -> None:
    pool = PoolQueueStats("small-pool", "small", "", depth=40, in_flight=2, waiting_pulls=1, oldest_age_s=9.0)
    dedicated = PoolQueueStats(
        "acme", "small", "acme", depth=3, in_flight=1, waiting_pulls=0, oldest_age_s=1.0
    )
    lane = PoolQueueStats(
        "parse-workers-small--fair", "small", "", depth=0, in_flight=1, waiting_pulls=0, oldest_age_s=30.0
    )
    merged = with_fair_lanes([pool, dedicated], [lane])
    assert merged == [
        PoolQueueStats("small-pool", "small", "", depth=40, in_flight=3, waiting_pulls=1, oldest_age_s=30.0),
        dedicated,
    ]
    # A lane whose pool is gone is still visible.
    assert with_fair_lanes([dedicated], [lane]) == [dedicated, lane]


def test_dead_letter_stats_sum_per_tier_and_tenant() -> None:
    got = dead_letter_stats({"dlq.parse.small": 2, "dlq.parse.small.acme": 3, "dlq.parse.gpu": 1, "dlq.x": 9})
    assert [(d.tier, d.tenant, d.messages) for d in got] == [
        ("gpu", "", 1),
        ("small", "", 2),
        ("small", "acme", 3),
    ]


@pytest.fixture
async def nc(fresh_nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[NATS]:
    conn = await connect(load_settings(nats_url=fresh_nats_server.url, data_dir=tmp_path))
    yield conn
    await conn.close()


async def test_gauges_follow_the_queue(nc: NATS, fresh_nats_server: NatsServer, tmp_path: Path) -> None:
    settings = load_settings(nats_url=fresh_nats_server.url, data_dir=tmp_path)
    js = nc.jetstream()
    await ensure_topology(js, TopologyLimits.from_settings(settings), update=False)
    small, dedicated = job_subject("small"), job_subject("large", "acme")
    limits = ConsumerLimits.from_settings(settings)
    await ensure_pool_consumers(js, small, consumer_name("small"), limits)
    await ensure_pool_consumers(js, dedicated, consumer_name("large", "acme"), limits)
    metrics = Metrics()

    await refresh_queue_stats(js, "JOBS", metrics)
    depth = samples(metrics, "queue_depth")
    small_labels = (("pool", "parse-workers-small"), ("tenant", ""), ("tier", "small"))
    acme_labels = (("pool", "parse-workers-large-acme"), ("tenant", "acme"), ("tier", "large"))
    assert depth == {small_labels: 0.0, acme_labels: 0.0}
    assert samples(metrics, "queue_oldest_message_age_seconds")[small_labels] == 0.0

    for i in range(3):
        await publish_job(js, job_message(f"j{i:031d}"), small)
    await publish_job(js, job_message("a" * 32), dedicated)
    await asyncio.sleep(1.2)
    await refresh_queue_stats(js, "JOBS", metrics)
    assert samples(metrics, "queue_depth") == {small_labels: 3.0, acme_labels: 1.0}
    age = samples(metrics, "queue_oldest_message_age_seconds")
    assert 1.0 <= age[small_labels] < 30
    assert samples(metrics, "queue_in_flight")[small_labels] == 0.0

    # A worker takes one and holds it: in flight, not waiting; the oldest is still unfinished.
    sub = await js.pull_subscribe_bind(consumer_name("small"), stream="JOBS")
    (taken,) = await sub.fetch(1, timeout=2)
    await refresh_queue_stats(js, "JOBS", metrics)
    assert samples(metrics, "queue_depth")[small_labels] == 2.0
    assert samples(metrics, "queue_in_flight")[small_labels] == 1.0
    assert samples(metrics, "queue_oldest_message_age_seconds")[small_labels] >= 1.0
    # Finished: the oldest unfinished job is now a younger one, and the age drops with it.
    await taken.ack_sync()
    for msg in await sub.fetch(2, timeout=2):
        await msg.ack_sync()
    await refresh_queue_stats(js, "JOBS", metrics)
    assert samples(metrics, "queue_depth")[small_labels] == 0.0
    assert samples(metrics, "queue_in_flight")[small_labels] == 0.0
    assert samples(metrics, "queue_oldest_message_age_seconds")[small_labels] == 0.0
    assert samples(metrics, "queue_oldest_message_age_seconds")[acme_labels] >= 1.0

    # Dead letters counted per tier and tenant from JOBS_DLQ.
    for i, subject in enumerate((small, small, dedicated)):
        await publish_dead_letter(
            js,
            subject,
            dead_letter_subject(subject),
            b"{}",
            job_id=f"d{i}",
            code="x",
            reason="r",
            deliveries=3,
        )
    await refresh_queue_stats(js, "JOBS", metrics)
    assert samples(metrics, "dead_letter_messages") == {
        (("tenant", ""), ("tier", "small")): 2.0,
        (("tenant", "acme"), ("tier", "large")): 1.0,
    }

    # A deleted pool's series disappear.
    await js.delete_consumer("JOBS", consumer_name("large", "acme"))
    await refresh_queue_stats(js, "JOBS", metrics)
    assert set(samples(metrics, "queue_depth")) == {small_labels}
    assert samples(metrics, "queue_stats_last_success_timestamp_seconds")[()] > 0


async def test_collector_survives_errors(nc: NATS) -> None:
    # No JOBS stream on this server: every read fails, counted, and the loop keeps going.
    metrics = Metrics()
    task = asyncio.create_task(collect_forever(nc.jetstream(), "JOBS", metrics, 0.05))
    await asyncio.sleep(0.5)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert samples(metrics, "queue_stats_errors_total")[()] >= 2
