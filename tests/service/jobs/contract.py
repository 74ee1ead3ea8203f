"""Behaviour every JobStore must show; each store's test module subclasses this."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from percolate_reading.contract.jobs import JobErrorInfo, JobRecord, JobStatus
from percolate_reading.errors import InvalidTransitionError, JobNotFoundError
from percolate_reading.infra.jobs.store import JobStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rec(job_id: str, tenant: str = "acme", minutes: int = 0) -> JobRecord:
    return JobRecord(
        job_id=job_id,
        tenant_id=tenant,
        file_name=f"{job_id}.pdf",
        file_type="pdf",
        created_at=T0 + timedelta(minutes=minutes),
    )


class JobStoreContract:
    async def test_create_is_idempotent(self, store: JobStore) -> None:
        await store.create(rec("j1"))
        await store.transition("j1", JobStatus.RUNNING)
        await store.create(rec("j1"))  # a retried create keeps the existing record
        got = await store.get("j1")
        assert got is not None
        assert got.status is JobStatus.RUNNING
        assert got.attempts == 1
        assert await store.get("missing") is None
        assert await store.get("../etc/passwd") is None

    async def test_transitions_are_monotonic(self, store: JobStore) -> None:
        await store.create(rec("j2"))
        r = await store.transition("j2", JobStatus.RUNNING)
        assert r.started_at is not None
        r = await store.transition("j2", JobStatus.RUNNING)  # redelivery
        assert r.attempts == 2
        r = await store.transition("j2", JobStatus.SUCCEEDED, artifacts=["document.md"])
        assert r.finished_at is not None
        with pytest.raises(InvalidTransitionError):
            await store.transition("j2", JobStatus.RUNNING)
        with pytest.raises(InvalidTransitionError):
            await store.transition("j2", JobStatus.FAILED)
        got = await store.get("j2")
        assert got is not None
        assert got.status is JobStatus.SUCCEEDED
        assert got.artifacts == ["document.md"]
        with pytest.raises(JobNotFoundError):
            await store.transition("nope", JobStatus.RUNNING)

    async def test_update_keeps_status(self, store: JobStore) -> None:
        await store.create(rec("j3"))
        await store.transition(
            "j3", JobStatus.FAILED, error=JobErrorInfo(code="corrupt", message="x", permanent=True)
        )
        r = await store.update("j3", webhook_id="msg_1")
        assert r.status is JobStatus.FAILED
        assert r.webhook_id == "msg_1"
        assert r.error is not None
        assert r.error.code == "corrupt"
        with pytest.raises(ValueError, match="status"):
            await store.update("j3", status=JobStatus.QUEUED)

    async def test_concurrent_cas_only_one_terminal_wins(self, store: JobStore) -> None:
        await store.create(rec("j4"))
        await store.transition("j4", JobStatus.RUNNING)

        async def finish(status: JobStatus) -> str:
            try:
                await store.transition("j4", status)
            except InvalidTransitionError:
                return "lost"
            return status.value

        results = await asyncio.gather(*(finish(s) for s in [JobStatus.SUCCEEDED, JobStatus.FAILED] * 5))
        winners = [r for r in results if r != "lost"]
        assert len(winners) == 1
        got = await store.get("j4")
        assert got is not None
        assert got.status.value == winners[0]

    async def test_concurrent_running_counts_every_attempt(self, store: JobStore) -> None:
        await store.create(rec("j5"))
        await asyncio.gather(*(store.transition("j5", JobStatus.RUNNING) for _ in range(8)))
        got = await store.get("j5")
        assert got is not None
        assert got.attempts == 8

    async def test_listing_pages_newest_first_and_isolates_tenants(self, store: JobStore) -> None:
        for i in range(7):
            await store.create(rec(f"a{i}", "ten-a", minutes=i))
        await store.create(rec("b0", "ten-b", minutes=3))
        await store.transition("a2", JobStatus.RUNNING)
        await store.transition("a2", JobStatus.SUCCEEDED)
        await store.transition("a5", JobStatus.CANCELLED)

        seen: list[str] = []
        cursor: str | None = None
        while True:
            page, cursor = await store.list_for_tenant("ten-a", limit=3, cursor=cursor)
            assert len(page) <= 3
            seen.extend(r.job_id for r in page)
            if cursor is None:
                break
        assert seen == ["a6", "a5", "a4", "a3", "a2", "a1", "a0"]

        queued, nxt = await store.list_for_tenant("ten-a", status=JobStatus.QUEUED, limit=10)
        assert [r.job_id for r in queued] == ["a6", "a4", "a3", "a1", "a0"]
        assert nxt is None
        done, _ = await store.list_for_tenant("ten-a", status=JobStatus.SUCCEEDED)
        assert [r.job_id for r in done] == ["a2"]
        only_b, _ = await store.list_for_tenant("ten-b")
        assert [r.job_id for r in only_b] == ["b0"]
        assert await store.count_active("ten-a") == 5
        assert await store.count_active("ten-b") == 1
        assert await store.count_active("ten-c") == 0
        with pytest.raises(ValueError, match="cursor"):
            await store.list_for_tenant("ten-b", cursor="tenant.ten-a.0")

    async def test_complete_part_lets_one_writer_see_the_last_part(self, store: JobStore) -> None:
        parts = ["00001-00002", "00003-00004", "00005-00006", "00007-00008"]
        await store.create(rec("split1"))
        await store.update("split1", parts=parts)
        await store.transition("split1", JobStatus.RUNNING)
        # Every part finished at once: one call, and only one, sees the set complete.
        results = await asyncio.gather(*(store.complete_part("split1", p) for p in reversed(parts)))
        assert sum(len(r.parts_done) == len(parts) for r in results) == 1
        got = await store.get("split1")
        assert got is not None
        assert got.parts_done == parts  # in plan order
        assert got.status is JobStatus.RUNNING
        # Parts recorded again (redelivered) change nothing.
        again = await asyncio.gather(*(store.complete_part("split1", p) for p in parts))
        assert all(r.parts_done == parts for r in again)
        # A finished job takes no more parts.
        await store.create(rec("split2"))
        await store.update("split2", parts=parts)
        await store.transition("split2", JobStatus.FAILED)
        after = await store.complete_part("split2", parts[1])
        assert after.parts_done == []
        with pytest.raises(JobNotFoundError):
            await store.complete_part("nope", parts[0])
