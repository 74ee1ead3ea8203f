"""The worker against real nats-server and SeaweedFS: jobs in, artifacts/status/webhooks out."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from percolate_reading.config import Settings
from percolate_reading.contract.jobs import JobMessage, JobRecord, JobStatus
from percolate_reading.contract.subjects import DLQ_STREAM_NAME, STREAM_NAME, consumer_name, job_subject
from percolate_reading.contract.topology import ConsumerLimits, TopologyLimits
from percolate_reading.contract.webhook_delivery import WEBHOOK_SENDER_CONSUMER, WEBHOOKS_STREAM_NAME
from percolate_reading.infra.jobs.kv_store import KvJobStore
from percolate_reading.infra.queue.jetstream import (
    DLQ_CODE_HEADER,
    DLQ_REASON_HEADER,
    DLQ_SUBJECT_HEADER,
    connect,
    publish_job,
)
from percolate_reading.infra.queue.topology import ensure_pool_consumers, ensure_topology
from percolate_reading.infra.storage import open_object_store
from percolate_reading.infra.storage.base import ObjectStore
from percolate_reading.infra.storage.s3 import S3ObjectStore
from percolate_reading.infra.webhooks import verify
from percolate_reading.worker.main import Worker, start_worker
from tests.harness.documents import make_pdf
from tests.harness.settings import settings_for
from tests.harness.webhooks import WebhookReceiver
from tests.harness.worker_process import spawn_worker, worker_env
from tests.servers import NatsServer, SeaweedS3, free_port

pytestmark = pytest.mark.integration

SECRET = "whsec_c2VjcmV0LWZvci13b3JrZXItdGVzdHM="
FILES = "percolate-files"
ARTIFACTS = "percolate-artifacts"


def worker_settings(nats: NatsServer, s3: SeaweedS3, tmp_path: Path, **kw: Any) -> Settings:
    base: dict[str, Any] = {
        "nats_ack_wait": 3.0,
        "nak_backoff_s": "0.2",
        "worker_fetch_timeout_s": 0.5,
        "worker_concurrency": 2,
        "drain_timeout_s": 10.0,
        "webhook_default_secret": SECRET,
        "webhook_backoff_s": 0.05,
        "webhook_max_attempts": 3,
        "parse_timeout_s": 60.0,
    }
    base.update(kw)
    return settings_for(nats, tmp_path, s3, **base)


@dataclass
class Env:
    settings: Settings
    nc: NATS
    store: ObjectStore
    jobs: KvJobStore
    tenant: str

    @property
    def js(self) -> Any:
        return self.nc.jetstream()

    async def submit(
        self,
        data: bytes,
        name: str = "report.pdf",
        *,
        subject: str | None = None,
        tenant: str | None = None,
        callback_url: str | None = None,
        s3_uri: str | None = None,
    ) -> str:
        tenant = tenant or self.tenant
        job_id = uuid.uuid4().hex
        key = f"{tenant}/{job_id}/{name}"
        await self.store.put_bytes(FILES, key, data)
        record = JobRecord(
            job_id=job_id,
            tenant_id=tenant,
            file_name=name,
            file_type="pdf",
            size_bytes=len(data),
            callback_url=callback_url,
        )
        await self.jobs.create(record)
        msg = JobMessage(
            job_id=job_id,
            tenant_id=tenant,
            file_name=name,
            file_type="pdf",
            s3_uri=s3_uri or f"s3://{FILES}/{key}",
            size_bytes=len(data),
            callback_url=callback_url,
            created_at=record.created_at,
        )
        await publish_job(self.js, msg, subject or self.settings.nats_queue_subject)
        return job_id

    async def wait_status(self, job_id: str, *statuses: JobStatus, wait_s: float = 60.0) -> JobRecord:
        async with asyncio.timeout(wait_s):
            while True:
                record = await self.jobs.get(job_id)
                if record is not None and record.status in statuses:
                    return record
                await asyncio.sleep(0.05)

    async def configure(self, **update: Any) -> Settings:
        """These settings with `update`, and the pool's consumer brought to them (ack_wait,
        max_deliver): for a worker started with them."""
        settings = self.settings.model_copy(update=update)
        limits = ConsumerLimits.from_settings(settings)
        await ensure_pool_consumers(self.js, settings.nats_queue_subject, settings.nats_queue_group, limits)
        return settings

    async def start(self, **overrides: Any) -> Worker:
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        return await start_worker(settings, nc=self.nc, store=self.store, jobs=self.jobs)


@pytest.fixture
async def env(fresh_nats_server: NatsServer, seaweed_s3: SeaweedS3, tmp_path: Path) -> AsyncIterator[Env]:
    settings = worker_settings(fresh_nats_server, seaweed_s3, tmp_path)
    nc = await connect(settings)
    await ensure_topology(nc.jetstream(), TopologyLimits.from_settings(settings), update=False)
    store = await open_object_store(settings)
    jobs = await KvJobStore.open(nc.jetstream(), settings)
    tenant = "t-" + uuid.uuid4().hex[:10]
    yield Env(settings, nc, store, jobs, tenant)
    await store.close()
    await nc.close()


async def consumer_idle(env: Env, durable: str, wait_s: float = 30.0) -> None:
    """Until every message of the consumer is settled (acked or terminated)."""
    async with asyncio.timeout(wait_s):
        while True:
            info = await env.js.consumer_info(STREAM_NAME, durable)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return
            await asyncio.sleep(0.05)


async def webhooks_settled(env: Env, wait_s: float = 30.0) -> None:
    """Until every queued webhook is settled (delivered, refused or given up)."""
    async with asyncio.timeout(wait_s):
        while True:
            info = await env.js.consumer_info(WEBHOOKS_STREAM_NAME, WEBHOOK_SENDER_CONSUMER)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return
            await asyncio.sleep(0.05)


async def webhooks_queued(env: Env) -> int:
    """How many webhook messages were ever stored (first attempts and retries)."""
    return int((await env.js.stream_info(WEBHOOKS_STREAM_NAME)).state.last_seq)


async def test_pdf_job_end_to_end(env: Env) -> None:
    receiver = WebhookReceiver()
    await receiver.start()
    worker = await env.start()
    try:
        job_id = await env.submit(
            make_pdf(["Quarterly Report", "Revenue grew by 12 percent in the north region."]),
            callback_url=receiver.url,
        )
        record = await env.wait_status(job_id, JobStatus.SUCCEEDED, JobStatus.FAILED)
        assert record.status is JobStatus.SUCCEEDED, record.error
        assert record.attempts == 1
        assert {"structured.md", "metadata.json", "chunks.jsonl"} <= set(record.artifacts)
        md = (await env.store.get_bytes(ARTIFACTS, f"{env.tenant}/{job_id}/structured.md")).decode()
        assert "Revenue grew by 12 percent in the north region." in md
        chunks = (await env.store.get_bytes(ARTIFACTS, f"{env.tenant}/{job_id}/chunks.jsonl")).decode()
        assert "north region" in chunks
        assert sorted(await env.store.list_keys(ARTIFACTS, f"{env.tenant}/{job_id}/")) == sorted(
            f"{env.tenant}/{job_id}/{n}" for n in record.artifacts
        )

        got = (await receiver.wait_for(1))[0]
        assert verify(SECRET, got.headers, got.body)
        assert got.headers["webhook-id"] == record.webhook_id
        event = json.loads(got.body)
        assert event["type"] == "job.succeeded"
        assert event["data"]["job_id"] == job_id
        assert event["data"]["status"] == "succeeded"

        manifest = json.loads(await env.store.get_bytes("percolate-context", f"{env.tenant}/manifest.json"))
        assert [d["job_id"] for d in manifest["documents"]] == [job_id]
        assert manifest["documents"][0]["chunk_count"] >= 1
        assert manifest["documents"][0]["artifacts"]["structured.md"].endswith(f"/{job_id}/structured.md")
        await consumer_idle(env, env.settings.nats_queue_group)
        await webhooks_settled(env)
        exported = worker.metrics.render()
        assert b'nats_messages_processed_total{outcome="succeeded"} 1.0' in exported
        assert b'job_duration_seconds_count{outcome="succeeded",tier="small"} 1.0' in exported
        assert b'webhook_deliveries_total{outcome="delivered"} 1.0' in exported
        assert b'webhook_delivery_duration_seconds_count{outcome="delivered"} 1.0' in exported
    finally:
        await worker.drain()
        await receiver.stop()


async def test_corrupt_file_fails_and_worker_keeps_serving(env: Env) -> None:
    worker = await env.start()
    try:
        bad = await env.submit(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage garbage\n", "broken.pdf")
        record = await env.wait_status(bad, JobStatus.FAILED, JobStatus.SUCCEEDED)
        assert record.status is JobStatus.FAILED
        assert record.error is not None
        assert record.error.permanent
        assert record.error.code in ("corrupt", "empty")
        assert record.error.message
        good = await env.submit(make_pdf(["Still serving after a bad file."]))
        ok = await env.wait_status(good, JobStatus.SUCCEEDED, JobStatus.FAILED)
        assert ok.status is JobStatus.SUCCEEDED
        # The bad job was terminated, not left for redelivery.
        await consumer_idle(env, env.settings.nats_queue_group)
        again = await env.jobs.get(bad)
        assert again is not None
        assert again.attempts == 1
        exported = worker.metrics.render()
        assert b'job_duration_seconds_count{outcome="failed",tier="small"} 1.0' in exported
        assert b'job_duration_seconds_count{outcome="succeeded",tier="small"} 1.0' in exported
    finally:
        await worker.drain()


async def broken_s3_store(env: Env) -> S3ObjectStore:
    bad = env.settings.model_copy(update={"s3_endpoint": f"http://127.0.0.1:{free_port()}"})
    return await S3ObjectStore.open(bad)


async def test_transient_error_naks_then_succeeds(env: Env) -> None:
    # First worker: its S3 is unreachable, so the download fails transiently. Its nak delay is
    # long enough that it is drained before the job comes back: the retry must reach the
    # second worker, not use up the deliveries on the broken one.
    bad_store = await broken_s3_store(env)
    slow_retry = env.settings.model_copy(update={"nak_backoff_s": "5", "dependency_outage_budget_s": 0.0})
    first = await start_worker(slow_retry, nc=env.nc, store=bad_store, jobs=env.jobs)
    try:
        job_id = await env.submit(make_pdf(["Second time lucky."]))
        async with asyncio.timeout(60):
            while True:
                record = await env.jobs.get(job_id)
                assert record is not None
                if record.status is JobStatus.QUEUED and record.error is not None:
                    break
                await asyncio.sleep(0.05)
        assert record.error is not None
        assert record.error.code == "storage_unavailable"
        assert not record.error.permanent
    finally:
        await first.drain()
        await bad_store.close()
    second = await env.start()
    try:
        done = await env.wait_status(job_id, JobStatus.SUCCEEDED, JobStatus.FAILED)
        assert done.status is JobStatus.SUCCEEDED
        assert done.attempts >= 2
        assert done.error is None
    finally:
        await second.drain()


async def test_sandbox_kill_is_counted_by_reason(env: Env) -> None:
    # A wall-clock limit no parse can meet: the child is killed; one delivery, then given up.
    settings = await env.configure(parse_timeout_s=0.001, nats_max_deliver=1)
    worker = await start_worker(settings, nc=env.nc, jobs=env.jobs)
    try:
        job_id = await env.submit(make_pdf(["Killed by the clock."]))
        record = await env.wait_status(job_id, JobStatus.FAILED, JobStatus.SUCCEEDED)
        assert record.error is not None
        assert record.error.code == "timeout"
        await consumer_idle(env, settings.nats_queue_group)
        exported = worker.metrics.render()
        assert b'sandbox_kills_total{reason="wall_timeout"} 1.0' in exported
        assert b'parse_errors_total{code="timeout",provider="pdf"} 1.0' in exported
    finally:
        await worker.drain()


async def test_max_deliver_exhausted_goes_to_dead_letter(env: Env) -> None:
    # No outage hold: the store never comes back, the dead-letter path is under test.
    settings = await env.configure(nats_max_deliver=2, dependency_outage_budget_s=0.0)
    bad_store = await broken_s3_store(env)
    worker = await start_worker(settings, nc=env.nc, store=bad_store, jobs=env.jobs)
    try:
        job_id = await env.submit(make_pdf(["Never parsed."]))
        record = await env.wait_status(job_id, JobStatus.FAILED, JobStatus.SUCCEEDED)
        assert record.status is JobStatus.FAILED
        assert record.attempts == 2
        assert record.error is not None
        assert "gave up after 2 deliveries" in record.error.message
        # The status is recorded first, the dead-letter copy right after it.
        async with asyncio.timeout(30):
            while (dlq := await env.js.stream_info(DLQ_STREAM_NAME)).state.messages == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        assert dlq.state.messages == 1
        copy = await env.js.get_msg(DLQ_STREAM_NAME, dlq.state.last_seq)
        assert copy.subject == "dlq.parse.small"
        assert copy.headers is not None
        assert copy.headers[DLQ_CODE_HEADER] == "storage_unavailable"
        assert "S3 unreachable" in copy.headers[DLQ_REASON_HEADER]
        assert copy.headers[DLQ_SUBJECT_HEADER] == "jobs.parse.small"
        assert JobMessage.model_validate_json(copy.data).job_id == job_id
        await consumer_idle(env, settings.nats_queue_group)
        exported = worker.metrics.render()
        assert b'jobs_dead_lettered_total{code="storage_unavailable",tier="small"} 1.0' in exported
    finally:
        await worker.drain()
        await bad_store.close()


class ChunksWriteFails:
    """Fault injection at the store boundary: the real S3 store, except that writing
    `chunks.jsonl` fails as an unreachable S3 would (the other artifacts are written)."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> None:
        if key.endswith("/chunks.jsonl"):
            from percolate_reading.errors import StorageError

            raise StorageError("injected: S3 unreachable for chunks.jsonl")
        await self._store.put_bytes(bucket, key, data, content_type)


