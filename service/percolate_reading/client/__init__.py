"""The Python client of the percolate-reading API (sync `Client`, asyncio `AsyncClient`).

    from percolate_reading.client import Client

    with Client("http://127.0.0.1:8001", api_key="pr_...") as client:
        job = client.wait(client.parse("report.pdf", language="en"), timeout=300)
        print(client.text(job))              # the Markdown
        client.download(job, "out/report")   # every artifact

Depends only on httpx, pydantic and `percolate_reading.contract`/`errors`: no server code.
Errors raised are `percolate_reading.errors.ClientError` subclasses.
"""

from percolate_reading.client._common import DEFAULT_URL, KEY_ENV, URL_ENV, RetryPolicy
from percolate_reading.client.aio import AsyncClient
from percolate_reading.client.models import (
    Accepted,
    Context,
    ContextDocument,
    Job,
    JobError,
    JobPage,
    JobStatus,
    Tier,
)
from percolate_reading.client.sync import Client
from percolate_reading.client.webhooks import verify_webhook
from percolate_reading.errors import (
    ApiResponseError,
    ClientError,
    GatewayUnreachableError,
    WaitTimeoutError,
    WebhookVerificationError,
)

__all__ = [
    "DEFAULT_URL",
    "KEY_ENV",
    "URL_ENV",
    "Accepted",
    "ApiResponseError",
    "AsyncClient",
    "Client",
    "ClientError",
    "Context",
    "ContextDocument",
    "GatewayUnreachableError",
    "Job",
    "JobError",
    "JobPage",
    "JobStatus",
    "RetryPolicy",
    "Tier",
    "WaitTimeoutError",
    "WebhookVerificationError",
    "verify_webhook",
]
