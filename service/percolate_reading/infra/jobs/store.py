"""The job-status store contract. JetStream KV (cluster) and RocksDB (single node) implement it.

`transition` is the only way to change a record's status and enforces `ALLOWED_TRANSITIONS`
with compare-and-set, so concurrent writers (a redelivered job on two workers, a late
duplicate) can never move a job backwards.
"""

from __future__ import annotations

from typing import Any, Protocol

from percolate_reading.contract.jobs import JobRecord, JobStatus


class JobStore(Protocol):
    async def create(self, record: JobRecord) -> None:
        """Insert a new record; idempotent for the same job_id (keeps the existing one)."""
        ...

    async def get(self, job_id: str) -> JobRecord | None: ...

    async def transition(self, job_id: str, status: JobStatus, **fields: Any) -> JobRecord:
        """Move to `status` and set `fields`; raise InvalidTransitionError if not allowed."""
        ...

    async def update(self, job_id: str, **fields: Any) -> JobRecord:
        """Set non-status fields (artifacts, timings, webhook_id)."""
        ...

    async def complete_part(self, job_id: str, part: str) -> JobRecord:
        """Add `part` to a split job's finished parts with compare-and-set, so of two workers
        finishing the last two parts at once exactly one sees every part done; returns the
        record after. A part already recorded, or a finished job, is left as it is."""
        ...

    async def list_for_tenant(
        self, tenant_id: str, status: JobStatus | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[JobRecord], str | None]:
        """Newest first; returns (page, next_cursor)."""
        ...

    async def count_active(self, tenant_id: str) -> int:
        """Queued + running jobs of a tenant (quota checks)."""
        ...

    async def close(self) -> None: ...
