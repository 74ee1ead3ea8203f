"""A small soak: a stream of uploads through the real gateway while worker processes are
killed (SIGKILL) or scaled in (SIGTERM) and replaced at random moments. The report lists
accepted, completed, failed, duplicates and lost; lost must be 0 and every job must succeed."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.reliability.conftest import WorkerProcesses
from tests.reliability.test_outages import Tally, uploader, wait_all_finished
from tests.servers import NatsServer, SeaweedS3
from tests.service.gateway.conftest import Tenants, make_settings
from tests.service.gateway.harness import LiveGateway

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# SOAK_JOBS / SOAK_RESTARTS scale this run up (e.g. SOAK_JOBS=3000 SOAK_RESTARTS=20); the
# defaults keep CI's run short. bench/soak.py runs thousands through `serve` (bench/results/soak.md).
JOBS = int(os.environ.get("SOAK_JOBS", "150"))
RESTARTS = int(os.environ.get("SOAK_RESTARTS", "4"))


async def test_uploads_survive_worker_restarts(
    tmp_path: Path,
    fresh_nats_server: NatsServer,
    seaweed_s3: SeaweedS3,
    tenants_file: Path,
    tenants: Tenants,
    worker_procs: WorkerProcesses,
) -> None:
    rng = random.Random(6)  # the same schedule on every run
    settings = make_settings(tmp_path, fresh_nats_server, seaweed_s3, tenants_file)
    gw = LiveGateway(settings)
    gw.start()
    extra = {
        "PERCOLATE_READING_TENANTS_FILE": str(tenants_file),
        "PERCOLATE_READING_WORKER_CONCURRENCY": "2",
        "PERCOLATE_READING_NATS_MAX_DELIVER": "10",
        "PERCOLATE_READING_NAK_BACKOFF_S": "0.2",
        "PERCOLATE_READING_DRAIN_TIMEOUT_S": "2",
    }

    stop = asyncio.Event()
    tally = Tally()
    kills = Counter[str]()
    try:
        current = await worker_procs.start(**extra)
        async with httpx.AsyncClient(
            base_url=gw.url, headers={"Authorization": f"Bearer {tenants.acme_key}"}, timeout=30
        ) as client:
            uploads = [asyncio.create_task(uploader(client, tally, stop, n)) for n in range(2)]
            for r in range(1, RESTARTS + 1):
                await tally.until(lambda r=r: len(tally.accepted) >= r * JOBS // (RESTARTS + 1))
                await current.wait_ready()
                await asyncio.sleep(rng.uniform(0.0, 1.5))
                how = rng.choice(["SIGKILL", "SIGTERM"])
                current.signal(signal.SIGKILL if how == "SIGKILL" else signal.SIGTERM)
                rc = await current.wait(wait_s=60)
                assert rc == (0 if how == "SIGTERM" else -signal.SIGKILL), current.log()
                kills[how] += 1
                current = await worker_procs.start(**extra)
            await tally.until(lambda: len(tally.accepted) >= JOBS)
            stop.set()
            await asyncio.gather(*uploads)
            final = await wait_all_finished(client, tally.accepted, wait_s=max(300.0, JOBS / 2))
            attempts = [
                (await client.get(f"/v1/jobs/{job_id}")).json()["attempts"] for job_id in tally.accepted
            ]
            # A result committed twice would be two entries of one job in the tenant's context.
            context = (await client.get("/v1/context")).json()
        results = Counter(d["job_id"] for d in context["documents"])
        duplicates = sum(1 for job_id in set(tally.accepted) if results[job_id] > 1)
        completed = Counter(final.values())
        lost = len(set(tally.accepted) - set(final))
        redelivered = sum(1 for a in attempts if a > 1)
        print(
            f"soak: accepted={len(tally.accepted)} completed={completed['succeeded']} "
            f"failed={completed['failed']} duplicates={duplicates} redelivered={redelivered} lost={lost} "
            f"throttled_429={tally.answers[429]} restarts={dict(kills)}"
        )
        assert lost == 0
        assert duplicates == 0
        assert len(set(tally.accepted)) == len(tally.accepted)
        assert completed == Counter({"succeeded": len(tally.accepted)})
        assert set(tally.answers) <= {202, 429}  # 429: the quota's back-pressure
    finally:
        stop.set()
        gw.stop()