async def test_failed_job_leaves_no_partial_artifacts(env: Env) -> None:
    """Finding: a failed job kept part of its artifacts in S3 while its record listed none."""
    settings = await env.configure(nats_max_deliver=2, nak_backoff_s="0.2", dependency_outage_budget_s=0.0)
    flaky = ChunksWriteFails(env.store)
    worker = await start_worker(settings, nc=env.nc, store=flaky, jobs=env.jobs)  # type: ignore[arg-type]
    try:
        job_id = await env.submit(make_pdf(["Half written."]))
        record = await env.wait_status(job_id, JobStatus.FAILED, JobStatus.SUCCEEDED)
        assert record.status is JobStatus.FAILED
        assert record.artifacts == []
        # The clean-up follows the failure record and the message's settlement: allow it a moment.
        left: list[str] = []
        for _ in range(100):
            left = await env.store.list_keys(ARTIFACTS, f"{env.tenant}/{job_id}/")
            if not left:
                break
            await asyncio.sleep(0.1)
        assert left == []
    finally:
        await worker.drain()


async def test_tenant_mismatch_is_rejected(env: Env) -> None:
    owner = env.tenant
    subject = job_subject("small", owner)
    worker = await env.start(nats_queue_subject=subject, nats_queue_group=consumer_name("small", owner))
    try:
        # Another tenant's job on this tenant's dedicated subject.
        intruder = "x-" + uuid.uuid4().hex[:8]
        wrong_subject = await env.submit(make_pdf(["not yours"]), subject=subject, tenant=intruder)
        # This tenant's job whose source points into another tenant's prefix.
        victim_key = f"{intruder}/{uuid.uuid4().hex}/secret.pdf"
        await env.store.put_bytes(FILES, victim_key, make_pdf(["the other tenant's secret"]))
        wrong_prefix = await env.submit(make_pdf(["x"]), subject=subject, s3_uri=f"s3://{FILES}/{victim_key}")
        for job_id in (wrong_subject, wrong_prefix):
            record = await env.wait_status(job_id, JobStatus.FAILED, JobStatus.SUCCEEDED)
            assert record.status is JobStatus.FAILED
            assert record.error is not None
            assert record.error.code == "rejected"
        # Nothing of the other tenant's document was parsed into this tenant's artifacts.
        assert await env.store.list_keys(ARTIFACTS, f"{owner}/{wrong_prefix}/") == []
        good = await env.submit(make_pdf(["legitimate"]), subject=subject)
        assert (
            await env.wait_status(good, JobStatus.SUCCEEDED, JobStatus.FAILED)
        ).status is JobStatus.SUCCEEDED
        await consumer_idle(env, consumer_name("small", owner))
    finally:
        await worker.drain()


