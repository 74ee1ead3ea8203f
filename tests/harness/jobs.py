"""Job messages for the queue tests: a valid message whose file need not exist."""

from __future__ import annotations

from percolate_reading.contract.jobs import JobMessage


def job_message(job_id: str, tenant: str = "acme") -> JobMessage:
    return JobMessage(
        job_id=job_id,
        tenant_id=tenant,
        file_name="a.pdf",
        file_type="pdf",
        s3_uri=f"s3://percolate-files/{tenant}/{job_id}/a.pdf",
    )
