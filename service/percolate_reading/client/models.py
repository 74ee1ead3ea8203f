"""What the gateway answers, as typed models. Written for the client (no server imports);
`tests/service/client/test_client.py` checks them against the OpenAPI schema the gateway
serves, so a field added, removed or retyped on either side fails a test.

Unknown fields are ignored rather than refused: a newer gateway may add some."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Tier(StrEnum):
    SMALL = "small"
    LARGE = "large"
    GPU = "gpu"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class JobError(_Model):
    """Why a job failed: a stable `code`, a `message` for people, and whether retrying the
    same file could help (`permanent` false)."""

    code: str
    message: str
    permanent: bool


class Accepted(_Model):
    job_id: str
    status: JobStatus
    status_url: str


class Job(_Model):
    """A parse job as `GET /v1/jobs/{id}` reports it."""

    job_id: str
    tenant_id: str
    file_name: str
    file_type: str
    size_bytes: int = 0
    tier: Tier = Tier.SMALL
    status: JobStatus = JobStatus.QUEUED
    attempts: int = 0
    # Always sent; defaults as in the server's own model (the drift test compares them).
    created_at: datetime = Field(default_factory=_utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime = Field(default_factory=_utcnow)
    timings: dict[str, float] = Field(default_factory=dict)
    error: JobError | None = None
    artifacts: list[str] = Field(default_factory=list)
    callback_url: str | None = None
    webhook_id: str | None = None
    # A large scan split into page ranges: the planned parts and those done so far (progress).
    parts: list[str] = Field(default_factory=list)
    parts_done: list[str] = Field(default_factory=list)
    status_url: str
    artifact_urls: dict[str, str] = Field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status.finished

    @property
    def succeeded(self) -> bool:
        return self.status is JobStatus.SUCCEEDED


class JobPage(_Model):
    jobs: list[Job]
    next_cursor: str | None


class ContextDocument(_Model):
    model_config = ConfigDict(frozen=True, extra="allow")
    job_id: str
    tenant_id: str
    file_name: str
    artifacts: dict[str, str]
    chunk_count: int
    chunks: list[dict[str, Any]] | None = None


class Context(_Model):
    model_config = ConfigDict(frozen=True, extra="allow")
    tenant_id: str
    document_count: int
    chunk_count: int
    documents: list[ContextDocument]


# The served OpenAPI component each model mirrors (checked by the drift test).
SCHEMA_NAMES: dict[str, type[BaseModel]] = {
    "JobView": Job,
    "JobErrorInfo": JobError,
    "JobList": JobPage,
    "Accepted": Accepted,
    "Context": Context,
    "ContextDocument": ContextDocument,
}
