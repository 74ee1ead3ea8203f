"""Workers as real processes, killed, frozen and terminated mid-job: every job completes
exactly once in its results (one artifact set, one webhook id) and its status never regresses.

Every wait is on state (a job status, a webhook, a process exit, a stream count) under a
deadline, never a fixed sleep: under load a step takes longer, and the test only waits longer."""

from __future__ import annotations

import asyncio
import functools
import signal

import pytest

from percolate_reading.contract.jobs import JobRecord, JobStatus
from percolate_reading.contract.subjects import DLQ_STREAM_NAME, STRANDED_STREAM_NAME, STREAM_NAME
from percolate_reading.infra.queue.jetstream import DLQ_CODE_HEADER, DLQ_REASON_HEADER
from percolate_reading.infra.webhooks import verify
from percolate_reading.worker.main import start_worker
from tests.harness.documents import make_pdf
from tests.harness.webhooks import WebhookReceiver
from tests.reliability.conftest import StatusWatch, WorkerProcess, WorkerProcesses
from tests.reliability.test_dead_letter import stream_messages, until_messages
from tests.service.worker.test_worker import ARTIFACTS, SECRET, Env, consumer_idle, webhooks_settled

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Long enough that the parse is still running when the fault is injected (a fault follows
# the running status within ~0.1 s; this parses for seconds on a quiet machine), short
# enough that parsing it again after the fault stays well inside the parse timeout under load.
LONG_PAGES = 500
# Under load a parse can take many times as long as on a quiet machine.
PARSE_WAIT_S = 180.0


@functools.cache
def long_pdf() -> bytes:
    """Made once per session: copying pages is slow enough to matter under load."""
    return make_pdf(["A long report line with some words in it."] * 40, pages=LONG_PAGES)


async def artifact_keys(env: Env, job_id: str) -> list[str]:
    return sorted(await env.store.list_keys(ARTIFACTS, f"{env.tenant}/{job_id}/"))


def assert_one_result(record: JobRecord, keys: list[str], env: Env) -> None:
    assert record.status is JobStatus.SUCCEEDED, record.error
    assert keys == sorted(f"{env.tenant}/{record.job_id}/{n}" for n in record.artifacts)
    assert {"structured.md", "metadata.json", "chunks.jsonl"} <= set(record.artifacts)


async def start_long_job(env: Env, worker: WorkerProcess, callback_url: str | None = None) -> str:
    """A long job, once the worker subprocess is running it."""
    job_id = await env.submit(long_pdf(), callback_url=callback_url)
    try:
        await env.wait_status(job_id, JobStatus.RUNNING, wait_s=PARSE_WAIT_S)
    except TimeoutError:
        pytest.fail(f"the worker never started the job:\n{worker.log()}")
    return job_id


async def assert_still_running(env: Env, job_id: str) -> None:
    """The premise of a fault test: the fault hit the job mid-parse."""
    record = await env.jobs.get(job_id)
    assert record is not None
    assert record.status is JobStatus.RUNNING, "the job finished before the fault: make LONG_PAGES larger"


async def test_sigkill_mid_parse_is_redelivered_and_completes_once(
    env: Env, worker_procs: WorkerProcesses
) -> None:
    first = await worker_procs.start()
    async with WebhookReceiver() as receiver:
        job_id = await start_long_job(env, first, receiver.url)
        async with StatusWatch(env, job_id) as watch:
            first.signal(signal.SIGKILL)
            assert await first.wait() == -signal.SIGKILL
            await assert_still_running(env, job_id)
            # A second worker gets the job once ack_wait (3 s) has passed.
            second = await env.start(parse_timeout_s=PARSE_WAIT_S)
            try:
                done = await env.wait_status(
                    job_id, JobStatus.SUCCEEDED, JobStatus.FAILED, wait_s=PARSE_WAIT_S
                )
                got = await receiver.wait_for(1)
                await consumer_idle(env, env.settings.nats_queue_group)
            finally:
                await second.drain()
    # The killed delivery, then the one that finished (a later one only if the healthy worker
    # itself stalled past ack_wait: still exactly one result).
    assert done.attempts >= 2
    assert_one_result(done, await artifact_keys(env, job_id), env)
    assert {g.headers["webhook-id"] for g in got} == {done.webhook_id}
    assert all(verify(SECRET, g.headers, g.body) for g in got)
    assert watch.seen[-1] is JobStatus.SUCCEEDED
    assert watch.seen.count(JobStatus.SUCCEEDED) == 1


async def test_sigstopped_worker_resumed_after_redelivery_does_not_regress(
    env: Env, worker_procs: WorkerProcesses
) -> None:
    frozen = await worker_procs.start()
    async with WebhookReceiver() as receiver:
        job_id = await start_long_job(env, frozen, receiver.url)
        async with StatusWatch(env, job_id) as watch:
            frozen.signal(signal.SIGSTOP)  # no heartbeats: JetStream redelivers after ack_wait
            await assert_still_running(env, job_id)
            other = await env.start(parse_timeout_s=PARSE_WAIT_S)
            try:
                done = await env.wait_status(
                    job_id, JobStatus.SUCCEEDED, JobStatus.FAILED, wait_s=PARSE_WAIT_S
                )
                await receiver.wait_for(1)
                assert done.attempts >= 2  # a redelivery finished it, not the frozen worker
                keys = await artifact_keys(env, job_id)
                assert_one_result(done, keys, env)
                # The first worker wakes up and finishes its stale delivery.
                frozen.signal(signal.SIGCONT)
                # It finds the job finished and queues the same webhook again (its delivery may
                # have been the one whose webhook never went out): the stream drops the repeat
                # by its id; nothing else changes.
                async with asyncio.timeout(PARSE_WAIT_S):
                    while "duplicate" not in frozen.log():  # noqa: ASYNC110 (a log file)
                        await asyncio.sleep(0.1)
                await consumer_idle(env, env.settings.nats_queue_group)
                await webhooks_settled(env)
                got = list(receiver.received)
                assert len(got) == 1
            finally:
                await other.drain()
    after = await env.jobs.get(job_id)
    assert after is not None
    assert after.status is JobStatus.SUCCEEDED
    assert after.finished_at == done.finished_at
    assert after.artifacts == done.artifacts
    assert await artifact_keys(env, job_id) == keys
    assert {g.headers["webhook-id"] for g in got} == {done.webhook_id}
    # Never back from succeeded to running or queued.
    assert watch.seen[watch.seen.index(JobStatus.SUCCEEDED) :] == [JobStatus.SUCCEEDED]
    assert "duplicate" in frozen.log()
    frozen.signal(signal.SIGTERM)
    assert await frozen.wait() == 0, frozen.log()


async def test_sigterm_lets_in_flight_job_finish_and_leaves_the_rest_queued(
    env: Env, worker_procs: WorkerProcesses
) -> None:
    # Scale-in with a generous drain timeout: the running job finishes, nothing else is taken.
    busy = await worker_procs.start(
        PERCOLATE_READING_DRAIN_TIMEOUT_S=str(int(PARSE_WAIT_S)), PERCOLATE_READING_NATS_ACK_WAIT="60"
    )
    running = await start_long_job(env, busy)
    # Only a job already parsing is waited for; one still downloading is handed back at once.
    await busy.wait_parsing()
    waiting = await env.submit(make_pdf(["queued behind the busy worker"]))
    await assert_still_running(env, running)
    busy.signal(signal.SIGTERM)
    assert await busy.wait(wait_s=PARSE_WAIT_S + 30) == 0, busy.log()
    finished = await env.jobs.get(running)
    assert finished is not None
    assert finished.status is JobStatus.SUCCEEDED, busy.log()
    assert finished.attempts == 1  # ack_wait (60 s) is far longer than any stall
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
    env: Env, worker_procs: WorkerProcesses
) -> None:
    """JetStream never delivers a message again after max_deliver; a worker killed during
    that delivery must not leave the job `running` forever and the message stuck in JOBS."""
    # With one delivery, any stall past ack_wait fails a job, the survivor's good one too: 8 s
    # keeps a loaded machine's stalls inside it.
    settings = await env.configure(nats_max_deliver=1, nats_ack_wait=8.0)
    doomed = await worker_procs.start(
        PERCOLATE_READING_NATS_MAX_DELIVER="1", PERCOLATE_READING_NATS_ACK_WAIT="8"
    )
    job_id = await start_long_job(env, doomed)
    doomed.signal(signal.SIGKILL)
    await doomed.wait()
    await assert_still_running(env, job_id)
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
    settings = await env.configure(nats_max_deliver=1, nats_ack_wait=1.0)
    job_id = await env.submit(make_pdf(["a job whose only delivery is lost"]))
    # A client that takes the only delivery and never answers (no worker is running at all).
    taker = await env.js.pull_subscribe_bind(settings.nats_queue_group, stream=STREAM_NAME)
    assert len(await taker.fetch(1, timeout=5)) == 1
    # Pull until the server, past ack_wait, notices the spent delivery and reports it; the
    # message itself is never delivered again.
    async with asyncio.timeout(30):
        while await stream_messages(env, STRANDED_STREAM_NAME) == 0:
            with pytest.raises(asyncio.TimeoutError):
                await taker.fetch(1, timeout=0.5)
    await taker.unsubscribe()
    assert await stream_messages(env, STRANDED_STREAM_NAME) == 1
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