async def test_cancelled_job_is_skipped(env: Env) -> None:
    job_id = await env.submit(make_pdf(["cancel me"]))
    await env.jobs.transition(job_id, JobStatus.CANCELLED)
    worker = await env.start()
    try:
        good = await env.submit(make_pdf(["after the cancelled one"]))
        await env.wait_status(good, JobStatus.SUCCEEDED)
        await consumer_idle(env, env.settings.nats_queue_group)
        record = await env.jobs.get(job_id)
        assert record is not None
        assert record.status is JobStatus.CANCELLED
        assert await env.store.list_keys(ARTIFACTS, f"{env.tenant}/{job_id}/") == []
    finally:
        await worker.drain()


@pytest.mark.slow
async def test_sigterm_drains_and_returns_in_flight_job(
    env: Env, fresh_nats_server: NatsServer, seaweed_s3: SeaweedS3, tmp_path: Path
) -> None:
    s = env.settings
    # Long ack_wait: a redelivery within this test can only come from the drain's nak.
    child_env = worker_env(
        fresh_nats_server, seaweed_s3, tmp_path / "child", nats_ack_wait="120", drain_timeout_s="0"
    )
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        proc = await spawn_worker(child_env, log)
    try:
        # A long document, so the parse is still running when SIGTERM arrives.
        job_id = await env.submit(make_pdf(["A long report line with some words in it."] * 40, pages=1500))
        await env.wait_status(job_id, JobStatus.RUNNING)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            rc = await proc.wait()
        assert rc == 0, log_path.read_text()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    record = await env.jobs.get(job_id)
    assert record is not None
    assert record.status is JobStatus.QUEUED  # handed back, not lost and not failed
    # Returned with no delay: another worker takes it at once (ack_wait is 120 s).
    worker = await env.start(nats_ack_wait=120.0)
    try:
        done = await env.wait_status(job_id, JobStatus.SUCCEEDED, JobStatus.FAILED, wait_s=90)
        assert done.status is JobStatus.SUCCEEDED
        assert done.attempts == 2
    finally:
        await worker.drain()
    assert s.nats_queue_subject == "jobs.parse.small"


