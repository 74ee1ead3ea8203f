"""The gateway's leftover scan on real local stores (directory object store, RocksDB jobs)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from percolate_reading.contract.jobs import JobRecord, JobStatus
from percolate_reading.contract.tenancy import TenantRecord
from percolate_reading.gateway.sweeper import Sweeper, job_id_created_s
from percolate_reading.infra.jobs.rocks_store import RocksJobStore
from percolate_reading.infra.storage.local import LocalObjectStore


def job_id_at(unix_s: float, tail: str) -> str:
    return f"{int(unix_s * 1000):012x}{tail:0>20}"


async def test_scan_removes_only_expired_leftovers(tmp_path: Path) -> None:
    now = time.time()
    old, new = now - 7200, now - 60
    store = LocalObjectStore(tmp_path / "objects")
    await store.ensure_buckets(["percolate-files"])
    jobs = RocksJobStore(tmp_path / "jobs")
    tenant = TenantRecord(tenant_id="acme")
    orphan, kept_old, fresh_orphan = job_id_at(old, "1"), job_id_at(old, "2"), job_id_at(new, "3")
    stuck, waiting = job_id_at(old, "4"), job_id_at(new, "5")
    try:
        for job_id in (orphan, kept_old, fresh_orphan):
            await store.put_bytes("percolate-files", f"acme/{job_id}/doc.pdf", b"%PDF-1.7")
        await jobs.create(
            JobRecord(
                job_id=kept_old,
                tenant_id="acme",
                file_name="doc.pdf",
                file_type="pdf",
                status=JobStatus.QUEUED,
            )
        )
        await jobs.transition(kept_old, JobStatus.CANCELLED)
        for job_id, created in ((stuck, old), (waiting, new)):
            await jobs.create(
                JobRecord(
                    job_id=job_id,
                    tenant_id="acme",
                    file_name="x.pdf",
                    file_type="pdf",
                    created_at=datetime.fromtimestamp(created, UTC),
                )
            )

        cleaned = await Sweeper(store, jobs).scan_tenant(tenant, older_than_s=3600, now=now)

        assert cleaned == 2
        assert sorted(await store.list_keys("percolate-files", "acme/")) == sorted(
            [f"acme/{kept_old}/doc.pdf", f"acme/{fresh_orphan}/doc.pdf"]
        )
        stuck_record = await jobs.get(stuck)
        assert stuck_record is not None
        assert stuck_record.status is JobStatus.FAILED
        assert stuck_record.error is not None
        assert stuck_record.error.code == "expired"
        waiting_record = await jobs.get(waiting)
        assert waiting_record is not None
        assert waiting_record.status is JobStatus.QUEUED
    finally:
        await jobs.close()


def test_job_id_time() -> None:
    assert job_id_created_s(job_id_at(1_700_000_000.5, "ab")) == 1_700_000_000.5
    assert job_id_created_s("not-a-gateway-id") is None
    assert job_id_created_s("z" * 32) is None
