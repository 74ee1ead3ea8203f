"""Large scans split into page ranges across workers, against real nats-server and SeaweedFS:
the merged artifacts are the single parse's, with one final status and one webhook; a
redelivered range changes nothing; a range that fails fails the job."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from percolate_reading.contract.jobs import JobMessage, JobPart, JobStatus
from percolate_reading.contract.topology import TopologyLimits
from percolate_reading.errors import CorruptDocumentError
from percolate_reading.infra.jobs.kv_store import KvJobStore
from percolate_reading.infra.queue.jetstream import connect, publish_raw
from percolate_reading.infra.queue.topology import ensure_topology
from percolate_reading.infra.storage import open_object_store
from percolate_reading.infra.storage.base import ObjectStore
from percolate_reading.parse.parsing import parse_and_render
from percolate_reading.worker.main import start_worker
from percolate_reading.worker.pipeline import job_request, parse_options
from tests.harness.documents import scanned_pages_pdf
from tests.harness.webhooks import WebhookReceiver
from tests.servers import NatsServer, SeaweedS3
from tests.service.worker.test_worker import (
    ARTIFACTS,
    FILES,
    Env,
    consumer_idle,
    webhooks_queued,
    webhooks_settled,
    worker_settings,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PAGES = 2  # one range each: OCR of two postcard-sized pages keeps the test short


@pytest.fixture
async def env(fresh_nats_server: NatsServer, seaweed_s3: SeaweedS3, tmp_path: Path) -> AsyncIterator[Env]:
    settings = worker_settings(
        fresh_nats_server,
        seaweed_s3,
        tmp_path,
        worker_concurrency=1,
        worker_prefetch=0,
        split_part_pages=1,
        split_min_pages=2,
        split_min_bytes=0,
        parse_timeout_s=120.0,
        nats_ack_wait=10.0,
    )
    nc = await connect(settings)
    await ensure_topology(nc.jetstream(), TopologyLimits.from_settings(settings), update=False)
    store = await open_object_store(settings)
    jobs = await KvJobStore.open(nc.jetstream(), settings)
    yield Env(settings, nc, store, jobs, "t-split")
    await store.close()
    await nc.close()


def single_parse(env: Env, data: bytes, job_id: str, tmp_path: Path) -> dict[str, bytes]:
    """What one worker stores for the document (no split), rendered in this process."""
    path = tmp_path / "scan.pdf"
    path.write_bytes(data)
    msg = JobMessage(
        job_id=job_id, tenant_id=env.tenant, file_name="scan.pdf", file_type="pdf", s3_uri="s3://x/y"
    )
    request = job_request(msg.options)
    artifacts, _ = parse_and_render(
        path,
        parse_options(env.settings, msg.options),
        None,
        request.chunk_options(env.settings),
        "scan.pdf",
        env.settings,
        outputs=request.outputs,
        job_id=job_id,
    )
    return artifacts


def stable(raw: bytes) -> dict[str, Any]:
    """metadata.json without what differs between any two runs (timings, peak memory)."""
    meta: dict[str, Any] = json.loads(raw)
    meta.pop("timings")
    meta["document"].pop("peak_rss_mb")
    return meta


async def job_keys(env: Env, job_id: str) -> list[str]:
    return sorted(await env.store.list_keys(ARTIFACTS, f"{env.tenant}/{job_id}/"))


async def test_two_workers_merge_a_split_scan_into_the_single_parse(env: Env, tmp_path: Path) -> None:
    receiver = WebhookReceiver()
    await receiver.start()
    workers = [await env.start(), await env.start()]
    data = scanned_pages_pdf(PAGES, 60, small=True)
    try:
        job_id = await env.submit(data, "scan.pdf", callback_url=receiver.url)
        record = await env.wait_status(job_id, JobStatus.SUCCEEDED, JobStatus.FAILED, wait_s=180)
        assert record.status is JobStatus.SUCCEEDED, record.error
        assert record.parts == ["00001-00001", "00002-00002"]
        assert record.parts_done == record.parts
        assert record.timings["parts"] == 2.0

        expected = await asyncio.to_thread(single_parse, env, data, job_id, tmp_path)
        assert sorted(record.artifacts) == sorted(expected)
        stored = {
            n: await env.store.get_bytes(ARTIFACTS, f"{env.tenant}/{job_id}/{n}") for n in record.artifacts
        }
        for name, body in expected.items():
            if name != "metadata.json":
                assert stored[name] == body, name
        assert stable(stored["metadata.json"]) == stable(expected["metadata.json"])
        md = stored["structured.md"].decode()
        assert md.index("Chapter 1") < md.index("Chapter 2")  # page order
        # Only the artifacts stay: the parts are gone.
        assert await job_keys(env, job_id) == sorted(f"{env.tenant}/{job_id}/{n}" for n in record.artifacts)

        await consumer_idle(env, env.settings.nats_queue_group)
        await webhooks_settled(env)
        assert await webhooks_queued(env) == 1
        assert len(receiver.received) == 1
        assert json.loads(receiver.received[0].body)["type"] == "job.succeeded"
        outcomes = b"".join(w.metrics.render() for w in workers)
        assert b'nats_messages_processed_total{outcome="split"} 1.0' in outcomes
        assert b'nats_messages_processed_total{outcome="part"} 1.0' in outcomes
        assert b'nats_messages_processed_total{outcome="succeeded"} 1.0' in outcomes

        # A range delivered again (past de-duplication, as after a lost ack) changes nothing,
        # except that a range a dying merge left behind goes.
        keys = await job_keys(env, job_id)
        await env.store.put_bytes(ARTIFACTS, f"{env.tenant}/{job_id}/parts/00002-00002.json", b"{}")
        part = JobPart(index=0, count=2, first_page=1, last_page=1)
        again = JobMessage(
            job_id=job_id,
            tenant_id=env.tenant,
            file_name="scan.pdf",
            file_type="pdf",
            s3_uri=f"s3://{FILES}/{env.tenant}/{job_id}/scan.pdf",
            callback_url=receiver.url,
            part=part,
        )
        await publish_raw(env.js, env.settings.nats_queue_subject, again.model_dump_json().encode())
        await consumer_idle(env, env.settings.nats_queue_group)
        await webhooks_settled(env)
        after = await env.jobs.get(job_id)
        assert after is not None
        assert after.status is JobStatus.SUCCEEDED
        assert after.finished_at == record.finished_at
        assert await job_keys(env, job_id) == keys
        assert await webhooks_queued(env) == 1
        assert len(receiver.received) == 1
    finally:
        for worker in workers:
            await worker.drain()
        await receiver.stop()


class RangeFails:
    """Fault injection at the store boundary: storing page range 2 fails as a page that
    cannot be parsed would (a permanent error); everything else is the real S3 store."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> None:
        if key.endswith("/parts/00002-00002.json"):
            raise CorruptDocumentError("injected: page 2 cannot be parsed")
        await self._store.put_bytes(bucket, key, data, content_type)


