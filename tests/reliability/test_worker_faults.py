"""Workers as real processes, killed, frozen and terminated mid-job: every job completes
exactly once in its results (one artifact set, one webhook id) and its status never regresses."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from percolate_reading.contract.jobs import JobRecord, JobStatus
from percolate_reading.infra.webhooks import verify
from percolate_reading.worker.main import start_worker
from tests.harness.documents import make_pdf
from tests.harness.webhooks import WebhookReceiver
from tests.reliability.conftest import WorkerProcess, watch_statuses
from tests.reliability.test_dead_letter import until_messages
from tests.servers import NatsServer, SeaweedS3
from tests.service.worker.test_worker import ARTIFACTS, SECRET, Env, consumer_idle, webhooks_settled

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Long enough that the parse is still running when the fault is injected.
LONG_PAGES = 3000


def long_pdf() -> bytes:
    return make_pdf(["A long report line with some words in it."] * 40, pages=LONG_PAGES)


async def artifact_keys(env: Env, job_id: str) -> list[str]:
    return sorted(await env.store.list_keys(ARTIFACTS, f"{env.tenant}/{job_id}/"))


def assert_one_result(record: JobRecord, keys: list[str], env: Env) -> None:
    assert record.status is JobStatus.SUCCEEDED, record.error
    assert keys == sorted(f"{env.tenant}/{record.job_id}/{n}" for n in record.artifacts)
    assert {"structured.md", "metadata.json", "chunks.jsonl"} <= set(record.artifacts)


async def test_sigkill_mid_parse_is_redelivered_and_completes_once(
    env: Env,
    fresh_nats_server: NatsServer,
    seaweed_s3: SeaweedS3,
    tmp_path: Path,
    worker_procs: list[WorkerProcess],
) -> None:
    receiver = WebhookReceiver()
    await receiver.start()
    first = WorkerProcess(fresh_nats_server, seaweed_s3, tmp_path / "w1")
    worker_procs.append(first)
    await first.start()
    seen: list[JobStatus] = []
    stop = asyncio.Event()
    try:
        job_id = await env.submit(long_pdf(), callback_url=receiver.url)
        watcher = asyncio.create_task(watch_statuses(env, job_id, seen, stop))
        await env.wait_status(job_id, JobStatus.RUNNING, wait_s=90)
        first.signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL
        # A second worker gets the job once ack_wait (3 s) has passed.
        second = await env.start()
        try:
            done = await env.wait_status(job_id, JobStatus.SUCCEEDED, JobStatus.FAILED, wait_s=120)
            got = await receiver.wait_for(1)
            await consumer_idle(env, env.settings.nats_queue_group)
        finally:
            await second.drain()
        stop.set()
        await watcher
        assert done.attempts == 2
        assert_one_result(done, await artifact_keys(env, job_id), env)
        assert {g.headers["webhook-id"] for g in got} == {done.webhook_id}
        assert all(verify(SECRET, g.headers, g.body) for g in got)
        assert seen[-1] is JobStatus.SUCCEEDED
        assert seen.count(JobStatus.SUCCEEDED) == 1
    finally:
        stop.set()
        await receiver.stop()


async def test_sigstopped_worker_resumed_after_redelivery_does_not_regress(
    env: Env,
    fresh_nats_server: NatsServer,
    seaweed_s3: SeaweedS3,
    tmp_path: Path,
    worker_procs: list[WorkerProcess],
) -> None:
    receiver = WebhookReceiver()
    await receiver.start()
    frozen = WorkerProcess(fresh_nats_server, seaweed_s3, tmp_path / "w1")
    worker_procs.append(frozen)
    await frozen.start()
    seen: list[JobStatus] = []
    stop = asyncio.Event()
    try:
        job_id = await env.submit(long_pdf(), callback_url=receiver.url)
        watcher = asyncio.create_task(watch_statuses(env, job_id, seen, stop))
        await env.wait_status(job_id, JobStatus.RUNNING, wait_s=90)
        frozen.signal(signal.SIGSTOP)  # no heartbeats: JetStream redelivers after ack_wait
        other = await env.start()
        try:
            done = await env.wait_status(job_id, JobStatus.SUCCEEDED, JobStatus.FAILED, wait_s=120)
            await receiver.wait_for(1)
            assert done.attempts == 2  # the redelivery finished it, not the frozen worker
            keys = await artifact_keys(env, job_id)
            assert_one_result(done, keys, env)
            # The first worker wakes up and finishes its stale delivery.
            frozen.signal(signal.SIGCONT)
            # It finds the job finished and queues the same webhook again (its delivery may
            # have been the one whose webhook never went out): the stream drops the repeat
            # by its id; nothing else changes.
            async with asyncio.timeout(120):
                while "duplicate" not in frozen.log():  # noqa: ASYNC110 (a log file)
                    await asyncio.sleep(0.1)
            await consumer_idle(env, env.settings.nats_queue_group)
            await webhooks_settled(env)
            got = list(receiver.received)
            assert len(got) == 1
        finally:
            await other.drain()
        stop.set()
        await watcher
        after = await env.jobs.get(job_id)
        assert after is not None
        assert after.status is JobStatus.SUCCEEDED
        assert after.finished_at == done.finished_at
        assert after.artifacts == done.artifacts
        assert await artifact_keys(env, job_id) == keys
        assert {g.headers["webhook-id"] for g in got} == {done.webhook_id}
        # Never back from succeeded to running or queued.
        assert seen[seen.index(JobStatus.SUCCEEDED) :] == [JobStatus.SUCCEEDED]
        assert "duplicate" in frozen.log()
        frozen.signal(signal.SIGTERM)
        assert await frozen.wait() == 0, frozen.log()
    finally:
        stop.set()
        await receiver.stop()


async def test_sigterm_lets_in_flight_job_finish_and_leaves_the_rest_queued(
    env: Env,
    fresh_nats_server: NatsServer,
    seaweed_s3: SeaweedS3,
    tmp_path: Path,
    worker_procs: list[WorkerProcess],
) -> None:
    # Scale-in with a generous drain timeout: the running job finishes, nothing else is taken.
    busy = WorkerProcess(
        fresh_nats_server,
        seaweed_s3,
        tmp_path / "w1",
        extra={"PERCOLATE_READING_DRAIN_TIMEOUT_S": "120", "PERCOLATE_READING_NATS_ACK_WAIT": "60"},
    )
    worker_procs.append(busy)
    await busy.start()
    running = await env.submit(long_pdf())
    await env.wait_status(running, JobStatus.RUNNING, wait_s=90)
    waiting = await env.submit(make_pdf(["queued behind the busy worker"]))
    busy.signal(signal.SIGTERM)
    assert await busy.wait(wait_s=150) == 0, busy.log()
    finished = await env.jobs.get(running)
    assert finished is not None
    assert finished.status is JobStatus.SUCCEEDED, busy.log()
    assert finished.attempts == 1
    left = await env.jobs.get(waiting)
    assert left is not None
    assert left.status is JobStatus.QUEUED
    # Not lost: the next worker takes it.
    worker = await env.start()
    try:
        done = await env.wait_status(waiting, JobStatus.SUCCEEDED, JobStatus.FAILED)
        assert done.status is JobStatus.SUCCEEDED
        await consumer_idle(env, env.settings.nats_queue_group)
    finally:
        await worker.drain()


async def test_worker_killed_on_the_last_delivery_is_failed_and_dead_lettered(
    env: Env,
    fresh_nats_server: NatsServer,
    seaweed_s3: SeaweedS3,
    tmp_path: Path,
    worker_procs: list[WorkerProcess],
) -> None:
    """JetStream never delivers a message again after max_deliver; a worker killed during
    that delivery must not leave the job `running` forever and the message stuck in JOBS."""
    from percolate_reading.contract.subjects import DLQ_STREAM_NAME, STREAM_NAME
    from percolate_reading.contract.topology import ConsumerLimits
    from percolate_reading.infra.queue.jetstream import DLQ_CODE_HEADER, DLQ_REASON_HEADER
    from percolate_reading.infra.queue.topology import ensure_pool_consumers

    settings = env.settings.model_copy(update={"nats_max_deliver": 1})
    await ensure_pool_consumers(
        env.js, settings.nats_queue_subject, settings.nats_queue_group, ConsumerLimits.from_settings(settings)
    )
    doomed = WorkerProcess(
        fresh_nats_server, seaweed_s3, tmp_path / "w1", extra={"PERCOLATE_READING_NATS_MAX_DELIVER": "1"}
    )
    worker_procs.append(doomed)
    await doomed.start()
    job_id = await env.submit(long_pdf())
    await env.wait_status(job_id, JobStatus.RUNNING, wait_s=90)
    doomed.signal(signal.SIGKILL)
    await doomed.wait()
    survivor = await start_worker(settings, nc=env.nc, store=env.store, jobs=env.jobs)
    try:
        failed = await env.wait_status(job_id, JobStatus.FAILED, JobStatus.SUCCEEDED, wait_s=60)
        assert failed.status is JobStatus.FAILED
        assert failed.error is not None
        assert failed.error.code == "worker_lost"
        assert "gave up after 1 deliveries" in failed.error.message
        await until_messages(env, STREAM_NAME, 0)
        dlq = await env.js.stream_info(DLQ_STREAM_NAME)
        assert dlq.state.messages == 1
        copy = await env.js.get_msg(DLQ_STREAM_NAME, dlq.state.last_seq)
        assert copy.headers is not None
        assert copy.headers[DLQ_CODE_HEADER] == "worker_lost"
        assert "without a result" in copy.headers[DLQ_REASON_HEADER]
        # The queue still works.
        good = await env.submit(make_pdf(["after the stranded one"]))
        after = await env.wait_status(good, JobStatus.SUCCEEDED, JobStatus.FAILED)
        assert after.status is JobStatus.SUCCEEDED
    finally:
        await survivor.drain()


async def test_stranded_report_waits_for_a_worker_that_starts_later(env: Env) -> None:
    """The server reports a message that used its last delivery once, when someone pulls.
    If no worker of the pool is running at that moment (the consumer was pulled by another
    client, or the pool scaled to zero right after), the report must still be there for the
    next worker: JOBS_STRANDED keeps it until a worker has settled the job."""
    from percolate_reading.contract.subjects import DLQ_STREAM_NAME, STRANDED_STREAM_NAME, STREAM_NAME
    from percolate_reading.contract.topology import ConsumerLimits
    from percolate_reading.infra.queue.topology import ensure_pool_consumers

    settings = env.settings.model_copy(update={"nats_max_deliver": 1, "nats_ack_wait": 1.0})
    await ensure_pool_consumers(
        env.js, settings.nats_queue_subject, settings.nats_queue_group, ConsumerLimits.from_settings(settings)
    )
    job_id = await env.submit(make_pdf(["a job whose only delivery is lost"]))
    # A client that takes the only delivery and never answers (no worker is running at all).
    taker = await env.js.pull_subscribe_bind(settings.nats_queue_group, stream=STREAM_NAME)
    assert len(await taker.fetch(1, timeout=5)) == 1
    await asyncio.sleep(1.5)  # past ack_wait
    with pytest.raises(asyncio.TimeoutError):
        await taker.fetch(1, timeout=1)  # nothing deliverable; the server notices and reports
    await taker.unsubscribe()
    await until_messages(env, STRANDED_STREAM_NAME, 1)
    assert (await env.jobs.get(job_id)).status is JobStatus.QUEUED  # type: ignore[union-attr]

    worker = await start_worker(settings, nc=env.nc, store=env.store, jobs=env.jobs)
    try:
        failed = await env.wait_status(job_id, JobStatus.FAILED, JobStatus.SUCCEEDED, wait_s=60)
        assert failed.status is JobStatus.FAILED
        assert failed.error is not None
        assert failed.error.code == "worker_lost"
        await until_messages(env, STREAM_NAME, 0)
        await until_messages(env, STRANDED_STREAM_NAME, 0)  # acked once settled
        dlq = await env.js.stream_info(DLQ_STREAM_NAME)
        assert dlq.state.messages == 1
    finally:
        await worker.drain()
