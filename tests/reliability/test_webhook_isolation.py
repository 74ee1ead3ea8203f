"""One tenant's hanging webhook receiver does not slow another tenant's jobs.

A real worker (real nats-server and SeaweedFS) runs the same mix twice: tenant A's jobs, then
B's while A's webhooks are still being sent. The first time A's receiver answers; the second
time it accepts the connection and never answers (each attempt runs into the webhook timeout).
B's median job latency (accepted to finished) may not grow by more than 20%, and B's
webhooks still arrive; A's are recorded as failed after their attempts, and no A job waited
for them.
"""

from __future__ import annotations

import asyncio
import statistics
import uuid
from collections.abc import AsyncIterator

import pytest

from percolate_reading.contract.jobs import JobStatus
from tests.harness.documents import make_pdf
from tests.harness.webhooks import WebhookReceiver
from tests.service.worker.test_worker import Env, webhooks_settled

# A latency comparison: `make test` runs it after the parallel phase, alone on the machine.
pytestmark = [pytest.mark.integration, pytest.mark.timing]

A_JOBS = 6
B_JOBS = 8  # one at a time, ~0.2 s each: a median steady enough for a 20% bound
WEBHOOK_TIMEOUT_S = 1.0


class HangingReceiver:
    """Accepts connections, reads the request and never answers."""

    def __init__(self) -> None:
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._held: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/hook"

    async def _handle(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._held.append(writer)

    async def stop(self) -> None:
        for writer in self._held:
            writer.close()
        if self._server is not None:
            self._server.close()


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[WebhookReceiver, WebhookReceiver, HangingReceiver]]:
    a_ok, b_ok, hanging = WebhookReceiver(), WebhookReceiver(), HangingReceiver()
    await a_ok.start()
    await b_ok.start()
    yield a_ok, b_ok, hanging
    await a_ok.stop()
    await b_ok.stop()
    await hanging.stop()


async def run_mix(env: Env, a_url: str, b_url: str, tenant_a: str, tenant_b: str) -> list[float]:
    """A's jobs, then, once they are finished (their webhooks may still be under way), B's
    jobs one after another; B's latencies (record created -> finished), seconds. One at a
    time, B's latency is its own work, not a wait behind A's parses."""
    a_jobs = [
        await env.submit(make_pdf([f"tenant a job {n}"]), tenant=tenant_a, callback_url=a_url)
        for n in range(A_JOBS)
    ]
    for job_id in a_jobs:
        record = await env.wait_status(job_id, JobStatus.SUCCEEDED, JobStatus.FAILED, wait_s=120)
        assert record.status is JobStatus.SUCCEEDED, record.error
    latencies = []
    for n in range(B_JOBS):
        job_id = await env.submit(make_pdf([f"tenant b job {n}"]), tenant=tenant_b, callback_url=b_url)
        record = await env.wait_status(job_id, JobStatus.SUCCEEDED, JobStatus.FAILED, wait_s=120)
        assert record.status is JobStatus.SUCCEEDED, record.error
        assert record.finished_at is not None
        latencies.append((record.finished_at - record.created_at).total_seconds())
    return latencies


def failed_webhooks(exported: str) -> float:
    prefix = 'webhook_deliveries_total{outcome="failed"} '
    return sum(float(line[len(prefix) :]) for line in exported.splitlines() if line.startswith(prefix))


async def test_hanging_receiver_of_one_tenant_does_not_slow_another(
    env: Env, receivers: tuple[WebhookReceiver, WebhookReceiver, HangingReceiver]
) -> None:
    a_ok, b_ok, hanging = receivers
    hanging_url = await hanging.start()
    worker = await env.start(
        worker_concurrency=2,
        webhook_timeout_s=WEBHOOK_TIMEOUT_S,
        webhook_max_attempts=2,
        webhook_backoff_s=0.2,
        webhook_tenant_concurrency=2,
        # A's destination gets paused after 3 timeouts, briefly (at most the longest backoff),
        # so the test ends soon.
        webhook_circuit_failures=3,
        webhook_circuit_open_s=0.5,
        webhook_backoff_max_s=1.0,
    )
    tenant_a, tenant_b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    try:
        # Warm-up: the first parse pays for imports the others do not.
        warm_up = await env.submit(make_pdf(["warm-up"]), tenant=tenant_b, callback_url=b_ok.url)
        await env.wait_status(warm_up, JobStatus.SUCCEEDED, JobStatus.FAILED, wait_s=120)
        baseline = await run_mix(env, a_ok.url, b_ok.url, tenant_a, tenant_b)
        hung = await run_mix(env, hanging_url, b_ok.url, f"{tenant_a}-2", f"{tenant_b}-2")
        # B's jobs ran while A's webhooks were still being tried (2 x 1 s each, 2 at a time).
        assert hanging.connections >= 1
        assert failed_webhooks(worker.metrics.render().decode()) < A_JOBS
        # B's webhooks all arrive while A's receiver still hangs.
        await b_ok.wait_for(2 * B_JOBS + 1, wait_s=30)
        await webhooks_settled(env, wait_s=60)
        assert failed_webhooks(worker.metrics.render().decode()) == A_JOBS
    finally:
        await worker.drain()
    base, with_hang = statistics.median(baseline), statistics.median(hung)
    print(f"B latency median: baseline {base:.3f}s, A hanging {with_hang:.3f}s")
    # Before webhooks left the job's path, each A job held a worker slot for its attempts
    # (here 2 x 1 s + backoff), pushing B's jobs back by seconds.
    assert with_hang <= base * 1.2, (baseline, hung)