async def test_in_progress_acks_prevent_redelivery(env: Env) -> None:
    # ack_wait far shorter than the parse: only in-progress acks keep the job with this worker.
    settings = await env.configure(nats_ack_wait=0.6, worker_concurrency=1)
    worker = await start_worker(settings, nc=env.nc, store=env.store, jobs=env.jobs)
    try:
        job_id = await env.submit(make_pdf(["slow one"] * 40, pages=1500))
        done = await env.wait_status(job_id, JobStatus.SUCCEEDED, JobStatus.FAILED, wait_s=120)
        assert done.status is JobStatus.SUCCEEDED
        assert done.attempts == 1
        assert done.timings["parse_s"] > settings.nats_ack_wait  # the premise of the test
        info = await env.js.consumer_info(STREAM_NAME, settings.nats_queue_group)
        assert info.num_redelivered == 0
    finally:
        await worker.drain()


async def test_health_endpoints(env: Env) -> None:
    import httpx

    from percolate_reading.worker.health import HealthServer

    worker = await env.start()
    health = HealthServer(worker.metrics, worker.ready, "127.0.0.1", 0)
    await health.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{health.port}") as client:
            assert (await client.get("/health")).status_code == 200
            ready = await client.get("/ready")
            assert ready.status_code == 200
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200
            assert "jobs_in_flight" in metrics.text
            assert "nats_messages_processed_total" in metrics.text
            assert (await client.get("/nope")).status_code == 404
            await worker.drain()
            # Drained: the pull loop is gone, so the worker is no longer ready.
            assert (await client.get("/ready")).status_code == 503
    finally:
        await health.close()
        await worker.drain()


