"""`AsyncClient`: the asyncio client; the same methods as `Client`, awaited.

async with AsyncClient("http://127.0.0.1:8001", api_key="pr_...") as client:
    job = await client.wait(await client.parse("report.pdf"), timeout=300)
    await client.download(job, "out/report")
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import httpx

from percolate_reading.client._common import (
    DEFAULT_TIMEOUT,
    JobRef,
    RetryPolicy,
    Source,
    Upload,
    artifact_target,
    error_from,
    form_fields,
    job_id,
    resolve_key,
    resolve_url,
    should_retry,
    user_agent,
)
from percolate_reading.client.models import Context, Job, JobPage, JobStatus
from percolate_reading.errors import ClientError, GatewayUnreachableError, WaitTimeoutError

MAX_POLL_S = 2.0


class AsyncClient:
    """A gateway's API as methods. `url` and `api_key` default to PERCOLATE_READING_URL and
    PERCOLATE_READING_API_KEY. Errors are percolate_reading.errors.ClientError subclasses."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = resolve_url(url)
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {resolve_key(api_key)}", "User-Agent": user_agent()},
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- transport -----------------------------------------------------------------------------

    async def _send(
        self, method: str, path: str, *, upload: Upload | None = None, **kwargs: Any
    ) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            response: httpx.Response | None = None
            error: Exception | None = None
            with upload.opened() if upload is not None else nullcontext(None) as body:
                if upload is not None and body is not None:
                    kwargs["files"] = {"file": (upload.file_name, body)}
                try:
                    response = await self._http.request(method, path, **kwargs)
                except httpx.TransportError as exc:
                    error = exc
            if response is not None and response.status_code < 400:
                return response
            if attempt > self.retry.max_retries or not should_retry(method, response, error):
                if response is not None:
                    raise error_from(response)
                raise GatewayUnreachableError(f"cannot reach {self.url}: {error}") from error
            await asyncio.sleep(self.retry.delay(attempt, response))

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self._send(method, path, **kwargs)).json()

    # --- the API ---------------------------------------------------------------------------------

    async def parse(self, source: Source, *, file_name: str | None = None, **options: Any) -> Job:
        """Upload a document (a path, bytes or a binary file) and return its queued job.

        Options are the form fields of POST /v1/parse: `password`, `language`, `ocr` (bool: on
        or off; text: the OCR mode), `tier`, `callback_url`, the per-request options (`outputs`,
        `pages`, `chunk_strategy`, ...), and any the gateway adds."""
        upload = Upload.of(source, file_name)
        accepted = await self._json("POST", "/v1/parse", upload=upload, data=form_fields(options))
        return await self.job(accepted["job_id"])

    async def job(self, job: JobRef) -> Job:
        """The job's current state."""
        return Job.model_validate(await self._json("GET", f"/v1/jobs/{job_id(job)}"))

    async def wait(
        self,
        job: JobRef,
        timeout: float | None = None,  # noqa: ASYNC109 (the same signature as Client.wait)
        *,
        poll_s: float = 0.25,
    ) -> Job:
        """Poll until the job is succeeded, failed or cancelled; WaitTimeoutError after
        `timeout` seconds (None: no limit). A failed job is returned, not raised: see `.error`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        current = await self.job(job)
        while not current.finished:
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(f"job {current.job_id} still {current.status.value} after {timeout}s")
            await asyncio.sleep(poll_s)
            poll_s = min(poll_s * 1.5, MAX_POLL_S)
            current = await self.job(current)
        return current

    async def artifacts(self, job: JobRef) -> list[str]:
        """The job's artifact paths (`structured.md`, `tables/1.csv`, ...)."""
        return (await self._finished(job)).artifacts

    async def artifact(self, job: JobRef, path: str) -> bytes:
        """One artifact's bytes."""
        return (await self._send("GET", f"/v1/jobs/{job_id(job)}/artifacts/{path}")).content

    async def text(self, job: JobRef, path: str = "structured.md") -> str:
        """One artifact as text (the Markdown by default)."""
        return (await self.artifact(job, path)).decode("utf-8")

    async def download(self, job: JobRef, directory: str | Path) -> list[Path]:
        """Every artifact of the job into `directory` (made if needed); the files written."""
        record = await self._finished(job)
        target = Path(directory)
        written = []
        for rel in record.artifacts:
            dest = artifact_target(target, rel)
            data = await self.artifact(record, rel)
            await asyncio.to_thread(_write_atomically, dest, data)
            written.append(dest)
        return written

    async def jobs(
        self, status: JobStatus | str | None = None, *, page_size: int = 100
    ) -> AsyncIterator[Job]:
        """Every job of the tenant, newest first, fetched a page at a time."""
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if status is not None:
                params["status"] = JobStatus(status).value
            if cursor is not None:
                params["cursor"] = cursor
            page = JobPage.model_validate(await self._json("GET", "/v1/jobs", params=params))
            for job in page.jobs:
                yield job
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def cancel(self, job: JobRef) -> Job:
        """Cancel a queued job (ApiResponseError 409 `not_cancellable` once it runs)."""
        return Job.model_validate(await self._json("DELETE", f"/v1/jobs/{job_id(job)}"))

    async def context(self, *, include_chunks: bool = False) -> Context:
        """The tenant's parsed corpus (with every chunk when `include_chunks`)."""
        params = {"include_chunks": "true" if include_chunks else "false"}
        return Context.model_validate(await self._json("GET", "/v1/context", params=params))

    async def _finished(self, job: JobRef) -> Job:
        record = job if isinstance(job, Job) and job.finished else await self.job(job)
        if not record.finished:
            raise ClientError(f"job {record.job_id} is {record.status.value}: wait for it first")
        return record


def _write_atomically(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    partial.write_bytes(data)
    partial.replace(dest)
