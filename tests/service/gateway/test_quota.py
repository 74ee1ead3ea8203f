"""Per-tenant active-job quota: the estimate never lets a tenant past its limit, and a stale
estimate is recounted without holding up uploads."""

from __future__ import annotations

from pathlib import Path

from percolate_reading.gateway.quota import QuotaTracker
from percolate_reading.jobs.models import JobRecord, JobStatus
from percolate_reading.jobs.rocks_store import RocksJobStore


def record(job_id: str) -> JobRecord:
    return JobRecord(job_id=job_id, tenant_id="acme", file_name="a.pdf", file_type="pdf")


async def test_limit_is_exact_and_stale_estimates_are_recounted(tmp_path: Path) -> None:
    store = RocksJobStore(tmp_path / "jobs")
    try:
        quotas = QuotaTracker(ttl_s=0.0)  # every estimate is stale at once
        for i in range(3):
            await store.create(record(f"j{i}"))
        assert await quotas.reserve(store, "acme", 3) == 3  # exact count at the limit
        await store.transition("j0", JobStatus.CANCELLED)
        assert await quotas.reserve(store, "acme", 3) is None  # 2 active now
        await store.create(record("j3"))  # that upload's job lands
        assert await quotas.reserve(store, "acme", 3) == 3
        await store.transition("j1", JobStatus.CANCELLED)
        await store.transition("j2", JobStatus.CANCELLED)
        assert await quotas.reserve(store, "acme", 3) is None  # exact: 1 active
        # Below the limit a stale estimate does not hold the upload up: it is recounted in
        # the background, and the recount keeps reservations taken after it started.
        assert await quotas.reserve(store, "acme", 3) is None
        entry = quotas._entries["acme"]
        assert entry.refresh is not None
        assert entry.count == 3
        await entry.refresh
        assert entry.count == 1  # j3; the two reservations were taken before the recount
        await quotas.close()
    finally:
        await store.close()
