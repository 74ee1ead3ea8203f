"""The per-replica quota estimate against a real job store (RocksDB, as in `serve`)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from percolate_reading.config import load_settings
from percolate_reading.contract.jobs import JobRecord
from percolate_reading.gateway.quota import QuotaTracker
from percolate_reading.infra.jobs import open_job_store
from percolate_reading.infra.jobs.store import JobStore


def _record(job_id: str) -> JobRecord:
    return JobRecord(job_id=job_id, tenant_id="acme", file_name="a.pdf", file_type="pdf")


async def test_recount_keeps_reservations_whose_records_have_not_landed(tmp_path: Path) -> None:
    jobs = await open_job_store(load_settings(data_dir=tmp_path))
    try:
        quota = QuotaTracker(ttl_s=0.0)  # recount on every reservation
        # Two uploads in flight: reserved, records not written yet.
        assert await quota.reserve(jobs, "acme", 3) is None
        assert await quota.reserve(jobs, "acme", 3) is None
        # A recount reads 0 records but must still see the two in flight: one slot left.
        assert await quota.reserve(jobs, "acme", 3) is None
        assert await quota.reserve(jobs, "acme", 3) == 3
        # The three land; the recount now sees them as records, not as pending plus records.
        for n in range(3):
            await jobs.create(_record(f"job-{n}"))
            quota.landed("acme")
        assert await quota.reserve(jobs, "acme", 4) is None
        quota.release("acme")  # that fourth upload failed: its slot comes back
        assert await quota.reserve(jobs, "acme", 4) is None
        assert await quota.reserve(jobs, "acme", 4) == 4
    finally:
        await jobs.close()


async def test_other_tenants_do_not_share_a_quota(tmp_path: Path) -> None:
    jobs = await open_job_store(load_settings(data_dir=tmp_path))
    try:
        quota = QuotaTracker(ttl_s=60.0)
        assert await quota.reserve(jobs, "acme", 1) is None
        assert await quota.reserve(jobs, "acme", 1) == 1
        assert await quota.reserve(jobs, "globex", 1) is None
    finally:
        await jobs.close()


class SlowCount:
    """The real job store, with count_active slowed down (a test double around it, so the
    test can act while a count runs)."""

    def __init__(self, jobs: JobStore, delay_s: float) -> None:
        self.jobs = jobs
        self.delay_s = delay_s
        self.counts = 0

    async def count_active(self, tenant_id: str) -> int:
        self.counts += 1
        counted = await self.jobs.count_active(tenant_id)  # the store's snapshot is taken now
        await asyncio.sleep(self.delay_s)
        return counted


async def test_stale_estimate_is_refreshed_without_holding_uploads(tmp_path: Path) -> None:
    jobs = await open_job_store(load_settings(data_dir=tmp_path))
    slow = SlowCount(jobs, delay_s=1.0)
    quota = QuotaTracker(ttl_s=0.0)
    try:
        assert await quota.reserve(slow, "acme", 5) is None  # type: ignore[arg-type]  # first count waits
        quota.landed("acme")
        await jobs.create(_record("job-0"))
        # Another replica's jobs, which this one has not counted yet.
        for n in range(1, 4):
            await jobs.create(_record(f"job-{n}"))
        started = time.monotonic()
        assert await quota.reserve(slow, "acme", 5) is None  # type: ignore[arg-type]
        assert time.monotonic() - started < 0.5  # did not wait for the count it started
        await asyncio.sleep(2.0)  # the background count (1 s) lands: 4 records + 1 reservation
        assert slow.counts == 2
        assert await quota.reserve(slow, "acme", 5) == 5  # type: ignore[arg-type]
    finally:
        await quota.close()
        await jobs.close()


async def test_records_landing_during_a_count_are_not_lost(tmp_path: Path) -> None:
    jobs = await open_job_store(load_settings(data_dir=tmp_path))
    slow = SlowCount(jobs, delay_s=0.5)
    quota = QuotaTracker(ttl_s=60.0)
    try:
        assert await quota.reserve(slow, "acme", 2) is None  # type: ignore[arg-type]
        # An upload reserved, then its record lands while an exact count (at the limit) runs.
        assert await quota.reserve(slow, "acme", 2) is None  # type: ignore[arg-type]
        counting = asyncio.create_task(quota.reserve(slow, "acme", 2))  # type: ignore[arg-type]
        await asyncio.sleep(0.1)  # the count has read the store (nothing there yet)
        for n in range(2):
            await jobs.create(_record(f"job-{n}"))
            quota.landed("acme")
        assert await counting == 2  # both jobs count: not in the store's snapshot, not pending
    finally:
        await quota.close()
        await jobs.close()
