"""Leftovers of failed submissions, retried until they are gone.

A submission that fails after its file was staged deletes the object and marks the record
failed on the spot. When that clean-up itself fails (S3 or NATS went away mid-request) the
work is queued here and retried in the background, so nothing half-made outlives the outage.

A gateway that crashes mid-submission cannot clean up at all, so a slow scan also looks for
what such a crash leaves: staged files with no job record, and jobs still queued after their
message must have expired from the stream. Both are judged only once they are older than
the stream's max age, when no message can refer to them any more (job ids begin with their
creation time in milliseconds, so a key's age needs no object metadata).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from percolate_reading.contract.jobs import JobErrorInfo, JobStatus
from percolate_reading.contract.keys import tenant_prefix
from percolate_reading.contract.tenancy import TenantRecord
from percolate_reading.errors import InvalidTransitionError, JobNotFoundError
from percolate_reading.infra.jobs.store import JobStore
from percolate_reading.infra.storage.base import ObjectStore

log = logging.getLogger(__name__)

SCAN_EVERY_S = 3600.0
EXPIRED = JobErrorInfo(
    code="expired",
    message="the job was never picked up before its queue message expired; submit it again",
    permanent=True,
)


def job_id_created_s(job_id: str) -> float | None:
    """Creation time (unix seconds) encoded in a gateway job id, or None for other ids."""
    if len(job_id) != 32:
        return None
    try:
        return int(job_id[:12], 16) / 1000.0
    except ValueError:
        return None


@dataclass
class Sweeper:
    store: ObjectStore
    jobs: JobStore
    interval_s: float = 5.0
    objects: set[tuple[str, str]] = field(default_factory=set)
    failed_jobs: dict[str, JobErrorInfo] = field(default_factory=dict)

    async def discard_object(self, bucket: str, key: str) -> None:
        try:
            await self.store.delete(bucket, key)
        except Exception as exc:  # any store failure: keep it for the next sweep
            log.warning("staged object %s/%s not deleted yet (%s); will retry", bucket, key, exc)
            self.objects.add((bucket, key))

    async def fail_job(self, job_id: str, error: JobErrorInfo) -> None:
        try:
            await self.jobs.transition(job_id, JobStatus.FAILED, error=error)
        except (InvalidTransitionError, JobNotFoundError):
            return  # already terminal (or never written): nothing to undo
        except Exception as exc:  # store down: keep it for the next sweep
            log.warning("job %s not marked failed yet (%s); will retry", job_id, exc)
            self.failed_jobs[job_id] = error

    async def sweep_once(self) -> None:
        for bucket, key in list(self.objects):
            self.objects.discard((bucket, key))
            await self.discard_object(bucket, key)
        for job_id, error in list(self.failed_jobs.items()):
            del self.failed_jobs[job_id]
            await self.fail_job(job_id, error)

    @property
    def pending(self) -> int:
        return len(self.objects) + len(self.failed_jobs)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.sweep_once()

    async def scan_tenant(self, tenant: TenantRecord, older_than_s: float, now: float | None = None) -> int:
        """Remove one tenant's crash leftovers older than `older_than_s`; returns how many."""
        cutoff = (time.time() if now is None else now) - older_than_s
        cleaned = 0
        for key in await self.store.list_keys(tenant.files_bucket, tenant_prefix(tenant.tenant_id)):
            parts = key.split("/")
            created = job_id_created_s(parts[1]) if len(parts) >= 3 else None
            if created is None or created > cutoff:
                continue
            if await self.jobs.get(parts[1]) is None:
                log.info(
                    "removing staged file %s/%s of a submission that never completed",
                    tenant.files_bucket,
                    key,
                )
                await self.discard_object(tenant.files_bucket, key)
                cleaned += 1
        cursor = None
        while True:
            page, cursor = await self.jobs.list_for_tenant(tenant.tenant_id, JobStatus.QUEUED, 200, cursor)
            for record in page:
                if record.created_at.timestamp() <= cutoff:
                    log.info("job %s expired in the queue; marking it failed", record.job_id)
                    await self.fail_job(record.job_id, EXPIRED)
                    cleaned += 1
            if not cursor:
                return cleaned

    async def abort_stale_uploads(self, buckets: Iterable[str], older_than_s: float) -> int:
        """Abort the incomplete multipart uploads (of a gateway killed mid-upload) older than
        `older_than_s` in each bucket; returns how many."""
        aborted = 0
        for bucket in sorted(set(buckets)):
            try:
                aborted += await self.store.abort_stale_uploads(bucket, older_than_s)
            except Exception as exc:  # a store outage: try again next round
                log.warning("incomplete uploads of bucket %s not checked: %s", bucket, exc)
        return aborted

    async def scan_forever(
        self,
        tenants: Callable[[], Iterable[TenantRecord]],
        older_than_s: float,
        every_s: float = SCAN_EVERY_S,
        uploads_older_than_s: float | None = None,
    ) -> None:
        while True:
            await asyncio.sleep(every_s)
            current = list(tenants())
            for tenant in current:
                try:
                    await self.scan_tenant(tenant, older_than_s)
                except Exception as exc:  # a store outage: try again next round
                    log.warning("leftover scan of tenant %s failed: %s", tenant.tenant_id, exc)
            if uploads_older_than_s is not None:
                await self.abort_stale_uploads((t.files_bucket for t in current), uploads_older_than_s)
