"""Full lifecycle with a real worker: upload -> 202 -> queued -> running -> succeeded, artifacts
in S3 with the expected text, a signed webhook to a local receiver; a corrupt file fails with
a reason and the worker keeps serving."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from percolate_reading.config import Settings
from tests.harness.documents import SCANNED_NOTE_PNG, SPEECH_WAV, make_pdf, make_xlsx
from tests.harness.webhooks import Received, WebhookReceiver, standard_webhook_signature
from tests.service.gateway.conftest import WEBHOOK_SECRET, Tenants
from tests.service.gateway.harness import LiveGateway

pytestmark = [pytest.mark.integration, pytest.mark.audio, pytest.mark.ocr]

TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture
async def acme(gateway: LiveGateway, tenants: Tenants) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {tenants.acme_key}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=60) as c:
        yield c


async def wait_terminal(c: httpx.AsyncClient, job_id: str, limit_s: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    seen: list[str] = []
    while time.monotonic() < deadline:
        job: dict[str, Any] = (await c.get(f"/v1/jobs/{job_id}")).json()
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        if job["status"] in TERMINAL:
            job["_seen"] = seen
            return job
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {job_id} still {seen} after {limit_s}s")


async def artifact_texts(c: httpx.AsyncClient, job: dict[str, Any]) -> dict[str, str]:
    texts = {}
    for path in job["artifacts"]:
        r = await c.get(f"/v1/jobs/{job['job_id']}/artifacts/{path}")
        assert r.status_code == 200, (path, r.text)
        texts[path] = r.content.decode("utf-8", "replace")
    return texts


def verify_signature(call: Received) -> None:
    msg_id = call.headers["webhook-id"]
    timestamp = call.headers["webhook-timestamp"]
    expected = standard_webhook_signature(WEBHOOK_SECRET, msg_id, timestamp, call.body)
    offered = [s.split(",", 1)[1] for s in call.headers["webhook-signature"].split() if s.startswith("v1,")]
    assert any(hmac.compare_digest(expected, s) for s in offered), call.headers


async def test_four_types_succeed_with_artifacts_and_signed_webhooks(
    acme: httpx.AsyncClient, worker: Any, receiver: WebhookReceiver
) -> None:
    uploads = {
        "report.pdf": (make_pdf("The platform parses quarterly invoices"), "quarterly invoices"),
        "budget.xlsx": (make_xlsx([["Item", "Amount"], ["Widget", 42], ["Gadget", 17]]), "Widget"),
        "speech.wav": (SPEECH_WAV.read_bytes(), "lazy dog"),
        "note.png": (SCANNED_NOTE_PNG.read_bytes(), "Meeting notes"),
    }
    job_ids: dict[str, str] = {}
    for name, (data, _) in uploads.items():
        r = await acme.post("/v1/parse", files={"file": (name, data)}, data={"callback_url": receiver.url})
        assert r.status_code == 202, r.text
        job_ids[name] = r.json()["job_id"]

    for name, (_, expected) in uploads.items():
        job = await wait_terminal(acme, job_ids[name])
        assert job["status"] == "succeeded", job
        assert job["attempts"] >= 1
        assert job["started_at"]
        assert job["finished_at"]
        assert job["artifacts"], job
        texts = await artifact_texts(acme, job)
        assert any(expected.lower() in t.lower() for t in texts.values()), (name, list(texts))

    context = (await acme.get("/v1/context", params={"include_chunks": "true"})).json()
    docs = {d["job_id"]: d for d in context["documents"]}
    assert set(docs) == set(job_ids.values())
    pdf_chunks = " ".join(str(c) for c in docs[job_ids["report.pdf"]]["chunks"])
    assert "quarterly invoices" in pdf_chunks

    def all_jobs_reported(calls: list[Received]) -> bool:
        return len({c.json()["data"]["job_id"] for c in calls}) >= len(uploads)

    calls = await receiver.wait_until(all_jobs_reported)
    by_job = {c.json()["data"]["job_id"]: c for c in calls}
    assert set(by_job) >= set(job_ids.values())
    for call in by_job.values():
        verify_signature(call)
        assert call.json()["type"] == "job.succeeded"
        assert call.json()["data"]["status"] == "succeeded"


async def test_corrupt_file_fails_with_reason_and_worker_keeps_serving(
    acme: httpx.AsyncClient, worker: Any
) -> None:
    broken = b"%PDF-1.7\n" + b"\x00garbage that is not a PDF body\n" * 50
    r = await acme.post("/v1/parse", files={"file": ("broken.pdf", broken)})
    assert r.status_code == 202
    job = await wait_terminal(acme, r.json()["job_id"])
    assert job["status"] == "failed"
    assert job["error"]["permanent"] is True
    assert job["error"]["code"] in ("corrupt", "empty")
    assert job["error"]["message"]

    r = await acme.post("/v1/parse", files={"file": ("ok.pdf", make_pdf("still serving"))})
    job = await wait_terminal(acme, r.json()["job_id"])
    assert job["status"] == "succeeded"
    texts = await artifact_texts(acme, job)
    assert any("still serving" in t for t in texts.values())


async def test_encrypted_pdf_with_its_password_and_the_staged_password_removed(
    worker: Any, acme: httpx.AsyncClient, tenants: Tenants, settings: Settings
) -> None:
    from percolate_reading.infra.storage import open_object_store
    from tests.service.providers.pdf_fixtures import encrypted_pdf

    store = await open_object_store(settings)
    try:
        jobs = {}
        for password in ("right-pass-9", "wrong-pass-9"):
            r = await acme.post(
                "/v1/parse",
                files={"file": ("locked.pdf", encrypted_pdf("right-pass-9"))},
                data={"password": password},
            )
            assert r.status_code == 202, r.text
            jobs[password] = r.json()["job_id"]
        good = await wait_terminal(acme, jobs["right-pass-9"])
        assert good["status"] == "succeeded", good
        bad = await wait_terminal(acme, jobs["wrong-pass-9"])
        assert bad["status"] == "failed"
        assert bad["error"]["code"] == "encrypted"
        for job_id in jobs.values():
            keys = await store.list_keys("percolate-files", f"{tenants.acme}/{job_id}/")
            assert not any(".staged" in k for k in keys), keys
    finally:
        await store.close()