async def test_late_duplicate_keeps_one_result_and_one_webhook_id(env: Env) -> None:
    from percolate_reading.infra.queue.jetstream import publish_raw

    receiver = WebhookReceiver()
    await receiver.start()
    worker = await env.start()
    try:
        job_id = await env.submit(make_pdf(["delivered twice"]), callback_url=receiver.url)
        first = await env.wait_status(job_id, JobStatus.SUCCEEDED)
        await receiver.wait_for(1)
        keys = sorted(await env.store.list_keys(ARTIFACTS, f"{env.tenant}/{job_id}/"))
        # The same job again, past de-duplication (as after a crash before the ack).
        record = await env.jobs.get(job_id)
        assert record is not None
        msg = JobMessage(
            job_id=job_id,
            tenant_id=env.tenant,
            file_name="report.pdf",
            file_type="pdf",
            s3_uri=f"s3://{FILES}/{env.tenant}/{job_id}/report.pdf",
            callback_url=receiver.url,
        )
        await publish_raw(env.js, env.settings.nats_queue_subject, msg.model_dump_json().encode())
        await consumer_idle(env, env.settings.nats_queue_group)
        await webhooks_settled(env)
        # The duplicate queued its webhook again under the same id: the stream dropped the
        # repeat (a delivery that died before queueing it would have queued it now).
        assert await webhooks_queued(env) == 1
        assert [g.headers["webhook-id"] for g in receiver.received] == [first.webhook_id]
        after = await env.jobs.get(job_id)
        assert after is not None
        assert after.status is JobStatus.SUCCEEDED
        assert after.attempts == 1
        assert after.finished_at == first.finished_at
        assert sorted(await env.store.list_keys(ARTIFACTS, f"{env.tenant}/{job_id}/")) == keys
    finally:
        await worker.drain()
        await receiver.stop()


