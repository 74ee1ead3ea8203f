"""Job message (what travels on JetStream) and job record (what status readers see)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from percolate_reading.contract.subjects import Tier


def utcnow() -> datetime:
    return datetime.now(UTC)


class StorageStrategy(StrEnum):
    SHARED = "shared"  # prefix `<tenant>/` inside the shared buckets
    TENANT = "tenant"  # the tenant's own buckets


class Resources(BaseModel):
    model_config = ConfigDict(frozen=True)
    cpu: str = "1"
    memory: str = "2Gi"
    gpu: int = 0


class JobMessage(BaseModel):
    """Versioned job message. Published with `Nats-Msg-Id = job_id` for de-duplication."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    job_id: str
    tenant_id: str
    file_name: str
    file_type: str  # DocumentType value, sniffed from content
    s3_uri: str  # s3://bucket/tenant/job_id/name (or file://... in single-node local storage)
    size_bytes: int = 0
    storage_strategy: StorageStrategy = StorageStrategy.SHARED
    callback_url: str | None = None
    priority: int = Field(0, ge=0, le=9)
    tier: Tier = Tier.SMALL
    resources: Resources = Field(default_factory=Resources)
    options: dict[str, str] = Field(default_factory=dict)  # parse options (password, language...)
    created_at: datetime = Field(default_factory=utcnow)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


# Allowed forward moves. RUNNING -> RUNNING is a redelivery (attempts go up); terminal states
# never change, so a late duplicate cannot turn `succeeded` back into `running`.
ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset(
        {JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    JobStatus.RUNNING: frozenset(
        {JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.QUEUED}
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def can_transition(current: JobStatus, new: JobStatus) -> bool:
    return new in ALLOWED_TRANSITIONS[current]


class JobErrorInfo(BaseModel):
    model_config = ConfigDict(frozen=True)
    code: str
    message: str
    permanent: bool


class JobRecord(BaseModel):
    """The job as the status API reports it."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    tenant_id: str
    file_name: str
    file_type: str
    size_bytes: int = 0
    tier: Tier = Tier.SMALL
    status: JobStatus = JobStatus.QUEUED
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    timings: dict[str, float] = Field(default_factory=dict)
    error: JobErrorInfo | None = None
    artifacts: list[str] = Field(default_factory=list)  # paths relative to the job's prefix
    callback_url: str | None = None
    webhook_id: str | None = None
