"""OpenAPI shapes of the gateway's success answers.

Declared on the routes with `responses={...: {"model": ...}}` only: the handlers build their
JSON themselves (no response validation on the hot path); schemathesis and a test that
validates real answers against the served schema keep the two in step.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from percolate_reading.contract.jobs import JobRecord, JobStatus


class Accepted(BaseModel):
    job_id: str
    status: JobStatus
    status_url: str


class JobView(JobRecord):
    status_url: str
    artifact_urls: dict[str, str]


class JobList(BaseModel):
    jobs: list[JobView]
    next_cursor: str | None


class ContextDocument(BaseModel):
    model_config = ConfigDict(extra="allow")
    job_id: str
    tenant_id: str
    file_name: str
    artifacts: dict[str, str]
    chunk_count: int
    chunks: list[dict[str, Any]] | None = None


class Context(BaseModel):
    model_config = ConfigDict(extra="allow")
    tenant_id: str
    document_count: int
    chunk_count: int
    documents: list[ContextDocument]
