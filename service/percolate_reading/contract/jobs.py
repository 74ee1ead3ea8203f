"""The job as it crosses processes: the message on JetStream (gateway -> worker) and the
record in the job store (worker -> gateway, status readers)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from percolate_reading.contract.subjects import Tier


def utcnow() -> datetime:
    return datetime.now(UTC)


class StorageStrategy(StrEnum):
    SHARED = "shared"  # prefix `<tenant>/` inside the shared buckets
    TENANT = "tenant"  # the tenant's own buckets


class JobOptions(BaseModel):
    """What the submitter asked of this parse; None: the worker's own setting."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    password: str | None = None  # of an encrypted PDF or XLSX
    language: str | None = None  # OCR/speech language hint
    ocr_enabled: bool | None = None  # False turns OCR off for this job (never on if the worker's is off)
    # The password waits beside the upload (contract/secrets.py), not here: set by the gateway.
    password_staged: bool = False
    # The per-request options (outputs, pages, ocr, ocr_languages, table_mode, chunk_*), as
    # the canonical text fields of parse/request.py's RequestOptions: checked by the gateway,
    # parsed again by the worker.
    request: dict[str, str] = Field(default_factory=dict)


# Fields that version-1 messages from older gateways carry and nothing reads (a pool's
# resources are its Deployment's; JetStream has no priorities). Dropped on read, so a message
# queued before an upgrade is not refused as malformed.
_RETIRED_FIELDS = ("priority", "resources")


class JobPart(BaseModel):
    """A page range of a job that a worker split (a large scan): the message's `job_id` is
    the job's own, so status, artifacts and webhook stay the job's; parts are told apart by
    their range."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(ge=0)  # 0-based, in page order
    count: int = Field(ge=1)  # parts in the plan
    first_page: int = Field(ge=1)  # 1-based, inclusive
    last_page: int = Field(ge=1)

    @property
    def name(self) -> str:
        """`00001-00010`: the range as the job record and the part's object name spell it."""
        return part_name(self.first_page, self.last_page)


def part_name(first_page: int, last_page: int) -> str:
    return f"{first_page:05d}-{last_page:05d}"


def message_id(job_id: str, part: JobPart | None = None) -> str:
    """The message's Nats-Msg-Id: the job id, and a part's range (a re-published plan
    is de-duplicated part by part)."""
    return job_id if part is None else f"{job_id}.part-{part.name}"


class JobMessage(BaseModel):
    """Versioned job message. Published with `Nats-Msg-Id = message_id(...)` (the job id, or
    the job id and the part's range) for de-duplication."""

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
    tier: Tier = Tier.SMALL
    options: JobOptions = Field(default_factory=JobOptions)
    created_at: datetime = Field(default_factory=utcnow)
    # Set on the sub-jobs a worker publishes for the page ranges of a split job.
    part: JobPart | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_retired_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(f in data for f in _RETIRED_FIELDS):
            return {k: v for k, v in data.items() if k not in _RETIRED_FIELDS}
        return data


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
    # A job split into page ranges (a large scan): the planned parts (`part_name`s, in page
    # order) and those stored so far; the worker that completes the last one merges them.
    parts: list[str] = Field(default_factory=list)
    parts_done: list[str] = Field(default_factory=list)

    @classmethod
    def from_message(cls, msg: JobMessage) -> JobRecord:
        """The queued record of a job: what the gateway writes next to the message, and what
        a worker writes when the gateway's write never landed."""
        return cls(
            job_id=msg.job_id,
            tenant_id=msg.tenant_id,
            file_name=msg.file_name,
            file_type=msg.file_type,
            size_bytes=msg.size_bytes,
            tier=msg.tier,
            callback_url=msg.callback_url,
            created_at=msg.created_at,
        )
