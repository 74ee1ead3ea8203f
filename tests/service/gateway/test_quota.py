"""The per-replica quota estimate against a real job store (RocksDB, as in `serve`)."""

from __future__ import annotations

from pathlib import Path

from percolate_reading.config import load_settings
from percolate_reading.gateway.quota import QuotaTracker
from percolate_reading.jobs import open_job_store
from percolate_reading.jobs.models import JobRecord


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
