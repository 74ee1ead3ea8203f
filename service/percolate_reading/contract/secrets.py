"""Where a job's document password waits for its worker.

Never in the job message: JOBS keeps messages up to 7 days and JOBS_DLQ copies them for 30.
The gateway stages the password as an object beside the upload (same bucket and prefix, so the
same lifetime, access rules and leftover sweep) and sets only `JobOptions.password_staged` in the message;
the worker reads it for the parse and deletes it once the job has a final status.
"""

from __future__ import annotations


def staged_password_key(tenant_id: str, job_id: str) -> str:
    """`<tenant>/<job_id>/.staged/password`: upload names have no '/', so no upload is here."""
    return f"{tenant_id}/{job_id}/.staged/password"