async def test_worker_survives_nats_restart(env: Env, fresh_nats_server: NatsServer) -> None:
    worker = await env.start()
    try:
        before = await env.submit(make_pdf(["before the outage"]))
        await env.wait_status(before, JobStatus.SUCCEEDED)
        fresh_nats_server.kill()
        await asyncio.sleep(1.5)
        fresh_nats_server.start()
        async with asyncio.timeout(30):
            while True:
                if env.nc.is_connected:
                    break
                await asyncio.sleep(0.1)
        after = await env.submit(make_pdf(["after the outage"]))
        done = await env.wait_status(after, JobStatus.SUCCEEDED, JobStatus.FAILED)
        assert done.status is JobStatus.SUCCEEDED
        assert worker.ready() == (True, "ready")
    finally:
        await worker.drain()


async def test_webhook_retries_keep_one_id_and_give_up_without_touching_the_job(env: Env) -> None:
    """Off the job's path: a receiver that fails twice gets a third try with the same id
    (each retry a queued copy with its attempt number); one that always fails is given up
    after the attempts, recorded as failed, and its job stays succeeded."""
    flaky = WebhookReceiver(statuses=[500, 503])
    broken = WebhookReceiver(statuses=[500, 500, 500])
    await flaky.start()
    await broken.start()
    worker = await env.start(webhook_max_attempts=3, webhook_backoff_s=0.05)
    try:
        ok_job = await env.submit(make_pdf(["retried webhook"]), callback_url=flaky.url)
        lost_job = await env.submit(make_pdf(["lost webhook"]), callback_url=broken.url)
        for job_id in (ok_job, lost_job):
            record = await env.wait_status(job_id, JobStatus.SUCCEEDED, JobStatus.FAILED)
            assert record.status is JobStatus.SUCCEEDED
        got = await flaky.wait_for(3)
        assert len({g.headers["webhook-id"] for g in got}) == 1
        assert all(verify(SECRET, g.headers, g.body) for g in got)
        await broken.wait_for(3)
        await webhooks_settled(env)
        assert len(broken.received) == 3  # no fourth try
        assert await webhooks_queued(env) == 6  # two first tries and two retries each
        exported = worker.metrics.render()
        assert b'webhook_deliveries_total{outcome="delivered"} 1.0' in exported
        assert b'webhook_deliveries_total{outcome="failed"} 1.0' in exported
        lost = await env.jobs.get(lost_job)
        assert lost is not None
        assert lost.status is JobStatus.SUCCEEDED
    finally:
        await worker.drain()
        await flaky.stop()
        await broken.stop()
