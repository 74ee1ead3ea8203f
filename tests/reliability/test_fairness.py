"""Tenant fairness in a shared pool (real nats-server and SeaweedFS, the real worker).

Tenant A queues a burst; tenant B's single job, queued behind all of it, must finish after a
few of A's jobs, not after the burst. The pure choice of which tenant goes next is checked on
its own too."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from datetime import UTC, datetime

import pytest

from percolate_reading.contract.jobs import JobStatus
from percolate_reading.contract.subjects import (
    fair_lane_durable,
    fair_lane_subject,
    parse_job_subject,
    pool_subject_of,
    tenant_of_subject,
)
from percolate_reading.worker.fairness import choose_move
from tests.harness.documents import make_pdf
from tests.service.worker.test_worker import Env

BURST = 500  # the size: B's one job behind A's 500


def test_the_tenant_with_fewest_jobs_goes_next() -> None:
    waiting = {"a": deque([5, 6, 7]), "b": deque([9])}
    # A holds this worker's slots: B's oldest job goes ahead of A's queue.
    assert choose_move(waiting, {"a": 2}) == 9
    # Equal shares: arrival order (no move).
    assert choose_move(waiting, {"a": 1, "b": 1}) is None
    assert choose_move(waiting, {}) is None
    # One tenant waiting: nothing to reorder, whatever it holds.
    assert choose_move({"a": deque([5])}, {"a": 6}) is None
    # B at the head already: nothing moves.
    assert choose_move({"a": deque([7]), "b": deque([3])}, {"a": 3}) is None


def test_fair_lane_names_cannot_be_a_tenants() -> None:
    lane = fair_lane_subject("jobs.parse.small")
    assert lane == "jobs.parse.small._fair"
    assert tenant_of_subject(lane) is None  # a shared pool's, not a dedicated tenant's
    assert pool_subject_of(lane) == "jobs.parse.small"
    assert parse_job_subject(lane) == parse_job_subject("jobs.parse.small")
    assert fair_lane_durable("parse-workers-small") == "parse-workers-small--fair"
    with pytest.raises(ValueError, match="not a shared pool"):
        fair_lane_subject("jobs.parse.small.acme")  # a dedicated pool has one tenant


async def _count_succeeded(env: Env, job_ids: list[str]) -> int:
    records = await asyncio.gather(*(env.jobs.get(j) for j in job_ids))
    return sum(1 for r in records if r is not None and r.status is JobStatus.SUCCEEDED)


async def _finished_between(env: Env, job_ids: list[str], after: datetime, until: datetime) -> int:
    """How many of the jobs finished after `after` and by `until` (their records' own times:
    no polling race on a loaded machine)."""
    records = await asyncio.gather(*(env.jobs.get(j) for j in job_ids))
    return sum(
        1 for r in records if r is not None and r.finished_at is not None and after < r.finished_at <= until
    )


@pytest.mark.integration
async def test_one_tenants_burst_does_not_queue_another_tenants_job(env: Env) -> None:
    pdf = make_pdf(["A page of tenant A's burst."])
    burst: list[str] = []
    for start in range(0, BURST, 50):
        burst += await asyncio.gather(*(env.submit(pdf, tenant="tenant-a") for _ in range(start, start + 50)))
    # One parse at a time and one job held ahead: B may wait for at most the two A jobs the
    # worker holds when B arrives, plus the one it takes before it looks again.
    worker = await env.start(worker_concurrency=1, worker_prefetch=1)
    try:
        async with asyncio.timeout(60):
            while await _count_succeeded(env, burst[:3]) == 0:  # noqa: ASYNC110 (polls a store)
                await asyncio.sleep(0.1)
        started = time.monotonic()
        b_job = await env.submit(make_pdf(["Tenant B's only document."]), tenant="tenant-b")
        record = await env.wait_status(b_job, JobStatus.SUCCEEDED, JobStatus.FAILED, wait_s=60)
        waited = time.monotonic() - started
        assert record.status is JobStatus.SUCCEEDED, record.error
        assert record.finished_at is not None
        # A's jobs that finished while B's job existed: what B waited for.
        a_done_meanwhile = await _finished_between(env, burst, record.created_at, record.finished_at)
        assert a_done_meanwhile <= 4, f"B waited for {a_done_meanwhile} of A's jobs ({waited:.1f}s)"
        done_before = await _finished_between(env, burst, datetime.min.replace(tzinfo=UTC), record.created_at)
        assert done_before >= 1
        assert BURST - done_before - a_done_meanwhile > BURST // 2  # most of A's burst still queued
        assert worker.runner.fair is not None
        assert worker.runner.fair.moved >= 1  # B went ahead through the fair lane
        assert record.attempts == 1  # the move spent none of B's deliveries
    finally:
        await worker.drain(timeout_s=5)
