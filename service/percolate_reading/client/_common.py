"""What the sync and async clients share: settings, the retry policy, request building and
answer checking. Pure functions over httpx requests and responses (no I/O here)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Any

import httpx

from percolate_reading.client.models import Job
from percolate_reading.errors import ApiResponseError, ClientError

DEFAULT_URL = "http://127.0.0.1:8001"
URL_ENV = "PERCOLATE_READING_URL"
KEY_ENV = "PERCOLATE_READING_API_KEY"
RETRY_STATUSES = frozenset({429, 503})
# GETs and DELETEs are safe to repeat after any failure; a POST only when it surely did not land.
IDEMPOTENT = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
GATEWAY_ERRORS = frozenset({502, 504})
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)

JobRef = Job | str
Source = str | os.PathLike[str] | bytes | IO[bytes]


@dataclass(frozen=True)
class RetryPolicy:
    """Retries for 429/503 (and connection failures): `Retry-After` when the gateway sends it,
    else exponential backoff from `backoff_s`, with jitter; never longer than `max_wait_s`."""

    max_retries: int = 5
    backoff_s: float = 0.5
    max_wait_s: float = 30.0

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        after = retry_after(response) if response is not None else None
        if after is None:
            after = self.backoff_s * 2 ** (attempt - 1) * random.uniform(0.75, 1.25)  # noqa: S311
        return max(0.0, min(after, self.max_wait_s))


NO_RETRIES = RetryPolicy(max_retries=0)


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    from datetime import UTC, datetime

    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def should_retry(method: str, response: httpx.Response | None, exc: Exception | None) -> bool:
    if response is not None:
        if response.status_code in RETRY_STATUSES:
            return True
        return method in IDEMPOTENT and response.status_code in GATEWAY_ERRORS
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return True  # nothing reached the gateway
    return method in IDEMPOTENT and isinstance(exc, httpx.TransportError)


def resolve_url(url: str | None) -> str:
    return (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")


def resolve_key(api_key: str | None) -> str:
    key = api_key or os.environ.get(KEY_ENV)
    if not key:
        raise ClientError(f"no API key: pass api_key= or set {KEY_ENV}")
    return key


def error_from(response: httpx.Response) -> ApiResponseError:
    """The gateway's `{"error": {"code", "message"}}` as an exception (any body tolerated)."""
    code, message = "http_error", response.reason_phrase or "error"
    try:
        body = response.json()
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            code = str(err.get("code") or code)
            message = str(err.get("message") or message)
    except ValueError:
        if response.text:
            message = response.text[:300]
    return ApiResponseError(
        message, status=response.status_code, code=code, retry_after=retry_after(response)
    )


def job_id(job: JobRef) -> str:
    return job.job_id if isinstance(job, Job) else job


def form_fields(options: dict[str, Any]) -> dict[str, str]:
    """Keyword options -> multipart form fields. `ocr=False`/`True` is `ocr_enabled` (a text
    `ocr` is the OCR mode: off, auto, force); `pages` is a page (3), a range (`(2, 5)`, or
    `(4, None)` to the end) or its text ("2-5"); booleans are `true`/`false`; lists are
    comma-separated; None drops the field. Options the client does not know yet are passed
    through, so a newer gateway's options work."""
    fields: dict[str, str] = {}
    for name, value in options.items():
        if value is None:
            continue
        if name == "ocr" and isinstance(value, bool):
            name = "ocr_enabled"
        if name == "pages" and isinstance(value, list | tuple) and len(value) == 2:
            first, last = value
            fields[name] = f"{first}-{'' if last is None else last}"
        elif isinstance(value, bool):
            fields[name] = "true" if value else "false"
        elif isinstance(value, list | tuple | set | frozenset):
            fields[name] = ",".join(str(v) for v in value)
        else:
            fields[name] = str(getattr(value, "value", value))
    return fields


@dataclass(frozen=True)
class Upload:
    """One document to send: a path (opened anew for each try), bytes, or a binary file."""

    source: Source
    file_name: str

    @classmethod
    def of(cls, source: Source, file_name: str | None) -> Upload:
        if isinstance(source, bytes):
            return cls(source, file_name or "document")
        if isinstance(source, str | os.PathLike):
            path = Path(source)
            if not path.is_file():
                raise ClientError(f"not a file: {path}")
            return cls(path, file_name or path.name)
        name = file_name or Path(str(getattr(source, "name", "") or "document")).name
        return cls(source, name)

    @contextmanager
    def opened(self) -> Iterator[IO[bytes] | bytes]:
        """The body for one try: a path is opened (and closed) anew, a file rewound."""
        source = self.source
        if isinstance(source, bytes):
            yield source
        elif isinstance(source, str | os.PathLike):
            with Path(source).open("rb") as fh:
                yield fh
        else:
            if source.seekable():
                source.seek(0)
            yield source


def artifact_target(directory: Path, rel: str) -> Path:
    """Where artifact `rel` goes under `directory`; refuses names that would leave it."""
    parts = rel.split("/")
    if not rel or rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts):
        raise ClientError(f"refusing an artifact with an unsafe name: {rel!r}")
    return directory.joinpath(*parts)


def user_agent() -> str:
    from percolate_reading import __version__

    return f"percolate-reading-client/{__version__}"
