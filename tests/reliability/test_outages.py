"""Server outages under load, through the real gateway and worker: nats-server killed and
restarted during a stream of uploads, and S3 gone while a job waits in the queue.

The promise checked: every upload answered 202 is eventually processed (unique completed ==
accepted); during an outage the answer is 503, never a 202 that is then lost."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from percolate_reading.config import Settings
from percolate_reading.infra.storage import open_object_store
from percolate_reading.infra.storage.base import ObjectStore
from percolate_reading.worker.main import Worker, start_worker
from tests.harness.documents import make_pdf
from tests.servers import NatsServer, SeaweedS3
from tests.service.gateway.conftest import Tenants, make_settings
from tests.service.gateway.harness import LiveGateway

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class Tally:
    accepted: list[str] = field(default_factory=list)
    answers: Counter[int] = field(default_factory=Counter)
    unanswered: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def note(self) -> None:
        self.changed.set()

    async def until(self, predicate: object, wait_s: float = 90.0) -> None:
        assert callable(predicate)
        async with asyncio.timeout(wait_s):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


async def uploader(client: httpx.AsyncClient, tally: Tally, stop: asyncio.Event, n: int) -> None:
    i = 0
    while not stop.is_set():
        i += 1
        try:
            r = await client.post("/v1/parse", files={"file": (f"u{n}-{i}.pdf", make_pdf(f"upload {n}-{i}"))})
        except httpx.HTTPError:
            tally.unanswered += 1  # no answer is not an acceptance
            tally.note()
            await asyncio.sleep(0.2)
            continue
        tally.answers[r.status_code] += 1
        if r.status_code == 202:
            tally.accepted.append(r.json()["job_id"])
        else:
            # 503: an outage; 429: the tenant's active-job quota (back-pressure). Both retryable.
            assert r.status_code in (503, 429), r.text
            if r.status_code == 503:
                assert int(r.headers["Retry-After"]) > 0
            await asyncio.sleep(0.2)
        tally.note()


async def wait_all_finished(
    client: httpx.AsyncClient, job_ids: list[str], wait_s: float = 240.0
) -> dict[str, str]:
    final: dict[str, str] = {}
    async with asyncio.timeout(wait_s):
        while len(final) < len(job_ids):
            for job_id in job_ids:
                if job_id in final:
                    continue
                r = await client.get(f"/v1/jobs/{job_id}")
                if r.status_code == 200 and r.json()["status"] in ("succeeded", "failed", "cancelled"):
                    final[job_id] = r.json()["status"]
            await asyncio.sleep(0.3)
    return final


def processed_count(worker: Worker, outcome: str) -> float:
    for line in worker.metrics.render().decode().splitlines():
        if line.startswith(f'nats_messages_processed_total{{outcome="{outcome}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_nats_killed_during_a_stream_of_uploads(
    tmp_path: Path,
    fresh_nats_server: NatsServer,
    seaweed_s3: SeaweedS3,
    tenants_file: Path,
    tenants: Tenants,
) -> None:
    settings = make_settings(
        tmp_path,
        fresh_nats_server,
        seaweed_s3,
        tenants_file,
        nats_ack_wait=4.0,
        nak_backoff_s="0.5,1",
        nats_max_deliver=10,
        worker_fetch_timeout_s=0.5,
        worker_concurrency=2,
    )
    gw = LiveGateway(settings)
    gw.start()
    worker: Worker | None = None
    stop = asyncio.Event()
    tally = Tally()
    uploads: list[asyncio.Task[None]] = []
    try:
        worker = await start_worker(settings)
        async with httpx.AsyncClient(
            base_url=gw.url, headers={"Authorization": f"Bearer {tenants.acme_key}"}, timeout=30
        ) as client:
            uploads = [asyncio.create_task(uploader(client, tally, stop, n)) for n in range(2)]
            await tally.until(lambda: len(tally.accepted) >= 8)
            fresh_nats_server.kill()
            await tally.until(lambda: tally.answers[503] >= 4)  # the outage is seen as 503s
            before_restart = len(tally.accepted)
            fresh_nats_server.start()
            await tally.until(lambda: len(tally.accepted) >= before_restart + 8)
            stop.set()
            await asyncio.gather(*uploads)
            final = await wait_all_finished(client, tally.accepted)
        assert len(set(tally.accepted)) == len(tally.accepted)
        # Every accepted upload completed, none lost and none failed.
        assert Counter(final.values()) == Counter({"succeeded": len(tally.accepted)})
        assert set(tally.answers) <= {202, 503, 429}
        duplicates = processed_count(worker, "duplicate")
        # The report: redeliveries of finished jobs are expected (at-least-once), losses are not.
        print(
            f"accepted={len(tally.accepted)} completed={len(final)} refused_503={tally.answers[503]} "
            f"unanswered={tally.unanswered} duplicates={duplicates:.0f} lost=0"
        )
        # Each job finished at least once; one whose final status write was answered while
        # NATS went down is retried and then counted as a duplicate of its own success.
        assert processed_count(worker, "succeeded") + duplicates >= len(tally.accepted)
    finally:
        stop.set()
        for task in uploads:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if worker is not None:
            await worker.drain(timeout_s=5)
        gw.stop()


@dataclass
class OwnS3Platform:
    """The live gateway, and the worker a test starts, on an S3 server of the test's own
    (which it stops and starts); `client` talks to the gateway as tenant acme."""

    settings: Settings
    s3: SeaweedS3
    store: ObjectStore
    client: httpx.AsyncClient
    worker: Worker | None = None

    async def start_worker(self) -> Worker:
        self.worker = await start_worker(self.settings, store=self.store)
        return self.worker

    async def drain(self) -> None:
        if self.worker is not None:
            await self.worker.drain(timeout_s=5)


@contextlib.asynccontextmanager
async def own_s3_platform(
    tmp_path: Path, nats_server: NatsServer, tenants_file: Path, tenants: Tenants, **settings: Any
) -> AsyncIterator[OwnS3Platform]:
    async with contextlib.AsyncExitStack() as stack:
        own_s3 = SeaweedS3(tmp_path / "own-seaweed")
        own_s3.start()
        stack.callback(own_s3.stop)
        platform_settings = make_settings(tmp_path, nats_server, own_s3, tenants_file, **settings)
        gw = LiveGateway(platform_settings)
        gw.start()
        stack.callback(gw.stop)
        # Opened while S3 is up (opening checks the buckets); the client reconnects by itself.
        store = await open_object_store(platform_settings)
        stack.push_async_callback(store.close)
        auth = {"Authorization": f"Bearer {tenants.acme_key}"}
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=gw.url, headers=auth, timeout=30))
        platform = OwnS3Platform(platform_settings, own_s3, store, client)
        stack.push_async_callback(platform.drain)
        yield platform


async def test_s3_gone_while_a_job_waits_then_back(
    tmp_path: Path,
    fresh_nats_server: NatsServer,
    tenants_file: Path,
    tenants: Tenants,
) -> None:
    async with own_s3_platform(
        tmp_path,
        fresh_nats_server,
        tenants_file,
        tenants,
        nats_ack_wait=5.0,
        nak_backoff_s="1,2",
        nats_max_deliver=30,
        worker_fetch_timeout_s=0.5,
    ) as platform:
        client = platform.client
        r = await client.post("/v1/parse", files={"file": ("wait.pdf", make_pdf("waits out the outage"))})
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        platform.s3.stop()  # S3 gone before any worker picked the job up
        refused = await client.post("/v1/parse", files={"file": ("x.pdf", make_pdf("refused"))})
        assert refused.status_code == 503, refused.text
        worker = await platform.start_worker()
        # The worker cannot download it: it holds the job (no delivery spent), stops
        # pulling and says why it is not ready.
        async with asyncio.timeout(60):
            while worker.ready()[0]:  # noqa: ASYNC110 (a probe, no event to wait on)
                await asyncio.sleep(0.2)
        assert "outage" in worker.ready()[1]
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        assert job["status"] in ("queued", "running")
        platform.s3.start()
        final = await wait_all_finished(client, [job_id], wait_s=120)
        assert final == {job_id: "succeeded"}
        done = (await client.get(f"/v1/jobs/{job_id}")).json()
        assert done["error"] is None
        assert "structured.md" in done["artifacts"]
        assert worker.ready()[0]


@pytest.mark.slow
@pytest.mark.parametrize("outage_s", [25.0, 120.0])
async def test_s3_outage_spends_no_deliveries(
    tmp_path: Path,
    fresh_nats_server: NatsServer,
    tenants_file: Path,
    tenants: Tenants,
    outage_s: float,
) -> None:
    """Finding 1: a ~20 s S3 outage failed every waiting job (3 deliveries spent in ~12 s).
    Default max_deliver (3) and nak backoff: jobs queued and in flight all succeed."""
    async with own_s3_platform(
        tmp_path, fresh_nats_server, tenants_file, tenants, nats_ack_wait=5.0, outage_probe_s=1.0
    ) as platform:
        client = platform.client
        assert platform.settings.nats_max_deliver == 3
        ids = []
        for i in range(10):
            r = await client.post("/v1/parse", files={"file": (f"j{i}.pdf", make_pdf(f"outage job {i}"))})
            assert r.status_code == 202, r.text
            ids.append(r.json()["job_id"])
        worker = await platform.start_worker()
        # Some in flight, the rest queued, then S3 goes away for longer than 3 deliveries lasted.
        async with asyncio.timeout(60):
            while True:
                statuses = [(await client.get(f"/v1/jobs/{j}")).json()["status"] for j in ids]
                if "running" in statuses:
                    break
                await asyncio.sleep(0.1)
        platform.s3.stop()
        await asyncio.sleep(outage_s)
        assert not worker.ready()[0]
        platform.s3.start()
        final = await wait_all_finished(client, ids, wait_s=240)
        assert final == dict.fromkeys(ids, "succeeded")
        nc = await nats.connect(platform.settings.nats_url)
        try:
            dlq = await nc.jetstream().stream_info("JOBS_DLQ")
        finally:
            await nc.close()
        assert dlq.state.messages == 0
