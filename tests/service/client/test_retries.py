"""Retries against a real HTTP server that answers from a script: 503/429 are retried after
Retry-After (seconds or an HTTP date), other errors are not; a POST is repeated only when it
surely did not land. Plus the pure helpers (form fields, Retry-After parsing)."""

from __future__ import annotations

import json
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from percolate_reading.client import (
    ApiResponseError,
    AsyncClient,
    Client,
    GatewayUnreachableError,
    RetryPolicy,
)
from percolate_reading.client._common import form_fields, retry_after
from tests.servers import free_port

JOB = {
    "job_id": "0192f0c1a2b3c4d5e6f708192a3b4c5d",
    "tenant_id": "acme",
    "file_name": "a.pdf",
    "file_type": "pdf",
    "status": "queued",
    "created_at": "2026-11-30T17:02:11Z",
    "updated_at": "2026-11-30T17:02:11Z",
    "status_url": "http://x/v1/jobs/0192f0c1a2b3c4d5e6f708192a3b4c5d",
    "artifact_urls": {},
}


class Scripted:
    """Answers the n-th request with script[n] (status, headers, body); records requests."""

    def __init__(self, script: list[tuple[int, dict[str, str], Any]]) -> None:
        self.script = list(script)
        self.seen: list[tuple[str, str, float, bytes]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                scripted.seen.append((self.command, self.path, time.monotonic(), body))
                status, headers, payload = scripted.script.pop(0) if scripted.script else (500, {}, {})
                data = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Scripted:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def busy(status: int, after: str) -> tuple[int, dict[str, str], Any]:
    return status, {"Retry-After": after}, {"error": {"code": "unavailable", "message": "busy"}}


FAST = RetryPolicy(max_retries=3, backoff_s=0.01, max_wait_s=5)


def test_503_and_429_are_retried_after_retry_after() -> None:
    accepted = {"job_id": JOB["job_id"], "status": "queued", "status_url": JOB["status_url"]}
    script = [
        busy(503, "1"),
        busy(429, formatdate(time.time() + 4, usegmt=True)),
        (202, {}, accepted),
        (200, {}, JOB),
    ]
    with Scripted(script) as server, Client(server.url, api_key="k", retry=FAST) as client:
        job = client.parse(b"%PDF-1.7 body", file_name="a.pdf")
    assert job.job_id == JOB["job_id"]
    posts = [s for s in server.seen if s[0] == "POST"]
    assert len(posts) == 3
    assert posts[1][2] - posts[0][2] >= 0.9  # waited Retry-After: 1
    assert posts[2][2] - posts[1][2] >= 1.0  # an HTTP date ~3 s ahead by then (whole seconds)
    assert all(b"%PDF-1.7 body" in p[3] for p in posts), "every try re-sends the whole file"


def test_retries_give_up_with_the_last_error() -> None:
    with (
        Scripted([busy(503, "0")] * 4) as server,
        Client(server.url, api_key="k", retry=FAST) as client,
        pytest.raises(ApiResponseError) as err,
    ):
        client.job("abc")
    assert (err.value.status, err.value.code, err.value.retry_after) == (503, "unavailable", 0.0)
    assert len(server.seen) == 4  # the first try and three retries


def test_client_errors_are_not_retried() -> None:
    not_found = (404, {}, {"error": {"code": "job_not_found", "message": "no job 'abc'"}})
    with (
        Scripted([not_found, (200, {}, JOB)]) as server,
        Client(server.url, api_key="k", retry=FAST) as client,
        pytest.raises(ApiResponseError) as err,
    ):
        client.job("abc")
    assert err.value.code == "job_not_found"
    assert str(err.value) == "404 job_not_found: no job 'abc'"
    assert len(server.seen) == 1


def test_a_post_is_not_repeated_after_a_gateway_error() -> None:
    # A 502 may come after the gateway accepted the upload: a repeat could make a duplicate.
    with (
        Scripted([(502, {}, {}), (202, {}, {})]) as server,
        Client(server.url, api_key="k", retry=FAST) as c,
        pytest.raises(ApiResponseError),
    ):
        c.parse(b"%PDF-1.7")
    assert len(server.seen) == 1


def test_unreachable_gateway() -> None:
    with (
        Client(f"http://127.0.0.1:{free_port()}", api_key="k", retry=FAST) as client,
        pytest.raises(GatewayUnreachableError),
    ):
        client.job("abc")


def test_async_client_retries_too() -> None:
    import asyncio

    async def get() -> str:
        async with AsyncClient(server.url, api_key="k", retry=FAST) as client:
            return (await client.job("abc")).job_id

    with Scripted([busy(503, "0"), (200, {}, JOB)]) as server:
        assert asyncio.run(get()) == JOB["job_id"]
    assert len(server.seen) == 2


def test_form_fields() -> None:
    assert form_fields(
        {"ocr": False, "language": "de", "password": None, "outputs": ["markdown", "chunks"], "tier": "gpu"}
    ) == {"ocr_enabled": "false", "language": "de", "outputs": "markdown,chunks", "tier": "gpu"}
    assert form_fields({"ocr": "force", "pages": "2-5"}) == {"ocr": "force", "pages": "2-5"}
    assert form_fields({"pages": (2, 5)}) == {"pages": "2-5"}
    assert form_fields({"pages": [4, None]}) == {"pages": "4-"}
    assert form_fields({"pages": 3, "chunk_size": 800}) == {"pages": "3", "chunk_size": "800"}


def test_retry_after_parsing() -> None:
    def response(value: str | None) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": value} if value is not None else {})

    assert retry_after(response("7")) == 7.0
    assert retry_after(response(None)) is None
    assert retry_after(response("soon")) is None
    past = formatdate(time.time() - 60, usegmt=True)
    assert retry_after(response(past)) == 0.0
    policy = RetryPolicy(backoff_s=1, max_wait_s=3)
    assert policy.delay(1, response("100")) == 3.0  # capped
    assert 0.75 <= policy.delay(1, None) <= 1.25
    assert 1.5 <= policy.delay(2, response(None)) <= 2.5
