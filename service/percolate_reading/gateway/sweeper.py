"""Leftovers of failed submissions, retried until they are gone.

A submission that fails after its file was staged deletes the object and marks the record
failed on the spot. When that clean-up itself fails (S3 or NATS went away mid-request) the
work is queued here and retried in the background, so nothing half-made outlives the outage.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from percolate_reading.errors import InvalidTransitionError, JobNotFoundError
from percolate_reading.jobs.models import JobErrorInfo, JobStatus
from percolate_reading.jobs.store import JobStore
from percolate_reading.storage.base import ObjectStore

log = logging.getLogger(__name__)


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
