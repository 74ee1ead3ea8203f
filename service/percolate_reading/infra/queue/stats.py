"""The queue's state per pool, read from JetStream: what the queue gauges export.

One pool is one durable consumer of the JOBS stream; its depth and in-flight count come
from the consumer info, the age of its oldest unfinished job from the first message after
the consumer's ack floor (a work-queue stream deletes acked messages, so that message is
the oldest one still waiting or running). A shared pool's fair lane (jobs a worker moved
ahead of another tenant's burst) is counted with its pool. Dead letters are counted per
subject of JOBS_DLQ.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo

from percolate_reading.contract.subjects import (
    CONSUMER_OWNER_KEY,
    DLQ_STREAM_NAME,
    DLQ_STREAM_SUBJECTS,
    FAIR_LANE_TOKEN,
    parse_job_subject,
)


@dataclass(frozen=True)
class PoolQueueStats:
    pool: str
    tier: str
    tenant: str  # "" for a shared pool
    depth: int
    in_flight: int
    waiting_pulls: int
    oldest_age_s: float

    @property
    def labels(self) -> tuple[str, str, str]:
        return (self.pool, self.tier, self.tenant)


@dataclass(frozen=True)
class DeadLetterStats:
    tier: str
    tenant: str
    messages: int


def pool_name(info: ConsumerInfo) -> str:
    """The ParsePool's name where the operator recorded it (matches the worker pods' `pool`
    label), else the consumer's own name (a worker-created consumer, compose, serve)."""
    owner = (info.config.metadata or {}).get(CONSUMER_OWNER_KEY, "")
    return owner.rsplit("/", 1)[-1] or info.name


def pool_stats(info: ConsumerInfo, oldest: datetime | None, now: datetime) -> PoolQueueStats | None:
    """The gauges' values for one consumer (None for a consumer that is not a job pool)."""
    parsed = parse_job_subject(info.config.filter_subject or "")
    if parsed is None:
        return None
    tier, tenant = parsed
    age = max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
    return PoolQueueStats(
        pool=pool_name(info),
        tier=tier.value,
        tenant=tenant or "",
        depth=int(info.num_pending or 0),
        in_flight=int(info.num_ack_pending or 0),
        waiting_pulls=int(info.num_waiting or 0),
        oldest_age_s=age,
    )


def dead_letter_stats(subjects: dict[str, int]) -> list[DeadLetterStats]:
    """Per (tier, tenant) counts from JOBS_DLQ's per-subject message counts."""
    totals: dict[tuple[str, str], int] = {}
    for subject, count in subjects.items():
        parsed = parse_job_subject(subject)
        if parsed is None:
            continue
        key = (parsed[0].value, parsed[1] or "")
        totals[key] = totals.get(key, 0) + int(count)
    return [DeadLetterStats(tier, tenant, n) for (tier, tenant), n in sorted(totals.items())]


def with_fair_lanes(pools: list[PoolQueueStats], lanes: list[PoolQueueStats]) -> list[PoolQueueStats]:
    """Each fair lane's jobs added to its shared pool's (same tier, no tenant); a lane whose
    pool consumer is gone stays a row of its own."""
    merged = list(pools)
    for lane in lanes:
        at = next((i for i, p in enumerate(merged) if (p.tier, p.tenant) == (lane.tier, lane.tenant)), None)
        if at is None:
            merged.append(lane)
            continue
        pool = merged[at]
        merged[at] = replace(
            pool,
            depth=pool.depth + lane.depth,
            in_flight=pool.in_flight + lane.in_flight,
            waiting_pulls=pool.waiting_pulls + lane.waiting_pulls,
            oldest_age_s=max(pool.oldest_age_s, lane.oldest_age_s),
        )
    return merged


async def oldest_unfinished(js: JetStreamContext, stream: str, info: ConsumerInfo) -> datetime | None:
    """Stored time of the consumer's oldest message not yet acked, None when there is none."""
    if not (info.num_pending or info.num_ack_pending) or not info.config.filter_subject:
        return None
    floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
    try:
        msg = await js.get_msg(stream, seq=floor + 1, subject=info.config.filter_subject, next=True)
    except nats.js.errors.NotFoundError:
        return None  # acked meanwhile
    return msg.time


async def read_queue_stats(
    js: JetStreamContext, stream: str, now: datetime
) -> tuple[list[PoolQueueStats], list[DeadLetterStats]]:
    """Every job pool of `stream` and the dead-letter counts; raises nats errors as they come."""
    pools: list[PoolQueueStats] = []
    lanes: list[PoolQueueStats] = []
    offset = 0
    while True:
        # The server lists at most 256 consumers per request.
        page = await js.consumers_info(stream, offset=offset or None)
        for info in page:
            stats = pool_stats(info, await oldest_unfinished(js, stream, info), now)
            if stats is not None:
                is_lane = (info.config.filter_subject or "").endswith("." + FAIR_LANE_TOKEN)
                (lanes if is_lane else pools).append(stats)
        offset += len(page)
        if len(page) < 256:
            break
    pools = with_fair_lanes(pools, lanes)
    try:
        dlq = await js.stream_info(DLQ_STREAM_NAME, subjects_filter=DLQ_STREAM_SUBJECTS[0])
    except nats.js.errors.NotFoundError:
        return pools, []
    return pools, dead_letter_stats(dict(dlq.state.subjects or {}))