async def test_a_failed_range_fails_the_job_once(env: Env) -> None:
    receiver = WebhookReceiver()
    await receiver.start()
    store = RangeFails(env.store)
    workers = [
        await start_worker(env.settings, nc=env.nc, store=store, jobs=env.jobs)  # type: ignore[arg-type]
        for _ in range(2)
    ]
    try:
        job_id = await env.submit(
            scanned_pages_pdf(PAGES, 60, small=True), "scan.pdf", callback_url=receiver.url
        )
        record = await env.wait_status(job_id, JobStatus.FAILED, JobStatus.SUCCEEDED, wait_s=180)
        assert record.status is JobStatus.FAILED
        assert record.error is not None
        assert record.error.code == "corrupt"
        assert "page 2 cannot be parsed" in record.error.message
        assert record.artifacts == []
        await consumer_idle(env, env.settings.nats_queue_group)
        await webhooks_settled(env)
        # Nothing stays behind (the other range, finished before or after, is dropped too).
        left: list[str] = []
        for _ in range(100):
            left = await job_keys(env, job_id)
            if not left:
                break
            await asyncio.sleep(0.1)
        assert left == []
        assert await webhooks_queued(env) == 1
        assert [json.loads(r.body)["type"] for r in receiver.received] == ["job.failed"]
        final = await env.jobs.get(job_id)
        assert final is not None
        assert final.status is JobStatus.FAILED
        assert final.finished_at == record.finished_at
    finally:
        for worker in workers:
            await worker.drain()
        await receiver.stop()
